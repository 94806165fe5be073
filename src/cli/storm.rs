//! The reconnect-storm flags `tune serve --verify` and `tune load` share: which storm, and how
//! the clients reconnect (`--reconnect-jitter`, `--reconnect-backoff`).

use clap::{Args, ValueEnum};

use crate::values::Secs;

/// Which storm a run makes (serve --verify) or waits for (load).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StormHow {
    /// Every client drops its connection and reconnects at once.
    Clients,
    /// The server's workers are killed and restarted; every client reconnects.
    Restart,
    /// The server restarts gracefully (serve --verify only): new workers listen first, the old
    /// ones close their connections evenly over --drain-seconds; every client reconnects.
    Graceful,
}

/// The storm flags, flattened into `tune serve` and `tune load`.
#[derive(Debug, Clone, Args)]
pub struct ReconnectFlags {
    /// With --storm: each client waits a uniform random time in [0, SECS] before it reconnects
    /// (full jitter), and again before each retry without --reconnect-backoff.
    #[arg(long, value_name = "SECS")]
    pub reconnect_jitter: Option<Secs>,
    /// With --storm: failed reconnects back off exponentially with full jitter, from SECS
    /// (default 1) doubling to 30 s; without it a failed attempt is retried after 0.1 s.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "1")]
    pub reconnect_backoff: Option<Secs>,
}

impl ReconnectFlags {
    /// The policy the flags give.
    pub fn policy(&self) -> Result<embedded_server::loadgen::ReconnectPolicy, String> {
        for (flag, v) in [
            ("--reconnect-jitter", self.reconnect_jitter),
            ("--reconnect-backoff", self.reconnect_backoff),
        ] {
            if let Some(s) = v {
                if s.0.is_zero() {
                    return Err(format!("{flag} 0: expected a positive number of seconds"));
                }
            }
        }
        Ok(embedded_server::loadgen::ReconnectPolicy {
            jitter: self.reconnect_jitter.map(|s| s.0),
            backoff: self.reconnect_backoff.map(|s| s.0),
        })
    }

    /// Whether a reconnect flag was given (they need --storm).
    pub fn any(&self) -> bool {
        self.reconnect_jitter.is_some() || self.reconnect_backoff.is_some()
    }
}
