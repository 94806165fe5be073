//! Capacity truth in containers built from kernel parts (issue 10): a memory cgroup, a user
//! namespace, conntrack switched on by a rule before any traffic, a port range judged by its
//! count, a queue of 8 without syncookies, one source address, and `--pid` in another network
//! namespace. Every case runs the real binary against the real kernel and removes what it made.

use super::container_support::*;
use super::support::{alone, command, tune, tune_exe};

const MIB: u64 = 1 << 20;

/// The container: 600 MiB holds about 100,000 loopback pairs at the charge measured
/// here (bench/capacity-truth), so a target of 150,000 runs into the cgroup, not the host.
const MEMCG_LIMIT: u64 = 600 * MIB;
/// Above what MEMCG_LIMIT holds.
const MEMCG_TARGET: &str = "150000";

#[test]
fn memory_cgroup_check_predicts_what_verify_reaches_without_an_oom_kill() {
    // The host's memory must not move under the run: no other test's program runs meanwhile.
    let _alone = alone();
    let cg = match MemCg::new("memcg", MEMCG_LIMIT) {
        Ok(c) => c,
        Err(why) => return skip("memory_cgroup", &why),
    };
    let (_, c, stderr) = run_json(cg.tune(&[
        "check",
        "--target",
        MEMCG_TARGET,
        "--role",
        "loopback",
        "--format",
        "json",
    ]));
    let cap = &c["capacity"];
    assert_eq!(
        cap["per_host"]["limit"], "memory cgroup",
        "{cap:#}\n{stderr}"
    );
    let predicted = cap["per_host"]["connections"].as_u64().unwrap();
    let arithmetic = cap["per_host"]["arithmetic"].as_str().unwrap();
    assert!(arithmetic.contains("docker run --memory"), "{arithmetic}");
    assert!(arithmetic.contains(&cg.dir.file_name().unwrap().to_string_lossy().to_string()));
    assert_eq!(
        c["container"]["cgroups"]["memory"]["version"], "v1",
        "{:#}",
        c["container"]
    );

    let (code, v, stderr) = run_json(cg.tune(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--verify",
        MEMCG_TARGET,
        "--hold",
        "0",
        "--stall",
        "3",
        "--format",
        "json",
    ]));
    assert_eq!(code, 1, "{v:#}\n{stderr}");
    assert_eq!(cg.oom_kills(), 0, "the OOM killer fired: {v:#}\n{stderr}");
    let reached = v["reached"].as_u64().unwrap();
    let err = (predicted as f64 - reached as f64).abs() / reached as f64;
    eprintln!("memory cgroup {MEMCG_LIMIT} B: check predicted {predicted}, verify reached {reached} ({:+.1}%)", err * 100.0);
    assert!(
        err <= 0.10,
        "check {predicted} vs reached {reached}: {:.1}% off",
        err * 100.0
    );
    let d = &v["diagnosis"];
    assert_eq!(d["limit"], "memory_cgroup", "{d:#}\n{stderr}");
    let fixes = d["fix"].to_string();
    assert!(fixes.contains("docker run --memory"), "{d:#}");
    assert!(fixes.contains("MemoryMax="), "{d:#}");
    // verify's own prediction names the cgroup too.
    assert_eq!(
        v["prediction"]["binding_limit"], "memory cgroup",
        "{:#}",
        v["prediction"]
    );
}

