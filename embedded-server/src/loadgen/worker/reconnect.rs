//! Reconnect storms in the client process: on [`Cmd::Storm`](crate::loadgen::Cmd) every lost
//! connection (dropped on the parent's word, closed by the server, or an attempt that failed)
//! is queued to reconnect at the time the reconnect policy draws, and the due ones connect with
//! no cap on connects in flight: as fast as this process can send SYNs. Reconnect handshakes
//! go to their own histogram. A client still not back after
//! [`GIVE_UP_AFTER`](crate::loadgen::storm::GIVE_UP_AFTER) gives up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::os::fd::RawFd;

use hdrhistogram::Histogram;

use super::{new_hist, State, Worker, HIST_MAX_US};
use crate::loadgen::board::{self as b, Cmd};
use crate::loadgen::storm::{ReconnectPolicy, GIVE_UP_AFTER};

/// Connects started per pass of the event loop: enough to send SYNs back to back, few enough
/// that the loop still reads the 101s of the first ones before the queue of the last ones is
/// full.
const CONNECTS_PER_PASS: usize = 256;

/// One client waiting to reconnect: due at `due` µs (from the worker's start), its connection
/// lost at `since`, after `attempts` failed attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    due: u64,
    since: u64,
    attempts: u32,
}

/// What a client connecting in a storm carries: when it lost its connection, attempts so far.
#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    since: u64,
    attempts: u32,
}

/// The storm's state in one client process.
#[derive(Debug)]
pub(super) struct Storm {
    active: bool,
    /// The drop word last acted on.
    drop_epoch: u64,
    policy: ReconnectPolicy,
    queue: BinaryHeap<Reverse<Due>>,
    /// Per fd while a reconnect attempt is in flight (allocated when the storm starts).
    meta: Vec<Option<Meta>>,
    /// The client whose attempt is being started (moves into `meta` once it has an fd).
    starting: Option<Meta>,
    pub(super) hist: Histogram<u64>,
}

impl Default for Storm {
    fn default() -> Self {
        Storm {
            active: false,
            drop_epoch: 0,
            policy: ReconnectPolicy::default(),
            queue: BinaryHeap::new(),
            meta: Vec::new(),
            starting: None,
            hist: new_hist(),
        }
    }
}

impl Storm {
    pub(super) fn active(&self) -> bool {
        self.active
    }
}

impl Worker {
    /// µs since the worker started, not wrapping (the queue's clock).
    fn clock_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// One pass of the storm: take up the policy and the drop word, drop what the parent says,
    /// give up on the clients past the limit, start the due connects.
    pub(super) fn storm_some(&mut self) {
        if !self.storm.active {
            self.storm_begin();
        }
        let epoch = self.board.global(b::G_STORM_DROP);
        if epoch != self.storm.drop_epoch {
            self.storm.drop_epoch = epoch;
            self.drop_all();
        }
        let now = self.clock_us();
        let give_up = GIVE_UP_AFTER.as_micros() as u64;
        let mut started = 0;
        while started < CONNECTS_PER_PASS {
            let Some(Reverse(d)) = self.storm.queue.peek().copied() else {
                break;
            };
            if d.due > now {
                break;
            }
            self.storm.queue.pop();
            if now.saturating_sub(d.since) > give_up {
                self.board.add(self.w(), b::GAVE_UP, 1);
                continue;
            }
            self.storm.starting = Some(Meta {
                since: d.since,
                attempts: d.attempts,
            });
            self.start_connect();
            // Failed before it had an fd (no port, no memory): a failed attempt.
            if let Some(m) = self.storm.starting.take() {
                self.requeue(m.since, m.attempts + 1);
            }
            started += 1;
        }
        self.board
            .set(self.w(), b::STORM_DUE, self.storm.queue.len() as u64);
    }

    /// Takes up the storm's policy (the drop word is [`Worker::storm_some`]'s).
    fn storm_begin(&mut self) {
        self.storm.active = true;
        self.storm.meta = vec![None; self.slots.len()];
        self.storm.policy = ReconnectPolicy::from_words(
            self.board.global(b::G_RECONNECT_JITTER_MS),
            self.board.global(b::G_RECONNECT_BACKOFF_MS),
        );
    }

    /// Whether a storm is on: taken up here when the command word says so before the loop
    /// has seen it (a restarted server's drops arrive in the same pass as the command).
    pub(super) fn in_storm(&mut self) -> bool {
        if !self.storm.active && Cmd::from_u64(self.board.global(b::G_CMD)) == Cmd::Storm {
            self.storm_begin();
        }
        self.storm.active
    }

    /// The drop word changed: every open connection is closed at once and queued.
    fn drop_all(&mut self) {
        for i in 0..self.slots.len() {
            if matches!(self.slots[i].state, State::Open | State::Echoing) {
                self.release(i as RawFd);
            }
        }
    }

    /// Milliseconds until the next reconnect is due (0: now), `None` with nothing queued.
    pub(super) fn storm_wait_ms(&self) -> Option<i32> {
        let Reverse(d) = self.storm.queue.peek()?;
        let left = d.due.saturating_sub(self.clock_us());
        Some(left.div_ceil(1000).min(50) as i32)
    }

    /// A connect of the storm got its fd: it carries the client's attempts from now on.
    pub(super) fn storm_adopted(&mut self, fd: RawFd) {
        if let Some(m) = self.storm.starting.take() {
            if let Some(slot) = self.storm.meta.get_mut(fd as usize) {
                *slot = Some(m);
            }
        }
    }

    /// A connection is being released in a storm (its state before): an open one was lost and
    /// queues its first reconnect, a connect or handshake failed and queues its next attempt.
    pub(super) fn storm_released(&mut self, fd: RawFd, was: State) {
        let now = self.clock_us();
        let meta = self.storm.meta.get_mut(fd as usize).and_then(Option::take);
        match was {
            State::Open | State::Echoing => self.requeue(now, 0),
            State::Closing(_) if self.slots[fd as usize].counted => self.requeue(now, 0),
            State::Connecting | State::Handshaking => {
                let m = meta.unwrap_or(Meta {
                    since: now,
                    attempts: 0,
                });
                self.board.add(self.w(), b::STORM_FAILED, 1);
                self.requeue(m.since, m.attempts + 1);
            }
            _ => {}
        }
    }

    fn requeue(&mut self, since: u64, attempts: u32) {
        let wait = self.storm.policy.delay(attempts, fastrand::f64());
        let due = self.clock_us() + wait.as_micros() as u64;
        self.storm.queue.push(Reverse(Due {
            due,
            since,
            attempts,
        }));
    }

    /// A reconnect completed its handshake (`took` µs from its connect).
    pub(super) fn storm_opened(&mut self, fd: RawFd, took: u64) {
        if let Some(slot) = self.storm.meta.get_mut(fd as usize) {
            *slot = None;
        }
        let _ = self.storm.hist.record(took.clamp(1, HIST_MAX_US));
        self.board.add(self.w(), b::STORM_OPENED, 1);
    }

    /// The parent moved on from the storm: the clients still waiting have given up.
    pub(super) fn storm_end(&mut self) {
        if !self.storm.active {
            return;
        }
        self.storm.active = false;
        let left = self.storm.queue.len() as u64;
        self.storm.queue.clear();
        self.board.add(self.w(), b::GAVE_UP, left);
        self.board.set(self.w(), b::STORM_DUE, 0);
    }
}
