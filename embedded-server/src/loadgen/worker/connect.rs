//! Opening connections for the load worker: connects bounded in flight and by rate, with a
//! back-off after failures, the upgrade request (written early on loopback), the 101 parsed,
//! and the release of a connection's fd and slot.

use std::os::fd::RawFd;
use std::time::Instant;

use super::{State, Worker, ERROR_BACKOFF, MAX_BACKOFF, MAX_PENDING_IN, SESSION};
use crate::loadgen::board::{self as b, ErrorClass};
use crate::protocol::handshake::{self, ResponseError, KEY_LEN};
use crate::protocol::session::{self, Session};
use crate::sys::epoll::{READ, WRITE};
use crate::sys::{io, net, Errno};

impl Worker {
    pub(super) fn connect_some(&mut self) {
        if let Some(until) = self.backoff_until {
            if Instant::now() < until {
                return;
            }
            self.backoff_until = None;
        }
        if let Some(rate) = self.cfg.rate {
            let dt = self.last_refill.elapsed().as_secs_f64();
            self.last_refill = Instant::now();
            self.tokens = (self.tokens + dt * rate).min(rate.max(1.0) / 10.0 + 1.0);
        }
        while self.wants_connect() && self.backoff_until.is_none() {
            if self.cfg.rate.is_some() {
                if self.tokens < 1.0 {
                    break;
                }
                self.tokens -= 1.0;
            }
            if !self.start_connect() {
                break;
            }
        }
    }

    /// After a failure: pause connects, longer with every failure in a row (up to
    /// [`MAX_BACKOFF`]), so a limit does not turn into a storm of failing connects.
    pub(super) fn backoff(&mut self) {
        self.errors_in_row = self.errors_in_row.saturating_add(1);
        let d = ERROR_BACKOFF * (1u32 << self.errors_in_row.min(6));
        self.backoff_until = Some(Instant::now() + d.min(MAX_BACKOFF));
    }

    /// Starts one connect; false when it failed at once (the caller stops for now).
    pub(super) fn start_connect(&mut self) -> bool {
        let (src, freebind) = if self.cfg.sources.is_empty() {
            (None, false)
        } else {
            let k = self.src_next % self.cfg.sources.len();
            self.src_next = self.src_next.wrapping_add(1);
            (Some(self.cfg.sources[k]), self.freebind[k])
        };
        let w = self.w();
        self.board.add(w, b::ATTEMPTS, 1);
        let (sock, done) = match net::connect_from(src, freebind, self.cfg.target.addr) {
            Ok(x) => x,
            Err(e) => {
                self.board.error(w, ErrorClass::of_errno(e), e as i32);
                self.backoff();
                return false;
            }
        };
        let now = self.now;
        let fd = self.slots.adopt(sock, 1) as RawFd;
        self.storm_adopted(fd);
        let tls = self.tls_cfg.is_some();
        let s = &mut self.slots[fd as usize];
        s.state = State::Connecting;
        s.t = now;
        s.round = false;
        self.in_flight += 1;
        if tls && !self.tls_open(fd) {
            return false;
        }
        // TLS: the ClientHello goes first, once the socket is writable (below).
        if !done && !tls {
            // On loopback the handshake has usually finished by the time connect() returns
            // (the SYN-ACK is processed when connect releases the socket), although it reports
            // EINPROGRESS: write the request at once, which saves waiting for writability,
            // SO_ERROR and an epoll_ctl per connection. A socket still connecting refuses the
            // write with EAGAIN and nothing was sent: then wait for writability as before.
            match self.write_request_early(fd) {
                Ok(Some(want_write)) => {
                    let flags = if want_write { READ | WRITE } else { READ };
                    if let Err(e) = self.ep.add(self.slots.fd(fd as usize), flags) {
                        self.fail(fd, ErrorClass::of_errno(e), e as i32);
                        return false;
                    }
                    return true;
                }
                Ok(None) => {}
                Err(e) => {
                    self.fail(fd, ErrorClass::of_errno(e), e as i32);
                    return false;
                }
            }
        }
        let flags = if done { READ } else { WRITE };
        if let Err(e) = self.ep.add(self.slots.fd(fd as usize), flags) {
            self.fail(fd, ErrorClass::of_errno(e), e as i32);
            return false;
        }
        if done {
            self.send_request(fd, true);
        }
        true
    }

    /// A connection attempt failed: count it, close the fd, back off.
    pub(super) fn fail(&mut self, fd: RawFd, class: ErrorClass, errno: i32) {
        self.board.error(self.w(), class, errno);
        self.release(fd);
        // In a storm the reconnect policy paces the retries, not this process's back-off.
        if !self.storm.active() {
            self.backoff();
        }
    }

