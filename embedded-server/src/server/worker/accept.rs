//! Admission for the server worker: accepting in batches, the per-source cap and the
//! handshake slots, and pausing the listener near the fd cap (and listening again below it).

use std::os::fd::{AsRawFd, RawFd};

use super::{State, Worker, ACCEPT_BATCH, SLOT_CHUNK};
use crate::protocol::handshake;
use crate::server::metrics::{self as m, CloseReason};
use crate::sys::epoll::{EpollFlags, READ};
use crate::sys::{io, net, Errno};

impl Worker {
    pub(super) fn accept_some(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            if self.conns >= self.high {
                self.stop_listening();
                return;
            }
            let fd = match net::accept(self.listener_fd) {
                Ok(fd) => fd,
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    // EMFILE/ENFILE/ENOBUFS: the connection stays queued; stop listening
                    // until connections close rather than spin on a readable listener.
                    self.board.add(self.w(), m::ACCEPT_ERRORS, 1);
                    self.stop_listening();
                    return;
                }
            };
            self.adopt(fd);
            // A websocket client speaks first, and the listener defers accept until it has
            // (TCP_DEFER_ACCEPT): its request is there now (strace -c of 19,000 handshakes: no
            // read() returned EAGAIN), so read it rather than after another epoll_wait. Only a
            // client silent for the whole deferral is accepted with nothing to read.
            if self.slots.get(fd as usize).map(|s| s.state) == Some(State::Handshake) {
                self.on_readable(fd);
            }
        }
    }

    /// The family counter of an accepted connection: the listener's family, except on a
    /// dual-stack `[::]`, where the peer's address says (an IPv4 client shows IPv4-mapped).
    fn family_counter(&self, fd: RawFd) -> usize {
        match self.cfg.listen {
            std::net::SocketAddr::V4(_) => m::ACCEPTED_IPV4,
            std::net::SocketAddr::V6(a) if !a.ip().is_unspecified() => m::ACCEPTED_IPV6,
            std::net::SocketAddr::V6(_) => match net::peer_addr(fd).map(|a| a.ip()) {
                Ok(std::net::IpAddr::V6(ip)) if ip.to_ipv4_mapped().is_none() => m::ACCEPTED_IPV6,
                _ => m::ACCEPTED_IPV4,
            },
        }
    }

    /// Takes an accepted connection into the table, in the handshake, after the admission
    /// checks: its source's cap (refused with 503) and the handshake slots (the oldest
    /// handshake makes room).
    pub(super) fn adopt(&mut self, fd: RawFd) {
        let i = fd as usize;
        if i >= self.slots.len() {
            let want = (i / SLOT_CHUNK + 1) * SLOT_CHUNK;
            self.slots.resize_with(want, super::Slot::default);
        }
        let w = self.w();
        self.board.add(w, m::ACCEPTED, 1);
        self.board.add(w, self.family_counter(fd), 1);
        let cap = self.cfg.limits.max_per_source;
        if cap > 0 {
            let admitted = net::peer_addr(fd).is_ok_and(|a| self.sources.admit(fd, a.ip(), cap));
            if !admitted {
                // A plain close: the FIN follows the 503 (a reset could discard it).
                let _ = io::write(fd, &unavailable());
                let _ = io::close(fd);
                self.board.closed(w, CloseReason::SourceCap);
                return;
            }
        }
        if self.ep.add(fd, READ).is_err() {
            self.sources.release(fd);
            let _ = io::close(fd);
            return;
        }
        self.conns += 1;
        self.slots[i].state = State::Handshake;
        let d = self.deadline_after(self.cfg.limits.handshake_timeout_ms);
        self.set_deadline(i, d);
        self.handshakes.started(fd, d);
        if self.handshakes.count > self.cfg.limits.max_handshaking.max(1) {
            self.evict_oldest_handshake();
        }
        let slots = &self.slots;
        self.handshakes.prune(|fd, d| is_handshaking(slots, fd, d));
        self.board.set(w, m::CONNS, self.conns as u64);
        self.board
            .set(w, m::FDS, (self.base_fds + self.conns) as u64);
        self.board
            .set(w, m::HANDSHAKING, self.handshakes.count as u64);
    }

    /// The handshake slots are full: the oldest handshake gets 503 and is closed, so dribblers
    /// renewing their connections cannot keep new clients out.
    fn evict_oldest_handshake(&mut self) {
        let slots = &self.slots;
        if let Some(fd) = self.handshakes.oldest(|fd, d| is_handshaking(slots, fd, d)) {
            let _ = io::write(fd, &unavailable());
            let _ = net::set_abort_on_close(fd);
            self.close(fd, Some(CloseReason::HandshakeEvicted));
        }
    }

    /// Near the fd cap: take every connection already queued (into the fd reserve, so none is
    /// reset), then close the listener so the kernel sends new ones to the other workers of
    /// the SO_REUSEPORT group. With net.ipv4.tcp_migrate_req=1 the kernel also migrates
    /// half-open requests; without it a connection completing its TCP handshake in the
    /// microseconds between the last accept and close is reset (counted as accept errors by
    /// the client, never silently), and so is, with the deferred accept (see
    /// [`super::DEFER_ACCEPT_SECS`]), a client that has connected but not sent its request yet:
    /// until its first bytes it is a request in the SYN queue, not in the accept queue.
    pub(super) fn stop_listening(&mut self) {
        let Some(l) = self.listener.take() else {
            return;
        };
        let lfd = l.as_raw_fd();
        if !self.migrate_req {
            while let Ok(fd) = net::accept(lfd) {
                self.adopt(fd);
            }
        }
        let _ = self.ep.delete(lfd);
        drop(l);
        self.listener_fd = -1;
        let w = self.w();
        self.board.set(w, m::LISTENING, 0);
        self.board.add(w, m::LISTENER_PAUSES, 1);
    }

    pub(super) fn maybe_listen_again(&mut self) {
        if self.listener.is_some() || self.shutting_down.is_some() || self.conns > self.low {
            return;
        }
        if let Ok(l) = net::reuseport_listener(self.cfg.listen, &self.cfg.limits.listen_options()) {
            if self.ep.add(l.as_raw_fd(), EpollFlags::EPOLLIN).is_ok() {
                self.listener_fd = l.as_raw_fd();
                self.listener = Some(l);
                self.board.set(self.w(), m::LISTENING, 1);
            }
        }
    }
}

/// The response to a connection refused at admission (handshake slots or source cap).
pub(super) fn unavailable() -> Vec<u8> {
    handshake::http_response(
        503,
        "Service Unavailable",
        "Retry-After: 1\r\n",
        "text/plain",
        b"busy: too many handshakes in progress (or from this address); retry\n",
    )
}

fn is_handshaking(slots: &[super::Slot], fd: i32, deadline: u32) -> bool {
    slots
        .get(fd as usize)
        .is_some_and(|s| s.state == State::Handshake && s.deadline == deadline)
}
