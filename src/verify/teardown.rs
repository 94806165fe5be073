//! The teardown phase: the clients close their connections (websocket close handshake) at the
//! close rate, then the server stops with nothing left to close.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use embedded_server::loadgen::{Cmd, Died, LoadResults};

use super::measure::{self, Sock};
use super::progress::Progress;
use super::rig::Rig;
use crate::root::Root;

/// How long the clients may take over their close beyond `open / close_rate`: a factor for a
/// slow host and a constant for the processes' own exit.
const CLOSE_BUDGET_FACTOR: f64 = 3.0;
const CLOSE_BUDGET_EXTRA: Duration = Duration::from_secs(15);
/// How long client processes get to report their latency histograms after the close.
const REPORT_GRACE: Duration = Duration::from_secs(5);
/// TIME_WAIT and FIN states finish in the kernel after close; the counters get this long.
const SETTLE: Duration = Duration::from_millis(300);
/// Period of the wait for the clients' close.
const POLL: Duration = Duration::from_millis(50);

/// What the teardown did.
#[derive(Debug, Default)]
pub struct TornDown {
    pub seconds: f64,
    /// Connections closed by the clients (external mode: open at the server's shutdown).
    pub closed: u64,
    /// The clients' latency histograms.
    pub latency: Option<LoadResults>,
    /// Every client process that died over the whole run.
    pub clients_died: Vec<Died>,
    /// Server workers that ran.
    pub server_workers: u64,
    /// Netstat counters' growth over the teardown, and sockstat after it (when measured).
    pub netstat_deltas: BTreeMap<String, u64>,
    pub sock_after: Option<Sock>,
}

/// Closes `open` connections and stops every process of the rig, saying how many are closed
/// and at what rate as it goes. With `root`, the netstat counters are read around it and
/// sockstat after it.
pub fn teardown(rig: Rig, open: u64, root: Option<&Root>) -> TornDown {
    let mut progress = Progress::new(open);
    progress.say(&format!(
        "closing {} connections",
        crate::capacity::group(open)
    ));
    let td = close(rig, open, root, &mut progress);
    progress.finish();
    progress.say(&format!(
        "closed {} in {:.2} s",
        crate::capacity::group(td.closed),
        td.seconds
    ));
    td
}

fn close(rig: Rig, open: u64, root: Option<&Root>, progress: &mut Progress) -> TornDown {
    let net_before = root.map(measure::netstat);
    let t = Instant::now();
    let mut td = TornDown::default();
    let Rig {
        server, clients, ..
    } = rig;
    if let Some(mut cl) = clients {
        cl.gen.command(Cmd::Close);
        let budget = Duration::from_secs_f64(
            open as f64 / cl.cfg.close_rate.max(1) as f64 * CLOSE_BUDGET_FACTOR,
        ) + CLOSE_BUDGET_EXTRA;
        let end = Instant::now() + budget;
        loop {
            cl.gen.reap();
            let s = cl.gen.snapshot();
            let secs = t.elapsed().as_secs_f64().max(1e-3);
            progress.update(
                s.closed,
                format!(
                    "closing | {:.0}/s | {} open",
                    s.closed as f64 / secs,
                    crate::capacity::group(s.open)
                ),
            );
            if Instant::now() >= end
                || (s.processes_closed + s.processes_died) as usize >= cl.gen.processes()
            {
                break;
            }
            std::thread::sleep(POLL);
        }
        td.clients_died = cl.gen.died.clone();
        td.closed = cl.gen.snapshot().closed;
        td.latency = Some(cl.gen.finish(REPORT_GRACE));
    }
    if let Some(s) = server {
        progress.say("stopping the server");
        let summary = s.shutdown();
        td.server_workers = summary.workers as u64;
        if td.latency.is_none() {
            td.closed = summary.open_at_shutdown;
        }
    }
    td.seconds = t.elapsed().as_secs_f64();
    if let (Some(root), Some(before)) = (root, net_before) {
        std::thread::sleep(SETTLE);
        td.netstat_deltas = measure::deltas(&before, &measure::netstat(root));
        td.sock_after = measure::sockstat(root);
    }
    td
}
