//! One worker: one epoll instance, one SO_REUSEPORT listener, a connection table indexed by fd
//! with a 16-byte [`Slot`] per connection, and one read buffer and one write buffer shared by the
//! whole loop. The websocket protocol itself is [`session`]: a connection owns heap memory (a
//! [`Session`]) only while something is in flight (a partial request or frame, a fragmented
//! message, unsent output) and frees it when that is done: an idle websocket costs its slot.
//!
//! What bounds a hostile client: per connection, --max-handshake, --max-message and
//! --max-output; over time, the handshake, frame and write deadlines; for the worker as a whole,
//! the memory budget (largest holders closed), the handshake slots (oldest closed) and the
//! optional per-source cap.
//!
//! The close handshake is the session's close machine ([`Phase`], kept in the slot); this loop
//! feeds it, writes what it queues and closes the socket when it says so. Admission is in
//! [`accept`], the HTTP side in [`http`], how a connection ends in [`ending`], deadlines, the
//! budget and shutdown in [`upkeep`].

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use anyhow::Context as _;

use super::admission::{Handshakes, Sources};
use super::metrics::{self as m, Board, CloseReason};
use super::{Mode, WorkerConfig};
use crate::protocol::session::{self, Event, Phase, Role, Session, Status};
use crate::sys::epoll::{Epoll, EpollEvent, EpollFlags, READ, READABLE, WRITE};
use crate::sys::fdtable::FdTable;
use crate::sys::signal::Signals;
use crate::sys::{io, net, Errno};

/// Bytes read per read(2) into the loop's shared buffer.
const READ_BUF: usize = 64 * 1024;
/// The shared write buffer is shrunk back to this after a large reply, so one big echo does not
/// keep memory for the life of the worker.
const WRITE_BUF_KEEP: usize = 256 * 1024;
/// Connections accepted per readiness of the listener before other events get a turn.
const ACCEPT_BATCH: usize = 128;
/// Events taken per epoll_wait.
const EVENTS: usize = 1024;
/// Timer resolution: deadlines are in ticks of this many milliseconds since the loop started.
const TICK_MS: u64 = 100;
/// Slots are added in chunks of this many fds as higher fds appear.
const SLOT_CHUNK: usize = 1024;
/// Slot flag: a ping was sent and no traffic came back since.
const PING_SENT: u8 = 1;

mod accept;
mod ending;
mod http;
mod tls;
mod upkeep;

/// Lifecycle of a connection (one byte: `Phase` leaves room for the other states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// No connection on this fd.
    #[default]
    Free,
    /// Accepted, request head not complete yet (deadline set).
    Handshake,
    /// Send what is queued (an HTTP response), then shut the write side and linger.
    HttpReply,
    /// Write side shut; read and discard until the peer closes or the deadline passes.
    HttpLinger,
    /// A websocket, open or in its close handshake. While closing, the write side stays open
    /// (browsers report an unclean close when it is shut first).
    Ws(Phase),
}

/// The per-connection entry of the table: 16 bytes.
#[derive(Debug, Default)]
struct Slot {
    /// Heap state, only while something is in flight.
    conn: Option<Box<Session>>,
    /// Tick at which the connection needs attention (0: none): a handshake or linger deadline,
    /// the session's next deadline, or the idle/ping deadline.
    deadline: u32,
    state: State,
    /// Whether EPOLLOUT is in the interest set.
    want_write: bool,
    /// PING_SENT.
    flags: u8,
}

/// How the worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerExit {
    /// Shutdown requested (signal or supervisor flag) and every connection closed.
    Clean,
    /// Shutdown requested, grace period over with connections still open.
    GraceExpired { left: usize },
}

