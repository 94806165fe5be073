//! How a server connection ends: counted once, when the close begins (an HTTP answer, the
//! websocket close handshake, a peer that does not read), then the fd closed and the slot freed.

use std::os::fd::RawFd;

use super::{State, Worker};
use crate::protocol::close;
use crate::protocol::session::{self, Phase};
use crate::server::metrics::{self as m, CloseReason};
use crate::sys::net;

impl Worker {
    /// Closes the fd and frees its slot. `reason` is counted unless it was counted when the
    /// close was decided (lingering states pass None).
    pub(super) fn close(&mut self, fd: RawFd, reason: Option<CloseReason>) {
        let i = fd as usize;
        let w = self.w();
        match self.slots[i].state {
            State::Ws(Phase::Open) => self.board.sub(w, m::WS_OPEN, 1),
            State::Handshake => self.handshake_ended(),
            _ => {}
        }
        if let Some(r) = reason {
            self.board.closed(w, r);
        }
        self.set_deadline(i, 0);
        self.tls.remove(i, Some(self.slots.fd(i)));
        self.slots.close(i);
        self.sources.release(fd);
        self.conns -= 1;
        self.board.set(w, m::CONNS, self.conns as u64);
        self.board
            .set(w, m::FDS, (self.base_fds + self.conns) as u64);
        self.maybe_listen_again();
    }

    /// A peer that does not read: a 1008 close frame is queued behind its output (whole frames,
    /// so the stream stays valid) and offered in one last write, then the connection is reset
    /// (SO_LINGER 0) so neither our heap nor the kernel keeps its unsent data (no FIN_WAIT1 with
    /// a full send queue).
    pub(super) fn drop_non_reader(&mut self, fd: RawFd, reason: CloseReason) {
        let i = fd as usize;
        let counted = matches!(
            self.slots[i].state,
            State::Ws(Phase::Open) | State::Handshake
        );
        if let State::Ws(mut phase) = self.slots[i].state {
            let mut f = Vec::with_capacity(4);
            let (sock, slot) = self.slots.fd_and_slot(i);
            let conn = &mut slot.conn;
            session::initiate(&mut phase, conn, &self.scfg, close::POLICY, &mut f);
            session::queue_unsent(conn, &self.scfg, self.now_ms, &f);
            if let Some(c) = conn.as_ref() {
                let _ = self.tls.write(i, sock, c.unsent());
            }
        }
        let _ = net::set_abort_on_close(self.slots.fd(i));
        self.close(fd, counted.then_some(reason));
    }

    pub(super) fn handshake_ended(&mut self) {
        self.handshakes.ended();
        self.board
            .set(self.w(), m::HANDSHAKING, self.handshakes.count as u64);
    }

    /// Leaves an HTTP request for its answer and linger, counting the reason now.
    pub(super) fn begin_http_reply(&mut self, fd: RawFd, reason: CloseReason) {
        let i = fd as usize;
        self.handshake_ended();
        self.board.closed(self.w(), reason);
        self.slots[i].state = State::HttpReply;
        let d = self.deadline_after(self.cfg.limits.close_linger_ms);
        self.set_deadline(i, d);
    }

    /// An open websocket entered its close handshake (`phase`): counted now, with the linger
    /// deadline that bounds the rest.
    pub(super) fn leave_open(&mut self, fd: RawFd, phase: Phase, reason: CloseReason) {
        let i = fd as usize;
        let w = self.w();
        self.board.sub(w, m::WS_OPEN, 1);
        self.board.closed(w, reason);
        self.slots[i].state = State::Ws(phase);
        let d = self.deadline_after(self.cfg.limits.close_linger_ms);
        self.set_deadline(i, d);
    }

    /// We close an open websocket with `code` (a deadline): our close frame is queued, then the
    /// close handshake.
    pub(super) fn close_open(&mut self, fd: RawFd, code: u16, reason: CloseReason) {
        let i = fd as usize;
        let mut conn = self.slots[i].conn.take();
        let mut phase = Phase::Open;
        session::initiate(&mut phase, &mut conn, &self.scfg, code, &mut self.wbuf);
        self.leave_open(fd, phase, reason);
        self.after_processing(fd, conn);
    }

    /// Over the memory budget while a message arrives: it is drained and refused with 1009.
    pub(super) fn refuse_message(&mut self, fd: RawFd) {
        let i = fd as usize;
        let mut conn = self.slots[i].conn.take();
        let mut phase = Phase::Open;
        session::refuse_message(&mut phase, &mut conn, &self.scfg, &mut self.wbuf);
        self.leave_open(fd, phase, CloseReason::OverBudget);
        self.after_processing(fd, conn);
    }
}
