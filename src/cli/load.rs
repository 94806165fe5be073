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
    #[arg(long, default_value = "auto", value_parser = crate::cli::flags::processes)]
    pub processes: Processes,
    /// Connects in flight, all client processes together.
    #[arg(long, value_name = "C", default_value_t = embedded_server::loadgen::CONCURRENCY)]
    pub concurrency: usize,
    /// New connections per second, all client processes together (default: as fast as they complete).
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Source addresses to bind, of the target's family: a comma-separated list of addresses,
    /// `A-B` ranges (`127.0.0.2-127.0.0.254`, `2001:db8:200::1-2001:db8:200::40`) and
    /// `PREFIX/LEN:COUNT` prefixes (`2001:db8:100::/64:40`: COUNT addresses from the first).
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
    /// Give up when the count has not risen for SECS seconds.
    #[arg(long, value_name = "SECS", default_value = "5")]
    pub stall: Secs,
    /// Connections closed per second at teardown, all client processes together (default: as
    /// fast as they go, paused while the host's TCP memory nears tcp_mem's pressure threshold).
    #[arg(long, value_name = "N")]
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
    /// Server to connect to: ws://HOST:PORT/PATH. Connects only there.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Connections to open and hold.
    #[arg(long, value_name = "N")]
    pub conns: u64,
    #[command(flatten)]
    pub load: LoadFlags,
    /// Every connection sends one message every SECS seconds (and times the echo).
    #[arg(long, value_name = "SECS")]
    pub message_interval: Option<Secs>,
    /// How the load report is printed: a table for people, or JSON for scripts.
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
