//! Arguments of `tune serve` and of its hidden worker processes.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};

use super::Format;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Worker processes, each with its own epoll loop and SO_REUSEPORT listener: a number or `auto`.
    #[arg(long, default_value = "auto")]
    pub workers: String,
    /// What the server does with each message.
    #[arg(long, value_enum, default_value_t = Mode::Echo)]
    pub mode: Mode,
    /// Prove the host holds N connections: start server and load generator, hold, echo, report.
    #[arg(long, value_name = "N")]
    pub verify: Option<u64>,
    /// With --verify: seconds to hold the connections before the echo round.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub hold: u64,
    /// With --verify: wait for N connections from load generators on other hosts instead of starting one.
    #[arg(long)]
    pub external: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// What the server does with each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Echo every message back.
    Echo,
    /// Count messages, reply nothing.
    Count,
}

/// Arguments of one server worker process (internal).
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[arg(long)]
    pub listen: SocketAddr,
    #[arg(long, value_enum, default_value_t = Mode::Echo)]
    pub mode: Mode,
    #[arg(long)]
    pub index: u32,
}
