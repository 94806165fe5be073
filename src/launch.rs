//! How tune starts its own child processes: the commands for server workers and load workers
//! (this same binary, hidden subcommands), and the check that an `auto` worker count can start.

use std::process::Command;

use crate::kernel::host::Host;
use crate::root::Root;
use crate::units::{bytes, group};
use crate::values::{Input, Refused, Suggest};

/// Memory one idle worker process takes before it holds any connection: VmRSS of a worker was
/// ~4.7 MB here (BENCHMARKS.md, Server); 8 MiB leaves room for page tables and its slot table.
const WORKER_BASE_BYTES: u64 = 8 << 20;

/// This same binary with a hidden subcommand and the process's index.
fn this_binary(subcommand: &str, i: usize) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| "tune".into());
    let mut c = Command::new(exe);
    c.arg(subcommand)
        .arg(Suggest::flag(Input::Index))
        .arg(i.to_string());
    c
}

/// The command that starts server worker `i`.
pub fn worker_command(i: usize) -> Command {
    this_binary("__serve-worker", i)
}

/// The command that starts load worker `i`.
pub fn load_worker_command(i: usize) -> Command {
    this_binary("__load-worker", i)
}

/// Refuses an `auto` worker count the host cannot even start: `--expect 100000000` asks for
/// thousands of workers whose base memory alone exceeds what the host has.
pub fn check_worker_memory(root: &Root, expected: u64, fd_reserve: usize) -> anyhow::Result<()> {
    let (_, hard) = embedded_server::sys::rlimit::nofile()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = embedded_server::server::auto_workers(expected, hard, fd_reserve, cores) as u64;
    let Ok(avail) = Host::new(root).meminfo().map(|m| m.available) else {
        return Ok(());
    };
    let need = n.saturating_mul(WORKER_BASE_BYTES);
    if need > avail {
        return Err(Refused::new(
            Input::Workers,
            "auto",
            format!(
                "for {} connections needs {} workers of at most {} fds each, about {} of memory before any connection, more than the {} available: lower {}/{}, or raise RLIMIT_NOFILE so fewer workers suffice",
                group(expected),
                group(n),
                group(hard),
                bytes(need),
                bytes(avail),
                Suggest::flag(Input::Expect),
                Suggest::flag(Input::Verify),
            ),
        )
        .into());
    }
    Ok(())
}
