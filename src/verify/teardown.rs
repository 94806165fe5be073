//! The teardown phase: the clients close their connections (a TCP close, or the websocket close
//! handshake with `--close websocket`) at most at the close rate, then the server stops with
//! nothing left to close.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use embedded_server::loadgen::{Cmd, Died, LoadResults};

use super::measure::{self, Sock};
use super::progress::Progress;
use super::rig::Rig;
use crate::knobs::{KnobId, Value};
use crate::root::Root;

/// Give up on the clients' close when the closed count has not risen for this long (time
/// paused for TCP memory does not count).
const CLOSE_STALL: Duration = Duration::from_secs(15);
/// How long client processes get to report their latency histograms after the close.
const REPORT_GRACE: Duration = Duration::from_secs(5);
/// TIME_WAIT and FIN states finish in the kernel after close; the counters get this long.
const SETTLE: Duration = Duration::from_millis(300);
/// Period of the wait for the clients' close.
const POLL: Duration = Duration::from_millis(50);
/// How long the server gets to read the clients' closes once the clients are done. It reads
/// them at its own pace (1,370 of 20,000 were still unread here when the clients had finished);
/// stopped earlier, its shutdown sends a 1001 close frame into each of those, the client's
/// kernel answers data after its close with a RST, and EstabResets rose by as many.
const SERVER_DRAIN: Duration = Duration::from_secs(5);

/// What the teardown did.
#[derive(Debug, Default)]
pub struct TornDown {
    pub seconds: f64,
    /// The clients' close, until every client process exited (`None`: no clients here).
    pub close_seconds: Option<f64>,
    /// Stopping the server (`None`: no server here).
    pub stop_seconds: Option<f64>,
    /// Connections closed by the clients (external mode: open at the server's shutdown).
    pub closed: u64,
    /// The clients' latency histograms.
    pub latency: Option<LoadResults>,
    /// Messages the clients sent and received over the whole run, read once every client
    /// closed: an echo still on its way when the hold ended is counted (no message is sent
    /// after the hold; the close frame follows the last one).
    pub messages: Option<(u64, u64)>,
    /// Every client process that died over the whole run.
    pub clients_died: Vec<Died>,
    /// Server workers that ran.
    pub server_workers: u64,
    /// Netstat counters' growth over the teardown, and sockstat after it (when measured).
    pub netstat_deltas: BTreeMap<String, u64>,
    pub sock_after: Option<Sock>,
    /// The pacing by TCP memory (`None`: tcp_mem or sockstat unreadable, not paced).
    pub pacing: Option<Pacing>,
}

/// What the TCP memory guard did over the close.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Pacing {
    /// tcp_mem's pressure threshold, pages.
    pub pressure_pages: u64,
    /// The most TCP memory seen over the close, pages.
    pub peak_pages: u64,
    /// Times the clients were paused.
    pub pauses: u64,
}

/// Closing queues a FIN (or a close frame) in the server side's receive buffer until the server
/// reads it, and each socket holding one charges at least a page to tcp_mem. Clients closing
/// faster than the server reads can push the host into TCP memory pressure (a million at once
/// did, here). The guard pauses the clients while the host's TCP memory (sockstat's `mem`) is
/// at or above half of tcp_mem's pressure threshold, and lets them go on below a quarter.
struct MemGuard<'r> {
    root: &'r Root,
    paused: bool,
    pacing: Pacing,
}