    /// Closes `fd` and frees its slot, keeping the counts right.
    pub(super) fn release(&mut self, fd: RawFd) {
        let was = self.slots[fd as usize].state;
        if was != State::Free && self.in_storm() {
            self.storm_released(fd, was);
        }
        let s = &mut self.slots[fd as usize];
        match s.state {
            State::Free => return,
            State::Connecting | State::Handshaking => self.in_flight -= 1,
            State::Open => self.open -= 1,
            State::Echoing => {
                self.open -= 1;
                self.echoing -= 1;
            }
            State::Closing(_) => self.closing -= 1,
        }
        s.state = State::Free;
        s.counted = false;
        s.pending = None;
        self.tls
            .remove(fd as usize, Some(self.slots.fd(fd as usize)));
        self.slots.close(fd as usize);
    }

    /// Writes the upgrade request to a socket whose connect() reported EINPROGRESS, before it
    /// is registered with epoll. `Ok(None)`: still connecting (EAGAIN), nothing sent, nothing
    /// changed. `Ok(Some(want_write))`: the connection is handshaking, `want_write` when part of
    /// the request is still to be written.
    pub(super) fn write_request_early(&mut self, fd: RawFd) -> Result<Option<bool>, Errno> {
        let key = handshake::new_key();
        let mut req = std::mem::take(&mut self.reqbuf);
        self.request.write(&key, &mut req);
        let written = io::write(self.slots.fd(fd as usize), &req);
        self.reqbuf = req;
        let req = &self.reqbuf;
        let n = match written {
            Ok(n) => n,
            Err(Errno::EAGAIN) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut p = Some(Box::new(Session::default()));
        session::queue_unsent(&mut p, &SESSION, 0, &req[n..]);
        let want_write = n < req.len();
        if let Some(p) = p.as_mut() {
            p.key = key;
        }
        let s = &mut self.slots[fd as usize];
        s.state = State::Handshaking;
        s.pending = p;
        Ok(Some(want_write))
    }

    /// Sends the upgrade request; `reading` says the fd is already registered for reading
    /// only (a connect that completed at once), which saves an epoll_ctl per connection.
    pub(super) fn send_request(&mut self, fd: RawFd, reading: bool) {
        let key = handshake::new_key();
        let mut req = std::mem::take(&mut self.reqbuf);
        self.request.write(&key, &mut req);
        self.slots[fd as usize].state = State::Handshaking;
        let mut p = Some(Box::new(Session::default()));
        let written = self
            .tls
            .write(fd as usize, self.slots.fd(fd as usize), &req);
        match written {
            Ok(n) => session::queue_unsent(&mut p, &SESSION, 0, &req[n..]),
            Err(Errno::EAGAIN) => session::queue_unsent(&mut p, &SESSION, 0, &req),
            Err(_) => {}
        }
        if let Some(p) = p.as_mut() {
            p.key = key;
        }
        self.reqbuf = req;
        if let Err(e) = written {
            if e != Errno::EAGAIN {
                self.fail(fd, ErrorClass::of_errno(e), e as i32);
                return;
            }
        }
        let want_write =
            p.as_ref().is_some_and(|p| p.pending_out() > 0) || self.tls.wants_write(fd as usize);
        self.slots[fd as usize].pending = p;
        if want_write || !reading {
            let _ = self.ep.modify(
                self.slots.fd(fd as usize),
                if want_write { READ | WRITE } else { READ },
            );
        }
    }
}

/// Feeds bytes of the server's response head; `Ok(true)` once the 101 is complete (what follows
/// it stays in the session's input), `Err(Some(class))` for a refused or malformed response,
/// `Err(None)` for a head larger than a sane server sends.
pub(super) fn head(
    p: &mut Option<Box<Session>>,
    data: &mut [u8],
) -> Result<bool, Option<ErrorClass>> {
    let mut outcome = Ok(false);
    session::with_input(p, data, |p, buf| {
        if buf.len() > MAX_PENDING_IN {
            outcome = Err(None);
            return buf.len();
        }
        let key = p.as_ref().map_or([0; KEY_LEN], |p| p.key);
        match handshake::parse_response(buf, &key) {
            Ok(None) => 0,
            Ok(Some(n)) => {
                outcome = Ok(true);
                n
            }
            Err(e) => {
                outcome = Err(Some(match e {
                    ResponseError::Status(_) => ErrorClass::HandshakeStatus,
                    ResponseError::BadAccept => ErrorClass::HandshakeAccept,
                    ResponseError::Malformed => ErrorClass::HandshakeMalformed,
                }));
                buf.len()
            }
        }
    });
    outcome
}
