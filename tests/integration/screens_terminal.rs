//! Every screen a newcomer meets after check's, in a real terminal (tmux at 80×50, read with
//! `capture-pane -J` as the first-screen test does): the decision first, no line wider than the
//! terminal, and the tokens people copy or look for (knob names, commands) whole on a line.

use std::path::Path;

use crate::serve_support::Server;
use crate::tmux_support::{available, run, Screen};

fn tune_bin() -> std::path::PathBuf {
    crate::support::tune_exe().into()
}

/// Runs `tune ARGS` at 80 columns and checks what every screen must: nothing overflows, and
/// each of `whole` stands on some line as a whole (whitespace-separated) token or run of tokens.
fn at_80(args: &[&str], whole: &[&str]) -> Screen {
    let s = run(80, &tune_bin(), args, &[("NO_COLOR", "1")]);
    assert!(
        s.overflowing().is_empty(),
        "{args:?}: lines wider than 80 columns: {:#?}\n{}",
        s.overflowing(),
        s.text()
    );
    for w in whole {
        assert!(
            s.lines.iter().any(|l| l.contains(w)),
            "{args:?}: {w:?} is not whole on one line:\n{}",
            s.text()
        );
    }
    s
}

fn first_line(s: &Screen) -> &str {
    s.lines
        .iter()
        .find(|l| !l.trim().is_empty())
        .map(String::as_str)
        .unwrap_or("")
}

#[test]
fn apply_dry_run_at_80_columns_decides_first_and_says_why_it_exits_1() {
    if !available() {
        return;
    }
    let s = at_80(
        &["apply", "--profile", "1m", "--dry-run"],
        &[
            "rlimit.nofile.soft: cannot change here",
            "net.core.somaxconn",
        ],
    );
    assert!(
        first_line(&s).starts_with("apply would make "),
        "{}",
        s.text()
    );
    assert_eq!(s.exit, 1, "{}", s.text());
    let text = s.text();
    let last = text.rsplit("Dry run: nothing was changed.").next().unwrap();
    assert!(last.contains("Exit 1:"), "{text}");
}

#[test]
fn rollback_dry_run_at_80_columns() {
    if !available() {
        return;
    }
    let root = crate::apply_support::fake_root();
    let r = root.path().display().to_string();
    let out = crate::support::tune()
        .args(["--root", &r, "apply", "--yes", "--profile", "1m"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(2), "{out:?}");
    let s = at_80(&["--root", &r, "rollback", "--dry-run"], &["fs.nr_open"]);
    assert!(
        first_line(&s).starts_with("rollback would put back "),
        "{}",
        s.text()
    );
    assert!(s.text().contains("Dry run: nothing was changed."));
}

#[test]
fn explain_and_check_verbose_at_80_columns() {
    if !available() {
        return;
    }
    let s = at_80(&["explain", "somaxconn"], &["net.core.somaxconn"]);
    assert_eq!(s.exit, 0, "{}", s.text());
    assert!(first_line(&s).starts_with("net.core.somaxconn"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/roots/linux-6.18-host")
        .display()
        .to_string();
    let s = at_80(
        &["--root", &root, "check", "--verbose"],
        &["net.netfilter.nf_conntrack_buckets"],
    );
    assert_eq!(s.exit, 0, "{}", s.text());
    let s = at_80(
        &["--root", &root, "check", "--profile", "1m", "--verbose"],
        &["sysctl -w fs.nr_open=\"1100011\"", "rlimit.nofile.soft"],
    );
    assert!(
        first_line(&s).starts_with("does not hold 1,000,000"),
        "{}",
        s.text()
    );
}

#[test]
fn verify_and_load_reports_at_80_columns() {
    if !available() {
        return;
    }
    let _alone = crate::support::alone();
    let s = at_80(&["serve", "--verify", "20000"], &[]);
    let text = s.text();
    // The per-worker prediction is said once.
    assert_eq!(
        text.matches("predicted per tune serve worker").count(),
        1,
        "{text}"
    );
    assert!(!text.contains("per server worker:"), "{text}");
    drop(_alone);
    let server = Server::start(&[]);
    let s = at_80(
        &[
            "load",
            &server.url(),
            "--conns",
            "1k",
            "--hold",
            "1",
            "--message-interval",
            "0.5",
        ],
        &[],
    );
    assert_eq!(s.exit, 0, "{}", s.text());
}

/// Errors, tune's own and clap's, fit the terminal too: wrapped between words after the one
/// prefix, a path or a flag whole on its line.
#[test]
fn errors_at_80_columns_wrap_without_breaking_a_token() {
    if !available() {
        return;
    }
    // tune's own (a refused value, its flag put in front by cli::flags): 150 characters.
    let s = at_80(
        &[
            "load",
            "ws://127.0.0.1:9/",
            "--conns",
            "10",
            "--server-cgroup",
            "/nonexistent/x",
        ],
        &[
            "--server-cgroup /nonexistent/x:",
            "/sys/fs/cgroup/memory/PATH",
            "/sys/fs/cgroup/PATH",
        ],
    );
    assert_eq!(s.exit, 2, "{}", s.text());
    assert!(
        first_line(&s).starts_with("tune: error: --server-cgroup"),
        "{}",
        s.text()
    );
    assert!(s.lines.len() >= 2, "not wrapped:\n{}", s.text());
    // clap's (a usage error), with its usage line kept.
    let s = at_80(
        &["serve", "--verify", "20000", "--workers", "0"],
        &[
            "'--workers <WORKERS>':",
            "`auto`;",
            "For more information, try '--help'.",
        ],
    );
    assert_eq!(s.exit, 2, "{}", s.text());
    assert!(
        first_line(&s).starts_with("tune: error: invalid value '0'"),
        "{}",
        s.text()
    );
}