/// The event loop of one worker.
pub struct Worker {
    cfg: WorkerConfig,
    /// The session limits derived from `cfg`.
    scfg: session::Config,
    board: Board,
    ep: Epoll,
    listener: Option<OwnedFd>,
    listener_fd: RawFd,
    signals: Signals,
    /// The connections, indexed by fd; the table owns their sockets.
    slots: FdTable<Slot>,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    start: Instant,
    /// Ticks since the loop started (+1, so 0 can mean "no deadline").
    now: u32,
    /// Milliseconds since the loop started: the session clock.
    now_ms: u64,
    /// Client connections held (any state but Free).
    conns: usize,
    /// Slots with a deadline set.
    timed: usize,
    handshakes: Handshakes,
    sources: Sources,
    /// Heap the connections held at the last scan (what the budget counts).
    buffered: usize,
    /// The most `buffered` reached since the heap was last trimmed.
    trim_mark: usize,
    /// Fds open besides client connections (epoll, signalfd, memfd, stdio, listener).
    base_fds: usize,
    fd_cap: usize,
    /// Stop listening at this many connections; listen again below `low`.
    high: usize,
    low: usize,
    shutting_down: Option<Instant>,
    /// A graceful restart's drain: connections closed evenly over a window.
    drain: Option<upkeep::Drain>,
    close_cursor: usize,
    last_stats: Instant,
    /// Tick of the last deadline scan.
    expired_at: u32,
    migrate_req: bool,
    /// `--tls`: the server configuration, and the connections' TLS state.
    tls_cfg: Option<std::sync::Arc<rustls::ServerConfig>>,
    tls: crate::tls::Layer,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.cfg.index)
            .field("conns", &self.conns)
            .finish()
    }
}

pub use crate::sys::proc::rss_bytes;

/// Descriptors open before any connection (8 when /proc cannot tell).
fn count_open_fds() -> usize {
    crate::sys::proc::open_fds().unwrap_or(8)
}

/// The session limits a worker's configuration gives.
fn session_config(cfg: &WorkerConfig) -> session::Config {
    session::Config {
        role: Role::Server,
        max_message: cfg.limits.max_message_bytes as u64,
        keep_payload: cfg.mode == Mode::Echo,
        frame_timeout_ms: cfg.limits.frame_timeout_ms,
        write_timeout_ms: cfg.limits.write_timeout_ms,
    }
}

impl Worker {
    /// Sets the worker up: raises the soft fd limit to the hard one, maps the shared counters,
    /// binds its listener, and announces itself ready.
    pub fn new(cfg: WorkerConfig) -> anyhow::Result<Self> {
        let (signals, fd_cap, board) =
            crate::child::start("supervisor", cfg.supervisor_pid, cfg.shm_fd, cfg.workers)?;
        let fd_cap = fd_cap as usize;
        // Buffers an attack makes it allocate go back to the kernel when freed.
        crate::sys::alloc::pin_mmap_threshold();
        let ep = Epoll::new().context("epoll_create1")?;
        let listener = net::reuseport_listener(cfg.listen, &cfg.limits.listen_options())
            .with_context(|| format!("listening on {}", cfg.listen))?;
        let listener_fd = listener.as_raw_fd();
        ep.add(listener.as_fd(), EpollFlags::EPOLLIN)?;
        ep.add(signals.as_fd(), EpollFlags::EPOLLIN)?;
        let base_fds = count_open_fds();
        let reserve = cfg.limits.fd_reserve_in_effect() + super::FD_MARGIN;
        let high = fd_cap.saturating_sub(reserve + base_fds).max(1);
        let low = high.saturating_sub(high / 20 + 1);
        let w = cfg.index;
        board.set(w, m::PID, std::process::id() as u64);
        board.set(w, m::FD_CAP, fd_cap as u64);
        board.set(w, m::FDS, base_fds as u64);
        board.set(w, m::LISTENING, 1);
        board.set(w, m::RSS, rss_bytes());
        board.set(w, m::PHASE, m::PHASE_ACCEPTING);
        let tls_cfg = cfg.tls.as_ref().map(|t| t.config()).transpose()?;
        Ok(Worker {
            scfg: session_config(&cfg),
            cfg,
            board,
            ep,
            listener: Some(listener),
            listener_fd,
            signals,
            slots: FdTable::new(),
            rbuf: vec![0u8; READ_BUF],
            wbuf: Vec::with_capacity(4096),
            start: Instant::now(),
            now: 0,
            now_ms: 0,
            conns: 0,
            timed: 0,
            handshakes: Handshakes::default(),
            sources: Sources::default(),
            buffered: 0,
            trim_mark: 0,
            base_fds,
            fd_cap,
            high,
            low,
            shutting_down: None,
            drain: None,
            close_cursor: 0,
            last_stats: Instant::now(),
            expired_at: 0,
            migrate_req: net::tcp_migrate_req(),
            tls_cfg,
            tls: crate::tls::Layer::default(),
        })
    }

