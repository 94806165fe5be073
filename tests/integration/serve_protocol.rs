//! `tune serve` against raw bytes: every handshake rejection gets its HTTP error and a /metrics
//! counter by reason; every protocol violation gets its close code and the connection closed;
//! slow clients are dropped; the worker stays up throughout.

use crate::serve_support;

use std::io::Read;
use std::time::{Duration, Instant};

use crate::support::tune;
use serve_support::{frame, Raw, Server};

fn upgrade(lines: &[&str]) -> Vec<u8> {
    let mut s = lines.join("\r\n");
    s.push_str("\r\n\r\n");
    s.into_bytes()
}

const GOOD: [&str; 6] = [
    "GET / HTTP/1.1",
    "Host: localhost",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
];

fn replaced(prefix: &str, by: Option<&str>) -> Vec<u8> {
    let lines: Vec<&str> = GOOD
        .iter()
        .filter_map(|l| if l.starts_with(prefix) { by } else { Some(*l) })
        .collect();
    upgrade(&lines)
}

#[test]
fn handshake_rejections_get_http_errors_and_counters() {
    let s = Server::start(&["--workers", "1", "--max-handshake", "1024"]);
    let big = {
        let mut v = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        v.resize(2000, b'a');
        v
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "malformed",
            b"\x16\x03\x01\x02\x00 hello\r\n\r\n".to_vec(),
            "HTTP/1.1 400 ",
        ),
        (
            "malformed",
            b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n".to_vec(),
            "HTTP/1.1 400 ",
        ),
        ("too_large", big, "HTTP/1.1 431 "),
        (
            "method",
            replaced("GET", Some("POST / HTTP/1.1")),
            "HTTP/1.1 405 ",
        ),
        (
            "http_version",
            replaced("GET", Some("GET / HTTP/1.0")),
            "HTTP/1.1 505 ",
        ),
        (
            "bad_upgrade",
            replaced("Upgrade", Some("Upgrade: h2c")),
            "HTTP/1.1 400 ",
        ),
        (
            "bad_upgrade",
            replaced("Connection", Some("Connection: keep-alive")),
            "HTTP/1.1 400 ",
        ),
        (
            "version",
            replaced("Sec-WebSocket-Version", Some("Sec-WebSocket-Version: 8")),
            "HTTP/1.1 426 ",
        ),
        (
            "version",
            replaced("Sec-WebSocket-Version", None),
            "HTTP/1.1 426 ",
        ),
        ("key", replaced("Sec-WebSocket-Key", None), "HTTP/1.1 400 "),
        (
            "key",
            replaced("Sec-WebSocket-Key", Some("Sec-WebSocket-Key: tooshort")),
            "HTTP/1.1 400 ",
        ),
    ];
    let mut want = std::collections::BTreeMap::new();
    for (reason, req, status) in &cases {
        let resp = Raw::request(s.addr, req);
        assert!(resp.starts_with(status), "{reason}: {resp:?}");
        assert!(resp.contains("Connection: close\r\n"), "{reason}: {resp:?}");
        if *reason == "version" {
            assert!(resp.contains("Sec-WebSocket-Version: 13\r\n"), "{resp}");
        }
        *want.entry(*reason).or_insert(0u64) += 1;
    }
    for (reason, n) in want {
        let sample = format!("tune_handshakes_failed_total{{reason=\"{reason}\"}}");
        assert_eq!(s.wait_metric(&sample, n), n, "{sample}");
    }
    // Plain HTTP on the same port.
    assert_eq!(s.get("/healthz"), (200, "ok\n".to_string()));
    // An HTTP/1.0 probe (load balancers, old curl) is served; only upgrades need 1.1.
    let old = Raw::request(s.addr, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert!(old.starts_with("HTTP/1.1 200 "), "{old:?}");
    assert!(old.ends_with("\r\n\r\nok\n"), "{old:?}");
    assert_eq!(s.get("/nope").0, 404);
    assert_eq!(s.metric("tune_http_requests_total{path=\"other\"}"), 1);
    assert_eq!(s.metric("tune_workers_up"), 1);
    // The worker is unaffected: a good handshake still works.
    let mut ws = Raw::websocket(s.addr);
    ws.send(&frame(0x81, b"still here"));
    assert_eq!(ws.read_frame(), Some((0x81, b"still here".to_vec())));
}

