//! Arguments of `tune load`, of its hidden worker processes, and the load flags `tune load`
//! shares with `tune serve --verify` ([`LoadFlags`], flattened into both).

use clap::Args;
use embedded_server::loadgen::CloseMode;

use super::Format;
use crate::values::{Processes, Secs, Sources};

/// The load generator's flags, the same for `tune load` and `tune serve --verify`.
#[derive(Debug, Clone, Args)]
pub struct LoadFlags {
    /// Client processes: a number or `auto` (each stays under its fd cap, at least one per core).
    #[arg(long, default_value = "auto")]
    pub processes: Processes,
    /// Connects in flight, all client processes together.
    #[arg(long, value_name = "C", default_value_t = embedded_server::loadgen::CONCURRENCY, value_parser = crate::quantity::parse_count_usize)]
    pub concurrency: usize,
    /// New connections per second, all client processes together (default: as fast as they complete).
    #[arg(long, value_name = "R", value_parser = rate)]
    pub rate: Option<f64>,
    /// Source addresses to bind, of the target's family: a comma-separated list of addresses,
    /// `A-B` ranges (`127.0.0.2-127.0.0.254`, `2001:db8:200::1-2001:db8:200::40`) and
    /// `PREFIX/LEN[:COUNT]` prefixes (`2001:db8:100::/64:40`: COUNT addresses from the first;
    /// without COUNT, as many as the run needs, which tune says before it starts).
    /// Default: for an IPv4 loopback target, enough 127.x.y.z addresses that no (source,
    /// destination) pair needs more than half the ephemeral port range; otherwise the
    /// kernel's choice (::1 alone for an IPv6 loopback target). Each must be an address of
    /// this host or inside a local route (AnyIP, `ip -6 route add local PREFIX dev lo`, bound
    /// with IP_FREEBIND), checked before any process starts.
    #[arg(long, value_name = "ADDRS")]
    pub source: Option<Sources>,
    /// Seconds to hold the connections once all are open (default: 5 with serve --verify, then
    /// the echo round; 30 with load), then close them in batches.
    #[arg(long, value_name = "SECS", alias = "duration")]
    pub hold: Option<Secs>,
    /// Give up when the count has not risen for SECS seconds (at least --connect-timeout while
    /// connects are in flight and none has failed: a slow server is not a stopped one).
    #[arg(long, value_name = "SECS", default_value = "5")]
    pub stall: Secs,
    /// Connections closed per second at teardown, all client processes together (default: as
    /// fast as they go, paused while the host's TCP memory nears tcp_mem's pressure threshold).
    #[arg(long, value_name = "N", value_parser = crate::quantity::parse_positive_count)]
    pub close_rate: Option<u64>,
    /// How connections close at teardown: `tcp` closes each socket (the server closes on end
    /// of file, as the C floor does); `websocket` runs the close handshake first (client close
    /// frame, server close frame, then the server closes), about twice the work per connection.
    /// Default: tcp for serve --verify (tune's own server), websocket for load (the server
    /// sees normal closures).
    #[arg(long, value_name = "HOW", value_enum)]
    pub close: Option<CloseHow>,
    /// Seconds a connection has from connect() to the server's 101 response.
    #[arg(long, value_name = "SECS", default_value = "10")]
    pub connect_timeout: Secs,
    /// wss://: trust the certificates in this PEM file instead of the system store.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca: Option<std::path::PathBuf>,
    /// wss://: accept any server certificate (self-signed test servers only; the handshake's
    /// signatures are still checked).
    #[arg(long)]
    pub insecure: bool,
}

/// `--rate`: a count (`20k`, `1,000`) or a plain fraction of one (`0.5`).
fn rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) => Ok(r),
        Err(_) => match crate::quantity::parse_count(s) {
            Ok(n) => Ok(n as f64),
            Err(e) => Err(format!("{e} (or a fraction such as 0.5 per second)")),
        },
    }
}

/// `--close`: the load generator's [`CloseMode`] as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CloseHow {
    Tcp,
    Websocket,
}

impl From<CloseHow> for CloseMode {
    fn from(c: CloseHow) -> Self {
        match c {
            CloseHow::Tcp => CloseMode::Tcp,
            CloseHow::Websocket => CloseMode::Websocket,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Server to connect to: ws://HOST:PORT/PATH, or wss:// for TLS (--ca, --insecure). Connects
    /// only there.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Connections to open and hold.
    #[arg(long, value_name = "N", value_parser = crate::quantity::parse_count)]
    pub conns: u64,
    #[command(flatten)]
    pub load: LoadFlags,
    /// Every connection sends one message every SECS seconds (and times the echo).
    #[arg(long, value_name = "SECS")]
    pub message_interval: Option<Secs>,
    /// The server's process on this host: sampled at each step of the ramp (RSS, sockets, its
    /// memory cgroup's charge) to measure its cost per connection, and read at the end to name
    /// its death (process gone, OOM kill).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// The server's memory cgroup (a container's): /sys/fs/cgroup/memory/PATH (v1) or
    /// /sys/fs/cgroup/PATH (v2). Default with --server-pid: that process's own.
    #[arg(long, value_name = "DIR")]
    pub server_cgroup: Option<String>,
    /// Steps of the ramp: the clients pause at each (target × k / STEPS) and the server is
    /// sampled. Default: 10 with --server-pid or --server-cgroup, else none.
    #[arg(long, value_name = "STEPS")]
    pub steps: Option<u64>,
    /// How the load report is printed: a table for people, or JSON for scripts.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Once the connections are open, a reconnect storm: `restart` (the default) waits up to
    /// --hold seconds for the server to restart (every connection reset) and measures the
    /// recovery instead of counting failures; `clients` drops every connection at once and
    /// measures the reconnect.
    #[arg(long, value_name = "HOW", value_enum, num_args = 0..=1, default_missing_value = "restart")]
    pub storm: Option<super::storm::StormHow>,
    #[command(flatten, next_help_heading = "Reconnect storm (with --storm)")]
    pub reconnect: super::storm::ReconnectFlags,
}

/// Arguments of one load generator process (internal). Its configuration comes from the parent
/// in the environment; the index is on the command line so `ps` shows which process it is.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[arg(long)]
    pub index: u32,
}