    /// Runs the loop until shutdown completes.
    pub fn run(mut self) -> anyhow::Result<WorkerExit> {
        let mut events = vec![EpollEvent::empty(); EVENTS];
        loop {
            let timeout = if self.shutting_down.is_some() {
                self.cfg.limits.close_batch_interval_ms as i32
            } else {
                TICK_MS as i32
            };
            let n = self.ep.wait(&mut events, timeout).context("epoll_wait")?;
            self.now_ms = self.start.elapsed().as_millis() as u64;
            self.now = (self.now_ms / TICK_MS) as u32 + 1;
            for ev in &events[..n] {
                let fd = ev.data() as RawFd;
                let flags = ev.events();
                if fd == self.listener_fd && self.listener.is_some() {
                    self.accept_some();
                } else if fd == self.signals.as_raw_fd() {
                    while let Ok(Some(_)) = self.signals.next() {
                        self.begin_shutdown();
                    }
                } else {
                    self.on_conn_event(fd, flags);
                }
            }
            if let Some(exit) = self.tick() {
                let w = self.cfg.index;
                self.board.set(w, m::CONNS, self.conns as u64);
                self.board.set(w, m::PHASE, m::PHASE_EXITED);
                return Ok(exit);
            }
        }
    }

    fn w(&self) -> usize {
        self.cfg.index
    }

    fn deadline_after(&self, ms: u64) -> u32 {
        self.now + (ms.div_ceil(TICK_MS) as u32).max(1)
    }

    /// The tick at which a session deadline (session clock, ms) falls, never before the next.
    fn tick_of(&self, ms: u64) -> u32 {
        ((ms.div_ceil(TICK_MS)) as u32 + 1).max(self.now + 1)
    }

    fn set_deadline(&mut self, fd: usize, d: u32) {
        let s = &mut self.slots[fd];
        if s.deadline == 0 && d != 0 {
            self.timed += 1;
        } else if s.deadline != 0 && d == 0 {
            self.timed -= 1;
        }
        s.deadline = d;
    }

    /// The silence after which an open websocket needs attention (a ping, or the idle close).
    fn idle_period_ms(&self, ping_sent: bool) -> u64 {
        let l = &self.cfg.limits;
        match (l.ping_interval_ms, ping_sent) {
            (0, _) => l.idle_timeout_ms,
            (p, true) if l.idle_timeout_ms > 0 => l.idle_timeout_ms.min(p),
            (p, _) => p,
        }
    }

    /// Sets an open connection's deadline to the earliest of its session's deadlines and its
    /// idle/ping deadline (measured from now: called after traffic).
    fn rearm(&mut self, i: usize, conn: &Option<Box<Session>>) {
        if self.slots[i].state != State::Ws(Phase::Open) {
            return;
        }
        let mut d = conn
            .as_ref()
            .and_then(|c| c.next_wake())
            .map_or(0, |ms| self.tick_of(ms));
        let idle = self.idle_period_ms(self.slots[i].flags & PING_SENT != 0);
        if idle > 0 {
            let t = self.deadline_after(idle);
            d = if d == 0 { t } else { d.min(t) };
        }
        self.set_deadline(i, d);
    }

    // ----- connection events -----

    fn on_conn_event(&mut self, fd: RawFd, flags: EpollFlags) {
        let i = fd as usize;
        if i >= self.slots.len() || self.slots[i].state == State::Free {
            return;
        }
        if flags.contains(EpollFlags::EPOLLOUT) {
            let mut conn = self.slots[i].conn.take();
            if !self.flush(fd, &mut conn) {
                return;
            }
            self.slots[i].conn = conn;
        }
        if flags.intersects(READABLE) {
            self.on_readable(fd);
        }
    }

    /// Heap the connection on `fd` holds (what the budget counts).
    fn held(&self, i: usize) -> usize {
        self.slots
            .get(i)
            .and_then(|s| s.conn.as_ref())
            .map_or(0, |c| c.footprint())
            + self.tls.footprint(i)
    }

    /// Reads and processes what the peer sent. What the connection holds afterwards (a grown
    /// partial frame, queued echoes) is counted at once, and the budget enforced, so a burst is
    /// caught within the event loop iteration rather than at the next tick.
    fn on_readable(&mut self, fd: RawFd) {
        let i = fd as usize;
        let before = self.held(i);
        self.read_and_process(fd);
        self.buffered = (self.buffered + self.held(i)).saturating_sub(before);
        if self.buffered > self.cfg.limits.memory_budget_bytes {
            self.enforce_budget();
        }
    }

