//! Arguments of `tune load` and of its hidden worker processes.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Server to connect to: ws://HOST:PORT/PATH.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Connections to open and hold.
    #[arg(long, value_name = "N")]
    pub conns: u64,
    /// Client processes: a number or `auto` (each stays under its fd cap, at least one per core).
    #[arg(long, default_value = "auto")]
    pub processes: String,
}

/// Arguments of one load generator process (internal).
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[arg(value_name = "URL")]
    pub url: String,
    #[arg(long)]
    pub conns: u64,
    #[arg(long)]
    pub index: u32,
}
