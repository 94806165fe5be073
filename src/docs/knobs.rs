//! tune-knobs.7: every entry of the knob registry, each rendered from its [`KnobDoc`] (what `tune explain` prints).

use roff::{bold, italic, roman, Roff};

use super::{see_also, title, Page};
use crate::knobs::{doc::with_note, Knob, KnobDoc};

pub fn page(registry: &'static [Knob]) -> Page {
    let mut r = Roff::new();
    r.control("TH", title("tune-knobs", "7").iter().map(String::as_str));
    r.control("SH", ["NAME"]);
    r.text([roman(
        "tune-knobs - the kernel and process limits that cap concurrent connections, as tune checks and raises them",
    )]);
    r.control("SH", ["DESCRIPTION"]);
    r.text([
        bold("tune check"),
        roman(format!(
            " reads each of the {} knobs below, compares it with a profile (see ",
            registry.len()
        )),
        bold("tune-profiles"),
        roman("(5)) and names the one that binds first; "),
        bold("tune apply"),
        roman(" raises those that fall short, at run time and, with "),
        bold("--persist"),
        roman(", at boot; "),
        bold("tune explain"),
        roman(" "),
        italic("KNOB"),
        roman(" prints one entry of this page."),
    ]);
    r.control("PP", []);
    r.text([roman(
        "In the fixes, N, LOW, MID and HIGH stand for the value a profile requires, \
         and PID for the process whose limit is raised.",
    )]);
    r.control("SH", ["KNOBS"]);
    for knob in registry {
        entry(&mut r, &knob.doc());
    }
    super::examples::section(&mut r, super::examples::for_page("tune-knobs.7"));
    see_also(
        &mut r,
        &[
            ("tune".into(), "1"),
            ("tune-check".into(), "1"),
            ("tune-apply".into(), "1"),
            ("tune-explain".into(), "1"),
            ("tune-profiles".into(), "5"),
            ("sysctl".into(), "8"),
            ("prlimit".into(), "1"),
            ("proc".into(), "5"),
        ],
    );
    Page {
        file_name: "tune-knobs.7".into(),
        roff: r.render(),
    }
}

/// One knob's `.SS` entry: the same fields, in the same order, as `tune explain` prints.
fn entry(r: &mut Roff, d: &KnobDoc) {
    r.control("SS", [d.name.replace('-', "\\-").as_str()]);
    r.text([roman(d.summary)]);
    field(r, "Scope", &d.scope);
    field(r, "Value", &d.value);
    if let Some(a) = &d.accepts {
        field(r, "Accepts", a);
    }
    field(r, "Read from", &d.read_from);
    field(r, "Check", d.check);
    field(r, "Running short", d.symptom);
    field(
        r,
        "Raise at run time",
        &with_note(&d.runtime, d.runtime_note),
    );
    field(r, "Raise at boot", &with_note(&d.persist, d.persist_note));
}

fn field(r: &mut Roff, label: &str, text: &str) {
    r.control("TP", []);
    r.text([italic(label)]);
    r.text([roman(text)]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knobs::REGISTRY;

    #[test]
    fn every_knob_has_an_entry_with_its_fixes() {
        let page = page(REGISTRY).roff;
        for knob in REGISTRY {
            let heading = format!(".SS {}\n", knob.name.replace('-', "\\-"));
            assert!(page.contains(&heading), "no entry for {}", knob.name);
            let fix = knob.doc().runtime.replace('\\', "\\\\").replace('-', "\\-");
            assert!(
                page.contains(&fix),
                "{}: run-time fix {fix:?} missing",
                knob.name
            );
        }
        assert!(page.contains("sysctl \\-w net.core.somaxconn=\"N\""));
    }
}
