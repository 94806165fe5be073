//! Admission for the server worker: accepting in batches, the per-source cap and the
//! handshake slots, and pausing the listener near the fd cap (and listening again below it).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::{State, Worker, ACCEPT_BATCH, SLOT_CHUNK};
use crate::protocol::handshake;
use crate::server::metrics::{self as m, CloseReason};
use crate::sys::epoll::{EpollFlags, READ};
use crate::sys::fdtable::FdTable;
use crate::sys::{io, net, Errno};

impl Worker {
    pub(super) fn accept_some(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            if self.conns >= self.high {
                self.stop_listening();
                return;
            }
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            let fd = match net::accept(listener.as_fd()) {
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
            let Some(fd) = self.adopt(fd) else {
                continue;
            };
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
    fn family_counter(&self, fd: BorrowedFd<'_>) -> usize {
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
    /// Returns its fd, or None when it was refused.
    pub(super) fn adopt(&mut self, sock: OwnedFd) -> Option<RawFd> {
        let fd = sock.as_raw_fd();
        let w = self.w();
        self.board.add(w, m::ACCEPTED, 1);
        self.board.add(w, self.family_counter(sock.as_fd()), 1);
        let cap = self.cfg.limits.max_per_source;
        if cap > 0 {
            let peer = net::peer_addr(sock.as_fd());
            let admitted = peer.is_ok_and(|a| self.sources.admit(fd, a.ip(), cap));
            if !admitted {
                // A plain close (the socket dropped): the FIN follows the 503 (a reset could
                // discard it).
                if self.tls_cfg.is_none() {
                    let _ = io::write(sock.as_fd(), &unavailable());
                }
                self.board.closed(w, CloseReason::SourceCap);
                return None;
            }
        }
        let i = self.slots.adopt(sock, SLOT_CHUNK);
        if !self.tls_open(i) || self.ep.add(self.slots.fd(i), READ).is_err() {
            self.tls.remove(i, None);
            self.sources.release(fd);
            self.slots.close(i);
            return None;
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
        Some(fd)
    }

    /// The handshake slots are full: the oldest handshake gets 503 and is closed, so dribblers
    /// renewing their connections cannot keep new clients out.
    fn evict_oldest_handshake(&mut self) {
        let slots = &self.slots;
        if let Some(fd) = self.handshakes.oldest(|fd, d| is_handshaking(slots, fd, d)) {
            let _ = self
                .tls
                .write(fd as usize, self.slots.fd(fd as usize), &unavailable());
            let _ = net::set_abort_on_close(self.slots.fd(fd as usize));
            self.close(fd, Some(CloseReason::HandshakeEvicted));
        }
    }

    /// Near the fd cap: take the connections already queued (into the fd reserve: with the
    /// default backlog the queue can be deeper than the reserve, and accept then fails with
    /// EMFILE and the rest is reset at the close below unless the kernel migrates it), then
    /// close the listener so the kernel sends new ones to the other workers of
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
        if !self.migrate_req {
            while let Ok(fd) = net::accept(l.as_fd()) {
                self.adopt(fd);
            }
        }
        let _ = self.ep.delete(l.as_fd());
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
            if self.ep.add(l.as_fd(), EpollFlags::EPOLLIN).is_ok() {
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

fn is_handshaking(slots: &FdTable<super::Slot>, fd: i32, deadline: u32) -> bool {
    slots
        .get(fd as usize)
        .is_some_and(|s| s.state == State::Handshake && s.deadline == deadline)
}
