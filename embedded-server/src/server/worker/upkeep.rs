//! The server worker's periodic work: deadlines (handshake, session, idle and ping, closing),
//! the memory budget, the stats it publishes, the shutdown in batches and the graceful
//! restart's drain (the same closes, spread evenly over a window).

use std::os::fd::{AsFd, RawFd};
use std::time::{Duration, Instant};

use super::{rss_bytes, State, Worker, WorkerExit, PING_SENT};
use crate::protocol::close;
use crate::protocol::frame;
use crate::protocol::handshake::Rejection;
use crate::protocol::session::{self, Phase, Role, Timeout};
use crate::server::admission;
use crate::server::metrics::{self as m, CloseReason};
use crate::sys::{io, net, Errno};

/// A burst of at least this much buffered heap is trimmed after it, once a quarter of it is left.
const TRIM_AFTER: usize = 4 << 20;
/// The most a drain waits for the supervisor's go (it waits up to 2 s for every old listener
/// to close) before its grace period counts.
const LISTENERS_WAIT: Duration = Duration::from_secs(3);
/// Reads of a connection's pending input at shutdown before it gets its 1001 anyway: enough
/// for a message or two and the peer's FIN behind them, bounded so a peer that keeps sending
/// cannot hold the shutdown.
const SHUTDOWN_READS: usize = 4;

/// A graceful restart's drain: the connections held when it began are closed (1001) evenly
/// over `window`, so their clients reconnect to the new workers a few at a time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Drain {
    /// When the closes began (the supervisor's go, once every old listener is closed).
    from: Option<Instant>,
    window: Duration,
    total: usize,
    closed: usize,
}

impl Drain {
    /// How many more may be closed now: the share of `total` the elapsed part of the window
    /// allows, less those closed already.
    fn due(&self, now: Instant) -> usize {
        let Some(from) = self.from else {
            return 0;
        };
        let w = self.window.as_secs_f64();
        let f = if w <= 0.0 {
            1.0
        } else {
            (now.duration_since(from).as_secs_f64() / w).min(1.0)
        };
        ((self.total as f64 * f).ceil() as usize).saturating_sub(self.closed)
    }
}

impl Worker {
    pub(super) fn tick(&mut self) -> Option<WorkerExit> {
        // Deadlines are in ticks: scan the table once per tick, not after every epoll_wait.
        if self.now != self.expired_at {
            self.expired_at = self.now;
            if self.timed > 0 {
                self.expire();
            }
            self.enforce_budget();
        }
        if self.last_stats.elapsed() >= Duration::from_secs(1) {
            self.last_stats = Instant::now();
            self.board.set(self.w(), m::RSS, rss_bytes());
        }
        let asked = self.board.global(m::G_SHUTDOWN) != 0;
        if asked && (self.shutting_down.is_none() || self.drain.is_some()) {
            self.begin_shutdown();
        }
        if self.shutting_down.is_none() {
            let drain_ms = self.board.get(self.w(), m::DRAIN_MS);
            if drain_ms > 0 {
                self.begin_drain(Duration::from_millis(drain_ms));
            }
        }
        if let Some(started) = self.shutting_down {
            self.close_batch();
            if self.conns == 0 {
                return Some(WorkerExit::Clean);
            }
            let window = self
                .drain
                .map_or(Duration::ZERO, |d| d.window + LISTENERS_WAIT);
            let grace = Duration::from_millis(self.cfg.limits.shutdown_grace_ms) + window;
            if started.elapsed() >= grace {
                return Some(WorkerExit::GraceExpired { left: self.conns });
            }
        } else {
            self.maybe_listen_again();
        }
        None
    }

    fn expire(&mut self) {
        let now = self.now;
        for i in 0..self.slots.len() {
            let d = self.slots[i].deadline;
            if d == 0 || d > now {
                continue;
            }
            let fd = i as RawFd;
            match self.slots[i].state {
                State::Handshake => {
                    self.board.rejected(self.w(), Rejection::Timeout);
                    self.board.closed(self.w(), CloseReason::HandshakeFailed);
                    // Best effort: tell a slow client why.
                    let _ = self
                        .tls
                        .write(i, self.slots.fd(i), &Rejection::Timeout.response());
                    self.close(fd, None);
                }
                State::Ws(Phase::Open) => self.expire_open(fd),
                State::Ws(phase) => self.expire_closing(fd, phase),
                State::Free => self.set_deadline(i, 0),
                State::HttpReply | State::HttpLinger => self.close_late(fd),
            }
        }
    }

