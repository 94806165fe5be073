//! What tune generates about itself: man pages (from the clap definitions, the knob registry and the profile data) and shell completions.
//!
//! Everything here is pure: functions return the text of each page or script
//! and [`write_man_pages`] is the only place that touches the file system.
//! Nothing in `man/` is written by hand; `tests/generate_man.rs` fails when
//! the committed pages differ from what this module produces.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

mod commands;
pub mod completions;
pub mod examples;
mod knobs;
mod profiles;
pub mod sources;

/// The manual every page belongs to (the centre footer of `man`).
const MANUAL: &str = "tune manual";

/// One generated page: the file name (`tune-check.1`) and its roff source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub file_name: String,
    pub roff: String,
}

/// One exit code and what it means, for the EXIT STATUS sections (the commands layer knows them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    pub code: u8,
    pub meaning: &'static str,
}

/// Every man page tune ships, in a stable order: tune.1, the subcommands, tune-profiles.5, tune-knobs.7.
/// `cli` is the command tree and `exits` its exit codes; both come from the layers above.
pub fn man_pages(cli: &clap::Command, exits: &[ExitStatus]) -> Vec<Page> {
    let mut pages = commands::pages(cli, exits);
    pages.push(profiles::page(
        &sources::shipped_profiles(),
        &sources::formula_examples(),
    ));
    pages.push(knobs::page(crate::knobs::REGISTRY));
    for page in &mut pages {
        page.roff = ascii_roff(&page.roff);
    }
    pages
}

/// Writes every non-ASCII character as a groff Unicode escape (`×` becomes `\[u00D7]`), so the pages
/// render the same whether or not the formatter is told the input encoding (`man` runs preconv; plain
/// `groff` and `nroff` do not).
fn ascii_roff(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", c as u32));
        }
    }
    out
}

/// Is `name` a file this generator writes or once wrote (so regenerating may replace or remove it)?
fn is_generated_name(name: &str) -> bool {
    let Some((stem, section)) = name.rsplit_once('.') else {
        return false;
    };
    matches!(section, "1" | "5" | "7") && (stem == "tune" || stem.starts_with("tune-"))
}

/// Writes every page into `dir` (created if missing) and removes generated pages that no longer exist
/// (a renamed subcommand), so `dir` ends up exactly as [`man_pages`] says. Returns the paths written.
pub fn write_man_pages(
    dir: &Path,
    cli: &clap::Command,
    exits: &[ExitStatus],
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let pages = man_pages(cli, exits);
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))?
    {
        let entry = entry.with_context(|| format!("{}: cannot list", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_generated_name(&name) && !pages.iter().any(|p| p.file_name == name) {
            let path = entry.path();
            std::fs::remove_file(&path)
                .with_context(|| format!("{}: cannot remove stale page", path.display()))?;
        }
    }
    let mut written = Vec::with_capacity(pages.len());
    for page in pages {
        let path = dir.join(&page.file_name);
        std::fs::write(&path, &page.roff)
            .with_context(|| format!("{}: cannot write", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `.TH` arguments shared by the pages this module writes itself.
fn title(name: &str, section: &str) -> [String; 5] {
    [
        name.to_uppercase(),
        section.to_string(),
        String::new(),
        format!("tune {}", env!("CARGO_PKG_VERSION")),
        MANUAL.to_string(),
    ]
}

/// A `.SH SEE ALSO` section: `name(section)` references, comma separated.
fn see_also(roff: &mut roff::Roff, refs: &[(String, &str)]) {
    roff.control("SH", ["SEE ALSO"]);
    let mut inlines = Vec::new();
    for (i, (name, section)) in refs.iter().enumerate() {
        if i > 0 {
            inlines.push(roff::roman(", "));
        }
        inlines.push(roff::bold(name.as_str()));
        inlines.push(roff::roman(format!("({section})")));
    }
    roff.text(inlines);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real CLI and exit codes, as `tune generate man` passes them.
    pub(crate) fn pages() -> Vec<Page> {
        man_pages(
            &crate::cli::Cli::command(),
            &crate::cmd::generate::exit_statuses(),
        )
    }

    #[test]
    fn page_names_are_unique_and_cover_every_visible_subcommand() {
        let pages = pages();
        let mut names: Vec<&str> = pages.iter().map(|p| p.file_name.as_str()).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "duplicate page names: {names:?}");
        for sub in crate::cli::Cli::command().get_subcommands() {
            let file = format!("tune-{}.1", sub.get_name());
            assert_eq!(
                names.contains(&file.as_str()),
                !sub.is_hide_set(),
                "{file}: a page exactly for each visible subcommand"
            );
        }
        for fixed in ["tune.1", "tune-profiles.5", "tune-knobs.7"] {
            assert!(names.contains(&fixed), "{fixed} missing from {names:?}");
        }
    }

    #[test]
    fn non_ascii_becomes_groff_escapes() {
        assert_eq!(ascii_roff("a × b \u{2014} c"), "a \\[u00D7] b \\[u2014] c");
        assert_eq!(ascii_roff("plain \\- text"), "plain \\- text");
        assert_eq!(ascii_roff("\u{1F600}"), "\\[u1F600]");
    }

    #[test]
    fn only_our_page_names_count_as_generated() {
        assert!(is_generated_name("tune.1"));
        assert!(is_generated_name("tune-check.1"));
        assert!(is_generated_name("tune-knobs.7"));
        assert!(!is_generated_name("README"));
        assert!(!is_generated_name("tune.1.gz"));
        assert!(!is_generated_name("other.1"));
        assert!(!is_generated_name("tuner.1"));
    }

    #[test]
    fn write_man_pages_replaces_stale_pages_and_keeps_other_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tune-gone.1"), "stale").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let written = write_man_pages(
            dir.path(),
            &crate::cli::Cli::command(),
            &crate::cmd::generate::exit_statuses(),
        )
        .unwrap();
        assert_eq!(written.len(), pages().len());
        assert!(!dir.path().join("tune-gone.1").exists());
        assert!(dir.path().join("notes.txt").exists());
        assert!(dir.path().join("tune.1").exists());
    }
}
