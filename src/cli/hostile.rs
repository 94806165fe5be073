//! The `tune serve` flags that bound what hostile clients can make a worker hold: memory budget,
//! deadlines after the handshake, pings, handshake slots, per-source cap, send buffer cap.

use clap::Args;
use embedded_server::server::{self as srv, Limits};

#[derive(Debug, Clone, Args)]
pub struct HostileArgs {
    /// Heap one worker may hold for all its connections together (buffered output, partial
    /// frames and messages, counted by buffer capacity), in bytes or with a K, M, G or KiB, MiB, GiB suffix
    /// (64MiB is the default). Past it the largest holders are closed: 1008 and a reset for
    /// clients that do not read, 1009 for partial messages.
    #[arg(long, value_name = "BYTES", default_value_t = srv::MEMORY_BUDGET, value_parser = crate::quantity::parse_size_usize)]
    pub memory_budget: usize,
    /// Seconds a partial frame or fragmented message has to complete from its first byte
    /// (then 1008); 0: no limit.
    #[arg(long, value_name = "SECS", default_value_t = srv::FRAME_TIMEOUT.as_secs_f64())]
    pub frame_timeout: f64,
    /// Seconds unsent output may go without progress before the connection is reset; 0: no
    /// limit.
    #[arg(long, value_name = "SECS", default_value_t = srv::WRITE_TIMEOUT.as_secs_f64())]
    pub write_timeout: f64,
    /// Close a websocket (1001) after this many seconds without traffic. Off (0) by default:
    /// --verify holds idle connections on purpose.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub idle_timeout: f64,
    /// Ping a websocket after this many seconds without traffic and close it (1001) if the next
    /// period (or --idle-timeout, if shorter) passes without an answer. Off (0) by default, for
    /// the same reason.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub ping_interval: f64,
    /// Connections still in the handshake per worker; past it the oldest gets 503 and is
    /// closed, so dribbling clients cannot keep new ones out.
    #[arg(long, value_name = "N", default_value_t = srv::MAX_HANDSHAKING, value_parser = crate::quantity::parse_count_usize)]
    pub max_handshaking: usize,
    /// Connections one source address may hold per worker (503 beyond); 0: no cap.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = crate::quantity::parse_count_usize)]
    pub max_per_source: usize,
    /// SO_SNDBUF of each accepted socket in bytes (the kernel doubles it); 0: the kernel's
    /// autotuning (up to 4 MiB per socket on loopback).
    #[arg(long, value_name = "BYTES", default_value_t = srv::SNDBUF, value_parser = crate::quantity::parse_size_usize)]
    pub sndbuf: usize,
}

/// `--memory-budget`'s value parser: bytes like the other size flags (`64M`, `1G`, `67108864`),
/// with the flag and the value in the message.
fn millis(flag: &str, v: f64) -> Result<u64, String> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!(
            "{flag} {v}: expected a number of seconds, 0 or more (0: off)"
        ));
    }
    Ok((v * 1000.0).ceil() as u64)
}

impl HostileArgs {
    /// Writes these flags into the server limits.
    pub fn apply(&self, l: &mut Limits) -> Result<(), String> {
        if self.memory_budget == 0 || self.max_handshaking == 0 {
            return Err("--memory-budget and --max-handshaking must be 1 or more".into());
        }
        l.memory_budget_bytes = self.memory_budget;
        l.frame_timeout_ms = millis("--frame-timeout", self.frame_timeout)?;
        l.write_timeout_ms = millis("--write-timeout", self.write_timeout)?;
        l.idle_timeout_ms = millis("--idle-timeout", self.idle_timeout)?;
        l.ping_interval_ms = millis("--ping-interval", self.ping_interval)?;
        l.max_handshaking = self.max_handshaking;
        l.max_per_source = self.max_per_source;
        l.sndbuf_bytes = self.sndbuf;
        Ok(())
    }
}
