//! `tune serve --verify 20000` on this machine: several server and client processes (one
//! process holds under 20k fds here), every connection echoed, a report that follows
//! docs/verify-schema.json, and nothing left behind.

use crate::container_support::{skip, slab_object_size, MemCg, NO_LIMIT};
use crate::verify_support;
use verify_support::*;

#[test]
fn verify_20000_passes_here() {
    let _alone = alone();
    // In the host's own network namespace: the teardown paces its close by tcp_mem, which a
    // child namespace does not show. The run in a fresh child memory cgroup (no limit) of its own: the kernel charges it
    // the kernel memory its processes allocate, which no other process moves (Slab is
    // host-wide, and a second copy of the suite opens and closes 40,000 sockets beside it).
    let cg = match MemCg::new("verify20k", NO_LIMIT) {
        Ok(cg) => cg,
        Err(e) => return skip("verify_20000_passes_here", &e),
    };
    let cmd = cg.tune(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--verify",
        "20000",
        "--hold",
        "1",
        "--format",
        "json",
    ]);
    let (code, j, stderr) = run(cmd);
    check_schema(&j);
    assert_eq!(code, 0, "{j:#}\n{stderr}");
    assert_eq!(j["verified"], true);
    assert_eq!(j["reached"], 20000);
    assert_eq!(j["server_websockets_at_peak"], 20000);
    assert_eq!(j["echoes"], 20000);
    assert_eq!(j["dropped"], 0);
    assert!(j["diagnosis"].is_null());
    // One process cannot hold 20,000 sockets here: the run needs several of each.
    assert!(j["server_processes"].as_u64().unwrap() >= 2, "{j:#}");
    assert!(j["client_processes"].as_u64().unwrap() >= 2, "{j:#}");
    assert_eq!(j["handshake_latency"]["count"], 20000);
    assert_eq!(j["echo_latency"]["count"], 20000);
    // Every socket of the run was open at the peak: both ends are on this host (other
    // processes' sockets in this namespace only add to the figure).
    assert!(j["sockstat_peak"]["tcp_inuse"].as_u64().unwrap() >= 40_000);
    // Kernel memory was measured, not copied from the prediction: the report has its Slab
    // and its TCP cache delta (host-wide figures, which other processes move either way).
    let k = &j["kernel_memory"];
    assert!(k["slab_delta_bytes"].is_i64(), "{k:#}");
    assert_eq!(k["tcp_sockets_expected"], 40000, "{k:#}");
    // What the run itself added: the kernel charged its cgroup at least each client socket's
    // TCP object (socket() in the client process) and both ends' socket inodes (socket() and
    // accept(), in the run's processes), at this kernel's object sizes.
    let must = 20_000 * (slab_object_size("TCP") + 2 * slab_object_size("sock_inode_cache"));
    let peak = cg.kmem_peak();
    assert!(
        peak >= must,
        "the run's cgroup was charged at most {peak} B of kernel memory; its 20,000 client \
         TCP sockets and 40,000 socket inodes alone take {must} B: {k:#}"
    );
    // The report's own figure is that cgroup's charge, said to be, and holds the same floor.
    assert_eq!(k["source"], "memory_cgroup", "{k:#}");
    let name = cg.dir.file_name().unwrap().to_str().unwrap();
    assert!(
        k["cgroup"]["path"].as_str().unwrap().ends_with(name),
        "{k:#}"
    );
    assert_eq!(
        k["cgroup"]["counter"], "memory.kmem.usage_in_bytes",
        "{k:#}"
    );
    let delta = k["cgroup"]["delta_bytes"].as_i64().unwrap();
    assert!(delta >= must as i64, "{delta} < {must}: {k:#}");
    // Closing in batches left TCP out of memory pressure.
    assert_eq!(j["teardown"]["tcp_memory_pressures_delta"], 0, "{j:#}");
    assert_eq!(j["teardown"]["closed"], 20000);
    // The default close is TCP's, paced by the host's TCP memory (tcp_mem is readable here).
    assert_eq!(j["teardown"]["close_mode"], "tcp");
    let pacing = &j["teardown"]["pacing"];
    assert_eq!(
        pacing["pressure_pages"].as_u64(),
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_mem")
            .unwrap()
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok()),
        "{pacing}"
    );
    phases_add_up(&j);
    assert_eq!(j["exit_code"], 0);
    no_workers_left_of(env!("CARGO_BIN_EXE_tune"));
}

/// Every phase of a full run was timed, in order, and together they fit in the whole.
fn phases_add_up(j: &serde_json::Value) {
    let p = &j["phases"];
    let secs = |k: &str| {
        p[k].as_f64()
            .unwrap_or_else(|| panic!("phases.{k} missing: {p}"))
    };
    let parts = [
        "prepare_seconds",
        "connect_seconds",
        "peak_seconds",
        "hold_seconds",
        "echo_seconds",
        "close_seconds",
        "stop_seconds",
    ];
    let sum: f64 = parts.iter().map(|k| secs(k)).sum();
    assert!(sum <= secs("total_seconds") + 1e-6, "{p}");
    assert!(secs("hold_seconds") >= 1.0, "--hold 1: {p}");
    assert!(
        (secs("connect_seconds") - j["connect_seconds"].as_f64().unwrap()).abs() < 1.0,
        "{p}"
    );
}