impl<'r> MemGuard<'r> {
    fn new(root: &'r Root) -> Option<MemGuard<'r>> {
        let knob = KnobId::TcpMem.knob();
        let text = crate::kernel::Host::new(root).sysctl_text(knob.name).ok()?;
        let Ok(Value::Triple([_, pressure, _])) = Value::parse(knob.shape, &text) else {
            return None;
        };
        measure::sockstat(root)?;
        Some(MemGuard {
            root,
            paused: false,
            pacing: Pacing {
                pressure_pages: pressure,
                ..Pacing::default()
            },
        })
    }

    /// Reads TCP memory; `Some(paused)` when the clients must change state.
    fn check(&mut self) -> Option<bool> {
        let pages = measure::sockstat(self.root)?.tcp_mem_pages;
        let p = &mut self.pacing;
        p.peak_pages = p.peak_pages.max(pages);
        let next = paused_next(self.paused, pages, p.pressure_pages);
        if next == self.paused {
            return None;
        }
        self.paused = next;
        p.pauses += u64::from(next);
        Some(next)
    }
}

/// The guard's decision: pause at half of the pressure threshold, go on below a quarter.
fn paused_next(paused: bool, pages: u64, pressure: u64) -> bool {
    if paused {
        pages >= pressure / 4
    } else {
        pages >= pressure / 2
    }
}

/// Closes `open` connections and stops every process of the rig, saying how many are closed
/// and at what rate as it goes, paced by the host's TCP memory as read under `root`. With
/// `counters`, the netstat counters are read around it and sockstat after it.
pub fn teardown(rig: Rig, open: u64, root: &Root, counters: bool) -> TornDown {
    let mut progress = Progress::new(open);
    progress.say(&format!(
        "closing {} connections",
        crate::units::group(open)
    ));
    let td = close(rig, root, counters, &mut progress);
    progress.finish();
    progress.say(&format!(
        "closed {} in {:.2} s",
        crate::units::group(td.closed),
        td.seconds
    ));
    td
}

fn close(rig: Rig, root: &Root, counters: bool, progress: &mut Progress) -> TornDown {
    let net_before = counters.then(|| measure::netstat(root));
    let t = Instant::now();
    let mut td = TornDown::default();
    let Rig {
        server, clients, ..
    } = rig;
    if let Some(mut cl) = clients {
        let mut guard = MemGuard::new(root);
        cl.gen.command(Cmd::Close);
        let mut last = (0, Instant::now());
        loop {
            if let Some(paused) = guard.as_mut().and_then(MemGuard::check) {
                cl.gen.pause_close(paused);
            }
            cl.gen.reap();
            let s = cl.gen.snapshot();
            let secs = t.elapsed().as_secs_f64().max(1e-3);
            let paused = guard.as_ref().is_some_and(|g| g.paused);
            progress.update(
                s.closed,
                format!(
                    "closing | {:.0}/s | {} open{}",
                    s.closed as f64 / secs,
                    crate::units::group(s.open),
                    if paused { " | paused: TCP memory" } else { "" }
                ),
            );
            if s.closed > last.0 || paused {
                last = (s.closed, Instant::now());
            }
            if last.1.elapsed() >= CLOSE_STALL
                || (s.processes_closed + s.processes_died) as usize >= cl.gen.processes()
            {
                break;
            }
            std::thread::sleep(POLL);
        }
        td.pacing = guard.map(|g| g.pacing);
        td.clients_died = cl.gen.died.clone();
        let end = cl.gen.snapshot();
        td.closed = end.closed;
        td.messages = Some((end.messages_sent, end.messages_received));
        td.latency = Some(cl.gen.finish(REPORT_GRACE));
        td.close_seconds = Some(t.elapsed().as_secs_f64());
    }
    if let Some(s) = server {
        let ts = Instant::now();
        if td.latency.is_some() {
            drain(&s);
        }
        progress.say("stopping the server");
        let summary = s.shutdown();
        td.server_workers = summary.workers as u64;
        if td.latency.is_none() {
            td.closed = summary.open_at_shutdown;
        }
        td.stop_seconds = Some(ts.elapsed().as_secs_f64());
    }
    td.seconds = t.elapsed().as_secs_f64();
    if let Some(before) = net_before {
        std::thread::sleep(SETTLE);
        td.netstat_deltas = measure::deltas(&before, &measure::netstat(root));
        td.sock_after = measure::sockstat(root);
    }
    td
}

/// Waits until the server has closed every connection the clients closed (bounded by
/// [`SERVER_DRAIN`]), so that its shutdown finds nothing open to send a close frame into.
fn drain(server: &embedded_server::server::Supervisor) {
    let t = Instant::now();
    while server.snapshot().connections > 0 && t.elapsed() < SERVER_DRAIN {
        std::thread::sleep(POLL / 5);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_pauses_at_half_the_pressure_threshold_and_resumes_below_a_quarter() {
        // tcp_mem of Linux 6.18.44 on a 24 GiB machine: 287901 383868 575802.
        let pressure = 383_868;
        assert!(!paused_next(false, 0, pressure));
        assert!(!paused_next(false, pressure / 2 - 1, pressure));
        assert!(paused_next(false, pressure / 2, pressure));
        // Paused: stays so until below a quarter.
        assert!(paused_next(true, pressure / 2 - 1, pressure));
        assert!(paused_next(true, pressure / 4, pressure));
        assert!(!paused_next(true, pressure / 4 - 1, pressure));
    }

    #[test]
    fn the_guard_reads_tcp_mem_and_sockstat_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let w = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        // Linux 6.18.44: tcp_mem, and sockstat with 400,013 sockets in use and 300,000 pages.
        w("proc/sys/net/ipv4/tcp_mem", "287901\t383868\t575802\n");
        w(
            "proc/net/sockstat",
            "sockets: used 400140\nTCP: inuse 400013 orphan 0 tw 7 alloc 400015 mem 300000\nUDP: inuse 0 mem 0\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n",
        );
        let root = Root::new(dir.path()).unwrap();
        let mut g = MemGuard::new(&root).expect("readable");
        assert_eq!(g.check(), Some(true));
        assert_eq!(g.check(), None);
        assert_eq!(
            g.pacing,
            Pacing {
                pressure_pages: 383_868,
                peak_pages: 300_000,
                pauses: 1
            }
        );
        // Without tcp_mem (a network namespace other than the first): no guard.
        std::fs::remove_file(dir.path().join("proc/sys/net/ipv4/tcp_mem")).unwrap();
        assert!(MemGuard::new(&root).is_none());
    }
}
