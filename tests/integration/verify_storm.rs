//! Reconnect storms through the binary (`tune serve --verify 20000 --storm
//! clients|restart|graceful`),
//! each in a network namespace the test creates (`unshare -n`), so that the listen counters are
//! the run's own and the sysctls a test sets (somaxconn 64, syncookies 0) die with it.
//! 20,000 connections need several server and client processes here (RLIMIT_NOFILE 20000);
//! `--workers auto` and `--processes auto` start them.

use crate::verify_support;

use verify_support::*;

/// Runs `tune serve --verify 20000 ARGS --format json` in a fresh network namespace after
/// `setup` (shell lines run inside it first).
fn storm_in_netns(setup: &str, args: &str) -> (i32, serde_json::Value, String) {
    // The accept rate is saved in a state directory of the test's own, not the host's.
    let state = tempfile::tempdir().unwrap();
    let script = format!(
        "set -e\n\
         ip link set lo up\n\
         {setup}\n\
         exec \"$TUNE\" serve --listen 127.0.0.1:0 --verify 20000 --hold 1 {args} --format json"
    );
    let mut cmd = command("unshare");
    cmd.args(["-n", "--", "sh", "-c", &script])
        .env("TUNE", env!("CARGO_BIN_EXE_tune"))
        .env("TUNE_STATE_DIR", state.path())
        .env_remove("TUNE_ROOT");
    let (code, j, stderr) = run(cmd);
    // A recovered storm saved the pace it kept up for check --storm; a graceful restart's rate is
    // the drain's pace, not the host's, and is not saved.
    if j["storm"]["kind"] == "graceful" {
        assert!(!state.path().join("storm-rate").exists(), "{stderr}");
    } else if j["storm"]["recovered"] == true {
        let saved = std::fs::read_to_string(state.path().join("storm-rate")).unwrap();
        let kept = j["storm"]["sustained_connects_per_second"]
            .as_f64()
            .unwrap();
        assert_eq!(saved, format!("{kept:.0} 20000\n"), "{stderr}");
    }
    (code, j, stderr)
}

/// The storm's section, checked for what every storm report carries.
fn storm_of(j: &serde_json::Value, stderr: &str) -> serde_json::Value {
    check_schema(j);
    let s = j["storm"].clone();
    assert!(s.is_object(), "no storm section: {j:#}\n{stderr}");
    for c in [
        "ListenOverflows",
        "ListenDrops",
        "TCPReqQFullDrop",
        "TCPReqQFullDoCookies",
        "TCPSynRetrans",
    ] {
        assert!(s["counters"][c].is_u64(), "{c} missing: {s:#}");
    }
    s
}

fn recovered_all(s: &serde_json::Value, stderr: &str) -> f64 {
    assert_eq!(s["recovered"], true, "{s:#}\n{stderr}");
    assert_eq!(s["target"], 20000);
    assert_eq!(s["open_after"], 20000, "{s:#}");
    assert_eq!(s["dropped"], 20000, "{s:#}");
    assert_eq!(s["gave_up"], 0, "{s:#}");
    // Every reconnect's handshake was timed: at least one per client (retries that failed
    // are not handshakes).
    assert_eq!(s["handshakes"]["count"], 20000, "{s:#}");
    let t = s["recovery_seconds"].as_f64().unwrap();
    assert!(t > 0.0, "{s:#}");
    assert!(s["connects_per_second"].as_f64().unwrap() > 0.0);
    assert!(s["peak_memory_growth_bytes"].is_u64());
    t
}

