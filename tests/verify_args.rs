//! Bad load-generator arguments to `tune serve --verify` are refused before any server worker starts.

use std::process::Command;

#[test]
fn bad_load_arguments_fail_before_the_server_starts() {
    for (flag, value, expect) in [
        ("--processes", "0", "--processes \"0\""),
        ("--concurrency", "0", "--concurrency 0"),
        ("--rate", "0", "--rate 0"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tune"))
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
    let out = Command::new(env!("CARGO_BIN_EXE_tune"))
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
    let out = Command::new(env!("CARGO_BIN_EXE_tune"))
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
