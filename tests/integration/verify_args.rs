//! Bad load-generator arguments to `tune serve --verify` are refused before any server worker starts.

use crate::support::{command, tune};

#[test]
fn bad_load_arguments_fail_before_the_server_starts() {
    for (flag, value, expect) in [
        ("--processes", "0", "invalid value '0' for '--processes"),
        ("--concurrency", "0", "--concurrency 0"),
        ("--rate", "0", "--rate 0"),
    ] {
        let out = tune()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--verify",
                "10",
                flag,
                value,
            ])
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(2), "{flag}: {stderr}");
        assert!(stderr.contains(expect), "{flag}: {stderr}");
        // Nothing was predicted, listened on or started.
        assert!(
            !stderr.contains("listening on") && !stdout.contains("listening on"),
            "{flag}: {stdout}{stderr}"
        );
        assert!(
            !stderr.contains("predicted") && !stdout.contains("predicted"),
            "{flag}: {stdout}{stderr}"
        );
    }
}

#[test]
fn a_memory_floor_above_the_hosts_memory_is_refused_before_the_server_starts() {
    // 100,000 GiB is above any machine this runs on.
    let out = tune()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--verify",
            "10",
            "--memory-floor",
            "100000G",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("at or above MemTotal"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening on"));
    assert!(!stderr.contains("listening on"), "{stderr}");
}

#[test]
fn an_auto_worker_count_beyond_the_hosts_memory_is_refused() {
    // 10^11 connections at under 20,000 fds per worker: millions of workers, no host has the memory.
    let out = tune()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--expect",
            "100000000000",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--workers auto") && stderr.contains("available"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening on"));
}

/// Runs `tune ARGS` in a fresh network namespace with only `lo` up: 10.255.255.1 and
/// 192.0.2.1 are certainly not addresses there, whatever the host has.
fn in_fresh_netns(args: &[&str]) -> std::process::Output {
    let script = format!(
        "ip link set lo up && exec {} {}",
        env!("CARGO_BIN_EXE_tune"),
        args.join(" ")
    );
    command("unshare")
        .args(["-n", "sh", "-c", &script])
        .output()
        .unwrap()
}

#[test]
fn a_source_address_of_another_host_is_refused_before_any_worker_starts() {
    for args in [
        vec![
            "load",
            "ws://127.0.0.1:9/",
            "--conns",
            "10",
            "--source",
            "127.0.0.2,10.255.255.1",
        ],
        vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--verify",
            "10",
            "--source",
            "127.0.0.2,10.255.255.1",
        ],
        vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--verify",
            "10",
            "--source",
            "192.0.2.1",
        ],
    ] {
        let out = in_fresh_netns(&args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        let bad = if args.contains(&"192.0.2.1") {
            "192.0.2.1"
        } else {
            "10.255.255.1"
        };
        // Refused as an error (2), not run and diagnosed as running out of ports (1).
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("--source {bad}: not an address of this host")),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("ip addr add"), "{args:?}: {stderr}");
        // Only the bad address is named.
        assert!(!stderr.contains("127.0.0.2:"), "{args:?}: {stderr}");
        // No server listened, no client process started.
        for what in ["listening on", "client processes", "predicted"] {
            assert!(
                !stderr.contains(what) && !stdout.contains(what),
                "{args:?}: {what}: {stdout}{stderr}"
            );
        }
    }
}
