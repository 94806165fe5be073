//! `tune load` against servers written by others and against nothing: the Python `websockets`
//! echo server (an independent peer: real handshake, masked frames, echoes timed), a port
//! where nothing listens (named as refused), and a load process killed while it holds its
//! share. Every JSON report follows docs/load-schema.json.

use crate::verify_support;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use verify_support::*;

/// Echoes, and prints each connection's close code as it ends (1006: closed without a close
/// frame).
const PY_SERVER: &str = r#"
import asyncio, sys
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
async def echo(ws):
    try:
        async for m in ws:
            await ws.send(m)
    except ConnectionClosed:
        pass
    print("closed", ws.close_code, flush=True)
async def main():
    async with serve(echo, "127.0.0.1", 0, max_queue=4) as s:
        print(s.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"#;

/// The Python echo server, the port it listens on, and its stdout (the close codes, read by
/// [`close_codes`]; kept open until the server is killed, or its prints would fail).
fn python_server() -> (
    std::process::Child,
    u16,
    BufReader<std::process::ChildStdout>,
) {
    let mut py = Command::new(python())
        .args(["-c", PY_SERVER])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(py.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port: u16 = line.trim().parse().expect("python prints its port");
    (py, port, out)
}

/// Kills the Python server and counts the close codes it printed, by code.
fn close_codes(
    mut py: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
) -> std::collections::BTreeMap<String, u64> {
    let _ = py.kill();
    let _ = py.wait();
    let mut codes = std::collections::BTreeMap::new();
    for line in out.lines().map_while(Result::ok) {
        if let Some(code) = line.strip_prefix("closed ") {
            *codes.entry(code.to_string()).or_insert(0) += 1;
        }
    }
    codes
}

fn python() -> String {
    std::env::var("TUNE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "TUNE_TEST_PYTHON is not set: run scripts/test-all, which creates .venv with the \
             Python `websockets` package and exports TUNE_TEST_PYTHON"
        )
    })
}

#[test]
fn load_against_python_websockets_echoes_and_times_messages() {
    let (py, port, out) = python_server();
    let mut cmd = tune();
    cmd.args([
        "load",
        &format!("ws://127.0.0.1:{port}/x"),
        "--conns",
        "200",
        "--processes",
        "2",
        "--message-interval",
        "0.5",
        "--hold",
        "2",
        "--format",
        "json",
    ]);
    let (code, j, stderr) = run(cmd);
    // run() returns once tune exited: every close has reached the server by then, and
    // Python prints each as its handler ends; give it a moment to.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let codes = close_codes(py, out);
    check_load_schema(&j);
    assert_eq!(code, 0, "{j:#}\n{stderr}");
    // tune load's default close is the close handshake: the server saw 200 normal closures.
    assert_eq!(j["close_mode"], "websocket");
    assert_eq!(
        codes,
        std::collections::BTreeMap::from([("1000".to_string(), 200)]),
        "{j:#}"
    );
    assert_eq!(j["open"], 200);
    assert_eq!(j["died_processes"], serde_json::json!([]));
    assert_eq!(j["reached"], 200);
    assert_eq!(j["all_open"], true);
    assert_eq!(j["dropped"], 0);
    assert_eq!(j["handshake_latency"]["count"], 200);
    // 200 connections, one message per 0.5 s for ~2 s: several hundred, each echoed back
    // intact (a wrong payload would not count).
    let sent = j["messages_sent"].as_u64().unwrap();
    let got = j["messages_received"].as_u64().unwrap();
    assert!(sent >= 400, "{j:#}");
    assert!(got + 200 >= sent, "{j:#}");
    assert!(j["echo_latency"]["count"].as_u64().unwrap() >= 400);
    assert_eq!(j["closed"], 200);
    no_workers_left_of(env!("CARGO_BIN_EXE_tune"));
}

/// `--close tcp`: the sockets close without a close frame, and the peer sees exactly that
/// (1006, abnormal closure) for every connection.
#[test]
fn load_close_tcp_closes_without_a_close_frame() {
    let (py, port, out) = python_server();
    let mut cmd = tune();
    cmd.args([
        "load",
        &format!("ws://127.0.0.1:{port}/"),
        "--conns",
        "50",
        "--hold",
        "0",
        "--close",
        "tcp",
        "--format",
        "json",
    ]);
    let (code, j, stderr) = run(cmd);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let codes = close_codes(py, out);
    check_load_schema(&j);
    assert_eq!(code, 0, "{j:#}\n{stderr}");
    assert_eq!(j["close_mode"], "tcp");
    assert_eq!(j["closed"], 50);
    assert_eq!(
        codes,
        std::collections::BTreeMap::from([("1006".to_string(), 50)]),
        "{j:#}"
    );
}