/// `--close websocket`: every connection closes with the close handshake, and the report says so.
#[test]
fn verify_closes_with_the_websocket_handshake_when_asked() {
    let _alone = alone();
    let mut cmd = tune();
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--verify",
        "2000",
        "--hold",
        "0",
        "--close",
        "websocket",
        "--close-rate",
        "5000",
        "--format",
        "json",
    ]);
    let (code, j, stderr) = run(cmd);
    check_schema(&j);
    assert_eq!(code, 0, "{j:#}\n{stderr}");
    assert_eq!(j["teardown"]["close_mode"], "websocket");
    assert_eq!(j["teardown"]["closed"], 2000);
    assert_eq!(j["dropped"], 0);
    // 2,000 at 5,000 a second, less the token buckets' first burst (a twentieth of a second's
    // worth plus one per process): at least (2,000 - 252) / 5,000 = 0.35 s. Uncapped, 2,000
    // close in a few hundredths of a second.
    assert!(
        j["phases"]["close_seconds"].as_f64().unwrap() >= 0.34,
        "{j:#}"
    );
    no_workers_left_of(env!("CARGO_BIN_EXE_tune"));
}

#[test]
fn verify_table_names_the_verdict_and_bad_flags_exit_2() {
    let out = tune()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--verify",
            "300",
            "--hold",
            "0",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with("VERIFIED: this host held 300 websocket connections"),
        "{text}"
    );
    assert!(text.contains("echoes                 300 of 300"), "{text}");

    let out = tune()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--verify",
            "10",
            "--memory-floor",
            "lots",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid value 'lots' for '--memory-floor")
    );
    let out = tune()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--verify",
            "10",
            "--source",
            "127.0.0.9-127.0.0.2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("backwards"));
}

#[test]
fn sockets_opened_by_others_during_the_run_are_noted_with_the_numbers() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    // A slow run (1,000 connections at 250/s) in a network namespace of its own, and meanwhile
    // a process of this test opens 1,500 loopback connections (3,000 sockets, and a listener)
    // in that same namespace after the baseline: Slab and MemFree then include them, and the
    // report must say so, from the namespace's own sockets in use (sockstat `inuse`), which
    // no process outside the namespace moves (`alloc` is host-wide: a second copy of the
    // suite closing sockets meanwhile cancelled these).
    let mut verify = crate::container_support::in_netns(
        "",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--verify",
            "1000",
            "--rate",
            "250",
            "--hold",
            "0",
            "--format",
            "json",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut err = BufReader::new(verify.stderr.take().unwrap());
    let mut line = String::new();
    let mut seen = String::new();
    while err.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains("baseline taken") {
            break;
        }
        line.clear();
    }
    assert!(seen.contains("baseline taken"), "{seen}");
    std::thread::spawn(move || for _ in err.lines() {});
    let mut others = command("nsenter")
        .args([
            "-t",
            &verify.id().to_string(),
            "-n",
            "python3",
            "-c",
            HOLD_1500,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(others.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(
        ready.trim(),
        "holding 1500",
        "the other process did not open its sockets"
    );
    let out = verify.wait_with_output().unwrap();
    others.stdin.take().unwrap().write_all(b"done\n").unwrap();
    assert!(others.wait().unwrap().success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    check_schema(&j);
    assert_eq!(out.status.code(), Some(0), "{j:#}");
    let k = &j["kernel_memory"];
    assert_eq!(k["tcp_sockets_expected"], 2000, "{k:#}");
    let note = j["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .find(|n| n.starts_with("kernel memory per connection includes other activity"))
        .unwrap_or_else(|| panic!("no note: {j:#}"));
    assert!(
        note.contains("TCP sockets in use in this run's network namespace (sockstat inuse"),
        "{note}"
    );
    assert!(
        note.contains("1,000 connections account for 2,000"),
        "{note}"
    );
    // The other process's 3,000 connected sockets and its listener, nothing from the host.
    let others_opened = note
        .split("other processes opened about ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("no count of others' sockets: {note}"));
    assert_eq!(others_opened, "3,001", "{note}");
    no_workers_left_of(env!("CARGO_BIN_EXE_tune"));
}

/// Opens 1,500 loopback connections (both ends held), says so, and holds them until a line
/// arrives on stdin.
const HOLD_1500: &str = r#"
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
listener = socket.create_server(("127.0.0.1", 0), backlog=2048)
held = []
for _ in range(1500):
    held.append(socket.create_connection(listener.getsockname()))
    held.append(listener.accept()[0])
print("holding 1500", flush=True)
sys.stdin.readline()
"#;
