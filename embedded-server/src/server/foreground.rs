//! `tune serve` in the foreground: start the supervisor, print the address, a live line and dead
//! workers, stop on SIGINT/SIGTERM and print a summary.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use super::supervisor::{Summary, Supervisor};
use super::ServerConfig;
use crate::sys::signal::{Signal, Signals};

/// How the live line is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// Rewritten in place every second (a terminal).
    InPlace,
    /// A new line every `secs` seconds (logs, pipes).
    Lines { secs: u64 },
}

/// Runs the server until SIGINT/SIGTERM (or until every worker died) and returns the summary.
/// `out` gets the machine-readable `listening on ADDR` line first, then the summary; `live`
/// lines and dead-worker reports go to `err`.
pub fn serve(
    cfg: &ServerConfig,
    spawn: &mut dyn FnMut(usize) -> Command,
    out: &mut dyn Write,
    err: &mut dyn Write,
    live: Live,
) -> anyhow::Result<Summary> {
    // Block the signals before the workers exist; they set up their own signalfd.
    let signals = Signals::new(&[Signal::SIGINT, Signal::SIGTERM])?;
    let mut sup = Supervisor::start(cfg, spawn)?;
    writeln!(out, "listening on {}", sup.local_addr())?;
    writeln!(
        out,
        "{} workers (pids {:?}), fd cap {} each, mode {:?}; GET /metrics, /healthz; Ctrl-C stops",
        sup.workers(),
        sup.pids(),
        sup.fd_cap(),
        cfg.mode
    )?;
    out.flush()?;
    let mut last = sup.snapshot();
    let mut last_t = Instant::now();
    let mut last_line = Instant::now();
    let mut peak = 0u64;
    let stop_reason;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(Some(sig)) = signals.next() {
            stop_reason = sig.as_str().to_string();
            break;
        }
        for d in sup.reap() {
            writeln!(
                err,
                "\nworker {} (pid {}) died: {}; {} connections lost (not restarted)",
                d.index, d.pid, d.status, d.lost_connections
            )?;
        }
        if !sup.any_alive() {
            stop_reason = "every worker died".to_string();
            break;
        }
        let now = sup.snapshot();
        peak = peak.max(now.connections);
        let dt = last_t.elapsed().as_secs_f64();
        if dt >= 1.0 {
            let due = match live {
                Live::InPlace => true,
                Live::Lines { secs } => last_line.elapsed().as_secs() >= secs,
            };
            if due {
                let rate = (now.accepted - last.accepted) as f64 / dt;
                let msgs = (now.messages_in - last.messages_in) as f64 / dt;
                let line = format!(
                    "open {} ({} ws) | accepted {:.0}/s | msgs in {:.0}/s | rss {:.1} MiB | workers {}/{}",
                    now.connections,
                    now.websockets_open,
                    rate,
                    msgs,
                    now.rss_bytes as f64 / 1048576.0,
                    now.workers_up,
                    sup.workers()
                );
                match live {
                    Live::InPlace => write!(err, "\r\x1b[2K{line}")?,
                    Live::Lines { .. } => writeln!(err, "{line}")?,
                }
                err.flush()?;
                last_line = Instant::now();
            }
            last = now;
            last_t = Instant::now();
        }
    }
    if live == Live::InPlace {
        writeln!(err)?;
    }
    writeln!(
        out,
        "stopping ({stop_reason}): closing connections in batches"
    )?;
    out.flush()?;
    let s = sup.shutdown();
    let t = &s.totals;
    writeln!(
        out,
        "summary: uptime {:.1}s, workers {}, accepted {} (IPv4 {}, IPv6 {}), handshakes {}, handshakes failed {}, \
         peak connections {}, messages in {} out {}, bytes in {} out {}",
        s.uptime.as_secs_f64(),
        s.workers,
        t.accepted,
        t.accepted_ipv4,
        t.accepted_ipv6,
        t.handshakes,
        t.handshakes_failed(),
        peak.max(s.open_at_shutdown),
        t.messages_in,
        t.messages_out,
        t.bytes_in,
        t.bytes_out
    )?;
    writeln!(
        out,
        "shutdown: {} connections open closed in {:.2}s; workers killed after grace {}; workers died {} ({} connections lost)",
        s.open_at_shutdown,
        s.shutdown_took.as_secs_f64(),
        s.killed,
        s.dead.len(),
        s.dead.iter().map(|d| d.lost_connections).sum::<u64>()
    )?;
    out.flush()?;
    Ok(s)
}
