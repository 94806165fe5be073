//! What the load worker sends on open connections: frames (output the socket does not take is
//! kept in the session), echo rounds and the periodic messages of --message-interval.

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::{State, Worker, SESSION};
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
            self.echo_window = EchoWindow::new(Instant::now());
        }
        let window = self.echo_window.size(Instant::now());
        while self.echo_cursor < self.slots.len() && self.echoing < window {
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

/// Most echo messages in flight per process: bounds unread echoes (one page each in the kernel).
const ECHO_WINDOW_MAX: usize = 1024;
/// Fewest: enough to keep a process's share of the server busy between two of its wakes.
const ECHO_WINDOW_MIN: usize = 32;
/// The window a round starts with, before any rate is measured.
const ECHO_WINDOW_START: usize = 128;
/// The latency the window aims at: an echo's time is the server's work plus the queue in front
/// of it, and a queue longer than this adds latency without adding echoes per second.
const ECHO_TARGET: Duration = Duration::from_millis(40);
/// How often the window is resized from the echoes completed since the last resize.
const ECHO_RESIZE: Duration = Duration::from_millis(50);

/// The echo messages one process keeps in flight during a round, sized from its own measured
/// echo rate (Little's law: in flight = rate × latency): enough for [`ECHO_TARGET`] of echoes at
/// the rate the server answers, so the server is never idle for want of messages and the queue
/// in front of it stays short (the reported latency is the server's pace, not our queue's).
#[derive(Debug, Clone, Copy)]
pub(super) struct EchoWindow {
    size: usize,
    done: u64,
    since: Instant,
}

impl EchoWindow {
    pub(super) fn new(now: Instant) -> Self {
        EchoWindow {
            size: ECHO_WINDOW_START,
            done: 0,
            since: now,
        }
    }

    /// One echo of the round came back.
    pub(super) fn completed(&mut self) {
        self.done += 1;
    }

    /// The window now, resized every [`ECHO_RESIZE`] from the echoes completed since.
    pub(super) fn size(&mut self, now: Instant) -> usize {
        let dt = now.saturating_duration_since(self.since);
        if dt >= ECHO_RESIZE {
            if self.done > 0 {
                let rate = self.done as f64 / dt.as_secs_f64();
                self.size = next_window(self.size, rate);
            }
            self.done = 0;
            self.since = now;
        }
        self.size
    }
}

/// The window for a measured rate (echoes a second): rate × [`ECHO_TARGET`], moving at most 2x
/// per resize (a stalled interval neither collapses nor explodes it), within the bounds.
pub(super) fn next_window(current: usize, rate: f64) -> usize {
    let want = (rate * ECHO_TARGET.as_secs_f64()).ceil() as usize;
    want.clamp(current / 2, current.saturating_mul(2))
        .clamp(ECHO_WINDOW_MIN, ECHO_WINDOW_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_follows_the_rate_within_bounds() {
        // 10,000 echoes/s for 40 ms is 400 in flight: reached from 128 in two doublings.
        assert_eq!(next_window(128, 10_000.0), 256);
        assert_eq!(next_window(256, 10_000.0), 400);
        assert_eq!(next_window(400, 10_000.0), 400);
        // A slow interval halves it at most, and never below the floor.
        assert_eq!(next_window(400, 10.0), 200);
        assert_eq!(next_window(40, 10.0), ECHO_WINDOW_MIN);
        // Never past the cap, however fast.
        assert_eq!(next_window(1024, 1e7), ECHO_WINDOW_MAX);
    }

    #[test]
    fn window_resizes_only_after_an_interval_with_echoes() {
        let t0 = Instant::now();
        let mut w = EchoWindow::new(t0);
        assert_eq!(w.size(t0), ECHO_WINDOW_START);
        for _ in 0..1000 {
            w.completed();
        }
        // Too soon: unchanged.
        assert_eq!(w.size(t0 + ECHO_RESIZE / 2), ECHO_WINDOW_START);
        // 1,000 in 50 ms is 20,000/s: 800 wanted, 256 allowed this step.
        assert_eq!(w.size(t0 + ECHO_RESIZE), 256);
        // An interval with no echo keeps the window.
        assert_eq!(w.size(t0 + ECHO_RESIZE * 3), 256);
    }
}
