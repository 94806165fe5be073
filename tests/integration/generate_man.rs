//! `tune generate man` through the binary: the committed man/ is what the generator writes now, and every page renders without groff warnings.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::support::tune;

const REGENERATE: &str = "run `cargo run -- generate man --out man` and commit man/";

/// Every regular file in `dir` by name, with its text.
fn files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            let text = std::fs::read_to_string(e.path()).unwrap();
            (e.file_name().to_string_lossy().into_owned(), text)
        })
        .collect()
}

fn generate_into_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = tune()
        .args(["generate", "man", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "generate man failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It prints one line per page written.
    let listed = String::from_utf8(out.stdout).unwrap().lines().count();
    assert_eq!(listed, files(dir.path()).len());
    dir
}

#[test]
fn committed_man_pages_are_fresh() {
    let fresh = generate_into_tempdir();
    let fresh = files(fresh.path());
    let committed_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    assert!(committed_dir.is_dir(), "man/ is missing: {REGENERATE}");
    let committed = files(&committed_dir);

    let fresh_names: Vec<&String> = fresh.keys().collect();
    let committed_names: Vec<&String> = committed.keys().collect();
    assert_eq!(
        committed_names, fresh_names,
        "man/ holds other pages than the generator writes: {REGENERATE}"
    );
    for (name, text) in &fresh {
        assert!(
            committed[name] == *text,
            "man/{name} is stale (the CLI, the knob registry or the profiles changed): {REGENERATE}"
        );
    }
}

#[test]
fn every_page_renders_without_groff_warnings() {
    let dir = generate_into_tempdir();
    for name in files(dir.path()).keys() {
        let path = dir.path().join(name);
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&path)
            .output()
            .expect("groff runs (apt-get install groff-base; scripts/test-all does)");
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.is_empty(),
            "{name}: groff warns:\n{warnings}"
        );
    }
}

#[test]
fn tune_1_renders_as_a_man_page_people_read() {
    let dir = generate_into_tempdir();
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-P", "-cbou"])
        .arg(dir.path().join("tune.1"))
        .env("MANWIDTH", "80")
        .output()
        .expect("groff runs");
    let text = String::from_utf8(out.stdout).unwrap();
    for heading in [
        "NAME",
        "SYNOPSIS",
        "OPTIONS",
        "SUBCOMMANDS",
        "EXIT STATUS",
        "SEE ALSO",
    ] {
        assert!(
            text.lines().any(|l| l == heading),
            "tune.1 has no {heading} section:\n{text}"
        );
    }
    assert!(text.contains("tune-check(1)"), "{text}");
    assert!(text.contains("tune-knobs(7)"), "{text}");
}

#[test]
fn every_page_has_examples_to_copy() {
    let dir = generate_into_tempdir();
    for (name, _) in files(dir.path()) {
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-P", "-cbou", "-rLL=200n"])
            .arg(dir.path().join(&name))
            .output()
            .expect("groff runs");
        let text = String::from_utf8(out.stdout).unwrap();
        let examples: Vec<&str> = text
            .lines()
            .skip_while(|l| *l != "EXAMPLES")
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with(' '))
            .filter(|l| l.trim_start().starts_with("tune "))
            .collect();
        assert!(
            !examples.is_empty(),
            "{name}: no EXAMPLES with a tune command:\n{text}"
        );
    }
}

#[test]
fn knob_page_lists_every_registry_knob_with_both_fixes() {
    let dir = generate_into_tempdir();
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-P", "-cbou", "-rLL=200n"])
        .arg(dir.path().join("tune-knobs.7"))
        .output()
        .expect("groff runs");
    let text = String::from_utf8(out.stdout).unwrap();
    for knob in tune::knobs::REGISTRY {
        assert!(
            text.lines().any(|l| l.trim() == knob.name),
            "tune-knobs.7: no heading for {}",
            knob.name
        );
    }
    assert!(
        text.contains("sysctl -w net.core.somaxconn=\"N\""),
        "{text}"
    );
    assert!(
        text.contains("/etc/sysctl.d/90-tune.conf: net.core.somaxconn = N"),
        "{text}"
    );
}

#[test]
fn unwritable_out_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = tune()
        .args(["generate", "man", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not-a-dir"), "error must name the path: {err}");
}
