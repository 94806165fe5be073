//! The supervisor: reserves the port, starts the worker processes through a caller-supplied
//! command builder (this crate knows nothing of the CLI), watches them, reports dead workers with
//! the connections they held, and shuts them down on request.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use nix::errno::Errno;

use super::metrics::{self as m, Board, Snapshot};
use super::{auto_workers, ServerConfig, WorkerConfig, Workers, WORKER_ENV};
use crate::sys::shm::{inherit_fd, SharedU64s};
use crate::sys::signal::Signal;
use crate::sys::{net, rlimit};

/// How long workers may take to bind and announce themselves.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Extra time past the workers' own shutdown grace before stragglers are killed.
const KILL_AFTER: Duration = Duration::from_secs(3);

/// A worker that exited on its own (crash, kill), with what it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadWorker {
    pub index: usize,
    pub pid: u32,
    pub status: String,
    /// Connections it held when it died: lost to their clients.
    pub lost_connections: u64,
}

/// What a finished server did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub workers: usize,
    pub uptime: Duration,
    pub totals: Snapshot,
    pub dead: Vec<DeadWorker>,
    /// Workers that had to be killed after the grace period.
    pub killed: usize,
    /// Connections still open when shutdown started.
    pub open_at_shutdown: u64,
    pub shutdown_took: Duration,
}

/// A running server: worker processes plus the shared counters.
#[derive(Debug)]
pub struct Supervisor {
    /// The current generation of workers: child `i` writes counter block `base + i`.
    pub(super) children: Vec<Option<Child>>,
    pub(super) board: Board,
    /// The first counter block of the current generation (0 or the worker count: the board
    /// has two blocks per worker so that a graceful restart's new workers count beside the
    /// old ones while those drain).
    pub(super) base: usize,
    /// The previous generation, draining after a graceful restart: (counter block, process).
    pub(super) draining: Vec<(usize, Child)>,
    addr: SocketAddr,
    /// What every worker is started with ([`Supervisor::spawn_worker`] sets the index).
    template: WorkerConfig,
    /// The SO_REUSEPORT socket bound (not listening) that holds the port for the workers.
    _reserve: OwnedFd,
    started: Instant,
    dead: Vec<DeadWorker>,
    grace: Duration,
    fd_cap: u64,
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!(
            "killed by signal {}",
            Signal::try_from(s).map_or_else(|_| s.to_string(), |s| s.as_str().to_string())
        ),
        _ => status.to_string(),
    }
}

impl Supervisor {
    /// Starts the server. `spawn(i)` returns the command that runs worker `i` (for `tune`, the
    /// current executable with its hidden worker subcommand); the supervisor adds the worker's
    /// configuration (environment) and the inherited counters fd. Returns once every worker
    /// listens, so [`Supervisor::local_addr`] is ready to connect to.
    pub fn start(
        cfg: &ServerConfig,
        spawn: &mut dyn FnMut(usize) -> Command,
    ) -> anyhow::Result<Self> {
        if let Some(t) = &cfg.tls {
            // A wrong PEM is the user's error, told once here rather than by every worker.
            t.config()?;
        }
        let (_, hard) = rlimit::nofile().context("reading RLIMIT_NOFILE")?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let n = match cfg.workers {
            Workers::Fixed(n) => n,
            Workers::Auto { expected } => {
                auto_workers(expected, hard, cfg.limits.fd_reserve_in_effect(), cores)
            }
        };
        if cfg.listen.port() != 0 {
            net::port_is_free(cfg.listen).map_err(|e| {
                let what = match e {
                    Errno::EADDRINUSE => "is in use (another server listens there?): pick another --listen port",
                    Errno::EADDRNOTAVAIL => "is not an address of this host: listen on one of its addresses, 127.0.0.1 or 0.0.0.0",
                    Errno::EACCES => "needs privilege (a port below 1024, or a restricted address): pick a port of 1024 or above",
                    _ => "cannot be listened on",
                };
                anyhow::anyhow!("{} {what} ({e})", cfg.listen)
            })?;
        }
        let reserve =
            net::reuseport_bound(cfg.listen).with_context(|| format!("binding {}", cfg.listen))?;
        let addr = net::local_addr(reserve.as_fd()).context("getsockname")?;
        let shm = SharedU64s::create("tune-serve-counters", Board::shm_len(2 * n))
            .context("creating the shared counters (memfd)")?;
        let board = Board::new(shm, 2 * n);
        board.set_global(m::G_WORKERS, n as u64);
        let shm_fd = board.shm_fd();
        let mut sup = Supervisor {
            children: Vec::with_capacity(n),
            board,
            base: 0,
            draining: Vec::new(),
            addr,
            template: WorkerConfig {
                index: 0,
                workers: 2 * n,
                listen: addr,
                mode: cfg.mode,
                limits: cfg.limits.clone(),
                tls: cfg.tls.clone(),
                shm_fd,
                supervisor_pid: std::process::id(),
            },
            _reserve: reserve,
            started: Instant::now(),
            dead: Vec::new(),
            grace: Duration::from_millis(cfg.limits.shutdown_grace_ms),
            fd_cap: hard,
        };
        for i in 0..n {
            match sup.spawn_worker(i, spawn) {
                Ok(child) => sup.children.push(Some(child)),
                Err(e) => {
                    sup.kill_all();
                    bail!("starting server worker {i}: {e}");
                }
            }
        }
        sup.wait_ready()?;
        Ok(sup)
    }

