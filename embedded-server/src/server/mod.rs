//! The websocket server: configuration and limits, the per-worker event loop ([`worker`]), the
//! shared counters behind /metrics ([`metrics`]) and the supervisor that starts and watches the
//! worker processes ([`supervisor`]).
//!
//! Driving a server from code (what `tune serve --verify` does):
//!
//! ```no_run
//! use embedded_server::server::{Limits, Mode, ServerConfig, Supervisor, Workers};
//! let cfg = ServerConfig {
//!     listen: "127.0.0.1:0".parse().unwrap(),
//!     workers: Workers::Auto { expected: 100_000 },
//!     mode: Mode::Count,
//!     limits: Limits::default(),
//!     tls: None,
//! };
//! // How to start worker i: the caller's binary with its hidden worker subcommand, which
//! // calls `run_worker(WorkerConfig::from_env()?)`.
//! let mut spawn = |i: usize| {
//!     let mut c = std::process::Command::new(std::env::current_exe().unwrap());
//!     c.args(["__serve-worker", "--index", &i.to_string()]);
//!     c
//! };
//! let mut sup = Supervisor::start(&cfg, &mut spawn)?; // returns once every worker listens
//! let addr = sup.local_addr(); // the real port when asked for port 0
//! let now = sup.snapshot(); // all workers' counters added up (websockets_open, messages_in..)
//! let dead = sup.reap(); // workers that died since the last call, with lost connections
//! let summary = sup.shutdown(); // close frames, batched closes, bounded wait
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod admission;
pub mod foreground;
pub mod metrics;
pub mod restart;
pub mod supervisor;
pub mod worker;

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use metrics::{CloseReason, Family, Snapshot};
pub use supervisor::{DeadWorker, Summary, Supervisor};
pub use worker::{run_worker, WorkerExit};

/// What the server does with each complete message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Mode {
    /// Send every message back as one frame of the same type.
    #[default]
    Echo,
    /// Count it and reply nothing (verify runs: no reply traffic).
    Count,
}

/// Largest HTTP request head accepted (bytes). Browsers send well under 2 KiB; 8 KiB leaves
/// room for cookies and long paths while a flood of headers cannot grow a connection's buffer.
pub const MAX_HANDSHAKE_BYTES: usize = 8 * 1024;
/// Time a client has to send its whole request head. A connection that dribbles (slowloris) or
/// never speaks holds an fd and a slot; 10 s is generous for loopback and LAN clients.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest websocket message (all fragments together). 1 MiB: the echo/verify traffic is small
/// messages; the bound keeps one client from making the worker buffer gigabytes.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Largest unsent output per connection. A client that never reads its echoes is closed when
/// its backlog passes this, so memory stays bounded at (connections x this) in the worst case.
pub const MAX_OUTPUT_BYTES: usize = 2 * 1024 * 1024;
/// How long a connection we are closing (after an error response or close frame, write side
/// shut) may take to close its side before we close ours anyway.
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// Connections closed per batch at shutdown, and the pause between batches: closing tens of
/// thousands of sockets at once pushes TCP into memory pressure and overflows TIME_WAIT
/// (see shared/notes/host-facts.md); 1000 per 10 ms is 100k/s per worker.
pub const CLOSE_BATCH: usize = 1000;
pub const CLOSE_BATCH_INTERVAL: Duration = Duration::from_millis(10);
/// Time a worker takes at most to close its connections on shutdown before exiting anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// listen(2) backlog per worker: 65,535, the most the storm report recommends. The kernel
/// clamps it to net.core.somaxconn when the worker listens, so the accept queue is whatever the
/// host allows (4,096 by default) and raising somaxconn is all a storm needs. Queued
/// connections hold no fd of the worker, so the backlog is not its fd reserve
/// ([`FD_RESERVE`]).
pub const BACKLOG: i32 = 65_535;
/// File descriptors a worker keeps free below its cap to take what its accept queue holds when
/// it stops listening near the cap (without net.ipv4.tcp_migrate_req, closing a SO_REUSEPORT
/// listener resets what is still queued on it). 1,024 was the old backlog and reserve together:
/// at the cap a worker stops listening with at most a second's worth of a worker's accepts
/// queued (the host accepts 20k-40k/s over all workers); with a deeper queue than this, the
/// rest is reset unless the kernel migrates it (tcp_migrate_req=1).
pub const FD_RESERVE: usize = 1024;
/// File descriptors a worker keeps free below its cap besides the backlog: epoll, signalfd,
/// memfd, listener, stdio, /proc reads.
pub const FD_MARGIN: usize = 64;

