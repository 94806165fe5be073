//! Restarting the server's workers in place, for reconnect storms: a hard restart kills every
//! worker (SIGKILL: what a crash or an OOM kill does, and a deploy that does not drain) and
//! starts new ones on the same SO_REUSEPORT port and counters, timed. The port stays reserved
//! by the supervisor meanwhile, so no other process takes it; SYNs that arrive while no worker
//! listens are refused (RST), as when a real server restarts.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::metrics as m;
use super::supervisor::Supervisor;
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
            for g in [m::CONNS, m::WS_OPEN, m::FDS, m::LISTENING, m::RSS] {
                self.board.set(i, g, 0);
            }
            self.board.set(i, m::PHASE, m::PHASE_STARTING);
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
}
