//! Restarting the server's workers in place, for reconnect storms: a hard restart kills every
//! worker (SIGKILL: what a crash or an OOM kill does, and a deploy that does not drain) and
//! starts new ones on the same SO_REUSEPORT port and counters, timed. The port stays reserved
//! by the supervisor meanwhile, so no other process takes it; SYNs that arrive while no worker
//! listens are refused (RST), as when a real server restarts.
//!
//! A graceful restart hands over instead: the new workers join the port's SO_REUSEPORT group
//! and listen first; only then are the old ones asked to drain. Each old worker takes what
//! its accept queue holds (closing a SO_REUSEPORT listener resets the connections still queued
//! on it, unless net.ipv4.tcp_migrate_req=1 lets the kernel move them to the new listeners),
//! closes its listener (new SYNs now hash to the new workers only), and closes its
//! connections with 1001 spread evenly over the drain window, so the clients come back a few
//! at a time rather than all at once.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::metrics as m;
use super::supervisor::Supervisor;
use super::SHUTDOWN_GRACE;

/// How long the old workers have to close their listeners once asked (they look every tick,
/// 100 ms; more under load).
const LISTENERS_CLOSED_WITHIN: Duration = Duration::from_secs(2);
use crate::sys::signal::{kill, Signal};

/// How long a restart took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restarted {
    /// From the first kill to the last old worker reaped.
    pub stopped: Duration,
    /// From then to every new worker listening.
    pub started: Duration,
    /// Connections the old workers held.
    pub dropped: u64,
}

impl Supervisor {
    /// Kills every worker at once and starts new ones with the same configuration. The old
    /// workers' connections are gone (their clients see the connections closed); they are not
    /// reported as dead workers.
    pub fn restart_hard(
        &mut self,
        spawn: &mut dyn FnMut(usize) -> Command,
    ) -> anyhow::Result<Restarted> {
        let t0 = Instant::now();
        let dropped = self.board.snapshot().connections;
        for c in self.children.iter().flatten() {
            let _ = kill(c.id(), Signal::SIGKILL);
        }
        for i in 0..self.children.len() {
            if let Some(mut c) = self.children[i].take() {
                let _ = c.wait();
            }
            let b = self.base + i;
            for g in [m::CONNS, m::WS_OPEN, m::FDS, m::LISTENING, m::RSS] {
                self.board.set(b, g, 0);
            }
            self.board.set(b, m::PHASE, m::PHASE_STARTING);
        }
        let stopped = t0.elapsed();
        let t1 = Instant::now();
        for i in 0..self.children.len() {
            match self.spawn_worker(i, spawn) {
                Ok(c) => self.children[i] = Some(c),
                Err(e) => {
                    self.kill_all();
                    bail!("restarting server worker {i}: {e}");
                }
            }
        }
        self.wait_ready()?;
        Ok(Restarted {
            stopped,
            started: t1.elapsed(),
            dropped,
        })
    }

    /// Starts a new generation of workers beside the running ones, waits until every new one
    /// listens, then asks the old ones to drain over `drain` (see the module's description) and
    /// returns: the old workers finish in the background ([`Supervisor::draining_connections`]
    /// follows them, [`Supervisor::reap`] reaps them). `started` is the time until the new
    /// workers listened; `stopped` is 0 (nothing was stopped before they did).
    pub fn restart_graceful(
        &mut self,
        spawn: &mut dyn FnMut(usize) -> Command,
        drain: Duration,
    ) -> anyhow::Result<Restarted> {
        if !self.draining.is_empty() {
            bail!("a graceful restart is still draining its old workers");
        }
        let t0 = Instant::now();
        let dropped = self.board.snapshot().connections;
        let n = self.children.len();
        let old_base = self.base;
        self.base = if old_base == 0 { n } else { 0 };
        let old: Vec<Option<std::process::Child>> = std::mem::take(&mut self.children);
        for i in 0..n {
            let b = self.base + i;
            for g in [
                m::CONNS,
                m::WS_OPEN,
                m::FDS,
                m::LISTENING,
                m::RSS,
                m::DRAIN_MS,
            ] {
                self.board.set(b, g, 0);
            }
            self.board.set(b, m::PHASE, m::PHASE_STARTING);
        }
        self.draining = old
            .into_iter()
            .enumerate()
            .filter_map(|(i, c)| c.map(|c| (old_base + i, c)))
            .collect();
        for i in 0..n {
            match self.spawn_worker(i, spawn) {
                Ok(c) => self.children.push(Some(c)),
                Err(e) => {
                    self.kill_all();
                    bail!("starting new server worker {i} for a graceful restart: {e}");
                }
            }
        }
        self.wait_ready()?;
        let started = t0.elapsed();
        // 0 would mean "no drain": ask for at least a millisecond.
        let ms = (drain.as_millis() as u64).max(1);
        for (block, _) in &self.draining {
            self.board.set(*block, m::DRAIN_GO, 0);
            self.board.set(*block, m::DRAIN_MS, ms);
        }
        // Every old listener closed before the first close, so no client comes back to an old
        // worker (bounded: a worker that does not answer is drained anyway).
        let deadline = Instant::now() + LISTENERS_CLOSED_WITHIN;
        while Instant::now() < deadline
            && self
                .draining
                .iter()
                .any(|(b, _)| self.board.get(*b, m::LISTENING) != 0)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        for (block, _) in &self.draining {
            self.board.set(*block, m::DRAIN_GO, 1);
        }
        Ok(Restarted {
            stopped: Duration::ZERO,
            started,
            dropped,
        })
    }

    /// Connections the old workers of a graceful restart still hold, and how many of those
    /// workers still run.
    pub fn draining_connections(&self) -> (u64, usize) {
        let held = self
            .draining
            .iter()
            .map(|(b, _)| self.board.get(*b, m::CONNS))
            .sum();
        (held, self.draining.len())
    }
}

/// How long a graceful restart's old workers take at most: the drain window, then the
/// shutdown grace for connections still closing.
pub fn drain_deadline(drain: Duration) -> Duration {
    drain + SHUTDOWN_GRACE
}