    /// A closing connection out of time: a draining one gets its 1009 now (and a new linger),
    /// any other is closed.
    fn expire_closing(&mut self, fd: RawFd, mut phase: Phase) {
        let i = fd as usize;
        let mut conn = self.slots[i].conn.take();
        let close_now = session::expire(&mut phase, &mut conn, &self.scfg, &mut self.wbuf);
        self.slots[i].state = State::Ws(phase);
        if close_now {
            self.slots[i].conn = conn;
            self.close_late(fd);
            return;
        }
        let d = self.deadline_after(self.cfg.limits.close_linger_ms);
        self.set_deadline(i, d);
        self.after_processing(fd, conn);
    }

    /// Closes a connection whose closing deadline passed: a peer still holding unsent output is
    /// reset.
    fn close_late(&mut self, fd: RawFd) {
        let i = fd as usize;
        if self.slots[i]
            .conn
            .as_ref()
            .is_some_and(|c| c.pending_out() > 0)
        {
            let _ = net::set_abort_on_close(self.slots.fd(i));
        }
        self.close(fd, None);
    }

    /// An open websocket's deadline: a session deadline (frame, write), or silence (ping, idle).
    fn expire_open(&mut self, fd: RawFd) {
        let i = fd as usize;
        let timeout = self.slots[i]
            .conn
            .as_ref()
            .and_then(|c| c.expired(self.now_ms));
        match timeout {
            Some(Timeout::Write) => self.drop_non_reader(fd, CloseReason::WriteTimeout),
            Some(Timeout::Frame) => self.close_open(fd, close::POLICY, CloseReason::FrameTimeout),
            None if self.cfg.limits.ping_interval_ms > 0
                && self.slots[i].flags & PING_SENT == 0 =>
            {
                self.slots[i].flags |= PING_SENT;
                session::write_frame(Role::Server, &mut self.wbuf, frame::PING, b"");
                let conn = self.slots[i].conn.take();
                self.after_processing(fd, conn);
                let conn = self.slots[i].conn.take();
                self.rearm(i, &conn);
                self.slots[i].conn = conn;
            }
            None if self.idle_period_ms(true) > 0 => {
                self.close_open(fd, close::GOING_AWAY, CloseReason::IdleTimeout)
            }
            None => {
                let conn = self.slots[i].conn.take();
                self.set_deadline(i, 0);
                self.rearm(i, &conn);
                self.slots[i].conn = conn;
            }
        }
    }

