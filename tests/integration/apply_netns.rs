//! apply and rollback for real, inside network namespaces these tests create (`unshare -n`), read back from the kernel.
//!
//! Only per-namespace knobs change; host-wide knobs must come out as
//! "cannot change here", and the host's values are compared before and after. Every run sits
//! behind `apply_support::HOST_GUARD` (read-only /proc/sys except net, /sys, /etc, ...), so
//! a tune that regressed could not write a host-wide knob either.

use crate::apply_support;

use std::collections::BTreeMap;
use std::process::Command;

use apply_support::{fixture, host_wide_values, sandboxed, tune_on_read_only_host, tune_sandboxed};

const PER_NS: &[&str] = &[
    "net/core/somaxconn",
    "net/ipv4/ip_local_port_range",
    "net/ipv4/tcp_max_syn_backlog",
    "net/ipv4/tcp_rmem",
    "net/ipv4/tcp_wmem",
    "net/ipv4/tcp_tw_reuse",
    "net/ipv4/tcp_max_tw_buckets",
    "net/ipv4/tcp_fin_timeout",
];

/// Runs `steps` (shell lines using $TUNE, $STATE) inside one fresh network namespace, printing the
/// per-namespace values as the kernel reports them after each `show NAME`. Returns the sections.
fn in_netns(steps: &str) -> (BTreeMap<String, BTreeMap<String, String>>, String) {
    let state = tempfile::tempdir().unwrap();
    let show = PER_NS
        .iter()
        .map(|k| format!("printf '%s=%s\\n' {k} \"$(tr '\\t' ' ' < /proc/sys/{k})\""))
        .collect::<Vec<_>>()
        .join("; ");
    let script = format!("show() {{ echo \"== $1\"; {show}; }}\n{steps}\n");
    let out = sandboxed(&script)
        .env("STATE", state.path())
        .output()
        .expect("unshare (util-linux) runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "script failed: {stdout}\n{stderr}");
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut cur = String::new();
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            cur = name.to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            if PER_NS.contains(&k) {
                sections
                    .entry(cur.clone())
                    .or_default()
                    .insert(k.into(), v.into());
            }
        }
    }
    (sections, format!("{stdout}\n{stderr}"))
}

