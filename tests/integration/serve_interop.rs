//! `tune serve` against an independent websocket client (Python `websockets`): echo, fragments,
//! pings, close codes, the message size limit, many concurrent clients, and graceful shutdown.

use crate::serve_support;

use serve_support::{interop, metric_in, Server};

#[test]
fn text_and_binary_echo() {
    let s = Server::start(&["--workers", "2"]);
    let out = interop(&s, &["echo"]);
    assert!(out.contains("ok echo 7 messages"), "{out}");
    assert_eq!(s.wait_metric("tune_messages_out_total", 7), 7);
    assert_eq!(s.metric("tune_messages_in_total"), 7);
}

#[test]
fn fragmented_messages_are_reassembled() {
    let s = Server::start(&["--workers", "1"]);
    let out = interop(&s, &["fragmented"]);
    assert!(out.contains("ok fragmented"), "{out}");
}

#[test]
fn pings_get_pongs() {
    let s = Server::start(&["--workers", "1"]);
    let out = interop(&s, &["ping"]);
    assert!(out.contains("ok ping 3 pongs"), "{out}");
    assert_eq!(s.wait_metric("tune_pings_total", 3), 3);
}

#[test]
fn close_codes_are_echoed() {
    let s = Server::start(&["--workers", "1"]);
    let out = interop(&s, &["close_codes"]);
    assert!(out.contains("ok close_codes"), "{out}");
    assert_eq!(
        s.wait_metric("tune_closed_total{reason=\"client_close\"}", 4),
        4
    );
}

#[test]
fn messages_within_and_beyond_the_limit() {
    let s = Server::start(&["--workers", "1", "--max-message", "65536"]);
    let out = interop(&s, &["limit", "65536"]);
    assert!(out.contains("ok limit"), "{out}");
    assert_eq!(s.wait_metric("tune_closed_total{reason=\"too_big\"}", 2), 2);
    assert_eq!(
        s.metric("tune_protocol_violations_total{reason=\"too_big\"}"),
        2
    );
}

#[test]
fn many_concurrent_clients_over_two_workers() {
    let s = Server::start(&["--workers", "2"]);
    let out = interop(&s, &["many", "300", "5"]);
    assert!(out.contains("ok many 300 clients x 5 messages"), "{out}");
    let m = s.metrics();
    assert_eq!(metric_in(&m, "tune_handshakes_total"), 300);
    // SO_REUSEPORT spread them over both workers (all 300 on one has odds of 2^-299).
    let w0 = metric_in(&m, "tune_worker_accepted_total{worker=\"0\"}");
    let w1 = metric_in(&m, "tune_worker_accepted_total{worker=\"1\"}");
    assert!(
        w0 > 0 && w1 > 0 && w0 + w1 == metric_in(&m, "tune_accepted_total"),
        "{m}"
    );
}

#[test]
fn shutdown_sends_going_away_and_exits_in_bounded_time() {
    let s = Server::start(&["--workers", "2"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/ws_client.py");
    let client = std::process::Command::new(serve_support::python())
        .arg(script)
        .arg(s.url())
        .args(["hold", "50"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the server holds all 50.
    assert_eq!(s.wait_metric("tune_websockets_open", 50), 50);
    let (status, stdout, stderr, took) = s.stop();
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    assert!(took.as_secs() < 10, "shutdown took {took:?}");
    assert!(stdout.contains("summary: "), "{stdout}");
    assert!(
        stdout.contains("shutdown: 50 connections open closed"),
        "{stdout}"
    );
    let out = client.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok hold close codes [1001]"), "{text}");
}
