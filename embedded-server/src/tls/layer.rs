//! The TLS layer of one event loop: a rustls connection per TLS socket, in a table indexed by
//! fd beside the loop's slots, and the read/write calls that move records between the socket
//! (through `sys::io`, the only place that touches it) and plaintext the caller hands to its
//! websocket session. Sockets without an entry pass straight through, so a loop without TLS
//! pays one branch.
//!
//! Besides the connections it counts what TLS costs this loop: completed handshakes and the
//! thread CPU spent processing handshake records.

use std::io::{Read as _, Write as _};
use std::os::fd::BorrowedFd;

use rustls::Connection;

use super::Failure;
use crate::sys::{io, Errno};

/// Smallest plaintext buffer [`Layer::read`] takes: with at least [`RECORD_ROOM`] free before
/// each record read, nothing decrypted is left inside rustls when it returns (a socket drained
/// by us with plaintext still buffered would never wake the loop again).
pub const MIN_READ_BUF: usize = 32 * 1024;
/// Plaintext one read of ciphertext can complete at most: a whole 16 KiB record that was
/// partial plus the 4 KiB rustls reads at a time.
const RECORD_ROOM: usize = 16 * 1024 + 4 * 1024 + 512;

/// A connection's rustls state.
pub type Conn = Connection;

/// What [`Layer::read`] returns besides plaintext: `Err(Errno::EPROTO)` is a TLS failure
/// (take it with [`Layer::take_failure`]).
pub type ReadOutcome = Result<usize, Errno>;

/// The TLS connections of one loop, indexed by fd, and what their handshakes cost.
#[derive(Default)]
pub struct Layer {
    conns: Vec<Option<Box<Conn>>>,
    failure: Option<Failure>,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Thread CPU spent processing handshake records, ns.
    pub handshake_cpu_ns: u64,
}

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layer")
            .field("handshakes", &self.handshakes)
            .finish()
    }
}

/// `std::io` over a borrowed socket, through `sys::io`.
struct Sock<'a>(BorrowedFd<'a>);

fn to_io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

fn to_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

impl std::io::Read for Sock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        io::read(self.0, buf).map_err(to_io)
    }
}

impl std::io::Write for Sock<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        io::write(self.0, buf).map_err(to_io)
    }
    /// rustls hands its queued records over as several buffers: one writev, so a handshake
    /// flight and the request behind it leave in one segment (the client sockets have Nagle
    /// on; a second small write would wait for the peer's delayed ACK).
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        io::writev(self.0, bufs).map_err(to_io)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn cpu_ns() -> u64 {
    crate::sys::proc::thread_cpu_time().map_or(0, |d| d.as_nanos() as u64)
}

impl Layer {
    /// Whether the socket at `i` speaks TLS.
    pub fn is_tls(&self, i: usize) -> bool {
        self.conns.get(i).is_some_and(|c| c.is_some())
    }

    /// Puts a new connection at `i` (its buffers limited to [`super::BUFFER_LIMIT`]).
    pub fn insert(&mut self, i: usize, mut conn: Conn) {
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        conn.set_buffer_limit(Some(super::BUFFER_LIMIT));
        self.conns[i] = Some(Box::new(conn));
    }

    /// Forgets the connection at `i` (its socket is being closed); with `fd`, a close_notify
    /// is sent first, as far as the socket takes it.
    pub fn remove(&mut self, i: usize, fd: Option<BorrowedFd<'_>>) {
        let Some(mut c) = self.conns.get_mut(i).and_then(Option::take) else {
            return;
        };
        if let Some(fd) = fd {
            if !c.is_handshaking() {
                c.send_close_notify();
                let _ = c.write_tls(&mut Sock(fd));
            }
        }
    }

    /// The failure behind the last `Err(EPROTO)` of [`Layer::read`].
    pub fn take_failure(&mut self) -> Option<Failure> {
        self.failure.take()
    }

    /// Still in the TLS handshake.
    pub fn is_handshaking(&self, i: usize) -> bool {
        self.conn(i).is_some_and(|c| c.is_handshaking())
    }

