//! `tune check` in a real terminal (tmux at 80 and 120 columns, read with `capture-pane -J`): what a person sees first, and that nothing overflows.

use std::path::Path;

use crate::tmux_support::{available, run};

#[test]
fn the_harness_sees_a_line_that_overflows_and_the_exit_code() {
    if !available() {
        return;
    }
    let sh = Path::new("/bin/sh");
    let script = "printf '%0100d\\n' 7; echo short; exit 3";
    let narrow = run(80, sh, &["-c", script], &[]);
    assert_eq!(narrow.exit, 3, "{}", narrow.text());
    assert_eq!(
        narrow.lines.len(),
        2,
        "-J joins the wrapped line: {}",
        narrow.text()
    );
    assert_eq!(narrow.overflowing().len(), 1, "{}", narrow.text());
    assert!(narrow.lines[0].ends_with("07"));
    let wide = run(120, sh, &["-c", script], &[]);
    assert!(wide.overflowing().is_empty(), "{}", wide.text());
    // The terminal's width is what the command sees.
    let cols = run(80, sh, &["-c", "stty size"], &[]);
    assert!(
        cols.lines.iter().any(|l| l.ends_with(" 80")),
        "{}",
        cols.text()
    );
}

fn tune_bin() -> std::path::PathBuf {
    crate::support::tune_exe().into()
}

fn host_root() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/roots/linux-6.18-host")
        .display()
        .to_string()
}

/// The nofile fix as `--format json` gives it: the command, without the words after it.
fn nofile_fix_command(root: &str) -> String {
    let out = crate::support::tune()
        .args([
            "--root",
            root,
            "check",
            "--profile",
            "1m",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = json["knobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["knob"] == "rlimit.nofile.soft")
        .unwrap()
        .clone();
    let fix = row["fix_runtime"]
        .as_str()
        .expect("nofile falls short in this tree");
    fix.split(" (").next().unwrap().to_string()
}

#[test]
fn at_80_and_120_columns_the_verdict_comes_first_and_nothing_overflows() {
    if !available() {
        return;
    }
    let root = host_root();
    let fix = nofile_fix_command(&root);
    assert!(fix.starts_with("prlimit --pid PID --nofile="), "{fix}");
    for width in [80, 120] {
        let s = run(
            width,
            &tune_bin(),
            &["--root", &root, "check", "--profile", "1m"],
            &[("NO_COLOR", "1")],
        );
        assert_eq!(s.exit, 1, "1m does not fit this tree:\n{}", s.text());
        assert!(
            s.lines
                .iter()
                .take(3)
                .any(|l| l.starts_with("does not hold 1,000,000: bound by ")),
            "{width} columns: the verdict is not among the first 3 lines:\n{}",
            s.text()
        );
        assert!(
            s.overflowing().is_empty(),
            "{width} columns: lines wider than the terminal: {:#?}",
            s.overflowing()
        );
        let has_word = |w: &str| s.lines.iter().any(|l| l.split_whitespace().any(|t| t == w));
        assert!(
            has_word("rlimit.nofile.soft"),
            "{width}: knob name broken:\n{}",
            s.text()
        );
        assert!(
            s.lines.iter().any(|l| l.trim() == fix),
            "{width}: the fix {fix:?} is not whole on one line:\n{}",
            s.text()
        );
        // People get thousands separators; the command keeps raw numbers to copy.
        assert!(s.text().contains("1,100,011"), "{}", s.text());
    }
}

#[test]
fn check_without_arguments_says_what_the_host_holds_and_exits_0() {
    let root = host_root();
    let out = crate::support::tune()
        .args(["--root", &root, "check"])
        .env("COLUMNS", "80")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("holds ") && lines[0].contains(" connections: bound by "),
        "{text}"
    );
    // Without a measured cost, one sentence under the arithmetic says what the figure assumes
    // (issue 21), before the first blank line.
    assert!(
        lines
            .iter()
            .take_while(|l| !l.is_empty())
            .any(|l| l.starts_with("  assumes a near-zero user-space cost per connection")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("per process ") && l.contains("per host ")),
        "{text}"
    );
    assert!(text.contains("needs "), "processes needed: {text}");
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{text}");
    // The live host too: an answer, exit 0.
    let out = crate::support::tune().arg("check").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("holds "), "{text}");
    let json = crate::support::tune()
        .args(["--root", &root, "check", "--format", "json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(json["verdict"]["target"].is_null());
    assert!(json["verdict"]["holds"].as_u64().unwrap() > 0);
    assert_eq!(
        json["verdict"]["next"].as_array().unwrap().is_empty(),
        !lines
            .iter()
            .any(|l| l.trim_start().starts_with("next limits: ")),
        "the next limits behind the binding one are shown when there are any"
    );
    assert_eq!(json["summary"]["exit_code"], 0);
}
