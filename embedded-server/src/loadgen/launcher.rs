//! The parent side of the load generator: plans the processes, starts them through a
//! caller-supplied command builder (this crate knows nothing of the CLI), steers them through
//! the command word, reads their counters, and collects their histograms when they exit.

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hdrhistogram::Histogram;

use super::board::{self as b, Board, Cmd, LoadSnapshot};
use super::worker::WorkerReport;
use super::{plan, LoadConfig, WorkerConfig, WORKER_ENV};
use crate::sys::shm::{inherit_fd, SharedU64s};

/// How long client processes may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Running client processes.
#[derive(Debug)]
pub struct LoadGen {
    children: Vec<Option<Child>>,
    pub(super) board: Board,
    plans: Vec<WorkerConfig>,
    /// Processes that exited before being told to.
    pub died: Vec<Died>,
    /// Close or Exit was commanded: connections closed from then on are the teardown's.
    closing_told: AtomicBool,
}

/// A client process that exited before it was told to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Died {
    pub index: usize,
    /// Its exit status (`signal: 9 (SIGKILL)`).
    pub status: String,
    /// Connections it held: gone with it.
    pub lost: u64,
}

/// Latency over the whole run.
#[derive(Debug)]
pub struct LoadResults {
    pub handshake_us: Histogram<u64>,
    /// Reconnects during a storm (not in `handshake_us`).
    pub storm_handshake_us: Histogram<u64>,
    pub echo_us: Histogram<u64>,
    /// Processes that did not report (killed, crashed).
    pub missing_reports: usize,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds")
}

impl LoadGen {
    /// Starts `cfg.processes` client processes, idle until [`LoadGen::command`]. `spawn(i)`
    /// returns the command that runs process `i` (for `tune`: itself, `__load-worker`).
    pub fn start(
        cfg: &LoadConfig,
        spawn: &mut dyn FnMut(usize) -> Command,
    ) -> anyhow::Result<Self> {
        if cfg.target.tls {
            // A wrong --ca file or host name is the user's error, told once here (as the
            // server's supervisor does) rather than by every worker as it dies.
            crate::tls::server_name(cfg.target.tls_name())?;
            cfg.tls.config()?;
        }
        let mut plans = plan(cfg);
        let n = plans.len();
        let shm = SharedU64s::create("tune-load-counters", Board::shm_len(n))
            .context("creating the load generator's shared counters (memfd)")?;
        let board = Board::new(shm, n);
        let mut lg = LoadGen {
            children: Vec::with_capacity(n),
            board,
            plans: Vec::new(),
            died: Vec::new(),
            closing_told: AtomicBool::new(false),
        };
        for p in plans.iter_mut() {
            p.shm_fd = lg.board.shm_fd();
            let mut cmd = spawn(p.index);
            cmd.env(WORKER_ENV, serde_json::to_string(&p)?)
                .stdin(Stdio::null())
                .stdout(Stdio::piped());
            inherit_fd(&mut cmd, lg.board.shm_fd());
            match cmd.spawn() {
                Ok(c) => lg.children.push(Some(c)),
                Err(e) => bail!("starting load worker {}: {e}", p.index),
            }
        }
        lg.plans = plans;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = (0..n)
                .filter(|&i| lg.board.get(i, b::PHASE) >= b::PHASE_READY)
                .count();
            if ready == n {
                return Ok(lg);
            }
            if let Some(d) = lg.reap().into_iter().next() {
                bail!(
                    "load worker {} exited during start ({}); its error is above",
                    d.index,
                    d.status
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "only {ready} of {n} load workers started after {}s",
                    START_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn processes(&self) -> usize {
        self.plans.len()
    }

    pub fn plans(&self) -> &[WorkerConfig] {
        &self.plans
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().flatten().map(|c| c.id()).collect()
    }

    pub fn snapshot(&self) -> LoadSnapshot {
        self.board.snapshot()
    }

    pub fn command(&self, cmd: Cmd) {
        if matches!(cmd, Cmd::Close | Cmd::Exit) {
            self.closing_told.store(true, Ordering::Relaxed);
        }
        self.board.set_global(b::G_CMD, cmd as u64);
    }

    /// Limits the clients to `fraction` of their connections (a step of a ramp); `None` or
    /// 1.0 lifts the limit.
    pub fn set_step(&self, fraction: Option<f64>) {
        let ppm = fraction.map_or(0, |f| (f.clamp(0.0, 1.0) * b::STEP_WHOLE as f64) as u64);
        self.board.set_global(b::G_STEP_PPM, ppm);
    }

    /// Pauses (`true`) or resumes the clients' close.
    pub fn pause_close(&self, paused: bool) {
        self.board.set_global(b::G_CLOSE_PAUSED, u64::from(paused));
    }

    /// Starts an echo round: every open connection sends one message and waits for its echo.
    pub fn echo_round(&self) {
        let r = self.board.global(b::G_ECHO_ROUND) + 1;
        self.board.set_global(b::G_ECHO_ROUND, r);
        self.command(Cmd::Echo);
    }

    /// Processes that exited on their own since the last call. What each held moves from
    /// `open` to `lost` in the snapshots ([`Board::mark_died`]).
    pub fn reap(&mut self) -> Vec<Died> {
        let mut out = Vec::new();
        for (i, c) in self.children.iter_mut().enumerate() {
            if let Some(child) = c.as_mut() {
                if let Ok(Some(st)) = child.try_wait() {
                    let lost = self
                        .board
                        .mark_died(i, self.closing_told.load(Ordering::Relaxed));
                    out.push(Died {
                        index: i,
                        status: st.to_string(),
                        lost,
                    });
                    *c = None;
                }
            }
        }
        self.died.extend(out.iter().cloned());
        out
    }

    /// Tells every process to close what is left and exit, collects the histograms, and kills
    /// what has not exited after `grace`.
    pub fn finish(mut self, grace: Duration) -> LoadResults {
        self.command(Cmd::Exit);
        let deadline = Instant::now() + grace;
        let mut res = LoadResults {
            handshake_us: hist(),
            storm_handshake_us: hist(),
            echo_us: hist(),
            missing_reports: 0,
        };
        // Read every stdout on its own thread: a report larger than the pipe buffer must not
        // keep its process from exiting.
        let mut readers = Vec::new();
        for c in self.children.iter_mut() {
            let out = c.as_mut().and_then(|ch| ch.stdout.take());
            readers.push(std::thread::spawn(move || {
                let mut text = String::new();
                if let Some(mut out) = out {
                    let _ = out.read_to_string(&mut text);
                }
                text
            }));
        }
        for c in self.children.iter_mut() {
            let Some(mut child) = c.take() else {
                continue;
            };
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        for r in readers {
            let text = r.join().unwrap_or_default();
            match serde_json::from_str::<WorkerReport>(text.trim()) {
                Ok(r) => {
                    for (v, n) in r.handshake_us {
                        let _ = res.handshake_us.record_n(v, n);
                    }
                    for (v, n) in r.storm_handshake_us {
                        let _ = res.storm_handshake_us.record_n(v, n);
                    }
                    for (v, n) in r.echo_us {
                        let _ = res.echo_us.record_n(v, n);
                    }
                }
                Err(_) => res.missing_reports += 1,
            }
        }
        res
    }
}

impl Drop for LoadGen {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
