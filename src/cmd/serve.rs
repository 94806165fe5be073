//! `tune serve`: run the embedded server (supervisor + worker processes), or verify the host
//! holds N connections (`cmd/verify.rs`).

use std::io::IsTerminal;

use anyhow::Context as _;
use embedded_server::server::foreground::{self, Live};
use embedded_server::server::{Limits, Mode, ServerConfig, WorkerConfig, WorkerExit, Workers};

use super::{Context, Outcome};
use crate::cli::serve::{Mode as CliMode, ServeArgs, WorkerArgs};
use crate::launch;
use crate::root::Root;

/// A duration that must not be zero (a zero timeout would close every connection at once).
fn positive(flag: &str, s: crate::verify::plan::Secs) -> anyhow::Result<u64> {
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
            CliMode::Echo => Mode::Echo,
            CliMode::Count => Mode::Count,
        },
        limits,
    })
}

pub fn run(ctx: &Context, args: &ServeArgs) -> anyhow::Result<Outcome> {
    if let Some(n) = args.verify {
        return super::verify::run(ctx, args, n);
    }
    let cfg = server_config(args)?;
    let live = if std::io::stderr().is_terminal() {
        Live::InPlace
    } else {
        Live::Lines { secs: 10 }
    };
    let summary = foreground::serve(
        &cfg,
        &mut launch::worker_command,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
        live,
    )?;
    Ok(if summary.dead.is_empty() {
        Outcome::Pass
    } else {
        Outcome::ShortFall
    })
}

pub fn worker(_ctx: &Context, args: &WorkerArgs) -> anyhow::Result<Outcome> {
    let cfg = WorkerConfig::from_env()?;
    if cfg.index != args.index as usize {
        anyhow::bail!(
            "worker index mismatch: --index {} but the configuration is for worker {}",
            args.index,
            cfg.index
        );
    }
    match embedded_server::server::run_worker(cfg).context("server worker failed")? {
        WorkerExit::Clean => Ok(Outcome::Pass),
        WorkerExit::GraceExpired { left } => {
            eprintln!(
                "server worker {}: grace period over, {left} connections left to the kernel",
                args.index
            );
            Ok(Outcome::ShortFall)
        }
    }
}
