//! `tune load` against servers written by others and against nothing: the Python `websockets`
//! echo server (an independent peer: real handshake, masked frames, echoes timed), and a
//! port where nothing listens (named as refused).

mod verify_support;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use verify_support::*;

const PY_SERVER: &str = r#"
import asyncio, sys
from websockets.asyncio.server import serve
async def echo(ws):
    async for m in ws:
        await ws.send(m)
async def main():
    async with serve(echo, "127.0.0.1", 0, max_queue=4) as s:
        print(s.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"#;

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
    let mut py = Command::new(python())
        .args(["-c", PY_SERVER])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(py.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("python prints its port");
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
    let _ = py.kill();
    let _ = py.wait();
    assert_eq!(code, 0, "{j:#}\n{stderr}");
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

#[test]
fn load_where_nothing_listens_is_named_refused() {
    // Bind a port and do not listen: connects are refused.
    let sock = embedded_server::sys::net::reuseport_bound("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = embedded_server::sys::net::local_addr(std::os::fd::AsRawFd::as_raw_fd(&sock))
        .unwrap()
        .port();
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
    assert_eq!(code, 1, "{j:#}");
    assert_eq!(j["reached"], 0);
    assert!(j["errors"]["econnrefused"].as_u64().unwrap() > 0);
    assert_eq!(j["diagnosis"]["limit"], "refused");
}

#[test]
fn load_rejects_bad_urls_and_sources() {
    let out = tune()
        .args(["load", "wss://127.0.0.1:1/", "--conns", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TLS"));
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
