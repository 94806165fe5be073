//! What a worker process (server or load generator) does first: die with its parent, ignore
//! SIGPIPE, read SIGINT/SIGTERM from a signalfd, raise its fd limit and map the parent's counters.

use std::os::fd::RawFd;

use anyhow::Context as _;

use crate::counter_blocks::{Board, Layout};
use crate::sys::rlimit;
use crate::sys::shm::SharedU64s;
use crate::sys::signal::{self, Signal, Signals};

/// Sets up a worker process of `parent_pid` (called `parent` in the error when it is already
/// gone), whose `workers`-process counter board the parent passed as `shm_fd`. Returns the
/// signalfd, RLIMIT_NOFILE once raised to the hard limit, and the counter board.
pub fn start<L: Layout>(
    parent: &str,
    parent_pid: u32,
    shm_fd: RawFd,
    workers: usize,
) -> anyhow::Result<(Signals, u64, Board<L>)> {
    if !signal::die_with_parent(Signal::SIGTERM, parent_pid).context("prctl(PR_SET_PDEATHSIG)")? {
        anyhow::bail!("the {parent} exited before this worker started");
    }
    signal::ignore_sigpipe().context("ignoring SIGPIPE")?;
    let signals = Signals::new(&[Signal::SIGINT, Signal::SIGTERM]).context("signalfd")?;
    let fd_cap = rlimit::raise_nofile_to_hard().context("raising RLIMIT_NOFILE")?;
    let shm = SharedU64s::from_inherited(shm_fd, Board::<L>::shm_len(workers))
        .context("mapping the shared counters")?;
    Ok((signals, fd_cap, Board::new(shm, workers)))
}
