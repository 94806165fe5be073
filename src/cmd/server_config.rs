//! The server's configuration resolved once from `tune serve`'s flags: what `serve` runs and
//! what `serve --verify` starts (both call this; neither calls the other for it).

use embedded_server::server::{Limits, Mode, ServerConfig, Workers};

use crate::cli::serve::{ServeArgs, ServeMode};
use crate::launch;
use crate::root::Root;

/// A duration that must not be zero (a zero timeout would close every connection at once).
fn positive(flag: &str, s: crate::values::Secs) -> anyhow::Result<u64> {
    if s.0.is_zero() {
        anyhow::bail!("{flag} 0: expected a positive number of seconds");
    }
    Ok(s.0.as_millis() as u64)
}

/// The server configuration the flags describe.
pub fn server_config(args: &ServeArgs) -> anyhow::Result<ServerConfig> {
    let mut workers = args.workers;
    if let Workers::Auto { expected } = &mut workers {
        *expected = args.expect.or(args.verify).unwrap_or(0);
    }
    if args.backlog < 1 {
        anyhow::bail!("--backlog {}: expected 1 or more", args.backlog);
    }
    let mut limits = Limits {
        max_handshake_bytes: args.max_handshake.max(64),
        handshake_timeout_ms: positive("--handshake-timeout", args.handshake_timeout)?,
        max_message_bytes: args.max_message,
        max_output_bytes: args.max_output,
        shutdown_grace_ms: positive("--shutdown-grace", args.shutdown_grace)?,
        backlog: args.backlog,
        ..Limits::default()
    };
    args.hostile
        .apply(&mut limits)
        .map_err(anyhow::Error::msg)?;
    if let Workers::Auto { expected } = workers {
        launch::check_worker_memory(&Root::host(), expected, args.backlog)?;
    }
    Ok(ServerConfig {
        listen: args.listen_addr(),
        workers,
        mode: match args.mode {
            ServeMode::Echo => Mode::Echo,
            ServeMode::Count => Mode::Count,
        },
        limits,
    })
}