    /// Ciphertext is waiting for the socket: the caller keeps EPOLLOUT armed.
    pub fn wants_write(&self, i: usize) -> bool {
        self.conn(i).is_some_and(|c| c.wants_write())
    }

    /// Heap bytes the TLS state at `i` holds, for a memory budget: the connection and its
    /// buffers at their limit when anything is buffered (rustls does not tell exact sizes).
    pub fn footprint(&self, i: usize) -> usize {
        self.conn(i).map_or(0, |c| {
            let busy = c.wants_write() || c.is_handshaking();
            super::CONN_BYTES + if busy { super::BUFFER_LIMIT } else { 0 }
        })
    }

    fn conn(&self, i: usize) -> Option<&Conn> {
        self.conns.get(i).and_then(|c| c.as_deref())
    }

    /// Reads what the socket has, decrypts it and puts the plaintext in `out` (at least
    /// [`MIN_READ_BUF`] long); answers the handshake on the way. Like read(2): `Ok(0)` is the
    /// end (EOF or close_notify), `Err(EAGAIN)` nothing yet, `Err(EPROTO)` a TLS failure.
    pub fn read(&mut self, i: usize, fd: BorrowedFd<'_>, out: &mut [u8]) -> ReadOutcome {
        let Some(c) = self.conns.get_mut(i).and_then(|c| c.as_deref_mut()) else {
            return io::read(fd, out);
        };
        debug_assert!(out.len() >= MIN_READ_BUF);
        let mut got = 0;
        let mut eof = false;
        loop {
            match c.reader().read(&mut out[got..]) {
                Ok(0) if got < out.len() => {
                    eof = true;
                    break;
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    // EOF without close_notify: the peer went away.
                    eof = true;
                    break;
                }
            }
            if out.len() - got < RECORD_ROOM {
                break;
            }
            match c.read_tls(&mut Sock(fd)) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(to_errno(&e)),
            }
            let hs = c.is_handshaking();
            let t0 = if hs { cpu_ns() } else { 0 };
            let res = c.process_new_packets();
            if hs {
                self.handshake_cpu_ns += cpu_ns().saturating_sub(t0);
                if res.is_ok() && !c.is_handshaking() {
                    self.handshakes += 1;
                }
            }
            if let Err(e) = res {
                self.failure = Some(Failure::of(&e));
                // The alert rustls queued for the peer, as far as the socket takes it.
                let _ = c.write_tls(&mut Sock(fd));
                return Err(Errno::EPROTO);
            }
            // The handshake's next flight (or buffered early plaintext, now encrypted).
            while c.wants_write() {
                match c.write_tls(&mut Sock(fd)) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(to_errno(&e)),
                }
            }
        }
        if got > 0 {
            Ok(got)
        } else if eof {
            Ok(0)
        } else {
            Err(Errno::EAGAIN)
        }
    }

    /// Encrypts what of `plain` rustls takes (up to its buffer limit) and sends what the
    /// socket takes; like write(2) it returns the plaintext bytes taken, `Err(EAGAIN)` when
    /// none. Ciphertext the socket did not take stays queued: see [`Layer::wants_write`].
    pub fn write(&mut self, i: usize, fd: BorrowedFd<'_>, plain: &[u8]) -> Result<usize, Errno> {
        if !self.is_tls(i) {
            return io::write(fd, plain);
        }
        self.flush(i, fd)?;
        let Some(c) = self.conns.get_mut(i).and_then(|c| c.as_deref_mut()) else {
            return Err(Errno::EBADF);
        };
        if c.wants_write() {
            return Err(Errno::EAGAIN);
        }
        let n = c.writer().write(plain).map_err(|e| to_errno(&e))?;
        self.flush(i, fd)?;
        if n == 0 && !plain.is_empty() {
            return Err(Errno::EAGAIN);
        }
        Ok(n)
    }

    /// Sends queued ciphertext; `Ok` also when the socket is full (EAGAIN).
    pub fn flush(&mut self, i: usize, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        let Some(c) = self.conns.get_mut(i).and_then(|c| c.as_deref_mut()) else {
            return Ok(());
        };
        while c.wants_write() {
            match c.write_tls(&mut Sock(fd)) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(to_errno(&e)),
            }
        }
        Ok(())
    }
}
