//! Section 1 pages from the clap definitions: tune.1 and one page per visible subcommand (clap_mangen), with ENVIRONMENT and SEE ALSO added.

use clap::Command;
use roff::{bold, roman, Roff};

use super::{see_also, ExitStatus, Page, MANUAL};

/// Pages for `root` and every visible subcommand below it, depth first after their parent.
pub fn pages(root: &Command, exits: &[ExitStatus]) -> Vec<Page> {
    let mut root = root.clone().disable_help_subcommand(true);
    root.build();
    let mut subpages = Vec::new();
    collect(&root, &mut subpages);
    let mut refs: Vec<(String, &str)> = subpages.iter().map(|c| (display_name(c), "1")).collect();
    refs.push(("tune-profiles".into(), "5"));
    refs.push(("tune-knobs".into(), "7"));

    let mut out = vec![render(&root, &refs, exits, true)];
    let sub_refs = [
        (display_name(&root), "1"),
        ("tune-profiles".to_string(), "5"),
        ("tune-knobs".to_string(), "7"),
    ];
    for cmd in &subpages {
        out.push(render(cmd, &sub_refs, exits, false));
    }
    out
}

/// `tune-check` for `check`: clap sets the display name when the command is built.
fn display_name(cmd: &Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string()
}

fn collect(cmd: &Command, out: &mut Vec<Command>) {
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        out.push(sub.clone());
        collect(sub, out);
    }
}

/// What `roff::Roff::to_writer` puts before every document it writes.
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// One of clap_mangen's section renderers.
type Section = fn(&clap_mangen::Man, &mut dyn std::io::Write) -> std::io::Result<()>;

fn render(cmd: &Command, refs: &[(String, &str)], exits: &[ExitStatus], is_root: bool) -> Page {
    let man = clap_mangen::Man::new(cmd.clone())
        .manual(MANUAL)
        .source(format!("tune {}", env!("CARGO_PKG_VERSION")));
    let file_name = man.get_filename();
    let mut buf: Vec<u8> = Vec::new();
    // clap_mangen's sections one by one (writing into a Vec cannot fail), leaving out its EXTRA
    // section: the root's after-help states the exit codes, which EXIT STATUS below covers for every page.
    let visible_args = cmd.get_arguments().any(|a| !a.is_hide_set());
    let visible_subs = cmd.get_subcommands().any(|s| !s.is_hide_set());
    let sections: [(bool, Section); 6] = [
        (true, clap_mangen::Man::render_title),
        (true, clap_mangen::Man::render_name_section),
        (true, clap_mangen::Man::render_synopsis_section),
        (true, clap_mangen::Man::render_description_section),
        (visible_args, clap_mangen::Man::render_options_section),
        (visible_subs, clap_mangen::Man::render_subcommands_section),
    ];
    for (wanted, section) in sections {
        if wanted {
            section(&man, &mut buf).expect("render into memory");
        }
    }
    let mut text = String::from_utf8(buf).expect("clap_mangen writes UTF-8");
    // Each section renderer repeats roff's two-line apostrophe preamble; keep the first.
    if let Some(end) = text.find(PREAMBLE).map(|i| i + PREAMBLE.len()) {
        let rest = text.split_off(end).replace(PREAMBLE, "");
        text.push_str(&rest);
    }
    let mut extra = Roff::new();
    if !is_root {
        if let Some(after) = cmd.get_after_long_help().or(cmd.get_after_help()) {
            extra.control("SH", ["NOTES"]);
            extra.text([roman(after.to_string())]);
        }
    }
    super::examples::section(&mut extra, super::examples::for_page(&file_name));
    exit_status(&mut extra, exits);
    if is_root {
        environment(&mut extra);
    }
    see_also(&mut extra, refs);
    // `to_roff`, not `render`: clap_mangen's title section already defined the apostrophe string.
    text.push_str(&extra.to_roff());
    Page {
        file_name,
        roff: text,
    }
}

/// The EXIT STATUS section: each code and what it means.
fn exit_status(roff: &mut Roff, exits: &[ExitStatus]) {
    roff.control("SH", ["EXIT STATUS"]);
    for e in exits {
        roff.control("TP", []);
        roff.text([bold(e.code.to_string())]);
        roff.text([roman(e.meaning)]);
    }
}

/// Variables tune reads that no clap argument declares (those with `env =` appear under OPTIONS already).
fn environment(roff: &mut Roff) {
    roff.control("SH", ["ENVIRONMENT"]);
    roff.control("TP", []);
    roff.text([bold("NO_COLOR")]);
    roff.text([roman(
        "When set and not empty, tables are printed without colour. \
         Colour is used only when standard output is a terminal.",
    )]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_page_links_every_subcommand_page() {
        let pages = pages(
            &crate::cli::Cli::command(),
            &crate::cmd::generate::exit_statuses(),
        );
        let root = &pages[0];
        assert_eq!(root.file_name, "tune.1");
        for p in &pages[1..] {
            let stem = p.file_name.trim_end_matches(".1");
            let reference = format!("\\fB{}\\fR(1)", stem.replace('-', "\\-"));
            assert!(root.roff.contains(&reference), "tune.1 lacks {reference}");
        }
    }

    #[test]
    fn hidden_workers_get_no_page() {
        let pages = pages(
            &crate::cli::Cli::command(),
            &crate::cmd::generate::exit_statuses(),
        );
        assert!(pages.iter().all(|p| !p.file_name.contains("__")));
        assert!(pages.iter().all(|p| !p.file_name.starts_with("tune-help")));
    }
}