    fn read_and_process(&mut self, fd: RawFd) {
        let i = fd as usize;
        let mut rbuf = std::mem::take(&mut self.rbuf);
        let handshakes = self.tls.handshakes;
        let got = self.tls.read(i, self.slots.fd(i), &mut rbuf);
        self.tls_publish(handshakes);
        match got {
            Ok(0) => {
                // Handshake: spoke nothing complete and left, not a refused handshake.
                let reason = matches!(
                    self.slots[i].state,
                    State::Handshake | State::Ws(Phase::Open)
                )
                .then_some(CloseReason::PeerEof);
                self.close(fd, reason);
            }
            Ok(n) => self.on_data(fd, &mut rbuf[..n]),
            Err(Errno::EAGAIN) => {}
            Err(Errno::EPROTO) if self.tls.is_tls(i) => self.tls_failed(fd),
            Err(_) => {
                let reason = matches!(
                    self.slots[i].state,
                    State::Handshake | State::Ws(Phase::Open)
                )
                .then_some(CloseReason::IoError);
                self.close(fd, reason);
            }
        }
        self.rbuf = rbuf;
    }

    fn on_data(&mut self, fd: RawFd, data: &mut [u8]) {
        let i = fd as usize;
        let mut conn = self.slots[i].conn.take();
        match self.slots[i].state {
            State::Handshake => {
                session::with_input(&mut conn, data, |conn, buf| {
                    self.process_handshake(fd, conn, buf)
                });
                if self.slots[i].state == State::Ws(Phase::Open) {
                    // Frames sent right behind the request head.
                    if conn.as_ref().is_some_and(|c| c.has_partial_input()) {
                        self.on_frames(fd, &mut conn, &mut []);
                    } else {
                        self.rearm(i, &conn);
                    }
                }
            }
            State::Ws(phase) => {
                if phase.is_open() {
                    self.slots[i].flags &= !PING_SENT;
                }
                self.on_frames(fd, &mut conn, data);
            }
            // After an HTTP answer: discard.
            _ => {}
        }
        if self.slots[i].state == State::Free {
            return;
        }
        self.after_processing(fd, conn);
    }

    /// Frames of a websocket, through the session's close machine: echo (or count) messages,
    /// answer pings and closes, fail violations; while closing, what the peer sends is
    /// discarded until its close frame.
    fn on_frames(&mut self, fd: RawFd, conn: &mut Option<Box<Session>>, data: &mut [u8]) {
        let i = fd as usize;
        let w = self.w();
        let echo = self.cfg.mode == Mode::Echo;
        let board = &self.board;
        let State::Ws(mut phase) = self.slots[i].state else {
            return;
        };
        let st = session::feed(
            &mut phase,
            conn,
            &self.scfg,
            self.now_ms,
            data,
            &mut self.wbuf,
            |e, out| match e {
                Event::Message { opcode, data, len } => {
                    board.add(w, m::MSG_IN, 1);
                    board.add(w, m::BYTES_IN, len);
                    if echo {
                        session::write_frame(Role::Server, out, opcode, data);
                        board.add(w, m::MSG_OUT, 1);
                        board.add(w, m::BYTES_OUT, len);
                    }
                }
                Event::Ping(_) => board.add(w, m::PINGS, 1),
                Event::Pong => {}
            },
        );
        let reason = match st {
            Status::Open => None,
            Status::PeerClosed(_) => Some(CloseReason::ClientClose),
            Status::Failed(v) => {
                self.board.violation(w, v);
                Some(CloseReason::for_violation(v))
            }
        };
        match (self.slots[i].state, reason) {
            (State::Ws(Phase::Open), Some(r)) => self.leave_open(fd, phase, r),
            _ => self.slots[i].state = State::Ws(phase),
        }
        self.rearm(i, conn);
    }