/// Heap one worker may hold for all its connections together: buffered output plus partial
/// frames and messages, counted as the capacity of their buffers (what the process holds, not
/// what is in use). Each connection is also capped on its own (--max-output, --max-message),
/// but 2,000 clients that each stay just under those caps would hold 4 GB; past this budget the
/// largest holders are closed (1008 for peers that do not read, 1009 for partial messages)
/// until the worker is back under 90% of it. 64 MiB per worker is what a user would grant a
/// test server (128 MiB for the default two workers): 64 messages in flight at the 1 MiB
/// --max-message, and far above what honest traffic needs (an idle websocket holds nothing).
/// Before, 256 MiB; RSS at the default and under each hostile class is in BENCHMARKS.md.
pub const MEMORY_BUDGET: usize = 64 * 1024 * 1024;
/// A partial frame or fragmented message must complete within this long of its first byte
/// (1008 otherwise): a 1 MiB message at 40 KB/s still makes it, a frame withheld forever does
/// not pin its buffer forever.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// Unsent output must make progress within this long, or the connection is reset: a peer that
/// stopped reading cannot pin its output (and its kernel send buffer) forever.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections still in the handshake, per worker. Honest clients spend microseconds there
/// (the load generator keeps at most 1,024 connects in flight in all); past this, each new
/// connection closes the oldest handshake (503) instead of dribblers filling the worker to its
/// fd cap and the listener closing for everyone.
pub const MAX_HANDSHAKING: usize = 4096;
/// SO_SNDBUF of each accepted socket (the kernel doubles it for its bookkeeping). Without a cap
/// loopback autotuning grows a never-reader's send buffer to 4 MiB; 256 KiB still keeps a
/// loopback or LAN path full for the small echo messages this server carries.
pub const SNDBUF: usize = 256 * 1024;
/// TCP_DEFER_ACCEPT of the listeners, in seconds: a connection reaches accept(2) with its
/// request already read by the kernel, so a new client costs the worker one wakeup instead of
/// two and a burst of them is accepted in one pass (half the server CPU per handshake:
/// BENCHMARKS.md, "Handshake rate 0 -> 19,000"). One second is the kernel's first SYN-ACK retransmission: a client silent
/// that long is accepted then anyway, and the handshake deadline applies from there.
pub const DEFER_ACCEPT_SECS: u32 = 1;

/// Protocol and resource limits, each with its own flag in `tune serve` (but
/// `defer_accept_secs`, for library callers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_handshake_bytes: usize,
    pub handshake_timeout_ms: u64,
    pub max_message_bytes: usize,
    pub max_output_bytes: usize,
    pub close_linger_ms: u64,
    pub close_batch: usize,
    pub close_batch_interval_ms: u64,
    pub shutdown_grace_ms: u64,
    pub backlog: i32,
    /// Fds kept free below the cap to take the accept queue (see [`FD_RESERVE`]); no flag.
    #[serde(default = "default_fd_reserve")]
    pub fd_reserve: usize,
    /// Heap for all connections of one worker (see [`MEMORY_BUDGET`]).
    #[serde(default = "default_budget")]
    pub memory_budget_bytes: usize,
    /// 0: none.
    #[serde(default)]
    pub frame_timeout_ms: u64,
    /// 0: none.
    #[serde(default)]
    pub write_timeout_ms: u64,
    /// Close a websocket after this long without traffic (0: never, the default: verify runs
    /// hold idle connections on purpose).
    #[serde(default)]
    pub idle_timeout_ms: u64,
    /// Ping a websocket after this long without traffic and close it if the next period passes
    /// without an answer (0: no pings, the default).
    #[serde(default)]
    pub ping_interval_ms: u64,
    /// Connections in the handshake per worker (see [`MAX_HANDSHAKING`]).
    #[serde(default = "default_handshaking")]
    pub max_handshaking: usize,
    /// Connections per source address per worker (0: no cap).
    #[serde(default)]
    pub max_per_source: usize,
    /// SO_SNDBUF for accepted sockets (0: the kernel's autotuning).
    #[serde(default)]
    pub sndbuf_bytes: usize,
    /// TCP_DEFER_ACCEPT of the listeners in seconds (0: off; see [`DEFER_ACCEPT_SECS`]).
    #[serde(default = "default_defer_accept")]
    pub defer_accept_secs: u32,
}

fn default_defer_accept() -> u32 {
    DEFER_ACCEPT_SECS
}

fn default_fd_reserve() -> usize {
    FD_RESERVE
}

fn default_budget() -> usize {
    MEMORY_BUDGET
}

fn default_handshaking() -> usize {
    MAX_HANDSHAKING
}

impl Limits {
    /// The fds a worker keeps free to take its accept queue: the reserve, but never more than
    /// the queue can hold (a `--backlog 16` server keeps 16, as before the two were apart).
    pub fn fd_reserve_in_effect(&self) -> usize {
        self.fd_reserve.min(self.backlog.max(0) as usize)
    }