#[test]
fn per_namespace_knobs_are_raised_and_rolled_back() {
    let host_before = host_wide_values();
    let p = fixture("netns.toml");
    let (s, log) = in_netns(&format!(
        "show before\n\
         $TUNE apply --profile {p} --state-dir \"$STATE\" --yes; echo \"apply_exit=$?\"\n\
         show applied\n\
         $TUNE rollback --yes --state-dir \"$STATE\"; echo \"rollback_exit=$?\"\n\
         show rolled\n\
         $TUNE rollback --yes --state-dir \"$STATE\"; echo \"again_exit=$?\"\n\
         show again\n\
         $TUNE apply --profile {p} --state-dir \"$STATE\" --yes --allow-lower > /dev/null; echo \"lower_exit=$?\"\n\
         show lowered\n\
         $TUNE rollback --yes --state-dir \"$STATE\" > /dev/null\n\
         show restored"
    ));
    let (before, applied) = (&s["before"], &s["applied"]);
    // Raised to the profile, as the kernel reports it in this namespace.
    assert_eq!(applied["net/core/somaxconn"], "65535", "{log}");
    assert_eq!(applied["net/ipv4/tcp_max_syn_backlog"], "65535", "{log}");
    assert_eq!(
        applied["net/ipv4/ip_local_port_range"], "1024 65535",
        "{log}"
    );
    assert_eq!(applied["net/ipv4/tcp_max_tw_buckets"], "2000000", "{log}");
    assert_eq!(applied["net/ipv4/tcp_fin_timeout"], "15", "{log}");
    // Triples move component-wise and only up: a max above the profile's stays.
    let rmax: u64 = before["net/ipv4/tcp_rmem"]
        .split(' ')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        applied["net/ipv4/tcp_rmem"],
        format!("8192 262144 {}", rmax.max(16777216)),
        "{log}"
    );
    let wmax: u64 = before["net/ipv4/tcp_wmem"]
        .split(' ')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        applied["net/ipv4/tcp_wmem"],
        format!("8192 65536 {}", wmax.max(16777216)),
        "{log}"
    );
    // tcp_tw_reuse is a mode: 2 (loopback only) is not "more" than the profile's 1 (everywhere),
    // so it is set to 1 without --allow-lower.
    assert_eq!(before["net/ipv4/tcp_tw_reuse"], "2", "{log}");
    assert_eq!(applied["net/ipv4/tcp_tw_reuse"], "1", "{log}");
    // A copied tcp_rmem max above the profile's is kept unless --allow-lower (checked below).
    // The plan's words follow each knob's direction (tcp_fin_timeout's requirement is a maximum).
    let fin = log
        .lines()
        .find(|l| l.starts_with("net.ipv4.tcp_fin_timeout"))
        .unwrap();
    assert!(fin.ends_with("shorten -> 15"), "{fin}");
    // Host-wide knobs were refused, so the plan is incomplete: exit 1.
    assert!(log.contains("apply_exit=1"), "{log}");
    assert!(log.contains("inside a child network namespace"), "{log}");
    for k in [
        "fs.file-max",
        "fs.nr_open",
        "net.ipv4.tcp_mem",
        "net.core.netdev_max_backlog",
    ] {
        let line = log
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("{k}: {log}"));
        assert!(line.ends_with("cannot change here"), "{line}");
    }
    // Rollback puts every value back exactly; a second rollback is harmless.
    assert_eq!(&s["rolled"], before, "{log}");
    assert!(
        log.contains("rollback_exit=0") && log.contains("again_exit=0"),
        "{log}"
    );
    assert!(log.contains("Nothing to roll back"), "{log}");
    assert_eq!(&s["again"], before, "{log}");
    // --allow-lower moves the tcp_rmem max down to the profile's; rollback brings it back.
    assert!(log.contains("lower_exit=1"), "{log}");
    assert_eq!(
        s["lowered"]["net/ipv4/tcp_rmem"], "8192 262144 16777216",
        "{log}"
    );
    assert_eq!(&s["restored"], before, "{log}");
    assert_eq!(host_wide_values(), host_before, "host-wide values changed");
}

#[test]
fn a_value_the_kernel_refuses_part_way_restores_what_was_written() {
    let host_before = host_wide_values();
    let p = fixture("kernel-refuses.toml");
    let (s, log) = in_netns(&format!(
        "show before\n\
         $TUNE apply --profile {p} --state-dir \"$STATE\" --yes; echo \"apply_exit=$?\"\n\
         show after\n\
         ls \"$STATE\"; echo listed"
    ));
    assert!(log.contains("apply_exit=2"), "{log}");
    // somaxconn and tcp_max_syn_backlog were written, then the kernel said EINVAL.
    assert!(log.contains("net.core.somaxconn: 4096 -> 65535"), "{log}");
    assert!(
        log.contains("net.ipv4.ip_local_port_range: the kernel refused \"1000 65535\" (EINVAL)"),
        "{log}"
    );
    // The true count: two values had changed; the refused one never did.
    assert!(log.contains("was put back (2 step(s))"), "{log}");
    assert_eq!(s["after"], s["before"], "{log}");
    // The transaction record of a fully restored apply is gone: nothing to roll back later.
    assert!(log.contains("\nlisted"), "state dir not empty: {log}");
    assert!(!log.contains("tx-0"), "{log}");
    assert_eq!(host_wide_values(), host_before);
}

