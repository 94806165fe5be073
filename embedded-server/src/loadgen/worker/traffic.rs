//! What the load worker sends on open connections: frames (output the socket does not take is
//! kept in the session), echo rounds and the periodic messages of --message-interval.

use std::os::fd::RawFd;
use std::time::Instant;

use super::{State, Worker, ECHO_WINDOW, SESSION};
use crate::loadgen::board as b;
use crate::loadgen::ECHO_PAYLOAD;
use crate::protocol::frame;
use crate::protocol::session::{self, Role};
use crate::protocol::OpCode;
use crate::sys::epoll::{READ, WRITE};
use crate::sys::Errno;

impl Worker {
    /// Sends one masked frame; output the socket does not take is kept in the connection's
    /// session.
    pub(super) fn send_frame(&mut self, fd: RawFd, opcode: OpCode, payload: &[u8]) -> bool {
        let mut out = std::mem::take(&mut self.obuf);
        session::write_frame(Role::Client, &mut out, opcode, payload);
        let ok = self.send_bytes(fd, &out);
        out.clear();
        self.obuf = out;
        ok
    }

    /// Writes `bytes` after any output already queued; false when the connection was lost.
    pub(super) fn send_bytes(&mut self, fd: RawFd, bytes: &[u8]) -> bool {
        let i = fd as usize;
        let queued = self.slots[i]
            .pending
            .as_ref()
            .is_some_and(|p| p.pending_out() > 0);
        let written = if queued {
            0
        } else {
            match self.tls.write(i, self.slots.fd(i), bytes) {
                Ok(k) => k,
                Err(Errno::EAGAIN) => 0,
                Err(e) => {
                    self.lost(fd, e);
                    return false;
                }
            }
        };
        if written < bytes.len() {
            session::queue_unsent(&mut self.slots[i].pending, &SESSION, 0, &bytes[written..]);
            let _ = self.ep.modify(self.slots.fd(i), READ | WRITE);
        } else if self.tls.wants_write(i) {
            let _ = self.ep.modify(self.slots.fd(i), READ | WRITE);
        }
        true
    }

    pub(super) fn send_message(&mut self, fd: RawFd, round: bool) {
        let i = fd as usize;
        self.slots[i].state = State::Echoing;
        self.slots[i].t = self.now;
        self.slots[i].round = round;
        self.echoing += 1;
        let w = self.w();
        self.board
            .add(w, if round { b::ECHO_SENT } else { b::MSG_SENT }, 1);
        self.send_frame(fd, frame::TEXT, ECHO_PAYLOAD);
    }

    pub(super) fn echo_some(&mut self) {
        let round = self.board.global(b::G_ECHO_ROUND);
        if round != self.echo_round {
            self.echo_round = round;
            self.echo_cursor = 0;
        }
        while self.echo_cursor < self.slots.len() && self.echoing < ECHO_WINDOW {
            let i = self.echo_cursor;
            self.echo_cursor += 1;
            if self.slots[i].state == State::Open {
                self.send_message(i as RawFd, true);
            }
        }
    }

    pub(super) fn messages_some(&mut self) {
        let Some(ms) = self.cfg.message_interval_ms else {
            return;
        };
        // Every open connection gets one message per interval, spread evenly over it.
        let dt = self.last_msg.elapsed().as_secs_f64();
        self.last_msg = Instant::now();
        self.msg_budget += self.open as f64 * dt * 1000.0 / ms.max(1) as f64;
        let mut scanned = 0;
        while self.msg_budget >= 1.0 && scanned < self.slots.len() && !self.slots.is_empty() {
            let i = self.msg_cursor % self.slots.len();
            self.msg_cursor = self.msg_cursor.wrapping_add(1);
            scanned += 1;
            if self.slots[i].state == State::Open {
                self.msg_budget -= 1.0;
                self.send_message(i as RawFd, false);
            }
        }
        self.msg_budget = self.msg_budget.min(self.open as f64);
    }
}
