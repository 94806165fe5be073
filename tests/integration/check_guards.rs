//! Guards of `tune check` against input that would give a wrong verdict: an empty root, a target the formulas cannot hold, a soft-limit fix the kernel would refuse.

use crate::support::tune;
use predicates::prelude::*;
use predicates::str::contains;

#[test]
fn an_empty_proc_is_an_error_not_a_pass() {
    // A DaemonSet with a broken hostPath mount sees an empty /host/proc.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("proc")).unwrap();
    tune()
        .arg("--root")
        .arg(dir.path())
        .args(["check", "--profile", "1m", "--format", "junit"])
        .assert()
        .code(2)
        .stderr(contains("proc/meminfo").and(contains("not a readable /proc")));
}

/// Issue 24: procfs-core 0.17 scaled this unchecked, and check answered "holds 0 connections:
/// bound by memory at 0" with exit 0. A value past u64 bytes is an error naming file and line.
#[test]
fn a_meminfo_value_past_u64_bytes_is_an_error_naming_file_and_line() {
    let root = crate::apply_support::fake_root();
    let meminfo = root.path().join("proc/meminfo");
    let text = std::fs::read_to_string(&meminfo).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("MemTotal:"))
        .unwrap()
        + 1;
    let edited: String = text
        .lines()
        .map(|l| match l.starts_with("MemTotal:") {
            true => "MemTotal: 99999999999 gB\n".to_string(),
            false => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&meminfo, edited).unwrap();
    for args in [&["check"][..], &["check", "--profile", "1m"]] {
        tune()
            .arg("--root")
            .arg(root.path())
            .args(args)
            .assert()
            .code(2)
            .stdout(contains("holds").not())
            .stderr(
                contains(format!(
                    "proc/meminfo: line {line}: MemTotal: 99999999999 gB"
                ))
                .and(contains("more than 18446744073709551615 bytes")),
            );
    }
}

#[test]
fn a_target_beyond_what_the_formulas_hold_is_refused() {
    tune()
        .args([
            "check",
            "--target",
            "9223372036854775807",
            "--role",
            "loopback",
        ])
        .assert()
        .code(2)
        .stderr(contains("--target").and(contains("more connections than tune plans for")));
    tune()
        .args(["check", "--target", "0"])
        .assert()
        .code(2)
        .stderr(contains("above 0"));
}

#[test]
fn a_soft_limit_above_the_hard_limit_gets_a_fix_that_raises_both() {
    // Our own hard limit is what the shell gave us; ask for more than it.
    let (_, hard) = embedded_server::sys::rlimit::nofile().unwrap();
    let want = hard + 1000;
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    std::fs::write(
        &profile,
        format!(
            "target = 10\nrole = \"server\"\n[knobs]\n# more than the hard limit\n\"rlimit.nofile.soft\" = {want}\n\
             # the profile's hard limit must allow its soft limit\n\"rlimit.nofile.hard\" = {want}\n"
        ),
    )
    .unwrap();
    let out = tune()
        .args(["check", "--format", "json", "--profile"])
        .arg(&profile)
        .output()
        .unwrap();
    // Short of the profile, but 10 connections fit under the hard limit: it caps nothing, so it
    // warns (exit 0), and its fix still raises both limits.
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let soft = j["knobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["knob"] == "rlimit.nofile.soft")
        .unwrap();
    assert_eq!(soft["status"], "warn", "{soft}");
    let fix = soft["fix_runtime"].as_str().unwrap();
    assert!(fix.contains(&format!("--nofile={want}:{want}")), "{fix}");
}