    /// Starts worker `i` of the generation whose counters start at block `base` (not yet in
    /// `children`).
    pub(super) fn spawn_worker(
        &self,
        i: usize,
        spawn: &mut dyn FnMut(usize) -> Command,
    ) -> anyhow::Result<Child> {
        let wc = WorkerConfig {
            index: self.base + i,
            ..self.template.clone()
        };
        let mut cmd = spawn(wc.index);
        cmd.env(WORKER_ENV, serde_json::to_string(&wc)?)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        inherit_fd(&mut cmd, self.board.shm_fd());
        Ok(cmd.spawn()?)
    }

    pub(super) fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let mut ready = 0;
            for i in 0..self.children.len() {
                if self.board.get(self.base + i, m::PHASE) == m::PHASE_ACCEPTING {
                    ready += 1;
                }
                if let Some(child) = self.children[i].as_mut() {
                    if let Ok(Some(st)) = child.try_wait() {
                        self.children[i] = None;
                        self.kill_all();
                        bail!(
                            "server worker {i} exited during start ({}); its error is above",
                            describe(st)
                        );
                    }
                }
            }
            if ready == self.children.len() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill_all();
                bail!(
                    "only {ready} of {} server workers were listening after {}s",
                    self.children.len(),
                    START_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The address every worker listens on (the chosen port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn workers(&self) -> usize {
        self.children.len()
    }

    /// The RLIMIT_NOFILE hard limit each worker raises its soft limit to.
    pub fn fd_cap(&self) -> u64 {
        self.fd_cap
    }

    /// Pids of the worker processes still running.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().flatten().map(|c| c.id()).collect()
    }

    /// All workers' counters added up now.
    pub fn snapshot(&self) -> Snapshot {
        self.board.snapshot()
    }

    /// Each worker's own gauges (connections, fd cap, listening), typed.
    pub fn worker_gauges(&self) -> Vec<super::metrics::WorkerGauges> {
        self.board.worker_gauges()
    }

    /// The /metrics text, as any worker would serve it.
    pub fn prometheus(&self) -> String {
        self.board.prometheus()
    }

    /// Reaps workers that exited on their own since the last call and reports them with the
    /// connections they held. Nothing is restarted. A draining worker of a graceful restart
    /// that exits with every connection closed is not a dead one.
    pub fn reap(&mut self) -> Vec<DeadWorker> {
        let mut out = Vec::new();
        for i in 0..self.children.len() {
            let Some(child) = self.children[i].as_mut() else {
                continue;
            };
            if let Ok(Some(st)) = child.try_wait() {
                let pid = child.id();
                self.children[i] = None;
                out.extend(self.reaped(self.base + i, i, pid, st));
            }
        }
        out.extend(self.reap_drained());
        out
    }

    /// Reaps the old workers of a graceful restart that have exited (a clean exit, every
    /// connection closed, is not a death).
    pub fn reap_drained(&mut self) -> Vec<DeadWorker> {
        let mut out = Vec::new();
        let mut k = 0;
        while k < self.draining.len() {
            let (block, child) = &mut self.draining[k];
            if let Ok(Some(st)) = child.try_wait() {
                let (block, pid) = (*block, child.id());
                self.draining.swap_remove(k);
                out.extend(self.reaped(block, block % self.children.len().max(1), pid, st));
            } else {
                k += 1;
            }
        }
        out
    }

    /// The counters of a worker that exited (block `block`, worker `index`): its gauges
    /// cleared, and its loss recorded unless it exited cleanly with nothing held.
    fn reaped(
        &mut self,
        block: usize,
        index: usize,
        pid: u32,
        st: ExitStatus,
    ) -> Option<DeadWorker> {
        let lost = self.board.get(block, m::CONNS);
        // The worker is gone: its gauges no longer hold anything.
        for g in [m::CONNS, m::WS_OPEN, m::FDS, m::LISTENING, m::RSS] {
            self.board.set(block, g, 0);
        }
        let clean_exit =
            st.success() && self.board.get(block, m::PHASE) == m::PHASE_EXITED && lost == 0;
        if clean_exit {
            return None;
        }
        self.board.add(block, m::LOST, lost);
        self.board.set(block, m::PHASE, m::PHASE_DIED);
        let d = DeadWorker {
            index,
            pid,
            status: describe(st),
            lost_connections: lost,
        };
        self.dead.push(d.clone());
        Some(d)
    }

    /// Whether any worker is still running.
    pub fn any_alive(&self) -> bool {
        self.children.iter().any(|c| c.is_some()) || !self.draining.is_empty()
    }

    /// Asks every worker to stop (they stop accepting and close their connections in batches)
    /// without waiting; [`Supervisor::shutdown`] then waits for them.
    pub fn request_shutdown(&self) {
        self.board.set_global(m::G_SHUTDOWN, 1);
        let old = self.draining.iter().map(|(_, c)| c);
        for c in self.children.iter().flatten().chain(old) {
            let _ = crate::sys::signal::kill(c.id(), Signal::SIGTERM);
        }
    }

    /// Stops the server: workers stop accepting, send close frames and close their connections
    /// in batches, then exit; stragglers past the grace period are killed. Bounded in time.
    pub fn shutdown(mut self) -> Summary {
        let open_at_shutdown = self.board.snapshot().connections;
        let t0 = Instant::now();
        self.request_shutdown();
        let deadline = t0 + self.grace + KILL_AFTER;
        while self.any_alive() && Instant::now() < deadline {
            self.reap();
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut killed = 0;
        if self.any_alive() {
            killed = self.kill_all();
            self.reap();
        }
        Summary {
            workers: self.children.len(),
            uptime: self.started.elapsed(),
            totals: self.board.snapshot(),
            dead: std::mem::take(&mut self.dead),
            killed,
            open_at_shutdown,
            shutdown_took: t0.elapsed(),
        }
    }

    pub(super) fn kill_all(&mut self) -> usize {
        let mut n = 0;
        let old = self.draining.iter_mut().map(|(_, c)| c);
        for c in self.children.iter_mut().flatten().chain(old) {
            if c.kill().is_ok() {
                n += 1;
            }
            let _ = c.wait();
        }
        n
    }

    /// Workers that died so far.
    pub fn dead(&self) -> &[DeadWorker] {
        &self.dead
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // Never leave worker processes behind (a panic or early return in the caller).
        let old = self.draining.iter_mut().map(|(_, c)| c);
        for c in self.children.iter_mut().flatten().chain(old) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
