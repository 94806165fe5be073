//! Every flag that takes a count or a size goes through the one parser (`1k`, `1,000`, `64MiB`)
//! with check's message, and every flag that takes a knob through the one matcher (`somaxconn`).

use crate::support::tune;
use crate::verify_support::*;

/// What clap prints after `invalid value '…' for '--flag <N>': `, the parser's own words.
fn value_error(args: &[&str]) -> String {
    let out = tune().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let (_, why) = stderr
        .split_once(">': ")
        .unwrap_or_else(|| panic!("{args:?}: {stderr}"));
    why.lines().next().unwrap().to_string()
}

#[test]
fn a_bad_count_gets_checks_message_on_every_flag() {
    let target = value_error(&["check", "--target", "1x"]);
    assert!(target.contains("\"50k\" (thousand)"), "{target}");
    for args in [
        &["serve", "--verify", "1x"][..],
        &["serve", "--expect", "1x"],
        &["load", "ws://127.0.0.1:1/", "--conns", "1x"],
        &["serve", "--verify", "10", "--concurrency", "1x"],
        &["serve", "--verify", "10", "--max-handshaking", "1x"],
        &["check", "--target", "10", "--workers", "1x"],
    ] {
        assert_eq!(value_error(args), target, "{args:?}");
    }
    let size = value_error(&["serve", "--memory-budget", "lots"]);
    assert!(size.contains("64MiB"), "{size}");
    for args in [
        &["serve", "--verify", "10", "--memory-floor", "lots"][..],
        &["serve", "--max-message", "lots"],
        &["serve", "--sndbuf", "lots"],
    ] {
        assert_eq!(value_error(args), size, "{args:?}");
    }
}

#[test]
fn verify_takes_1k_and_a_64mib_budget() {
    let mut cmd = tune();
    cmd.args([
        "serve",
        "--verify",
        "1k",
        "--memory-budget",
        "64MiB",
        "--concurrency",
        "1_000",
        "--hold",
        "0",
        "--format",
        "json",
    ]);
    let (code, j, stderr) = run(cmd);
    check_schema(&j);
    assert_eq!(code, 0, "{j:#}\n{stderr}");
    assert_eq!(j["target"], 1000, "{j:#}");
    no_workers_left_of(env!("CARGO_BIN_EXE_tune"));
}

#[test]
fn load_takes_1_000_with_a_comma() {
    // Bind a port and do not listen: the run is refused, but only after --conns was read.
    let (sock, port) = crate::support::refusing_port();
    let mut cmd = tune();
    cmd.args([
        "load",
        &format!("ws://127.0.0.1:{port}/"),
        "--conns",
        "1,000",
        "--stall",
        "1",
        "--format",
        "json",
    ]);
    let (code, j, _) = run(cmd);
    drop(sock);
    check_load_schema(&j);
    assert_eq!(code, 1, "{j:#}");
    assert_eq!(j["target"], 1000, "{j:#}");
}

#[test]
fn ignore_takes_a_short_knob_name_and_nofile_names_both_halves() {
    let out = tune()
        .args([
            "--root",
            "tests/fixtures/roots/linux-6.18-host",
            "check",
            "--target",
            "2.5m",
            "--ignore",
            "somaxconn,nofile.soft,nofile.hard",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let knob = |name: &str| {
        j["knobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["knob"] == name)
            .unwrap_or_else(|| panic!("{name} in {j:#}"))
            .clone()
    };
    // The short names named the failing nofile halves; what they did not name still fails.
    assert_eq!(knob("rlimit.nofile.soft")["status"], "warn", "{j:#}");
    assert_eq!(knob("rlimit.nofile.hard")["status"], "warn", "{j:#}");
    assert_eq!(knob("fs.nr_open")["status"], "fail", "{j:#}");

    let out = tune().args(["explain", "nofile"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rlimit.nofile.soft, rlimit.nofile.hard"),
        "{err}"
    );
    // One line, no list of every knob.
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("fs.file-max"), "{err}");
}

#[test]
fn every_error_starts_the_same_way() {
    for args in [
        &["check", "--target", "1x"][..],
        &["check", "--bogus"],
        &["explain", "xyzzy"],
        &["check", "--profile", "no-such"],
    ] {
        let out = tune().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("tune: error: "), "{args:?}: {err}");
    }
}
