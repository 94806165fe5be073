//! tune-knobs.7: every entry of the knob registry with its scope, value, symptom and both fixes, written from `REGISTRY` alone.

use roff::{bold, italic, roman, Roff};

use super::{see_also, title, Page};
use crate::knobs::{Compare, Knob, Scope, Shape, Value};

/// Component values no real knob holds, replaced by placeholder words after the registry's own fix functions ran.
const SENTINELS: [u64; 3] = [9_876_543_211, 9_876_543_212, 9_876_543_213];

/// The words a user substitutes, per shape: `N`, `LOW MID HIGH`, `LOW HIGH`.
fn placeholders(shape: Shape) -> &'static [&'static str] {
    match shape {
        Shape::Int => &["N"],
        Shape::Triple => &["LOW", "MID", "HIGH"],
        Shape::Range => &["LOW", "HIGH"],
    }
}

fn sentinel_value(shape: Shape) -> Value {
    match shape {
        Shape::Int => Value::Int(SENTINELS[0]),
        Shape::Triple => Value::Triple(SENTINELS),
        Shape::Range => Value::Range([SENTINELS[0], SENTINELS[1]]),
    }
}

/// A fix text from the registry with the sentinel numbers turned back into placeholder words.
fn symbolic(shape: Shape, text: &str) -> String {
    let mut out = text.to_string();
    for (n, word) in SENTINELS.iter().zip(placeholders(shape)) {
        out = out.replace(&n.to_string(), word);
    }
    out
}

/// The run-time fix as `Knob::runtime_fix` writes it, with placeholders for the value and the pid.
pub fn runtime_fix(knob: &Knob) -> String {
    symbolic(
        knob.shape,
        &knob.runtime_fix(&sentinel_value(knob.shape), None),
    )
}

/// The boot-time fix as `Knob::persist_fix` writes it, with placeholders; `None` when nothing persists.
pub fn persist_fix(knob: &Knob) -> Option<String> {
    knob.persist_fix(&sentinel_value(knob.shape))
        .map(|t| symbolic(knob.shape, &t))
}

pub fn scope_text(scope: Scope) -> &'static str {
    match scope {
        Scope::Process => {
            "process: each process has its own; tune reads its own or, with --pid, a running service's"
        }
        Scope::Host => "host: one value for the whole machine, whatever the network namespace",
        Scope::NetNs => {
            "net-namespace: one value per network namespace; a container with its own network sees its own"
        }
    }
}

pub fn shape_text(shape: Shape, unit: &str) -> String {
    match shape {
        Shape::Int => format!("one integer ({unit})"),
        Shape::Triple => format!("three integers, low to high ({unit})"),
        Shape::Range => format!("two integers: low, high ({unit})"),
    }
}

pub fn compare_text(compare: Compare, shape: Shape) -> &'static str {
    match (compare, shape) {
        (Compare::AtLeast, Shape::Int) => "passes when the live value is at least the required one",
        (Compare::AtLeast, _) => "passes when each live number is at least the required one",
        (Compare::AtMost, Shape::Int) => {
            "passes when the live value is at most the required one (shorter is better)"
        }
        (Compare::AtMost, _) => "passes when each live number is at most the required one",
        (Compare::PortCount, _) => {
            "passes when the live range offers at least as many ports as the required one"
        }
        (Compare::Equal, _) => "a mode: passes when the live value is exactly the required one",
        (Compare::Info, _) => "reported only; never fails a check",
    }
}

pub fn page(registry: &[Knob]) -> Page {
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
        r.control("SS", [knob.name.replace('-', "\\-").as_str()]);
        r.text([roman(knob.summary)]);
        field(&mut r, "Scope", scope_text(knob.scope));
        field(&mut r, "Value", &shape_text(knob.shape, knob.unit));
        field(&mut r, "Check", compare_text(knob.compare, knob.shape));
        field(&mut r, "Running short", knob.symptom);
        field(&mut r, "Raise at run time", &runtime_fix(knob));
        let persist = persist_fix(knob).unwrap_or_else(|| "nothing to persist".to_string());
        field(&mut r, "Raise at boot", &persist);
    }
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
            let fix = runtime_fix(knob).replace('\\', "\\\\").replace('-', "\\-");
            assert!(
                page.contains(&fix),
                "{}: run-time fix {fix:?} missing",
                knob.name
            );
        }
    }

    #[test]
    fn fixes_use_placeholders_not_sentinels() {
        let somaxconn = crate::knobs::find("net.core.somaxconn").unwrap();
        assert_eq!(runtime_fix(somaxconn), "sysctl -w net.core.somaxconn=\"N\"");
        let tcp_mem = crate::knobs::find("net.ipv4.tcp_mem").unwrap();
        assert!(
            runtime_fix(tcp_mem).contains("LOW MID HIGH"),
            "{}",
            runtime_fix(tcp_mem)
        );
        let range = crate::knobs::find("net.ipv4.ip_local_port_range").unwrap();
        assert!(persist_fix(range).unwrap().ends_with("= LOW HIGH"));
        for knob in REGISTRY {
            let all = format!("{} {:?}", runtime_fix(knob), persist_fix(knob));
            assert!(!all.contains("987654321"), "{}: {all}", knob.name);
        }
    }
}
