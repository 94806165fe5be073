//! `tune serve`: run the embedded server (supervisor + worker processes), or verify the host
//! holds N connections (`cmd/verify.rs`).

use std::io::IsTerminal;

use anyhow::Context as _;
use embedded_server::server::foreground::{self, Live};
use embedded_server::server::{WorkerConfig, WorkerExit};

use super::server_config::server_config;
use super::{Context, Outcome};
use crate::cli::serve::{ServeArgs, WorkerArgs};
use crate::launch;

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
