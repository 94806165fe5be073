//! `tune load --storm` against someone else's server: the Python `websockets` echo server is
//! killed and started again on the same port on purpose while tune holds its connections; tune
//! notices the restart (every connection reset at once) and reports the recovery instead of
//! counting failures.

use crate::verify_support;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use verify_support::*;

/// An echo server on the port given (0: any), printing the port it listens on.
const PY_SERVER: &str = r#"
import asyncio, sys
from websockets.asyncio.server import serve
async def echo(ws):
    async for m in ws:
        await ws.send(m)
async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1])) as s:
        print(s.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"#;

/// Starts the Python server on `port` and waits until it listens; returns it and its port.
fn python_server(port: u16) -> (Child, u16) {
    let mut py = Command::new(crate::serve_support::python())
        .args(["-c", PY_SERVER, &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(py.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("python prints its port");
    (py, port)
}

#[test]
fn load_storm_detects_a_python_server_restart_and_times_the_recovery() {
    let (mut py, port) = python_server(0);
    let mut run = tune()
        .args([
            "load",
            &format!("ws://127.0.0.1:{port}/"),
            "--conns",
            "1000",
        ])
        .args(["--storm", "--hold", "60", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Keep the reader: the load still writes to its stderr, and a closed pipe would end it.
    let (seen, mut stderr) = crate::support::stderr_until_open(&mut run);
    assert!(seen.contains("1,000 open in"), "{seen}");
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.contains("waiting up to 60 s for the server to restart"),
        "{line}"
    );
    // The restart: the old process killed (its connections reset), a new one on the port.
    let _ = py.kill();
    let _ = py.wait();
    let (mut py2, port2) = python_server(port);
    assert_eq!(port2, port);
    let mut out = String::new();
    std::io::Read::read_to_string(run.stdout.as_mut().unwrap(), &mut out).unwrap();
    let status = run.wait().unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    let _ = py2.kill();
    let _ = py2.wait();
    let j: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    check_load_schema(&j);
    assert_eq!(status.code(), Some(0), "{j:#}\n{seen}{rest}");
    let s = &j["storm"];
    assert_eq!(s["kind"], "restart", "{s:#}");
    assert_eq!(s["restart_detected"], true, "{s:#}");
    assert_eq!(s["recovered"], true, "{s:#}");
    assert_eq!(s["open_after"], 1000, "{s:#}");
    assert_eq!(s["gave_up"], 0, "{s:#}");
    assert_eq!(s["handshakes"]["count"], 1000, "{s:#}");
    let t = s["recovery_seconds"].as_f64().unwrap();
    assert!(t > 0.0, "{s:#}");
    assert!(
        rest.contains("connections at once: a restart; following the recovery"),
        "{rest}"
    );
    eprintln!(
        "python websockets restarted: recovered 1,000 in {t:.2} s, failed attempts {}, {}",
        s["failed_attempts"], s["errors"]
    );
    // The restart is the storm's, not failures of the run.
    assert_eq!(j["all_open"], true, "{j:#}");
    no_workers_left_of(env!("CARGO_BIN_EXE_tune"));
}
