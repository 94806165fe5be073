//! One epoll instance per event loop (nix's `Epoll`); registrations carry the fd number as their
//! data, so events index the slot table.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll as NixEpoll, EpollCreateFlags, EpollTimeout};
pub use nix::sys::epoll::{EpollEvent, EpollFlags};

/// Readable (and peer hang-up / error, which epoll always reports).
pub const READ: EpollFlags = EpollFlags::EPOLLIN.union(EpollFlags::EPOLLRDHUP);
/// What a ready event means there is something to read: data, the peer's FIN, a hang-up or an
/// error (all found out by reading).
pub const READABLE: EpollFlags = EpollFlags::EPOLLIN
    .union(EpollFlags::EPOLLRDHUP)
    .union(EpollFlags::EPOLLHUP)
    .union(EpollFlags::EPOLLERR);
/// Writable.
pub const WRITE: EpollFlags = EpollFlags::EPOLLOUT;

/// An epoll instance. Registrations carry the fd itself as their `u64` data.
#[derive(Debug)]
pub struct Epoll(NixEpoll);

impl Epoll {
    pub fn new() -> Result<Self, Errno> {
        NixEpoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map(Epoll)
    }

    /// Registers `fd` for `flags` (level-triggered) with `fd` as its event data.
    pub fn add(&self, fd: BorrowedFd<'_>, flags: EpollFlags) -> Result<(), Errno> {
        self.0
            .add(fd, EpollEvent::new(flags, fd.as_raw_fd() as u64))
    }

    /// Changes the interest set of a registered `fd`.
    pub fn modify(&self, fd: BorrowedFd<'_>, flags: EpollFlags) -> Result<(), Errno> {
        let mut ev = EpollEvent::new(flags, fd.as_raw_fd() as u64);
        self.0.modify(fd, &mut ev)
    }

    /// Removes `fd` (closing an fd removes it too; this is for fds that stay open).
    pub fn delete(&self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        self.0.delete(fd)
    }

    /// Waits up to `timeout_ms` (negative: forever) and returns how many events were filled.
    /// EINTR is returned as `Ok(0)`.
    pub fn wait(&self, events: &mut [EpollEvent], timeout_ms: i32) -> Result<usize, Errno> {
        let timeout = if timeout_ms < 0 {
            EpollTimeout::NONE
        } else {
            EpollTimeout::try_from(timeout_ms).map_err(|_| Errno::EINVAL)?
        };
        match self.0.wait(events, timeout) {
            Err(Errno::EINTR) => Ok(0),
            r => r,
        }
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.0 .0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn reports_a_readable_pipe_with_its_fd() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let ep = Epoll::new().unwrap();
        ep.add(r.as_fd(), READ).unwrap();
        let mut evs = [EpollEvent::empty(); 4];
        assert_eq!(ep.wait(&mut evs, 0).unwrap(), 0);
        nix::unistd::write(&w, b"x").unwrap();
        assert_eq!(ep.wait(&mut evs, 1000).unwrap(), 1);
        assert_eq!(evs[0].data(), r.as_raw_fd() as u64);
        assert!(evs[0].events().contains(EpollFlags::EPOLLIN));
        ep.delete(r.as_fd()).unwrap();
        assert_eq!(ep.wait(&mut evs, 0).unwrap(), 0);
    }
}