    /// Adds up what every connection holds; past the budget, closes the largest holders:
    /// peers with unsent output do not read (1008 offered, then reset), the others hold a
    /// partial message (1009 once it has passed, then the close handshake).
    pub(super) fn enforce_budget(&mut self) {
        let mut held = 0;
        for s in self.slots.iter() {
            if let Some(c) = s.conn.as_ref() {
                held += c.footprint();
            }
        }
        self.buffered = held;
        self.board.set(self.w(), m::BUFFERED, held as u64);
        self.trim_after_burst();
        let budget = self.cfg.limits.memory_budget_bytes;
        if held <= budget {
            return;
        }
        let sizes = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.conn.as_ref().map(|c| (i as i32, c.footprint())))
            .collect();
        for fd in admission::over_budget(sizes, held, budget) {
            let i = fd as usize;
            let size = self.slots[i].conn.as_ref().map_or(0, |c| c.footprint());
            self.buffered = self.buffered.saturating_sub(size);
            let out = self.slots[i].conn.as_ref().map_or(0, |c| c.pending_out());
            if out > 0 || self.slots[i].state != State::Ws(Phase::Open) {
                self.drop_non_reader(fd, CloseReason::OverBudget);
            } else {
                self.refuse_message(fd);
            }
        }
    }

    /// After a burst (an attack, a wave of large messages) has gone: the heap is trimmed, so
    /// the process gives back what the burst made it allocate (large buffers are mmapped and
    /// unmapped when freed; this is for the small ones and the heap's free pages).
    fn trim_after_burst(&mut self) {
        self.trim_mark = self.trim_mark.max(self.buffered);
        if self.trim_mark >= TRIM_AFTER && self.buffered <= self.trim_mark / 4 {
            crate::sys::alloc::trim();
            self.trim_mark = self.buffered;
        }
    }

    pub(super) fn begin_shutdown(&mut self) {
        if self.shutting_down.is_some() {
            // A shutdown during a drain closes the rest now.
            self.drain = None;
            return;
        }
        self.shutting_down = Some(Instant::now());
        if let Some(l) = self.listener.take() {
            let _ = self.ep.delete(l.as_fd());
            self.listener_fd = -1;
        }
        let w = self.w();
        self.board.set(w, m::LISTENING, 0);
        self.board.set(w, m::PHASE, m::PHASE_DRAINING);
    }

    /// A graceful restart's old worker: the new workers listen already. Takes what the accept
    /// queue holds (unless the kernel migrates it: net.ipv4.tcp_migrate_req), closes the
    /// listener so new connections go to the new workers only, and starts closing its
    /// connections evenly over `window`.
    fn begin_drain(&mut self, window: Duration) {
        if let Some(l) = self.listener.take() {
            if !self.migrate_req {
                while let Ok(fd) = net::accept(l.as_fd()) {
                    // Its request is there (deferred accept): answered now, drained later.
                    if let Some(fd) = self.adopt(fd) {
                        self.on_readable(fd);
                    }
                }
            }
            self.listener = Some(l);
        }
        self.begin_shutdown();
        self.drain = Some(Drain {
            from: None,
            window,
            total: self.conns,
            closed: 0,
        });
    }

    /// Closes up to one batch of connections (during a drain, no more than its share so far):
    /// open websockets get a 1001 close frame first, unless the peer has closed already (see
    /// [`Worker::read_before_close`]); at shutdown in one write and no handshake (the worker is
    /// going away), during a drain with the close handshake.
    fn close_batch(&mut self) {
        let mut limit = self.cfg.limits.close_batch;
        let go = self.drain.is_some() && self.board.get(self.w(), m::DRAIN_GO) != 0;
        if let Some(d) = self.drain.as_mut() {
            if d.from.is_none() && go {
                d.from = Some(Instant::now());
                d.total = self.conns;
            }
            limit = limit.min(d.due(Instant::now()));
        }
        let mut n = 0;
        while n < limit && self.close_cursor < self.slots.len() {
            let i = self.close_cursor;
            self.close_cursor += 1;
            let fd = i as RawFd;
            let draining = self.drain.is_some();
            match self.slots[i].state {
                State::Free => continue,
                // A drain has time for the close handshake: the client answers our 1001 and
                // we close after it (or at the linger deadline), so the client's answer never
                // meets a closed socket (a reset). Connections closing already finish so.
                State::Ws(Phase::Open) if draining => {
                    if self.read_before_close(fd) {
                        self.close_open(fd, close::GOING_AWAY, CloseReason::Shutdown);
                    }
                }
                State::Ws(_) | State::HttpReply | State::HttpLinger if draining => continue,
                State::Ws(Phase::Open) => {
                    if self.read_before_close(fd) {
                        let mut phase = Phase::Open;
                        let mut conn = self.slots[i].conn.take();
                        let (cfg, out) = (&self.scfg, &mut self.wbuf);
                        session::initiate(&mut phase, &mut conn, cfg, close::GOING_AWAY, out);
                        let _ = self.tls.write(i, self.slots.fd(i), &self.wbuf);
                        self.wbuf.clear();
                        self.close(fd, Some(CloseReason::Shutdown));
                    } else if self.slots[i].state != State::Free {
                        self.close(fd, None);
                    }
                }
                State::Handshake => self.close(fd, Some(CloseReason::Shutdown)),
                _ => self.close(fd, None),
            }
            n += 1;
        }
        if let Some(d) = self.drain.as_mut() {
            d.closed += n;
        }
        if self.close_cursor >= self.slots.len() && self.conns > 0 {
            self.close_cursor = 0;
        }
    }

    /// Before a 1001 goes to an open websocket at shutdown, what the peer sent and we have not
    /// read yet is read and processed: a peer that has closed (its FIN is pending) is closed
    /// without a close frame, which its kernel would answer with a reset (EstabResets), and
    /// its messages are counted. Returns whether it is still open and should get the 1001.
    fn read_before_close(&mut self, fd: RawFd) -> bool {
        let i = fd as usize;
        for _ in 0..SHUTDOWN_READS {
            if self.slots[i].state != State::Ws(Phase::Open) {
                return false;
            }
            match io::peek(self.slots.fd(i)) {
                // Nothing pending: open and quiet.
                Err(Errno::EAGAIN) => return true,
                // EOF or data: read_and_process closes at EOF (peer_eof) or handles the data.
                Ok(_) => self.read_and_process(fd),
                Err(_) => {
                    self.close(fd, Some(CloseReason::IoError));
                    return false;
                }
            }
        }
        self.slots[i].state == State::Ws(Phase::Open)
    }

    /// Fd cap and the connection count at which the worker stops listening.
    pub fn fd_limits(&self) -> (usize, usize) {
        (self.fd_cap, self.high)
    }
}
