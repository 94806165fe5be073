//! Arguments of `tune load` and of its hidden worker processes.

use clap::Args;

use super::Format;

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Server to connect to: ws://HOST:PORT/PATH. Connects only there.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Connections to open and hold.
    #[arg(long, value_name = "N")]
    pub conns: u64,
    /// Client processes: a number or `auto` (each stays under its fd cap, at least one per core).
    #[arg(long, default_value = "auto")]
    pub processes: String,
    /// Connects in flight, all processes together.
    #[arg(long, value_name = "C", default_value_t = embedded_server::loadgen::CONCURRENCY)]
    pub concurrency: usize,
    /// New connections per second, all processes together (default: as fast as they complete).
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Source addresses to bind: `127.0.0.2-127.0.0.254` or a comma-separated list. Default:
    /// for a loopback target, enough 127.x.y.z addresses that no (source, destination) pair
    /// needs more than half the ephemeral port range; otherwise the kernel's choice. Each
    /// must be an address of this host (checked before any process starts).
    #[arg(long, value_name = "ADDRS")]
    pub source: Option<String>,
    /// Every connection sends one message every SECS seconds (and times the echo).
    #[arg(long, value_name = "SECS")]
    pub message_interval: Option<f64>,
    /// Seconds to hold the connections once all are open, then close them in batches.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, alias = "duration")]
    pub hold: f64,
    /// Seconds a connection has from connect() to the server's 101 response.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Give up when the count has not risen for SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub stall: f64,
    /// Connections closed per second at the end (all processes together).
    #[arg(long, value_name = "N", default_value_t = embedded_server::loadgen::CLOSE_RATE)]
    pub close_rate: u64,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Arguments of one load generator process (internal). Its configuration comes from the parent
/// in the environment; the index is on the command line so `ps` shows which process it is.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[arg(long)]
    pub index: u32,
}