#[test]
fn every_protocol_violation_gets_its_close_code() {
    let s = Server::start(&["--workers", "1", "--max-message", "1000"]);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked_frame", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("reserved_bits", frame(0xc1, b"x"), 1002),
        ("reserved_opcode", frame(0x83, b"x"), 1002),
        ("reserved_opcode", frame(0x8b, b""), 1002),
        ("control_too_long", frame(0x89, &[0u8; 126]), 1002),
        ("fragmented_control", frame(0x09, b"x"), 1002),
        ("unexpected_continuation", frame(0x80, b"x"), 1002),
        (
            "expected_continuation",
            [frame(0x01, b"a"), frame(0x81, b"b")].concat(),
            1002,
        ),
        ("invalid_utf8", frame(0x81, &[0xce, 0xba, 0xff]), 1007),
        (
            "invalid_utf8",
            [frame(0x01, &[0xe2, 0x82]), frame(0x80, &[0x28])].concat(),
            1007,
        ),
        ("close_too_short", frame(0x88, &[0x03]), 1002),
        ("bad_close_code", frame(0x88, &1005u16.to_be_bytes()), 1002),
        ("bad_close_code", frame(0x88, &999u16.to_be_bytes()), 1002),
        ("invalid_utf8", frame(0x88, &[0x03, 0xe8, 0xff]), 1007),
        ("too_big", frame(0x82, &[0u8; 1001]), 1009),
        (
            "too_big",
            [frame(0x02, &[0u8; 600]), frame(0x80, &[0u8; 401])].concat(),
            1009,
        ),
    ];
    let mut want = std::collections::BTreeMap::new();
    for (k, (reason, bytes, code)) in cases.iter().enumerate() {
        let mut ws = Raw::websocket(s.addr);
        ws.send(bytes);
        assert_eq!(ws.close_code(), Some(*code), "{reason}");
        // The first peer stays silent: the server closes once its linger is over. The others
        // answer the close frame, as RFC 6455 asks, and the server closes without waiting.
        if k > 0 {
            ws.send(&frame(0x88, &code.to_be_bytes()));
        }
        assert!(ws.sees_eof(), "{reason}: connection not closed");
        *want.entry(*reason).or_insert(0u64) += 1;
    }
    for (reason, n) in want {
        let sample = format!("tune_protocol_violations_total{{reason=\"{reason}\"}}");
        assert_eq!(s.wait_metric(&sample, n), n, "{sample}");
    }
    assert_eq!(
        s.wait_metric("tune_closed_total{reason=\"protocol_error\"}", 11),
        11
    );
    assert_eq!(s.metric("tune_closed_total{reason=\"invalid_payload\"}"), 3);
    assert_eq!(s.metric("tune_closed_total{reason=\"too_big\"}"), 2);
    // Every fd released: the only connection left is the /metrics request itself.
    assert_eq!(
        s.wait_metric_down("tune_connections", 1),
        1,
        "fds not released"
    );
    assert_eq!(s.metric("tune_websockets_open"), 0);
}

#[test]
fn invalid_utf8_fails_before_the_frame_is_complete() {
    let s = Server::start(&["--workers", "1"]);
    let mut ws = Raw::websocket(s.addr);
    // A 10,000-byte text frame whose 3rd byte is invalid: send only the first 100 bytes.
    let mut payload = vec![b'a'; 10_000];
    payload[2] = 0xff;
    let f = frame(0x81, &payload);
    ws.send(&f[..100]);
    assert_eq!(ws.close_code(), Some(1007));
}