#[test]
fn a_user_namespace_does_not_raise_the_hard_nofile_limit() {
    let hard: u64 = std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4)?.parse().ok())
        .unwrap();
    let mut cmd = command("unshare");
    cmd.args(["-Ur", "--", tune_exe()])
        .args([
            "check", "--target", "100000", "--role", "server", "--format", "json",
        ])
        .env_remove("TUNE_ROOT");
    let out = cmd.output().expect("unshare runs");
    if !out.status.success() && out.stdout.is_empty() {
        return skip(
            "user_namespace",
            &format!(
                "unshare -Ur failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        );
    }
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pp = &c["capacity"]["per_process"];
    assert!(pp["connections"].as_u64().unwrap() <= hard, "{pp:#}");
    assert_eq!(pp["limit"], "rlimit.nofile.hard", "{pp:#}");
    assert!(
        pp["arithmetic"]
            .as_str()
            .unwrap()
            .contains("user namespace (rootless container)"),
        "{pp:#}"
    );
    // fs.file-max's CAP_SYS_ADMIN exemption does not hold there either.
    let fm = c["capacity"]["host_limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["limit"] == "fs.file-max")
        .unwrap();
    assert!(fm["connections"].is_u64(), "{fm:#}");

    // apply does not offer what the kernel will refuse there: the hard limit and the
    // host-wide sysctls are "cannot change here", naming the user namespace.
    let out = command("unshare")
        .args(["-Ur", "--", tune_exe()])
        .args(["apply", "--profile", "1m", "--dry-run", "--pid"])
        .arg(std::process::id().to_string())
        .env_remove("TUNE_ROOT")
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&out.stdout);
    for knob in ["rlimit.nofile.hard", "fs.nr_open"] {
        let line = plan
            .lines()
            .find(|l| l.starts_with(knob))
            .unwrap_or_else(|| panic!("no {knob} line: {plan}"));
        assert!(line.contains("cannot change here"), "{plan}");
    }
    assert!(
        plan.contains("user namespace (rootless container)"),
        "{plan}"
    );
}

#[test]
fn a_ct_rule_before_any_traffic_makes_conntrack_bind() {
    if let Some(why) = nft_unavailable() {
        return skip("ct_rule", &why);
    }
    let Some(max) = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
    else {
        return skip(
            "ct_rule",
            "nf_conntrack is not loaded and a test does not load modules",
        );
    };
    let target = (max + 1000).to_string();
    let (_, c, stderr) = run_json(in_netns(
        CT_RULE,
        &[
            "check", "--target", &target, "--role", "loopback", "--format", "json",
        ],
    ));
    // The conntrack row binds at max − count (the host's memory may bind lower on a busy machine).
    let row = c["capacity"]["host_limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["limit"] == "net.netfilter.nf_conntrack_max")
        .unwrap_or_else(|| panic!("no conntrack row: {c:#}\n{stderr}"))
        .clone();
    // The probe's own connection is closed again; at most a few entries linger.
    let n = row["connections"]
        .as_u64()
        .unwrap_or_else(|| panic!("conntrack does not bind: {row:#}"));
    assert!(n <= max && n + 10 >= max, "{row:#}");
    assert!(
        row["arithmetic"]
            .as_str()
            .unwrap()
            .contains("loopback connection"),
        "{row:#}"
    );

    // Without the rule the same namespace does not track.
    let (_, c, _) = run_json(in_netns(
        "",
        &[
            "check", "--target", &target, "--role", "loopback", "--format", "json",
        ],
    ));
    let row = c["capacity"]["host_limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["limit"] == "net.netfilter.nf_conntrack_max")
        .unwrap()
        .clone();
    assert!(row["connections"].is_null(), "{row:#}");
}

#[test]
fn a_stale_entry_without_tracking_does_not_make_conntrack_bind() {
    if let Some(why) = nft_unavailable() {
        return skip("stale_entry", &why);
    }
    if !std::path::Path::new("/proc/sys/net/netfilter/nf_conntrack_max").exists() {
        return skip(
            "stale_entry",
            "nf_conntrack is not loaded and a test does not load modules",
        );
    }
    // A ct rule, one connection (tune check's own probe) that leaves an entry behind, then the
    // table removed: the count stays above 0, but new connections are no longer tracked.
    let setup = format!(
        "{CT_RULE}\n\"$0\" check --target 10 --role server --format json >/dev/null\nnft delete table inet tune_ct"
    );
    let (_, c, stderr) = run_json(in_netns(
        &setup,
        &[
            "check", "--target", "1000", "--role", "loopback", "--format", "json",
        ],
    ));
    let count = c["knobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["knob"] == "net.netfilter.nf_conntrack_count")
        .unwrap()["current"]
        .as_u64()
        .unwrap();
    assert!(
        count >= 1,
        "the earlier connection's entry is gone: {c:#}\n{stderr}"
    );
    assert_eq!(
        c["container"]["conntrack"]["state"], "does-not",
        "{:#}",
        c["container"]
    );
    let row = c["capacity"]["host_limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["limit"] == "net.netfilter.nf_conntrack_max")
        .unwrap()
        .clone();
    assert!(row["connections"].is_null(), "{row:#}");
}

#[test]
fn a_port_range_of_48977_ports_is_enough_for_20000() {
    let (_, c, stderr) = run_json(in_netns(
        "sysctl -qw net.ipv4.ip_local_port_range='1024 50000'",
        &[
            "check", "--target", "20000", "--role", "client", "--format", "json",
        ],
    ));
    let k = c["knobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["knob"] == "net.ipv4.ip_local_port_range")
        .unwrap_or_else(|| panic!("no port range row: {c:#}\n{stderr}"));
    assert_eq!(k["status"], "ok", "{k:#}");
}

#[test]
fn one_source_address_with_2000_ports_predicts_2000() {
    let (_, c, stderr) = run_json(in_netns(
        "sysctl -qw net.ipv4.ip_local_port_range='40000 41999'",
        &[
            "check",
            "--target",
            "5000",
            "--role",
            "loopback",
            "--source",
            "127.0.0.2",
            "--format",
            "json",
        ],
    ));
    let ph = &c["capacity"]["per_host"];
    assert_eq!(
        ph["limit"], "net.ipv4.ip_local_port_range",
        "{ph:#}\n{stderr}"
    );
    let n = ph["connections"].as_u64().unwrap();
    assert!((1980..=2020).contains(&n), "{ph:#}");
}

#[test]
fn a_queue_of_8_without_syncookies_verifies_with_a_warning() {
    let _alone = alone();
    let (code, v, stderr) = run_json(in_netns(
        "sysctl -qw net.core.somaxconn=8 net.ipv4.tcp_max_syn_backlog=8 net.ipv4.tcp_syncookies=0",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--verify",
            "20000",
            "--hold",
            "0",
            "--format",
            "json",
        ],
    ));
    assert_eq!(code, 0, "{v:#}\n{stderr}");
    assert_eq!(v["verified"], true);
    let w = v["warnings"].to_string();
    assert!(w.contains("accept queue in effect is 8"), "{w}\n{stderr}");
}

#[test]
fn pid_in_another_network_namespace_is_said() {
    let sleeper = command("unshare")
        .args(["-n", "sleep", "60"])
        .spawn()
        .expect("unshare -n sleep");
    // unshare execs sleep in the new namespace: wait until it has.
    let pid = sleeper.id();
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    for _ in 0..100 {
        if std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|l| l != ours) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = tune()
        .args([
            "check",
            "--target",
            "1000",
            "--role",
            "server",
            "--pid",
            &pid.to_string(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    // Dropping the guard kills its process group (unshare and sleep).
    drop(sleeper);
    let c: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let notes = c["capacity"]["notes"].to_string();
    assert!(notes.contains("another network namespace"), "{notes}");
}

/// Copies every file of `from` into `to`, keeping relative paths.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

#[test]
fn a_captured_rootless_v2_container_binds_at_memory_high_and_names_the_user_namespace() {
    // The 6.18 host capture with the cgroup-v2 tree of the kernel's documentation over it
    // (tests/fixtures/cgroup/README.md): a service with memory.high 600 MiB, 500 MiB charged,
    // in a rootless user namespace.
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixtures.join("roots/linux-6.18-host"), dir.path());
    copy_tree(&fixtures.join("cgroup/v2-docs"), dir.path());
    let (_, c, stderr) = run_json({
        let mut cmd = tune();
        cmd.args(["check", "--root"]).arg(dir.path()).args([
            "--target", "50000", "--role", "loopback", "--format", "json",
        ]);
        cmd
    });
    let cap = &c["capacity"];
    assert_eq!(
        cap["per_host"]["limit"], "memory cgroup",
        "{cap:#}\n{stderr}"
    );
    // (600 MiB − 500 MiB charged − 5% of 600 MiB − 16 MiB) / (2 × 2,810 B)
    let high: u64 = 629_145_600;
    let usable = high - 524_288_000 - high / 100 * 5 - (16 << 20);
    assert_eq!(cap["per_host"]["connections"], usable / 5_620, "{cap:#}");
    let arithmetic = cap["per_host"]["arithmetic"].as_str().unwrap();
    assert!(
        arithmetic.contains("/system.slice/app.service (v2, memory.high"),
        "{arithmetic}"
    );
    assert!(
        cap["per_process"]["arithmetic"]
            .as_str()
            .unwrap()
            .contains("user namespace (rootless container)"),
        "{cap:#}"
    );
    // A captured root is not probed: conntrack is judged by the tree's count.
    assert_eq!(c["container"]["conntrack"]["state"], "unknown");
}
