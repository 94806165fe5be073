//! The processes a run drives: the server supervisor (`serve --verify`) and the load generator
//! (not in external mode, and alone in `tune load`), with the signals that interrupt the run.

use std::time::{Duration, Instant};

use embedded_server::loadgen::{sources, Died, LoadConfig, LoadGen, LoadSnapshot};
use embedded_server::server::Supervisor;
use embedded_server::sys::signal::{Signal, Signals};

use super::progress::Progress;
use crate::units::group;

/// Sampling period of the phases' loops.
pub const TICK: Duration = Duration::from_millis(100);

/// The load generator and the configuration it was started with.
pub struct Clients {
    pub gen: LoadGen,
    pub cfg: LoadConfig,
}

/// Deaths seen by one [`Rig::reap`].
#[derive(Debug, Clone, Default)]
pub struct Deaths {
    /// Server workers, in words (`worker 1 (pid 42) signal: 9; 300 connections lost`).
    pub server: Vec<String>,
    pub clients: Vec<Died>,
}

impl Deaths {
    pub fn is_empty(&self) -> bool {
        self.server.is_empty() && self.clients.is_empty()
    }

    pub fn extend(&mut self, more: Deaths) {
        self.server.extend(more.server);
        self.clients.extend(more.clients);
    }
}

/// What a run has started.
pub struct Rig {
    pub server: Option<Supervisor>,
    pub clients: Option<Clients>,
    pub signals: Signals,
}

impl std::fmt::Debug for Rig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rig")
            .field("server", &self.server.is_some())
            .field("clients", &self.clients.is_some())
            .finish()
    }
}

impl Rig {
    /// Blocks SIGINT and SIGTERM into a queue the phases poll; call before any child exists
    /// (children set up their own).
    pub fn signals() -> anyhow::Result<Signals> {
        Ok(Signals::new(&[Signal::SIGINT, Signal::SIGTERM])?)
    }

    /// The load generator's counters now.
    pub fn load_snapshot(&self) -> Option<LoadSnapshot> {
        self.clients.as_ref().map(|c| c.gen.snapshot())
    }

    /// Websockets open now: the clients' count, or the server's when there are no clients here.
    pub fn open(&self, load: Option<&LoadSnapshot>) -> u64 {
        match (load, &self.server) {
            (Some(l), _) => l.open,
            (None, Some(s)) => s.snapshot().websockets_open,
            (None, None) => 0,
        }
    }

    /// Reaps the processes that exited on their own, and says so on the progress stream.
    pub fn reap(&mut self, progress: &Progress) -> Deaths {
        let mut d = Deaths::default();
        if let Some(s) = self.server.as_mut() {
            for w in s.reap() {
                d.server.push(format!(
                    "worker {} (pid {}) {}; {} connections lost",
                    w.index, w.pid, w.status, w.lost_connections
                ));
            }
        }
        if let Some(c) = self.clients.as_mut() {
            d.clients = c.gen.reap();
        }
        for w in &d.server {
            progress.say(&format!("server {w}"));
        }
        for w in &d.clients {
            progress.say(&format!(
                "load worker {} died ({}): {} connections lost",
                w.index,
                w.status,
                group(w.lost)
            ));
        }
        d
    }

    /// Waits `d`, returning early (true) on SIGINT/SIGTERM.
    pub fn sleep_or_signal(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if let Ok(Some(_)) = self.signals.next() {
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(TICK.min(left));
        }
    }

    /// Client processes started here (0 in external mode).
    pub fn client_processes(&self) -> u64 {
        self.clients
            .as_ref()
            .map_or(0, |c| c.gen.processes() as u64)
    }

    /// The sources in words, `other hosts` in external mode.
    pub fn sources(&self) -> String {
        self.clients
            .as_ref()
            .map_or("other hosts".into(), |c| sources::describe(&c.cfg.sources))
    }

    /// Source addresses bound (0: the kernel's choice or external clients).
    pub fn source_count(&self) -> u64 {
        self.clients
            .as_ref()
            .map_or(0, |c| c.cfg.sources.len() as u64)
    }
}
