//! Arguments of `tune serve` and of its hidden worker processes.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};

use super::Format;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback unless told otherwise); port 0 picks a free port, printed
    /// as `listening on ADDR`.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Worker processes, each with its own epoll loop and SO_REUSEPORT listener: a number or
    /// `auto` (enough to stay under each worker's fd cap for --expect connections, at least one
    /// per core).
    #[arg(long, default_value = "auto")]
    pub workers: String,
    /// Connections expected, for --workers auto (default: the --verify count, else 0).
    #[arg(long, value_name = "N")]
    pub expect: Option<u64>,
    /// What the server does with each message.
    #[arg(long, value_enum, default_value_t = Mode::Echo)]
    pub mode: Mode,
    /// Largest websocket message (all fragments) in bytes; larger ones are closed with 1009.
    #[arg(long, value_name = "BYTES", default_value_t = embedded_server::server::MAX_MESSAGE_BYTES)]
    pub max_message: usize,
    /// Largest HTTP request head in bytes; larger ones get 431.
    #[arg(long, value_name = "BYTES", default_value_t = embedded_server::server::MAX_HANDSHAKE_BYTES)]
    pub max_handshake: usize,
    /// Seconds a client has to send its request head; slower ones get 408 and are closed.
    #[arg(long, value_name = "SECS", default_value_t = embedded_server::server::HANDSHAKE_TIMEOUT.as_secs_f64())]
    pub handshake_timeout: f64,
    /// Unsent output per connection (bytes) beyond which a client that does not read is closed.
    #[arg(long, value_name = "BYTES", default_value_t = embedded_server::server::MAX_OUTPUT_BYTES)]
    pub max_output: usize,
    /// listen(2) backlog per worker (also the fd reserve a worker keeps to drain its queue).
    #[arg(long, value_name = "N", default_value_t = embedded_server::server::BACKLOG)]
    pub backlog: i32,
    /// Seconds workers get on shutdown to close their connections before they are killed.
    #[arg(long, value_name = "SECS", default_value_t = embedded_server::server::SHUTDOWN_GRACE.as_secs_f64())]
    pub shutdown_grace: f64,
    /// Prove the host holds N connections: start server and load generator, hold, echo, report.
    #[arg(long, value_name = "N")]
    pub verify: Option<u64>,
    /// With --verify: seconds to hold the connections before the echo round.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub hold: u64,
    /// With --verify: wait for N connections from load generators on other hosts instead of starting one.
    #[arg(long)]
    pub external: bool,
    /// With --verify: stop opening connections before the memory the run may still take
    /// (MemAvailable less the socket slab it added) falls under BYTES (suffixes K, M, G),
    /// checked before the first connection and at every step of the connect phase.
    /// Default: 5% of MemTotal, at least 256M.
    #[arg(long, value_name = "BYTES")]
    pub memory_floor: Option<String>,
    /// With --verify: client processes, a number or `auto`.
    #[arg(long, default_value = "auto")]
    pub processes: String,
    /// With --verify: connects in flight, all client processes together.
    #[arg(long, value_name = "C", default_value_t = embedded_server::loadgen::CONCURRENCY)]
    pub concurrency: usize,
    /// With --verify: new connections per second (default: as fast as they complete).
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// With --verify: client source addresses (default: enough 127.x.y.z addresses); each
    /// must be an address of this host.
    #[arg(long, value_name = "ADDRS")]
    pub source: Option<String>,
    /// With --verify: give up when the count has not risen for SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub stall: f64,
    /// With --verify: connections closed per second at teardown.
    #[arg(long, value_name = "N", default_value_t = embedded_server::loadgen::CLOSE_RATE)]
    pub close_rate: u64,
    /// With --verify: seconds a connection has from connect() to the 101 response.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub connect_timeout: f64,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub hostile: super::hostile::HostileArgs,
}

/// What the server does with each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
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
