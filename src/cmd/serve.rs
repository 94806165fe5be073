//! `tune serve`: run the embedded server (supervisor + worker processes), or verify the host
//! holds N connections.

use std::io::IsTerminal;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use embedded_server::server::foreground::{self, Live};
use embedded_server::server::{Limits, Mode, ServerConfig, WorkerConfig, WorkerExit, Workers};

use super::{Context, Outcome};
use crate::cli::serve::{Mode as CliMode, ServeArgs, WorkerArgs};

fn secs(flag: &str, v: f64) -> anyhow::Result<u64> {
    if !(v.is_finite() && v > 0.0) {
        anyhow::bail!("{flag} {v}: expected a positive number of seconds");
    }
    Ok(Duration::from_secs_f64(v).as_millis() as u64)
}

/// The server configuration the flags describe.
pub fn server_config(args: &ServeArgs) -> anyhow::Result<ServerConfig> {
    let mut workers: Workers = args.workers.parse().map_err(anyhow::Error::msg)?;
    if let Workers::Auto { expected } = &mut workers {
        *expected = args.expect.or(args.verify).unwrap_or(0);
    }
    if args.backlog < 1 {
        anyhow::bail!("--backlog {}: expected 1 or more", args.backlog);
    }
    let limits = Limits {
        max_handshake_bytes: args.max_handshake.max(64),
        handshake_timeout_ms: secs("--handshake-timeout", args.handshake_timeout)?,
        max_message_bytes: args.max_message,
        max_output_bytes: args.max_output,
        shutdown_grace_ms: secs("--shutdown-grace", args.shutdown_grace)?,
        backlog: args.backlog,
        ..Limits::default()
    };
    Ok(ServerConfig {
        listen: args.listen,
        workers,
        mode: match args.mode {
            CliMode::Echo => Mode::Echo,
            CliMode::Count => Mode::Count,
        },
        limits,
    })
}

/// The command that starts server worker `i`: this same binary, hidden subcommand.
pub fn worker_command(i: usize) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| "tune".into());
    let mut c = Command::new(exe);
    c.arg("__serve-worker").arg("--index").arg(i.to_string());
    c
}

pub fn run(_ctx: &Context, args: &ServeArgs) -> anyhow::Result<Outcome> {
    if let Some(n) = args.verify {
        return crate::verify::run(_ctx, args, n);
    }
    let cfg = server_config(args)?;
    let live = if std::io::stderr().is_terminal() {
        Live::InPlace
    } else {
        Live::Lines { secs: 10 }
    };
    let summary = foreground::serve(
        &cfg,
        &mut worker_command,
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
