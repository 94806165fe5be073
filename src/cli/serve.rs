//! Arguments of `tune serve` and of its hidden worker processes.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};

use embedded_server::server::Workers;

use super::load::LoadFlags;
use super::Format;
use crate::values::{ByteSize, Secs};

/// `--workers`: a count (the one count parser's forms and message) or `auto`.
fn workers(s: &str) -> Result<Workers, String> {
    if s.trim() == "auto" {
        return Ok(Workers::Auto { expected: 0 });
    }
    match crate::quantity::parse_count_usize(s)? {
        0 => Err(format!(
            "expected 1 or more worker processes, or `auto`; found {s:?}"
        )),
        n => Ok(Workers::Fixed(n)),
    }
}

/// `--backlog`: a count that fits listen(2)'s int.
fn backlog(s: &str) -> Result<i32, String> {
    let n = crate::quantity::parse_count(s)?;
    i32::try_from(n)
        .map_err(|_| format!("{s:?} is more than listen(2) takes (at most {})", i32::MAX))
}

/// Where `tune serve` listens without --listen.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
/// Where `tune serve --verify` listens without --listen: a free port the kernel picks.
pub const DEFAULT_VERIFY_LISTEN: &str = "127.0.0.1:0";

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback unless told otherwise); port 0 picks a free port, printed
    /// as `listening on ADDR`. Default: 127.0.0.1:8000, or with --verify 127.0.0.1:0, so that
    /// two verify runs never clash.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Worker processes, each with its own epoll loop and SO_REUSEPORT listener: a number or
    /// `auto` (enough to stay under each worker's fd cap for --expect connections, at least one
    /// per core).
    #[arg(long, default_value = "auto", value_parser = workers)]
    pub workers: Workers,
    /// Connections expected, for --workers auto (default: the --verify count, else 0).
    #[arg(long, value_name = "N", value_parser = crate::quantity::parse_count)]
    pub expect: Option<u64>,
    /// What the server does with each message.
    #[arg(long, value_enum, default_value_t = ServeMode::Echo)]
    pub mode: ServeMode,
    /// Largest websocket message (all fragments) in bytes; larger ones are closed with 1009.
    #[arg(long, value_name = "BYTES", default_value_t = embedded_server::server::MAX_MESSAGE_BYTES, value_parser = crate::quantity::parse_size_usize)]
    pub max_message: usize,
    /// Largest HTTP request head in bytes; larger ones get 431.
    #[arg(long, value_name = "BYTES", default_value_t = embedded_server::server::MAX_HANDSHAKE_BYTES, value_parser = crate::quantity::parse_size_usize)]
    pub max_handshake: usize,
    /// Seconds a client has to send its request head; slower ones get 408 and are closed.
    #[arg(long, value_name = "SECS", default_value_t = Secs(embedded_server::server::HANDSHAKE_TIMEOUT))]
    pub handshake_timeout: Secs,
    /// Unsent output per connection (bytes) beyond which a client that does not read is closed.
    #[arg(long, value_name = "BYTES", default_value_t = embedded_server::server::MAX_OUTPUT_BYTES, value_parser = crate::quantity::parse_size_usize)]
    pub max_output: usize,
    /// listen(2) backlog per worker; the kernel caps it at net.core.somaxconn, so the default
    /// queue is as deep as the host allows (raise somaxconn for a storm). Queued connections
    /// hold no fd: the fds a worker keeps free to take its queue are 1,024 at most (fewer
    /// with a smaller backlog).
    #[arg(long, value_name = "N", default_value_t = embedded_server::server::BACKLOG, value_parser = backlog)]
    pub backlog: i32,
    /// Seconds workers get on shutdown to close their connections before they are killed.
    #[arg(long, value_name = "SECS", default_value_t = Secs(embedded_server::server::SHUTDOWN_GRACE))]
    pub shutdown_grace: Secs,
    /// Serve wss:// (TLS, with --cert and --key; with --verify and no files, a throw-away
    /// self-signed certificate only the verify clients trust).
    #[arg(long)]
    pub tls: bool,
    /// With --tls: the certificate chain, PEM.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub cert: Option<std::path::PathBuf>,
    /// With --tls: the private key, PEM.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub key: Option<std::path::PathBuf>,
    /// Prove the host holds N connections: start server and load generator, hold, echo, report.
    #[arg(long, value_name = "N", value_parser = crate::quantity::parse_count)]
    pub verify: Option<u64>,
    /// With --verify: wait for N connections from load generators on other hosts instead of starting one.
    #[arg(long)]
    pub external: bool,
    /// With --verify: stop opening connections before the memory the run may still take
    /// (MemAvailable less the socket slab it added) falls under BYTES (64MiB, 512M, 2G: K, M, G are powers of 1,024),
    /// checked before the first connection and at every step of the connect phase.
    /// Default: 5% of MemTotal, at least 256M.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(ByteSize))]
    pub memory_floor: Option<ByteSize>,
    /// How the --verify report is printed: a table for people, or JSON for scripts.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// With --verify: once the N connections are open and held, make a reconnect storm and
    /// measure how the host recovers: `clients` (every client drops and reconnects at once),
    /// `restart` (the server's workers are killed and restarted) or `graceful` (new workers
    /// listen first, then the old ones drain over --drain-seconds).
    #[arg(long, value_name = "HOW", value_enum, requires = "verify")]
    pub storm: Option<super::storm::StormHow>,
    /// With --storm graceful: the old workers close their connections (1001 going away)
    /// evenly over SECS, so the clients move to the new workers gradually. Default 30: a
    /// million clients over 30 s is about the connect rate these hosts accept.
    #[arg(long, value_name = "SECS", requires = "storm")]
    pub drain_seconds: Option<Secs>,
    #[command(flatten, next_help_heading = "Reconnect storm (with --verify --storm)")]
    pub reconnect: super::storm::ReconnectFlags,
    /// With --storm: where the accept rate the storm measured is saved for `tune check
    /// --storm` (default /var/lib/tune).
    #[arg(long, value_name = "DIR", env = "TUNE_STATE_DIR")]
    pub state_dir: Option<std::path::PathBuf>,
    /// With --verify: the load generator's flags (the same as `tune load`'s).
    #[command(flatten, next_help_heading = "Load generator (with --verify)")]
    pub load: LoadFlags,
    #[command(flatten, next_help_heading = "Hostile clients")]
    pub hostile: super::hostile::HostileArgs,
}

/// What the server does with each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServeMode {
    /// Echo every message back.
    Echo,
    /// Count messages, reply nothing.
    Count,
}

/// Arguments of one server worker process (internal). Its configuration comes from the
/// supervisor in the environment; the index is on the command line so `ps` shows which worker
/// a process is.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[arg(long)]
    pub index: u32,
}

impl ServeArgs {
    /// The address to listen on: --listen, else [`DEFAULT_LISTEN`], or [`DEFAULT_VERIFY_LISTEN`]
    /// for --verify.
    pub fn listen_addr(&self) -> SocketAddr {
        let default = if self.verify.is_some() {
            DEFAULT_VERIFY_LISTEN
        } else {
            DEFAULT_LISTEN
        };
        self.listen
            .unwrap_or_else(|| default.parse().expect("the default address parses"))
    }
}
