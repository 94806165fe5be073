//! read / write / writev / shutdown on borrowed fds, returning `Errno` (EAGAIN and friends are
//! the caller's business; EINTR is retried here). Closing is the owner's: an `OwnedFd` dropped,
//! or a slot of an [`crate::sys::fdtable::FdTable`] released.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

/// read(2) into `buf`; `Ok(0)` is end of file.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        // SAFETY: `fd` is open for the call (borrowed); `buf` is a valid writable region of `buf.len()` bytes for the whole call and
        // read writes at most that many bytes into it.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match Errno::result(n) {
            Err(Errno::EINTR) => continue,
            r => return r.map(|n| n as usize),
        }
    }
}

/// write(2) of `buf`; returns how many bytes the kernel took. MSG_NOSIGNAL semantics come from
/// ignoring SIGPIPE (see [`crate::sys::signal::ignore_sigpipe`]): a closed peer is `EPIPE`.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<usize, Errno> {
    loop {
        // SAFETY: `fd` is open for the call (borrowed); `buf` is a valid readable region of `buf.len()` bytes for the whole call.
        let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        match Errno::result(n) {
            Err(Errno::EINTR) => continue,
            r => return r.map(|n| n as usize),
        }
    }
}

/// writev(2) of several buffers in one syscall (a frame header and its payload).
pub fn writev(fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> Result<usize, Errno> {
    let cnt = bufs.len().min(libc::c_int::MAX as usize) as libc::c_int;
    loop {
        // SAFETY: IoSlice is ABI-compatible with `struct iovec` (documented by std); every slice
        // is valid for reads for the whole call and `cnt` does not exceed `bufs.len()`.
        let n = unsafe { libc::writev(fd.as_raw_fd(), bufs.as_ptr().cast(), cnt) };
        match Errno::result(n) {
            Err(Errno::EINTR) => continue,
            r => return r.map(|n| n as usize),
        }
    }
}

/// Whether the peer sent something not read yet, without reading it: recv(2) of one byte with
/// MSG_PEEK | MSG_DONTWAIT. `Ok(0)` is a pending end of file, `Ok(1)` data, `EAGAIN` nothing.
pub fn peek(fd: BorrowedFd<'_>) -> Result<usize, Errno> {
    use nix::sys::socket::{recv, MsgFlags};
    let mut b = [0u8; 1];
    loop {
        match recv(
            fd.as_raw_fd(),
            &mut b,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
        ) {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// shutdown(2) of the writing side: the peer reads EOF after our queued bytes.
pub fn shutdown_write(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: `fd` is open for the call (borrowed); no memory is passed.
    Errno::result(unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn write_writev_read_roundtrip_and_eagain() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(read(b.as_fd(), &mut buf), Err(Errno::EAGAIN));
        assert_eq!(write(a.as_fd(), b"ab").unwrap(), 2);
        let n = writev(a.as_fd(), &[IoSlice::new(b"cd"), IoSlice::new(b"ef")]).unwrap();
        assert_eq!(n, 4);
        assert_eq!(read(b.as_fd(), &mut buf).unwrap(), 6);
        assert_eq!(&buf[..6], b"abcdef");
        drop(a);
        assert_eq!(read(b.as_fd(), &mut buf).unwrap(), 0);
    }
}
