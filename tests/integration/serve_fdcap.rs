//! A worker near its fd cap stops listening (after draining its accept queue into its fd
//! reserve) so new connections go to the other workers, none is reset, and it listens again once
//! connections close. Run under `prlimit --nofile=300:300` to reach the cap with few sockets.

use crate::serve_support;

use serve_support::{metric_in, Raw, Server};

#[test]
fn full_workers_stop_listening_without_losing_connections_and_resume() {
    let mut cmd = crate::support::command("prlimit");
    cmd.args(["--nofile=300:300", env!("CARGO_BIN_EXE_tune")]);
    let s = Server::start_with(cmd, &["--workers", "2", "--backlog", "16"]);
    let m = s.metrics();
    assert_eq!(metric_in(&m, "tune_worker_fd_cap{worker=\"0\"}"), 300);
    // 300 fds less the 16 backlog + 64 margin reserve and the base fds: ~210 per worker.
    // Connect one at a time until refused: each worker stops listening at its cap and the
    // other takes the next ones; when both are full connect() is refused. Every connection TCP
    // accepted must complete its websocket handshake: none is lost in a closed queue.
    let mut held = Vec::new();
    loop {
        assert!(
            held.len() < 600,
            "never refused: the fd cap is not enforced"
        );
        let mut ws = match std::net::TcpStream::connect(s.addr) {
            Ok(c) => {
                c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                    .unwrap();
                Raw { s: c }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            Err(e) => panic!("{e}"),
        };
        ws.send(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        );
        let mut head = [0u8; 12];
        std::io::Read::read_exact(&mut ws.s, &mut head)
            .unwrap_or_else(|e| panic!("connection {} accepted by TCP but lost: {e}", held.len()));
        assert_eq!(&head, b"HTTP/1.1 101");
        held.push(ws);
    }
    let n = held.len();
    assert!(
        (380..=460).contains(&n),
        "both workers full at {n} connections"
    );
    // Free a third: both workers drop below their low-water mark and listen again.
    held.truncate(n - n / 3);
    let t = std::time::Instant::now();
    let m = loop {
        if let Ok(c) = std::net::TcpStream::connect(s.addr) {
            drop(c);
            let m = s.metrics();
            let l = metric_in(&m, "tune_worker_listening{worker=\"0\"}")
                + metric_in(&m, "tune_worker_listening{worker=\"1\"}");
            if l == 2 {
                break m;
            }
        }
        assert!(t.elapsed().as_secs() < 10, "workers did not listen again");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    for w in ["0", "1"] {
        let p = metric_in(
            &m,
            &format!("tune_worker_listener_pauses_total{{worker=\"{w}\"}}"),
        );
        assert_eq!(p, 1, "worker {w}:\n{m}");
    }
    assert_eq!(
        s.wait_metric_down("tune_websockets_open", held.len() as u64),
        held.len() as u64
    );
    assert_eq!(metric_in(&m, "tune_handshakes_total"), n as u64, "{m}");
    assert_eq!(metric_in(&m, "tune_accept_errors_total"), 0, "{m}");
    // Still serving websockets.
    let mut ws = Raw::websocket(s.addr);
    ws.send(&serve_support::frame(0x81, b"ping"));
    assert_eq!(ws.read_frame(), Some((0x81, b"ping".to_vec())));
}
