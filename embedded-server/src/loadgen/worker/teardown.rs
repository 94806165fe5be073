//! Closing the load worker's connections: in batches or at a rate when told to, through the
//! session's close machine (websocket mode) or with a plain TCP close, with a deadline on the
//! close handshake.

use std::os::fd::RawFd;
use std::time::Instant;

use super::{State, Worker, CLOSE_TIMEOUT_US, SESSION};
use crate::loadgen::board::{self as b, Cmd};
use crate::loadgen::{CloseMode, CLOSE_BATCH};
use crate::protocol::close;
use crate::protocol::session::{self, Phase};
use crate::sys::Errno;

impl Worker {
    /// An open connection enters its close handshake at `phase`.
    pub(super) fn start_closing(&mut self, i: usize, phase: Phase) {
        if self.slots[i].state == State::Echoing {
            self.echoing -= 1;
        }
        self.open -= 1;
        self.closing += 1;
        self.slots[i].state = State::Closing(phase);
        self.slots[i].t = self.now;
    }

    /// A closing connection whose output may have gone: our close frame sent moves the
    /// handshake on; at its end the connection is closed.
    pub(super) fn close_progress(&mut self, fd: RawFd) {
        let i = fd as usize;
        let State::Closing(mut phase) = self.slots[i].state else {
            return;
        };
        if self.slots[i]
            .pending
            .as_ref()
            .map_or(0, |p| p.pending_out())
            == 0
        {
            session::sent(&mut phase);
        }
        self.slots[i].state = State::Closing(phase);
        if phase == Phase::Done {
            self.finish_close(fd);
        } else {
            self.maybe_free_pending(i);
        }
    }

    /// The close handshake is over (or out of time): counted unless it was when it began.
    pub(super) fn finish_close(&mut self, fd: RawFd) {
        if !self.slots[fd as usize].counted {
            self.board.add(self.w(), b::CLOSED, 1);
        }
        self.release(fd);
    }

    /// Whether the close goes on without waiting: no close rate, not paused, something open.
    pub(super) fn closes_now(&self, cmd: Cmd) -> bool {
        self.cfg.close_per_sec.is_none() && self.open > 0 && !self.close_paused(cmd)
    }

    pub(super) fn close_paused(&self, cmd: Cmd) -> bool {
        cmd == Cmd::Close && self.board.global(b::G_CLOSE_PAUSED) != 0
    }

    /// Closes the next connections: a [`CLOSE_BATCH`] without a close rate, else what the
    /// token bucket allows; nothing while the parent pauses the close.
    pub(super) fn close_some(&mut self, cmd: Cmd) {
        let dt = self.last_refill.elapsed().as_secs_f64();
        self.last_refill = Instant::now();
        if self.close_paused(cmd) {
            return;
        }
        self.close_tokens = match self.cfg.close_per_sec {
            Some(r) => (self.close_tokens + dt * r as f64).min(r as f64 / 20.0 + 1.0),
            None => CLOSE_BATCH as f64,
        };
        while self.close_tokens >= 1.0 && self.close_cursor < self.slots.len() {
            let i = self.close_cursor;
            self.close_cursor += 1;
            let fd = i as RawFd;
            match self.slots[i].state {
                State::Free | State::Closing(_) => continue,
                State::Connecting | State::Handshaking => {
                    self.board.add(self.w(), b::CLOSED, 1);
                    self.release(fd);
                }
                State::Open | State::Echoing => self.close_open(fd),
            }
            self.close_tokens -= 1.0;
        }
        if self.close_cursor >= self.slots.len() && self.live() > self.closing {
            // Connections opened behind the cursor (a connect completing late): go round again.
            self.close_cursor = 0;
        }
    }

    /// Starts the close of an open connection, the way the run was told to.
    pub(super) fn close_open(&mut self, fd: RawFd) {
        let i = fd as usize;
        match self.cfg.close_mode {
            CloseMode::Tcp => {
                self.board.add(self.w(), b::CLOSED, 1);
                self.release(fd);
            }
            CloseMode::Websocket => {
                let mut phase = Phase::Open;
                let mut p = self.slots[i].pending.take();
                let mut out = std::mem::take(&mut self.obuf);
                session::initiate(&mut phase, &mut p, &SESSION, close::NORMAL, &mut out);
                self.slots[i].pending = p;
                self.start_closing(i, phase);
                let sent = self.send_bytes(fd, &out);
                out.clear();
                self.obuf = out;
                if sent {
                    self.close_progress(fd);
                }
            }
        }
    }

    pub(super) fn expire(&mut self) {
        let timeout_us = self.cfg.connect_timeout_ms.saturating_mul(1000);
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            let age = self.since(s.t);
            match s.state {
                State::Connecting | State::Handshaking if age > timeout_us => {
                    let class = self.timeout_class(i);
                    self.fail(i as RawFd, class, Errno::ETIMEDOUT as i32)
                }
                State::Closing(_) if age > CLOSE_TIMEOUT_US as u64 => self.finish_close(i as RawFd),
                _ => {}
            }
        }
    }
}