#[test]
fn storm_clients_recovers_all_20000() {
    let _alone = alone();
    let (code, j, stderr) = storm_in_netns("", "--storm clients");
    let s = storm_of(&j, &stderr);
    assert_eq!(code, 0, "{j:#}\n{stderr}");
    let t = recovered_all(&s, &stderr);
    assert_eq!(s["kind"], "clients");
    eprintln!(
        "storm clients at 20,000: recovered in {t:.2} s, {:.0}/s, handshake p99 {} ms, counters {}",
        s["connects_per_second"].as_f64().unwrap(),
        s["handshakes"]["p99_ms"],
        s["counters"]
    );
    // The diagnosis names something and gives a reconnect policy from the rate measured.
    assert!(!s["diagnosis"]["findings"].as_array().unwrap().is_empty());
    let p = &s["diagnosis"]["policy"];
    assert!(p["jitter_secs"].as_u64().unwrap() >= 1, "{p:#}");
    assert!(p["lines"][0]
        .as_str()
        .unwrap()
        .starts_with("this host keeps up"));
    // The policy is sized on the pace kept up from 10% to 90% back, not on the best second.
    let kept = s["sustained_connects_per_second"].as_f64().unwrap();
    assert!(kept > 0.0, "{s:#}");
    assert_eq!(p["accept_rate"].as_f64().unwrap(), kept, "{p:#}");
    assert!(
        stderr.contains("storm (every client drops its connection)"),
        "{stderr}"
    );
}

#[test]
fn storm_restart_recovers_all_20000() {
    let _alone = alone();
    let (code, j, stderr) = storm_in_netns("", "--storm restart");
    let s = storm_of(&j, &stderr);
    assert_eq!(code, 0, "{j:#}\n{stderr}");
    let t = recovered_all(&s, &stderr);
    assert_eq!(s["kind"], "restart");
    // The workers were killed and new ones listened: the restart was timed.
    assert!(s["restart_stop_seconds"].as_f64().unwrap() > 0.0, "{s:#}");
    assert!(s["restart_start_seconds"].as_f64().unwrap() > 0.0, "{s:#}");
    // The old workers are not reported as dead: the restart was the run's own.
    assert_eq!(
        j["dead_server_workers"].as_array().unwrap().len(),
        0,
        "{j:#}"
    );
    eprintln!(
        "storm restart at 20,000: recovered in {t:.2} s (restart {:.2} s + {:.2} s), errors {}",
        s["restart_stop_seconds"].as_f64().unwrap(),
        s["restart_start_seconds"].as_f64().unwrap(),
        s["errors"]
    );
}

#[test]
fn a_small_accept_queue_is_named_and_its_fix_recovers_faster() {
    let _alone = alone();
    let small = "echo 64 > /proc/sys/net/core/somaxconn\n\
                 echo 0 > /proc/sys/net/ipv4/tcp_syncookies";
    // The ramp stays under the small queue; the storm does not.
    let (code, j, stderr) = storm_in_netns(small, "--storm clients --concurrency 64");
    let s = storm_of(&j, &stderr);
    assert_eq!(code, 0, "{j:#}\n{stderr}");
    let slow = recovered_all(&s, &stderr);
    let findings = s["diagnosis"]["findings"].as_array().unwrap();
    let q = findings
        .iter()
        .find(|f| f["limit"] == "accept_queue")
        .unwrap_or_else(|| panic!("the accept queue is not named: {s:#}"));
    assert_eq!(q["knob"], "net.core.somaxconn", "{q:#}");
    let evidence = q["evidence"].as_str().unwrap();
    assert!(
        evidence.contains("the accept queue in effect is 64 per listener"),
        "{evidence}"
    );
    let want = q["recommended"].as_u64().unwrap();
    assert!(want > 64, "{q:#}");
    assert_eq!(
        q["fix"][0].as_str().unwrap(),
        format!("sysctl -w net.core.somaxconn=\"{want}\""),
        "{q:#}"
    );
    assert!(
        findings.iter().any(|f| f["limit"] == "syncookies"),
        "syncookies 0 not named: {s:#}"
    );
    let jitter = s["diagnosis"]["policy"]["jitter_secs"].as_u64().unwrap();
    assert!(jitter >= 1);
    // Losses were seen where the queue was small.
    let c = &s["counters"];
    let losses = c["ListenOverflows"].as_u64().unwrap()
        + c["ListenDrops"].as_u64().unwrap()
        + c["TCPReqQFullDrop"].as_u64().unwrap();
    assert!(losses > 0, "{s:#}");

    // The recommended value applied in a namespace of its own, syncookies still off.
    let fixed = format!(
        "echo {want} > /proc/sys/net/core/somaxconn\n\
         echo 0 > /proc/sys/net/ipv4/tcp_syncookies"
    );
    let (code, j, stderr) = storm_in_netns(&fixed, "--storm clients --concurrency 64");
    let s = storm_of(&j, &stderr);
    assert_eq!(code, 0, "{j:#}\n{stderr}");
    let fast = recovered_all(&s, &stderr);
    eprintln!(
        "somaxconn 64, syncookies 0: recovered 20,000 in {slow:.2} s; with somaxconn {want} (recommended, jitter {jitter} s): {fast:.2} s"
    );
    assert!(
        fast < slow,
        "somaxconn {want} recovered in {fast:.2} s, not faster than {slow:.2} s at 64"
    );
}

