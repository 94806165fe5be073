//! Signals as file descriptors: SIGINT/SIGTERM (and SIGCHLD for the supervisor) are blocked and
//! read from a nonblocking signalfd in the event loop; SIGPIPE is ignored so a closed peer is EPIPE.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::errno::Errno;
pub use nix::sys::signal::Signal;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// A nonblocking signalfd for a set of signals that this thread (and any it later spawns) blocks.
#[derive(Debug)]
pub struct Signals(SignalFd);

impl Signals {
    /// Blocks `signals` in the calling thread and returns a signalfd that reports them. Call it
    /// before spawning threads so they inherit the mask.
    pub fn new(signals: &[Signal]) -> Result<Self, Errno> {
        let mut set = SigSet::empty();
        for s in signals {
            set.add(*s);
        }
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).map(Signals)
    }

    /// The next pending signal, if any.
    pub fn next(&self) -> Result<Option<Signal>, Errno> {
        match self.0.read_signal() {
            Ok(Some(info)) => Ok(Signal::try_from(info.ssi_signo as i32).ok()),
            Ok(None) => Ok(None),
            Err(Errno::EAGAIN) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Unblocks `signals` again (for a child that must see default dispositions).
pub fn unblock(signals: &[Signal]) -> Result<(), Errno> {
    let mut set = SigSet::empty();
    for s in signals {
        set.add(*s);
    }
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None)
}

/// Ignores SIGPIPE for the whole process: writes to a closed socket fail with EPIPE instead.
pub fn ignore_sigpipe() -> Result<(), Errno> {
    // SAFETY: SIG_IGN installs no Rust handler, so no async-signal-safety concern; changing the
    // disposition of SIGPIPE affects only how failed writes are reported.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) }.map(drop)
}

/// Sends `sig` to process `pid` (ESRCH when it is gone).
pub fn kill(pid: u32, sig: Signal) -> Result<(), Errno> {
    let pid = i32::try_from(pid).map_err(|_| Errno::ESRCH)?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
}

/// Asks the kernel to send `sig` to this process when its parent dies (PR_SET_PDEATHSIG), so a
/// worker never outlives a supervisor killed with SIGKILL. Returns false when the parent
/// `expected_parent` is already gone (the request would come too late).
pub fn die_with_parent(sig: Signal, expected_parent: u32) -> Result<bool, Errno> {
    // SAFETY: prctl(PR_SET_PDEATHSIG, sig) takes plain integers and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) };
    Errno::result(rc)?;
    Ok(nix::unistd::getppid().as_raw() as u32 == expected_parent)
}

/// Restores the default SIGPIPE disposition, so a CLI whose output is piped into `head` ends
/// quietly when the reader goes away instead of failing on EPIPE (Rust ignores SIGPIPE by default).
pub fn default_sigpipe() -> Result<(), Errno> {
    // SAFETY: SIG_DFL installs no Rust handler; the kernel ends the process on a write to a
    // closed pipe, which is the behaviour of every Unix filter.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) }.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_signal_arrives_on_the_fd() {
        // SIGUSR2 is not used elsewhere in the test binary.
        let sfd = Signals::new(&[Signal::SIGUSR2]).unwrap();
        assert_eq!(sfd.next().unwrap(), None);
        // The signal is blocked in this thread only; direct it at this thread.
        nix::sys::pthread::pthread_kill(nix::sys::pthread::pthread_self(), Signal::SIGUSR2)
            .unwrap();
        assert_eq!(sfd.next().unwrap(), Some(Signal::SIGUSR2));
        unblock(&[Signal::SIGUSR2]).unwrap();
    }
}