#[test]
fn fragments_control_frames_and_split_reads() {
    let s = Server::start(&["--workers", "1"]);
    let mut ws = Raw::websocket(s.addr);
    // Text in three fragments with a ping in between, delivered one byte at a time.
    let bytes = [
        frame(0x01, "κό".as_bytes()),
        frame(0x89, b"pp"),
        frame(0x00, &"σμε".as_bytes()[..3]),
        frame(0x80, &"σμε".as_bytes()[3..]),
    ]
    .concat();
    for b in &bytes {
        ws.send(std::slice::from_ref(b));
    }
    assert_eq!(ws.read_frame(), Some((0x8a, b"pp".to_vec())));
    assert_eq!(ws.read_frame(), Some((0x81, "κόσμε".as_bytes().to_vec())));
    // Several frames in one write, a 64 KiB binary among them.
    let big = vec![7u8; 65536];
    ws.send(&[frame(0x82, b"a"), frame(0x82, &big), frame(0x81, b"")].concat());
    assert_eq!(ws.read_frame(), Some((0x82, b"a".to_vec())));
    assert_eq!(ws.read_frame(), Some((0x82, big)));
    assert_eq!(ws.read_frame(), Some((0x81, vec![])));
    // Close with no code gets an empty close back, then the server closes TCP.
    ws.send(&frame(0x88, b""));
    assert_eq!(ws.read_frame(), Some((0x88, vec![])));
    assert!(ws.sees_eof());
}

#[test]
fn slow_handshakes_time_out_with_408() {
    let s = Server::start(&["--workers", "1", "--handshake-timeout", "0.3"]);
    let t = Instant::now();
    let mut r = Raw::connect(s.addr);
    r.send(b"GET / HTTP/1.1\r\nHost: x\r\n"); // never finishes the head
    let mut out = String::new();
    let _ = r.s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 408 "), "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(
        s.wait_metric("tune_handshakes_failed_total{reason=\"timeout\"}", 1),
        1
    );
}

#[test]
fn a_client_that_never_speaks_is_accepted_after_the_deferral_and_times_out_with_408() {
    // The listeners defer accept (TCP_DEFER_ACCEPT, 1 s) until a client's first bytes: a silent
    // client waits in the kernel's SYN queue, then is accepted anyway and meets the handshake
    // deadline like any other.
    let s = Server::start(&["--workers", "1", "--handshake-timeout", "0.3"]);
    let t = Instant::now();
    let mut r = Raw::connect(s.addr);
    let mut out = String::new();
    let _ = r.s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 408 "), "{out:?}");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(
        s.wait_metric("tune_handshakes_failed_total{reason=\"timeout\"}", 1),
        1
    );
}

#[test]
fn a_client_that_never_reads_is_closed_and_memory_stays_bounded() {
    let s = Server::start(&[
        "--workers",
        "1",
        "--max-output",
        "200000",
        "--max-message",
        "65536",
    ]);
    let mut ws = Raw::websocket(s.addr);
    ws.s.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let msg = frame(0x82, &[1u8; 60000]);
    // Echoes pile up in the socket buffers, then in the server's output queue, until the limit.
    let t = Instant::now();
    let mut sent = 0;
    while t.elapsed() < Duration::from_secs(15) {
        if std::io::Write::write_all(&mut ws.s, &msg).is_err() {
            break;
        }
        sent += 1;
        if s.metric("tune_closed_total{reason=\"slow_reader\"}") == 1 {
            break;
        }
    }
    assert_eq!(
        s.wait_metric("tune_closed_total{reason=\"slow_reader\"}", 1),
        1,
        "after {sent} messages"
    );
    assert_eq!(
        s.wait_metric_down("tune_connections", 1),
        1,
        "fd not released"
    );
}

