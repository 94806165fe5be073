//! Every screen a newcomer meets after check's, in a real terminal (tmux at 80×50, read with
//! `capture-pane -J` as the first-screen test does): the decision first, no line wider than the
//! terminal, and the tokens people copy or look for (knob names, commands) whole on a line.

use std::path::Path;

use crate::serve_support::Server;
use crate::tmux_support::{available, run, Screen};

fn tune_bin() -> std::path::PathBuf {
    crate::support::tune_exe().into()
}

/// Runs `tune ARGS` at 80 columns and checks what every screen must: nothing overflows, no
/// figure is parted from its unit nor a counter from its value, and each of `whole` stands on some line as a whole (whitespace-separated) token or run of tokens.
fn at_80(args: &[&str], whole: &[&str]) -> Screen {
    let s = run(80, &tune_bin(), args, &[("NO_COLOR", "1")]);
    assert!(
        s.overflowing().is_empty(),
        "{args:?}: lines wider than 80 columns: {:#?}\n{}",
        s.overflowing(),
        s.text()
    );
    assert!(
        broken_phrases(&s.lines).is_empty(),
        "{args:?}: a figure, counter or range broken across lines: {:#?}\n{}",
        broken_phrases(&s.lines),
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

/// Units a report prints after a number: a line that ends in a number with the next one
/// starting with its unit broke a figure in two.
const UNITS: &[&str] = &["B", "KB", "MB", "GB", "s", "ms", "pages", "B/conn"];

/// Places where a report broke what belongs on one line: a figure from its unit (`~8.3` /
/// `KB`), a counter from its value (`TCPAbortOnMemory` / `+0`), a range from its end.
fn broken_phrases(lines: &[String]) -> Vec<String> {
    lines
        .windows(2)
        .filter(|w| {
            let (end, next) = (w[0].trim_end(), w[1].trim_start());
            let next_word = next.split(' ').next().unwrap_or("");
            let last_word = end.rsplit(' ').next().unwrap_or("");
            let figure_unit = end.ends_with(|c: char| c.is_ascii_digit())
                && UNITS.contains(&next_word.trim_end_matches([',', ';', ')']));
            let counter_value = next_word.starts_with('+')
                && last_word.chars().next().is_some_and(char::is_uppercase)
                && last_word.chars().skip(1).any(char::is_lowercase);
            figure_unit || counter_value || last_word == ".." || next_word == ".."
        })
        .map(|w| format!("{} / {}", w[0], w[1]))
        .collect()
}

/// The rows whose label is one of `labels` and whose value does not start in column 23 (the
/// verify and load reports' one value column).
fn off_column<'a>(lines: &'a [String], labels: &[&str]) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|l| {
            labels.iter().any(|label| {
                l.strip_prefix(label).is_some_and(|rest| {
                    rest.starts_with(' ') && {
                        let col = l.len() - l[label.len()..].trim_start().len();
                        col != 23
                    }
                })
            })
        })
        .map(String::as_str)
        .collect()
}

/// Every row labelled one of `rows` has its value in column 23, and a row starting `present`
/// is there (so the check saw the report at all).
fn assert_rows_in_column(s: &Screen, rows: &[&str], present: &str) {
    assert!(
        off_column(&s.lines, rows).is_empty() && s.lines.iter().any(|l| l.starts_with(present)),
        "{:#?}\n{}",
        off_column(&s.lines, rows),
        s.text()
    );
}

/// The checks above see what the reports printed before they were laid out (`text::fit` after
/// the fact, real output of `serve --verify 2000` at 80 columns, 2026-12-07).
#[test]
fn the_report_checks_see_a_broken_figure_counter_and_column() {
    let old: Vec<String> = [
        "                       per host: ~2.7M connection pairs, bound by memory at ~8.3",
        "                         KB per connection pair: (MemAvailable 24.0 GB − 5% of",
        "counters (connect)     AttemptFails +0, EstabResets +0, ListenDrops +0,",
        "                         ListenOverflows +0, RetransSegs +0, TCPAbortOnMemory",
        "                         +0, TCPBacklogDrop +0, TCPMemoryPressures +0,",
        "processes              2 server, 2 client; sources: 2 addresses, 127.0.0.2 ..",
        "                         127.0.0.3",
        "rate 16488 connections/s; held 2.0 s; dropped 0",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(broken_phrases(&old).len(), 3, "{:#?}", broken_phrases(&old));
    assert_eq!(off_column(&old, &["rate"]).len(), 1);
    assert!(off_column(&old, &["processes", "counters (connect)"]).is_empty());
}

#[test]
fn verify_and_load_reports_at_80_columns() {
    if !available() {
        return;
    }
    let _alone = crate::support::alone();
    let s = at_80(
        &["serve", "--verify", "20000"],
        &["TCPTimeWaitOverflow +", "127.0.0.2 .. 127.0.0.3"],
    );
    assert!(
        broken_phrases(&s.lines).is_empty(),
        "{:#?}\n{}",
        broken_phrases(&s.lines),
        s.text()
    );
    // ("predicted" alone is left out: the progress lines on stderr start with it too.)
    let rows = [
        "mode",
        "rate",
        "handshake latency",
        "kernel memory",
        "counters (connect)",
        "predicted vs measured",
        "teardown",
    ];
    assert_rows_in_column(&s, &rows, "teardown ");
    // The slab breakdown is a table: each cache's row whole, its figures aligned.
    let slab: Vec<&String> = s.lines.iter().filter(|l| l.ends_with(" B/conn")).collect();
    assert!(slab.len() >= 2, "{}", s.text());
    assert!(
        slab.iter()
            .all(|l| l.starts_with("    ") && l.chars().count() == slab[0].chars().count()),
        "{slab:#?}"
    );
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
        &["127.0.0.2 .. 127.0.0.3"],
    );
    assert_eq!(s.exit, 0, "{}", s.text());
    // (Its progress lines on stderr come first on the terminal.)
    assert!(
        s.lines.iter().any(|l| l.starts_with("OK: 1,000 of 1,000")),
        "{}",
        s.text()
    );
    assert!(broken_phrases(&s.lines).is_empty(), "{}", s.text());
    let rows = [
        "rate",
        "held",
        "closed by the server",
        "handshake latency",
        "messages",
    ];
    assert_rows_in_column(&s, &rows, "messages ");
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