/// What a storm lost on the way: SYNs and accepts the kernel dropped or retransmitted, and
/// reconnect attempts that failed (refused, reset).
fn losses(s: &serde_json::Value) -> u64 {
    let c = &s["counters"];
    let n = |k: &str| {
        c[k].as_u64()
            .unwrap_or_else(|| panic!("{k} missing: {s:#}"))
    };
    n("ListenOverflows")
        + n("ListenDrops")
        + n("TCPReqQFullDrop")
        + n("TCPSynRetrans")
        + s["failed_attempts"].as_u64().unwrap()
}

#[test]
fn a_graceful_restart_recovers_all_with_fewer_losses_than_a_hard_one() {
    let _alone = alone();
    let (code, j, stderr) = storm_in_netns("", "--storm restart");
    let hard = storm_of(&j, &stderr);
    assert_eq!(code, 0, "{j:#}\n{stderr}");
    recovered_all(&hard, &stderr);

    let (code, j, stderr) = storm_in_netns("", "--storm graceful --drain-seconds 5");
    let soft = storm_of(&j, &stderr);
    assert_eq!(code, 0, "{j:#}\n{stderr}");
    recovered_all(&soft, &stderr);
    assert_eq!(soft["kind"], "graceful");
    assert!(
        stderr.contains("the server restarts gracefully"),
        "{stderr}"
    );
    // The new workers listened before the old ones let go: no client was ever refused.
    assert!(
        soft["restart_start_seconds"].as_f64().unwrap() > 0.0,
        "{soft:#}"
    );
    assert_eq!(soft["failed_attempts"], 0, "{soft:#}");
    // The old workers drained and exited: not dead workers.
    assert_eq!(
        j["dead_server_workers"].as_array().unwrap().len(),
        0,
        "{j:#}"
    );
    // The diagnosis says the pace was the drain's, and derives no policy from it.
    let findings = soft["diagnosis"]["findings"].as_array().unwrap();
    assert!(findings.iter().any(|f| f["limit"] == "drain"), "{soft:#}");
    assert!(soft["diagnosis"]["policy"].is_null(), "{soft:#}");

    let (h, g) = (losses(&hard), losses(&soft));
    let resets = |s: &serde_json::Value| s["counters"]["EstabResets"].as_u64().unwrap();
    eprintln!(
        "20,000 in a netns: restart lost {h} (counters {}, failed {}), graceful lost {g} (counters {}); EstabResets {} vs {}; handshake p99 {} ms vs {} ms",
        hard["counters"], hard["failed_attempts"], soft["counters"], resets(&hard), resets(&soft),
        hard["handshakes"]["p99_ms"], soft["handshakes"]["p99_ms"]
    );
    assert!(
        h > 0,
        "a hard restart lost nothing: the comparison says nothing {hard:#}"
    );
    assert!(g < h, "graceful lost {g}, a hard restart {h}: {soft:#}");
    // The drain closes with the close handshake: the clients' answers meet open sockets.
    assert!(resets(&soft) < resets(&hard), "{soft:#}\n{hard:#}");
}