/// A slow server is not a stopped one: the Python server is paused (SIGSTOP) before the load
/// connects, so its connections wait in the accept queue with their handshakes in flight and
/// none failing. The load's count stays at 0 for twice its `--stall 1`, yet it waits (each
/// connect still ends within --connect-timeout) and opens all once the server resumes,
/// instead of saying the count "stopped rising without errors".
#[test]
fn a_paused_server_is_waited_for_while_its_handshakes_are_in_flight() {
    let (py, port, out) = python_server();
    let signal = |sig: &str| {
        let st = Command::new("kill")
            .args([sig, &py.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill {sig}");
    };
    signal("-STOP");
    // 50 connections: within the Python server's accept queue (asyncio's backlog is 100).
    let mut cmd = tune();
    cmd.args([
        "load",
        &format!("ws://127.0.0.1:{port}/"),
        "--conns",
        "50",
        "--stall",
        "1",
        "--connect-timeout",
        "30",
        "--hold",
        "1",
        "--format",
        "json",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut load = cmd.spawn().unwrap();
    // The connect phase starts right after this line.
    let (said, mut err) = crate::support::stderr_until(&mut load, "client processes to");
    assert!(said.contains("client processes to"), "{said}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    signal("-CONT");
    let rest = std::thread::spawn(move || {
        let mut t = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut t);
        t
    });
    let o = load.wait_with_output().unwrap();
    let stderr = rest.join().unwrap();
    let j: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&o.stdout)));
    check_load_schema(&j);
    assert_eq!(o.status.code(), Some(0), "{j:#}\n{stderr}");
    assert_eq!(j["reached"], 50, "{j:#}");
    assert_eq!(j["all_open"], true, "{j:#}");
    // The count was flat for longer than the stall window: it was waited for.
    assert!(j["time_to_reach_seconds"].as_f64().unwrap() >= 2.0, "{j:#}");
    close_codes(py, out);
}

#[test]
fn load_where_nothing_listens_is_named_refused() {
    // Bind a port and do not listen: connects are refused.
    let (sock, port) = crate::support::refusing_port();
    let mut cmd = tune();
    cmd.args([
        "load",
        &format!("ws://127.0.0.1:{port}/"),
        "--conns",
        "50",
        "--stall",
        "1",
        "--format",
        "json",
    ]);
    let (code, j, _) = run(cmd);
    drop(sock);
    check_load_schema(&j);
    assert_eq!(code, 1, "{j:#}");
    assert_eq!(j["reached"], 0);
    assert!(j["errors"]["econnrefused"].as_u64().unwrap() > 0);
    assert_eq!(j["diagnosis"]["limit"], "refused");
}

#[test]
fn load_rejects_bad_urls_and_sources() {
    let out = tune()
        .args(["load", "http://127.0.0.1:1/", "--conns", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // wss:// is taken now (serve_tls.rs); another scheme is refused, naming both.
    assert!(String::from_utf8_lossy(&out.stderr).contains("ws:// or wss://"));
    let out = tune()
        .args([
            "load",
            "ws://127.0.0.1:1/",
            "--conns",
            "1",
            "--source",
            "nope",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--source \"nope\""));
}

#[test]
fn a_ca_file_without_a_certificate_is_refused_before_any_worker_starts() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate\n").unwrap();
    let out = tune()
        .args(["load", "wss://127.0.0.1:1/", "--conns", "2", "--ca"])
        .arg(&ca)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--ca: no PEM certificate"), "{stderr}");
    // Told once by the launcher, not by each worker as it dies.
    assert!(!stderr.contains("load worker"), "{stderr}");
    assert!(!stderr.contains("client processes to"), "{stderr}");
}

/// The pid of load process `index` of the `tune load` run `parent`.
fn load_worker_pid(parent: u32, index: usize) -> Option<u32> {
    let needle = format!("__load-worker --index {index} ");
    processes()
        .into_iter()
        .find(|(_, ppid, cmd)| *ppid == parent && cmd.contains(&needle))
        .map(|(pid, _, _)| pid)
}

/// 400 connections over 4 processes to the Python server; once all are open, load process 1
/// (100 of them) is killed with SIGKILL. Returns the exit code, stdout and stderr.
fn load_with_a_killed_process(format: &str) -> (i32, String, String) {
    let (mut py, port, _out) = python_server();
    let mut load = tune()
        .args([
            "load",
            &format!("ws://127.0.0.1:{port}/"),
            "--conns",
            "400",
            "--processes",
            "4",
            "--hold",
            "3",
            "--format",
            format,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut seen, mut err) = crate::support::stderr_until_open(&mut load);
    assert!(seen.contains("400 open in"), "{seen}");
    let pid = load_worker_pid(load.id(), 1).expect("load process 1 runs");
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let out = load.wait_with_output().unwrap();
    let _ = py.kill();
    let _ = py.wait();
    seen.push_str(&rest.join().unwrap());
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        seen,
    )
}

#[test]
fn a_killed_load_process_shows_what_is_open_now_and_what_was_dropped() {
    let (code, text, stderr) = load_with_a_killed_process("table");
    assert_eq!(code, 1, "{text}\n{stderr}");
    let first = text.lines().next().unwrap_or("");
    assert!(
        first.starts_with("SHORT: 300 open of 400 (100 dropped: worker 1 died) to ws://127.0.0.1:"),
        "{text}\n{stderr}"
    );
    assert!(stderr.contains("load worker 1 died"), "{stderr}");
    assert!(
        text.contains("LIMIT: load_worker_died (client side)"),
        "{text}"
    );

    let (code, text, stderr) = load_with_a_killed_process("json");
    let j: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}\n{stderr}"));
    check_load_schema(&j);
    assert_eq!(code, 1, "{j:#}");
    assert_eq!(j["all_open"], false);
    assert_eq!(j["reached"], 400);
    assert_eq!(j["open"], 300, "{j:#}");
    assert_eq!(j["dropped"], 100, "{j:#}");
    assert_eq!(j["died_processes"][0]["index"], 1, "{j:#}");
    assert_eq!(j["died_processes"][0]["connections_lost"], 100, "{j:#}");
    assert!(
        j["died_processes"][0]["status"]
            .as_str()
            .unwrap()
            .contains("9"),
        "{j:#}"
    );
    assert_eq!(j["diagnosis"]["limit"], "load_worker_died", "{j:#}");
    // The three live processes closed their 300; the dead one's 100 went with it.
    assert_eq!(j["closed"], 300, "{j:#}");
    no_workers_left_of(env!("CARGO_BIN_EXE_tune"));
}