    /// Writes what processing queued, applies close states, frees idle heap state.
    fn after_processing(&mut self, fd: RawFd, mut conn: Option<Box<Session>>) {
        let i = fd as usize;
        if !self.wbuf.is_empty() {
            let pending = conn.as_ref().is_some_and(|c| c.pending_out() > 0);
            let written = if pending {
                0
            } else {
                match self.tls.write(i, self.slots.fd(i), &self.wbuf) {
                    Ok(n) => n,
                    Err(Errno::EAGAIN) => 0,
                    Err(_) => {
                        self.wbuf.clear();
                        let r = (self.slots[i].state == State::Ws(Phase::Open))
                            .then_some(CloseReason::IoError);
                        self.slots[i].conn = conn;
                        self.close(fd, r);
                        return;
                    }
                }
            };
            session::queue_unsent(&mut conn, &self.scfg, self.now_ms, &self.wbuf[written..]);
            self.wbuf.clear();
            if self.wbuf.capacity() > WRITE_BUF_KEEP {
                self.wbuf = Vec::with_capacity(4096);
            }
            let pending = conn.as_ref().map_or(0, |c| c.pending_out());
            if pending > self.cfg.limits.max_output_bytes {
                self.slots[i].conn = conn;
                self.drop_non_reader(fd, CloseReason::SlowReader);
                return;
            }
            if (pending > 0 || self.tls.wants_write(i)) && !self.slots[i].want_write {
                self.slots[i].want_write = true;
                let _ = self.ep.modify(self.slots.fd(i), READ | WRITE);
            }
            self.rearm(i, &conn);
        }
        self.settle(fd, conn);
    }

    /// After output was flushed (or nothing was queued): close-after-flush states proceed, and
    /// heap state is freed if nothing is in flight.
    fn settle(&mut self, fd: RawFd, mut conn: Option<Box<Session>>) {
        let i = fd as usize;
        let pending = conn.as_ref().map_or(0, |c| c.pending_out());
        match self.slots[i].state {
            // (TLS: the reply's records are out too, before the FIN.)
            State::HttpReply if pending == 0 && !self.tls.wants_write(i) => {
                let _ = io::shutdown_write(self.slots.fd(i));
                self.slots[i].state = State::HttpLinger;
                let d = self.deadline_after(self.cfg.limits.close_linger_ms);
                self.set_deadline(i, d);
                // Nothing more is parsed; drop what was buffered.
                conn = None;
            }
            State::Ws(mut phase) if !phase.is_open() => {
                if pending == 0 {
                    session::sent(&mut phase);
                }
                if phase == Phase::Done {
                    self.slots[i].conn = conn;
                    self.close(fd, None);
                    return;
                }
                if phase == Phase::Lingering && self.slots[i].state == State::Ws(Phase::Closing) {
                    // Our close frame is out: the peer has the linger period to answer.
                    let d = self.deadline_after(self.cfg.limits.close_linger_ms);
                    self.set_deadline(i, d);
                }
                self.slots[i].state = State::Ws(phase);
            }
            _ => {}
        }
        if conn.as_ref().is_some_and(|c| c.is_idle()) {
            conn = None;
        }
        self.slots[i].conn = conn;
    }

    /// EPOLLOUT: send queued output. Returns false if the connection was closed.
    fn flush(&mut self, fd: RawFd, conn: &mut Option<Box<Session>>) -> bool {
        let i = fd as usize;
        if self.tls.flush(i, self.slots.fd(i)).is_err() {
            self.slots[i].conn = conn.take();
            self.close(fd, None);
            return false;
        }
        if let Some(c) = conn.as_mut() {
            while c.pending_out() > 0 {
                match self.tls.write(i, self.slots.fd(i), c.unsent()) {
                    Ok(n) => c.advance(n, &self.scfg, self.now_ms),
                    Err(Errno::EAGAIN) => break,
                    Err(_) => {
                        let r = (self.slots[i].state == State::Ws(Phase::Open))
                            .then_some(CloseReason::IoError);
                        self.slots[i].conn = conn.take();
                        self.close(fd, r);
                        return false;
                    }
                }
            }
        }
        if conn.as_ref().map_or(0, |c| c.pending_out()) == 0
            && !self.tls.wants_write(i)
            && self.slots[i].want_write
        {
            self.slots[i].want_write = false;
            let _ = self.ep.modify(self.slots.fd(i), READ);
        }
        self.rearm(i, conn);
        let c = conn.take();
        self.settle(fd, c);
        if self.slots[i].state == State::Free {
            return false;
        }
        *conn = self.slots[i].conn.take();
        true
    }
}

/// Entry point of a worker process: set up, run, and report.
pub fn run_worker(cfg: WorkerConfig) -> anyhow::Result<WorkerExit> {
    let index = cfg.index;
    let w = Worker::new(cfg).with_context(|| format!("server worker {index}"))?;
    w.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 16);
    }
}
