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
    let mut limits = Limits {
        max_handshake_bytes: args.max_handshake.max(64),
        handshake_timeout_ms: secs("--handshake-timeout", args.handshake_timeout)?,
        max_message_bytes: args.max_message,
        max_output_bytes: args.max_output,
        shutdown_grace_ms: secs("--shutdown-grace", args.shutdown_grace)?,
        backlog: args.backlog,
        ..Limits::default()
    };
    args.hostile
        .apply(&mut limits)
        .map_err(anyhow::Error::msg)?;
    if let Workers::Auto { expected } = workers {
        check_worker_memory(expected, args.backlog)?;
    }
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

/// Memory one idle worker process takes before it holds any connection: VmRSS of a worker was
/// ~4.7 MB here (BENCHMARKS.md, Server); 8 MiB leaves room for page tables and its slot table.
const WORKER_BASE_BYTES: u64 = 8 << 20;

/// Refuses an `auto` worker count the host cannot even start: `--expect 100000000` asks for
/// thousands of workers whose base memory alone exceeds what the host has.
fn check_worker_memory(expected: u64, backlog: i32) -> anyhow::Result<()> {
    use procfs::FromRead;
    let (_, hard) = embedded_server::sys::rlimit::nofile()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = embedded_server::server::auto_workers(expected, hard, backlog, cores) as u64;
    let Some(avail) = crate::root::Root::host()
        .read("proc/meminfo")
        .ok()
        .and_then(|t| procfs::Meminfo::from_read(t.as_bytes()).ok())
        .and_then(|m| m.mem_available)
    else {
        return Ok(());
    };
    let need = n.saturating_mul(WORKER_BASE_BYTES);
    if need > avail {
        anyhow::bail!(
            "--workers auto for {} connections needs {} workers of at most {} fds each, about {} of memory before any connection, more than the {} available: lower --expect/--verify, or raise RLIMIT_NOFILE so fewer workers suffice",
            crate::capacity::group(expected),
            crate::capacity::group(n),
            crate::capacity::group(hard),
            crate::capacity::bytes(need),
            crate::capacity::bytes(avail)
        );
    }
    Ok(())
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
