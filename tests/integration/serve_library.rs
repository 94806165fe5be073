//! The library API the verify command drives: start a supervisor with a config and a worker
//! command builder, read aggregated counters, shut down. Workers are this package's binary.

use crate::serve_support;

use std::process::Command;

use embedded_server::server::{Limits, Mode, ServerConfig, Supervisor, Workers};
use serve_support::Raw;

#[test]
fn supervisor_starts_counts_and_shuts_down() {
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: Workers::Fixed(2),
        mode: Mode::Count,
        limits: Limits::default(),
        tls: None,
    };
    let mut spawn = |i: usize| {
        let mut c = Command::new(crate::support::tune_exe());
        c.args(["__serve-worker", "--index", &i.to_string()]);
        c
    };
    let sup = Supervisor::start(&cfg, &mut spawn).unwrap();
    assert_eq!(sup.workers(), 2);
    assert_ne!(sup.local_addr().port(), 0);
    let mut conns: Vec<Raw> = (0..20).map(|_| Raw::websocket(sup.local_addr())).collect();
    for c in conns.iter_mut() {
        c.send(&serve_support::frame(0x81, b"counted, not echoed"));
    }
    let t = std::time::Instant::now();
    while sup.snapshot().messages_in < 20 && t.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let s = sup.snapshot();
    assert_eq!(
        (s.messages_in, s.messages_out),
        (20, 0),
        "count mode replies nothing"
    );
    assert_eq!(s.websockets_open, 20);
    assert_eq!(s.workers_up, 2);
    assert!(sup.prometheus().contains("tune_websockets_open 20\n"));
    let summary = sup.shutdown();
    assert_eq!(summary.open_at_shutdown, 20);
    assert!(
        summary.dead.is_empty() && summary.killed == 0,
        "{summary:?}"
    );
    assert_eq!(
        summary
            .totals
            .labeled(embedded_server::server::Family::Closed, "shutdown"),
        20
    );
    for c in conns.iter_mut() {
        assert_eq!(c.close_code(), Some(1001));
    }
}