#[test]
fn a_dead_worker_is_reported_with_its_lost_connections() {
    let s = Server::start(&["--workers", "2"]);
    let mut held = Vec::new();
    for _ in 0..40 {
        held.push(Raw::websocket(s.addr));
    }
    assert_eq!(s.wait_metric("tune_websockets_open", 40), 40);
    let m = s.metrics();
    let pid: i32 = {
        // The first worker's pid: children of the server process.
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", s.pid()))
            .expect("children of tune serve");
        children.split_whitespace().next().unwrap().parse().unwrap()
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    let index: usize = status
        .split('\0')
        .skip_while(|a| *a != "--index")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let held_by_it =
        serve_support::metric_in(&m, &format!("tune_worker_websockets{{worker=\"{index}\"}}"));
    // Everything it counted at that scrape: the websockets, the scrape itself if it served it,
    // and earlier scrapes whose close it had not yet seen (how many depends on how busy the
    // machine is). No connection is made between the scrape and the kill.
    let counted_by_it = serve_support::metric_in(
        &m,
        &format!("tune_worker_connections{{worker=\"{index}\"}}"),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Lost: its websockets, plus those of the test's /metrics requests it still counted.
    let lost = s.wait_metric("tune_lost_connections_total", held_by_it);
    assert!(
        (held_by_it..=counted_by_it).contains(&lost),
        "lost {lost}, websockets {held_by_it}, connections counted at the last scrape {counted_by_it}"
    );
    assert!(held_by_it > 0 && held_by_it < 40);
    assert_eq!(s.metric("tune_workers_up"), 1);
    let t = Instant::now();
    while !s.stderr().contains("died") && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let err = s.stderr();
    assert!(
        err.contains(&format!(
            "worker {index} (pid {pid}) died: killed by signal SIGKILL; {lost} connections lost (not restarted)"
        )),
        "{err}"
    );
    let (status, out, _, _) = s.stop();
    assert_eq!(
        status.code(),
        Some(1),
        "a dead worker makes the run fall short: {out}"
    );
    assert!(
        out.contains(&format!("workers died 1 ({lost} connections lost)")),
        "{out}"
    );
}

/// xorshift64*: deterministic pseudo-random bytes without a dependency.
fn noise(seed: &mut u64, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            *seed ^= *seed >> 12;
            *seed ^= *seed << 25;
            *seed ^= *seed >> 27;
            (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

#[test]
fn random_bytes_never_take_a_worker_down() {
    let s = Server::start(&["--workers", "2", "--max-message", "4096"]);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..300 {
        let len = 1 + (i * 37) % 3000;
        let bytes = noise(&mut seed, len);
        if i % 2 == 0 {
            // Garbage where the request head should be, then EOF (an incomplete head would
            // otherwise wait for the handshake timeout).
            let mut r = Raw::connect(s.addr);
            let _ = std::io::Write::write_all(&mut r.s, &bytes);
            let _ = r.s.shutdown(std::net::Shutdown::Write);
            assert!(r.sees_eof(), "case {i}: the server did not close");
        } else {
            // Garbage frames after a valid handshake, sometimes starting with a plausible
            // masked header so it reaches the frame decoder's deeper paths.
            let mut ws = Raw::websocket(s.addr);
            let mut b = bytes;
            if i % 4 == 1 {
                b[0] = [0x81, 0x01, 0x82, 0x89, 0x88, 0x80][i % 6];
                if b.len() > 1 {
                    b[1] |= 0x80;
                }
            }
            let _ = std::io::Write::write_all(&mut ws.s, &b);
            // End our side: a frame left incomplete is then closed at once, not at a timeout.
            let _ = ws.s.shutdown(std::net::Shutdown::Write);
            assert!(ws.sees_eof(), "case {i}: the server did not close");
        }
    }
    assert_eq!(s.metric("tune_workers_up"), 2);
    assert_eq!(s.metric("tune_lost_connections_total"), 0);
    let mut ws = Raw::websocket(s.addr);
    ws.send(&frame(0x81, b"alive"));
    assert_eq!(ws.read_frame(), Some((0x81, b"alive".to_vec())));
    let (status, out, err, _) = s.stop();
    assert!(status.success(), "{out}\n{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_port_in_use_is_a_clear_error_not_a_shared_group() {
    let s = Server::start(&["--workers", "1"]);
    let out = tune()
        .args(["serve", "--workers", "1", "--listen", &s.addr.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{} is in use", s.addr)) && err.contains("--listen"),
        "{err}"
    );
}

#[test]
fn an_address_not_of_this_host_is_named_as_such() {
    // 192.0.2.1 (TEST-NET-1) is never assigned here; nothing is sent to it, bind() fails first.
    let out = tune()
        .args(["serve", "--workers", "1", "--listen", "192.0.2.1:8000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("192.0.2.1:8000 is not an address of this host"),
        "{err}"
    );
}

#[test]
fn workers_do_not_outlive_a_killed_supervisor() {
    let s = Server::start(&["--workers", "2"]);
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", s.pid())).unwrap();
    let workers: Vec<i32> = children
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(workers.len(), 2);
    let mut ws = Raw::websocket(s.addr);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // PR_SET_PDEATHSIG turns the supervisor's death into SIGTERM for each worker: they close
    // their connections (1001) and exit.
    assert_eq!(ws.close_code(), Some(1001));
    let t = Instant::now();
    while workers.iter().any(|p| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .map(|st| !st.contains(") Z "))
            .unwrap_or(false)
    }) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "workers still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