#[test]
fn rlimit_of_a_running_process_is_raised_and_restored() {
    // A child with a low soft limit; raising soft up to hard needs no privilege.
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = child.id();
    let (_, hard) = embedded_server::sys::rlimit::get_nofile_of(pid).unwrap();
    embedded_server::sys::rlimit::prlimit_nofile(pid, 100, hard).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prof = dir.path().join("p.toml");
    let soft = hard.min(10_000);
    std::fs::write(
        &prof,
        format!(
            "target = 1000\nrole = \"server\"\n[knobs]\n\"rlimit.nofile.soft\" = {soft}\n\"rlimit.nofile.hard\" = {}\n",
            hard + 1
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    // In a fresh namespace: whatever else the profile's formulas ask for, the host stays as it is.
    let in_ns = |args: &[&str]| {
        tune_sandboxed(args)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .unwrap()
    };
    let host_before = host_wide_values();
    let pid_s = pid.to_string();
    let out = in_ns(&[
        "apply",
        "--yes",
        "--pid",
        &pid_s,
        "--profile",
        prof.to_str().unwrap(),
    ]);
    let (o, e) = apply_support::text(&out);
    let cap_eff = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("CapEff:")
                .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        })
        .unwrap();
    let can_raise_hard = cap_eff & (1 << 24) != 0;
    let hard_after = if can_raise_hard { hard + 1 } else { hard };
    assert_eq!(
        embedded_server::sys::rlimit::get_nofile_of(pid).unwrap(),
        (soft, hard_after),
        "{o}{e}"
    );
    if !can_raise_hard {
        // No CAP_SYS_RESOURCE (this machine): the hard raise is reported with its fixes, exit 1.
        assert_eq!(out.status.code(), Some(1), "{o}{e}");
        assert!(
            o.contains("CAP_SYS_RESOURCE") && o.contains("LimitNOFILE="),
            "{o}"
        );
    }
    let out = in_ns(&["rollback", "--yes"]);
    let (o, e) = apply_support::text(&out);
    assert!(out.status.success(), "{o}{e}");
    assert_eq!(host_wide_values(), host_before);
    assert!(
        o.contains(&format!("RLIMIT_NOFILE of process {pid}")),
        "{o}"
    );
    assert_eq!(
        embedded_server::sys::rlimit::get_nofile_of(pid).unwrap(),
        (100, hard)
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn the_1m_profile_inside_a_fresh_namespace() {
    let p = "1m";
    let host_before = host_wide_values();
    let (s, log) = in_netns(&format!(
        "show before\n\
         $TUNE apply --profile {p} --state-dir \"$STATE\" --yes; echo \"apply_exit=$?\"\n\
         show applied\n\
         $TUNE rollback --yes --state-dir \"$STATE\"; echo \"rollback_exit=$?\"\n\
         show rolled"
    ));
    assert_eq!(s["applied"]["net/core/somaxconn"], "65535", "{log}");
    assert_eq!(
        s["applied"]["net/ipv4/tcp_max_syn_backlog"], "65535",
        "{log}"
    );
    assert_eq!(
        s["applied"]["net/ipv4/ip_local_port_range"], "10240 65535",
        "{log}"
    );
    // Host-wide knobs of the profile are refused here: the plan is incomplete.
    assert!(
        log.contains("apply_exit=1") && log.contains("rollback_exit=0"),
        "{log}"
    );
    assert_eq!(s["rolled"], s["before"], "{log}");
    assert_eq!(host_wide_values(), host_before);
}

#[test]
fn rollback_shows_its_plan_leaves_later_changes_alone_and_stays_in_its_namespace() {
    let host_before = host_wide_values();
    let p = fixture("netns.toml");
    let (s, log) = in_netns(&format!(
        "show before\n\
         $TUNE apply --profile {p} --state-dir \"$STATE\" --yes > /dev/null; echo \"apply_exit=$?\"\n\
         echo 30000 > /proc/sys/net/core/somaxconn\n\
         show changed\n\
         $TUNE rollback --state-dir \"$STATE\" < /dev/null; echo \"noyes_exit=$?\"\n\
         $TUNE rollback --dry-run --state-dir \"$STATE\"; echo \"dry_exit=$?\"\n\
         show dry\n\
         unshare -n $TUNE rollback --yes --force --state-dir \"$STATE\"; echo \"otherns_exit=$?\"\n\
         show otherns\n\
         $TUNE rollback --yes --state-dir \"$STATE\"; echo \"drift_exit=$?\"\n\
         show left\n\
         $TUNE rollback --yes --force --state-dir \"$STATE\"; echo \"force_exit=$?\"\n\
         show forced\n\
         $TUNE rollback --yes --state-dir \"$STATE\"; echo \"again_exit=$?\""
    ));
    assert!(log.contains("apply_exit=1"), "{log}");
    let (before, changed) = (&s["before"], &s["changed"]);
    assert_eq!(changed["net/core/somaxconn"], "30000", "{log}");
    // Without a terminal and without --yes nothing happens (exit 2), as for apply.
    assert!(log.contains("noyes_exit=2"), "{log}");
    assert!(log.contains("pass --yes to roll back"), "{log}");
    // The dry run shows the plan, names the drifted value and changes nothing; exit 1 says a
    // value would be left alone.
    assert!(log.contains("dry_exit=1"), "{log}");
    assert!(
        log.contains("net.core.somaxconn: is 30000, not the 65535 tune set: changed since the apply, left alone"),
        "{log}"
    );
    assert!(
        log.contains("net.ipv4.tcp_max_tw_buckets: put back what was there before"),
        "{log}"
    );
    assert_eq!(&s["dry"], changed, "{log}");
    // From another network namespace the rollback is refused, even with --force.
    assert!(log.contains("otherns_exit=2"), "{log}");
    assert!(
        log.contains("in network namespace net:[")
            && log.contains("run `tune rollback` inside that namespace"),
        "{log}"
    );
    assert_eq!(&s["otherns"], changed, "{log}");
    // Without --force: everything else back, somaxconn left at 30000, exit 1, record open.
    assert!(log.contains("drift_exit=1"), "{log}");
    let mut want = before.clone();
    want.insert("net/core/somaxconn".into(), "30000".into());
    assert_eq!(&s["left"], &want, "{log}");
    assert!(log.contains("`tune rollback --force`"), "{log}");
    // --force puts it back too; then the record is closed and there is nothing left to do.
    assert!(log.contains("force_exit=0"), "{log}");
    assert!(log.contains("net.core.somaxconn: 30000 -> "), "{log}");
    assert_eq!(&s["forced"], before, "{log}");
    assert!(
        log.contains("again_exit=0") && log.contains("Nothing to roll back"),
        "{log}"
    );
    assert_eq!(host_wide_values(), host_before, "host-wide values changed");
}

/// Issue 24: an apply inside a network namespace, left without its rollback, is not the host's
/// drift. check on the host (same --state-dir) lists those values apart, naming the namespace
/// and how to reach it, and says "changed since apply" for none of them; inside the namespace
/// the same record is that namespace's drift as before.
#[test]
fn check_on_the_host_lists_an_apply_of_another_namespace_apart() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().to_str().unwrap();
    let p = fixture("netns.toml");
    let out = sandboxed(&format!(
        "$TUNE apply --profile {p} --state-dir {dir} --yes > /dev/null; echo \"apply_exit=$?\"\n\
         readlink /proc/self/ns/net\n\
         $TUNE check --state-dir {dir}"
    ))
    .output()
    .unwrap();
    let inside = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(inside.contains("apply_exit=1"), "{inside}");
    let ns = inside
        .lines()
        .find(|l| l.starts_with("net:["))
        .expect("the namespace's link")
        .to_string();
    // Inside its namespace the record is this namespace's: compared, nothing listed apart.
    assert!(
        inside.contains("Drift since the last apply (#1"),
        "{inside}"
    );
    assert!(!inside.contains("another network namespace"), "{inside}");
    assert!(!inside.contains("changed since apply"), "{inside}");

    let host = tune_on_read_only_host(&["check", "--state-dir", dir])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&host.stdout).into_owned();
    assert_eq!(host.status.code(), Some(0), "{text}");
    assert!(!text.contains("changed since apply"), "{text}");
    assert!(!text.contains("Drift since the last apply"), "{text}");
    assert!(!text.contains("values still live"), "{text}");
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        joined.contains(&format!("in network namespace {ns}, but this tune runs in net:["))
            && joined.contains("run `tune check` inside that namespace (ip netns exec NAME, or nsenter --net=/proc/PID/ns/net)"),
        "{text}"
    );
    for knob in ["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog"] {
        assert!(joined.contains(knob), "{knob} not named: {text}");
    }
    // The JSON report says the same: those values left out, the line in drift.other_netns.
    let json = tune_on_read_only_host(&["check", "--state-dir", dir, "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    crate::check_cli::validate(&v);
    let drift = &v["drift"];
    assert_eq!(drift["values"].as_array().map(Vec::len), Some(0), "{drift}");
    assert!(
        drift["other_netns"].as_str().unwrap().contains(&ns),
        "{drift}"
    );
}