    /// The listener options of a worker: the socket options its accepted sockets inherit.
    pub fn listen_options(&self) -> crate::sys::net::ListenOptions {
        crate::sys::net::ListenOptions {
            backlog: self.backlog,
            sndbuf_bytes: self.sndbuf_bytes,
            defer_accept_secs: self.defer_accept_secs,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_handshake_bytes: MAX_HANDSHAKE_BYTES,
            handshake_timeout_ms: HANDSHAKE_TIMEOUT.as_millis() as u64,
            max_message_bytes: MAX_MESSAGE_BYTES,
            max_output_bytes: MAX_OUTPUT_BYTES,
            close_linger_ms: CLOSE_LINGER.as_millis() as u64,
            close_batch: CLOSE_BATCH,
            close_batch_interval_ms: CLOSE_BATCH_INTERVAL.as_millis() as u64,
            shutdown_grace_ms: SHUTDOWN_GRACE.as_millis() as u64,
            backlog: BACKLOG,
            fd_reserve: FD_RESERVE,
            memory_budget_bytes: MEMORY_BUDGET,
            frame_timeout_ms: FRAME_TIMEOUT.as_millis() as u64,
            write_timeout_ms: WRITE_TIMEOUT.as_millis() as u64,
            idle_timeout_ms: 0,
            ping_interval_ms: 0,
            max_handshaking: MAX_HANDSHAKING,
            max_per_source: 0,
            sndbuf_bytes: SNDBUF,
            defer_accept_secs: DEFER_ACCEPT_SECS,
        }
    }
}

/// How many worker processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    Fixed(usize),
    /// Enough that each stays under its fd cap with margin for `expected` connections, and at
    /// least one per core.
    Auto {
        expected: u64,
    },
}

impl std::str::FromStr for Workers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(Workers::Auto { expected: 0 });
        }
        match s.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Workers::Fixed(n)),
            _ => Err(format!(
                "--workers {s:?}: expected a number of worker processes (1 or more) or `auto`"
            )),
        }
    }
}

/// Connections one worker may hold with an fd cap of `fd_cap`: the cap less the fd reserve
/// (the accept queue taken when it stops listening) and the fixed margin.
pub fn per_worker_capacity(fd_cap: u64, fd_reserve: usize) -> u64 {
    fd_cap.saturating_sub((fd_reserve + FD_MARGIN) as u64)
}

/// The `auto` worker count: ceil(expected / (90% of a worker's capacity)), at least `cores`.
/// The 10% headroom absorbs SO_REUSEPORT's uneven spread (measured here: busiest listener
/// 1.8% above the mean at 80 listeners) and connections still closing.
pub fn auto_workers(expected: u64, fd_cap: u64, fd_reserve: usize, cores: usize) -> usize {
    let usable = per_worker_capacity(fd_cap, fd_reserve) * 9 / 10;
    let need = if usable == 0 {
        1
    } else {
        expected.div_ceil(usable) as usize
    };
    need.max(cores).max(1)
}

/// Everything the supervisor needs to run a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub workers: Workers,
    pub mode: Mode,
    pub limits: Limits,
    /// `--tls`: the certificate and key every worker serves with (None: plain websockets).
    pub tls: Option<crate::tls::ServerTls>,
}

/// What one worker process is told (serialized into [`WORKER_ENV`] by the supervisor).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerConfig {
    pub index: usize,
    pub workers: usize,
    /// The resolved address (never port 0): all workers join its SO_REUSEPORT group.
    pub listen: SocketAddr,
    pub mode: Mode,
    pub limits: Limits,
    #[serde(default)]
    pub tls: Option<crate::tls::ServerTls>,
    /// The inherited memfd of the shared counters.
    pub shm_fd: i32,
    pub supervisor_pid: u32,
}

/// Environment variable carrying a worker's [`WorkerConfig`] as JSON.
pub const WORKER_ENV: &str = "TUNE_SERVE_WORKER_CONFIG";

impl WorkerConfig {
    /// Reads the configuration the supervisor put in this process's environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let raw = std::env::var(WORKER_ENV).map_err(|_| {
            anyhow::anyhow!(
                "{WORKER_ENV} is not set: server workers are started by `tune serve`, not by hand"
            )
        })?;
        serde_json::from_str(&raw).map_err(|e| anyhow::anyhow!("{WORKER_ENV}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_worker_count() {
        // Here: hard cap 20000, fd reserve 1024 -> 18912 per worker, 17020 with headroom.
        assert_eq!(per_worker_capacity(20000, 1024), 18912);
        assert_eq!(auto_workers(0, 20000, 1024, 2), 2);
        assert_eq!(auto_workers(34_000, 20000, 1024, 2), 2);
        assert_eq!(auto_workers(35_000, 20000, 1024, 2), 3);
        assert_eq!(auto_workers(1_000_000, 20000, 1024, 2), 59);
        assert_eq!(auto_workers(10, 100, 1024, 1), 1);
    }

    #[test]
    fn workers_flag() {
        assert_eq!("auto".parse(), Ok(Workers::Auto { expected: 0 }));
        assert_eq!("3".parse(), Ok(Workers::Fixed(3)));
        assert!("0".parse::<Workers>().unwrap_err().contains("--workers"));
        assert!("x".parse::<Workers>().is_err());
    }
}
