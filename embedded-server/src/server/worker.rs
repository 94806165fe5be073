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

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::admission::{self, Handshakes, Sources};
use super::metrics::{self as m, Board, CloseReason};
use super::{Mode, WorkerConfig};
use crate::protocol::close;
use crate::protocol::frame;
use crate::protocol::handshake::{self, Parsed, Rejection};
use crate::protocol::session::{self, Event, Role, Session, Status, Timeout};
use crate::sys::epoll::{Epoll, EpollEvent, EpollFlags, READ, WRITE};
use crate::sys::shm::SharedU64s;
use crate::sys::signal::{Signal, Signals};
use crate::sys::{io, net, rlimit, Errno};

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

/// Lifecycle of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
enum State {
    /// No connection on this fd.
    #[default]
    Free,
    /// Accepted, request head not complete yet (deadline set).
    Handshake,
    /// Websocket open.
    Open,
    /// Send what is queued (the reply to the client's close frame), then close.
    CloseAfterFlush,
    /// Send what is queued (an HTTP response), then shut the write side and linger.
    LingerAfterFlush,
    /// Write side shut; read and discard until the peer closes or the deadline passes.
    Linger,
    /// Send our close frame (after a violation, a timeout, the budget), then wait for the
    /// peer's.
    CloseFrameAfterFlush,
    /// Our close frame is sent; the write side stays open (browsers report an unclean close
    /// when it is shut first). What the peer sends is parsed and discarded until its close
    /// frame, EOF or the linger deadline; then we close.
    AwaitClose,
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
    slots: Vec<Slot>,
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
    /// Fds open besides client connections (epoll, signalfd, memfd, stdio, listener).
    base_fds: usize,
    fd_cap: usize,
    /// Stop listening at this many connections; listen again below `low`.
    high: usize,
    low: usize,
    shutting_down: Option<Instant>,
    close_cursor: usize,
    last_stats: Instant,
    /// Tick of the last deadline scan.
    expired_at: u32,
    migrate_req: bool,
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
        if !crate::sys::signal::die_with_parent(Signal::SIGTERM, cfg.supervisor_pid)
            .context("prctl(PR_SET_PDEATHSIG)")?
        {
            anyhow::bail!("the supervisor exited before this worker started");
        }
        crate::sys::signal::ignore_sigpipe().context("ignoring SIGPIPE")?;
        let signals = Signals::new(&[Signal::SIGINT, Signal::SIGTERM]).context("signalfd")?;
        let fd_cap = rlimit::raise_nofile_to_hard().context("raising RLIMIT_NOFILE")? as usize;
        let shm = SharedU64s::from_inherited(cfg.shm_fd, Board::shm_len(cfg.workers))
            .context("mapping the shared counters")?;
        let board = Board::new(shm, cfg.workers);
        let ep = Epoll::new().context("epoll_create1")?;
        let listener = net::reuseport_listener(cfg.listen, &cfg.limits.listen_options())
            .with_context(|| format!("listening on {}", cfg.listen))?;
        let listener_fd = listener.as_raw_fd();
        ep.add(listener_fd, EpollFlags::EPOLLIN)?;
        ep.add(signals.as_raw_fd(), EpollFlags::EPOLLIN)?;
        let base_fds = count_open_fds();
        let reserve = cfg.limits.backlog.max(0) as usize + super::FD_MARGIN;
        let high = fd_cap.saturating_sub(reserve + base_fds).max(1);
        let low = high.saturating_sub(high / 20 + 1);
        let w = cfg.index;
        board.set(w, m::PID, std::process::id() as u64);
        board.set(w, m::FD_CAP, fd_cap as u64);
        board.set(w, m::FDS, base_fds as u64);
        board.set(w, m::LISTENING, 1);
        board.set(w, m::RSS, rss_bytes());
        board.set(w, m::PHASE, m::PHASE_ACCEPTING);
        Ok(Worker {
            scfg: session_config(&cfg),
            cfg,
            board,
            ep,
            listener: Some(listener),
            listener_fd,
            signals,
            slots: Vec::new(),
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
            base_fds,
            fd_cap,
            high,
            low,
            shutting_down: None,
            close_cursor: 0,
            last_stats: Instant::now(),
            expired_at: 0,
            migrate_req: net::tcp_migrate_req(),
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
        if self.slots[i].state != State::Open {
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

    // ----- accepting -----

    fn accept_some(&mut self) {
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
    fn adopt(&mut self, fd: RawFd) {
        let i = fd as usize;
        if i >= self.slots.len() {
            let want = (i / SLOT_CHUNK + 1) * SLOT_CHUNK;
            self.slots.resize_with(want, Slot::default);
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
    fn stop_listening(&mut self) {
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

    fn maybe_listen_again(&mut self) {
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
        if flags.intersects(
            EpollFlags::EPOLLIN
                | EpollFlags::EPOLLRDHUP
                | EpollFlags::EPOLLHUP
                | EpollFlags::EPOLLERR,
        ) {
            self.on_readable(fd);
        }
        if self.buffered > self.cfg.limits.memory_budget_bytes {
            self.enforce_budget();
        }
    }

    fn on_readable(&mut self, fd: RawFd) {
        let i = fd as usize;
        let mut rbuf = std::mem::take(&mut self.rbuf);
        match io::read(fd, &mut rbuf) {
            Ok(0) => {
                // Handshake: spoke nothing complete and left, not a refused handshake.
                let reason = matches!(self.slots[i].state, State::Handshake | State::Open)
                    .then_some(CloseReason::PeerEof);
                self.close(fd, reason);
            }
            Ok(n) => self.on_data(fd, &mut rbuf[..n]),
            Err(Errno::EAGAIN) => {}
            Err(_) => {
                let reason = matches!(self.slots[i].state, State::Handshake | State::Open)
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
                if self.slots[i].state == State::Open {
                    // Frames sent right behind the request head.
                    if conn.as_ref().is_some_and(|c| c.has_partial_input()) {
                        self.on_frames(fd, &mut conn, &mut []);
                    } else {
                        self.rearm(i, &conn);
                    }
                }
            }
            State::Open => {
                self.slots[i].flags &= !PING_SENT;
                self.on_frames(fd, &mut conn, data);
            }
            // The peer's close frame (or garbage): the close handshake is over.
            State::AwaitClose if session::discard(&mut conn, data) != Status::Open => {
                self.slots[i].conn = conn;
                self.close(fd, None);
                return;
            }
            // Closing otherwise: discard.
            _ => {}
        }
        if self.slots[i].state == State::Free {
            return;
        }
        self.after_processing(fd, conn);
    }

    /// Frames of an open websocket, through the session: echo (or count) messages, answer
    /// pings and closes, fail violations.
    fn on_frames(&mut self, fd: RawFd, conn: &mut Option<Box<Session>>, data: &mut [u8]) {
        let i = fd as usize;
        let w = self.w();
        let echo = self.cfg.mode == Mode::Echo;
        let board = &self.board;
        let st = session::receive(
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
        match st {
            Status::Open => self.rearm(i, conn),
            Status::PeerClosed(code) => {
                let payload = code.map(close::payload);
                let p: &[u8] = payload.as_ref().map_or(&[], |p| p);
                session::write_frame(Role::Server, &mut self.wbuf, frame::CLOSE, p);
                self.begin_close(fd, State::CloseAfterFlush, CloseReason::ClientClose);
            }
            Status::Failed(v) => {
                // The session queued the close frame.
                self.board.violation(w, v);
                self.begin_close(
                    fd,
                    State::CloseFrameAfterFlush,
                    CloseReason::for_violation(v),
                );
            }
        }
    }

    /// Writes what processing queued, applies close states, frees idle heap state.
    fn after_processing(&mut self, fd: RawFd, mut conn: Option<Box<Session>>) {
        let i = fd as usize;
        if !self.wbuf.is_empty() {
            let pending = conn.as_ref().is_some_and(|c| c.pending_out() > 0);
            let written = if pending {
                0
            } else {
                match io::write(fd, &self.wbuf) {
                    Ok(n) => n,
                    Err(Errno::EAGAIN) => 0,
                    Err(_) => {
                        self.wbuf.clear();
                        let r =
                            (self.slots[i].state == State::Open).then_some(CloseReason::IoError);
                        self.slots[i].conn = conn;
                        self.close(fd, r);
                        return;
                    }
                }
            };
            session::queue_unsent(&mut conn, &self.scfg, self.now_ms, &self.wbuf[written..]);
            // Between scans, count what was queued, so a burst is caught within the event loop
            // iteration rather than at the next tick.
            self.buffered += self.wbuf.len() - written;
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
            if pending > 0 && !self.slots[i].want_write {
                self.slots[i].want_write = true;
                let _ = self.ep.modify(fd, READ | WRITE);
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
        if pending == 0 {
            match self.slots[i].state {
                State::CloseAfterFlush => {
                    self.slots[i].conn = conn;
                    self.close(fd, None);
                    return;
                }
                State::LingerAfterFlush => {
                    let _ = io::shutdown_write(fd);
                    self.slots[i].state = State::Linger;
                    let d = self.deadline_after(self.cfg.limits.close_linger_ms);
                    self.set_deadline(i, d);
                    // Nothing more is parsed; drop what was buffered.
                    conn = None;
                }
                State::CloseFrameAfterFlush => {
                    self.slots[i].state = State::AwaitClose;
                    let d = self.deadline_after(self.cfg.limits.close_linger_ms);
                    self.set_deadline(i, d);
                    // Keep only what discarding needs: the rest of the failed frame to skip.
                    if let Some(c) = conn.as_mut() {
                        c.drop_input();
                    }
                }
                _ => {}
            }
        }
        if conn.as_ref().is_some_and(|c| c.is_idle()) {
            conn = None;
        }
        self.slots[i].conn = conn;
    }

    /// EPOLLOUT: send queued output. Returns false if the connection was closed.
    fn flush(&mut self, fd: RawFd, conn: &mut Option<Box<Session>>) -> bool {
        let i = fd as usize;
        if let Some(c) = conn.as_mut() {
            while c.pending_out() > 0 {
                match io::write(fd, c.unsent()) {
                    Ok(n) => c.advance(n, &self.scfg, self.now_ms),
                    Err(Errno::EAGAIN) => break,
                    Err(_) => {
                        let r =
                            (self.slots[i].state == State::Open).then_some(CloseReason::IoError);
                        self.slots[i].conn = conn.take();
                        self.close(fd, r);
                        return false;
                    }
                }
            }
        }
        if conn.as_ref().map_or(0, |c| c.pending_out()) == 0 && self.slots[i].want_write {
            self.slots[i].want_write = false;
            let _ = self.ep.modify(fd, READ);
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

    /// Closes the fd and frees its slot. `reason` is counted unless it was counted when the
    /// close was decided (lingering states pass None).
    fn close(&mut self, fd: RawFd, reason: Option<CloseReason>) {
        let i = fd as usize;
        let w = self.w();
        match self.slots[i].state {
            State::Open => self.board.sub(w, m::WS_OPEN, 1),
            State::Handshake => self.handshake_ended(),
            _ => {}
        }
        if let Some(r) = reason {
            self.board.closed(w, r);
        }
        self.set_deadline(i, 0);
        self.slots[i] = Slot::default();
        self.sources.release(fd);
        let _ = io::close(fd);
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
    fn drop_non_reader(&mut self, fd: RawFd, reason: CloseReason) {
        let i = fd as usize;
        if self.slots[i].state == State::Open {
            let mut f = Vec::with_capacity(4);
            session::write_frame(
                Role::Server,
                &mut f,
                frame::CLOSE,
                &close::payload(close::POLICY),
            );
            let conn = &mut self.slots[i].conn;
            session::queue_unsent(conn, &self.scfg, self.now_ms, &f);
            if let Some(c) = conn.as_ref() {
                let _ = io::writev(fd, &[IoSlice::new(c.unsent())]);
            }
        }
        let _ = net::set_abort_on_close(fd);
        let counted = matches!(self.slots[i].state, State::Open | State::Handshake);
        self.close(fd, counted.then_some(reason));
    }

    fn handshake_ended(&mut self) {
        self.handshakes.ended();
        self.board
            .set(self.w(), m::HANDSHAKING, self.handshakes.count as u64);
    }

    /// Leaves Open (or Handshake) for a closing state, counting the reason now.
    fn begin_close(&mut self, fd: RawFd, next: State, reason: CloseReason) {
        let i = fd as usize;
        let w = self.w();
        match self.slots[i].state {
            State::Open => self.board.sub(w, m::WS_OPEN, 1),
            State::Handshake => self.handshake_ended(),
            _ => {}
        }
        self.board.closed(w, reason);
        self.slots[i].state = next;
        let d = self.deadline_after(self.cfg.limits.close_linger_ms);
        self.set_deadline(i, d);
    }

    /// Fails an open connection with `code`: partial input dropped, our close frame queued, then
    /// the close handshake (the peer's close frame awaited while its data is discarded).
    fn fail_open(&mut self, fd: RawFd, code: u16, reason: CloseReason) {
        let i = fd as usize;
        let mut conn = self.slots[i].conn.take();
        if let Some(c) = conn.as_mut() {
            c.drop_input();
        }
        session::write_frame(
            Role::Server,
            &mut self.wbuf,
            frame::CLOSE,
            &close::payload(code),
        );
        self.begin_close(fd, State::CloseFrameAfterFlush, reason);
        self.after_processing(fd, conn);
    }

    // ----- handshake -----

    /// Consumes what it can of a request head and returns how many bytes it used.
    fn process_handshake(
        &mut self,
        fd: RawFd,
        _conn: &mut Option<Box<Session>>,
        buf: &mut [u8],
    ) -> usize {
        let i = fd as usize;
        let w = self.w();
        match handshake::parse_request(buf, self.cfg.limits.max_handshake_bytes) {
            Parsed::Partial => 0,
            Parsed::Upgrade { accept, consumed } => {
                handshake::upgrade_response(&accept, &mut self.wbuf);
                self.handshake_ended();
                self.slots[i].state = State::Open;
                self.set_deadline(i, 0);
                self.board.add(w, m::HANDSHAKES, 1);
                self.board.add(w, m::WS_OPEN, 1);
                consumed
            }
            Parsed::Http { path, .. } => {
                let resp = self.http_reply(&path);
                self.wbuf.extend_from_slice(&resp);
                self.begin_close(fd, State::LingerAfterFlush, CloseReason::Http);
                buf.len()
            }
            Parsed::Reject(r) => {
                self.board.rejected(w, r);
                self.wbuf.extend_from_slice(&r.response());
                self.begin_close(fd, State::LingerAfterFlush, CloseReason::HandshakeFailed);
                buf.len()
            }
        }
    }

    fn http_reply(&self, path: &str) -> Vec<u8> {
        let w = self.w();
        match path {
            "/metrics" => {
                self.board.add(w, m::HTTP_METRICS, 1);
                self.board.set(w, m::RSS, rss_bytes());
                self.board.set(w, m::BUFFERED, self.buffered as u64);
                let body = self.board.prometheus();
                handshake::http_response(
                    200,
                    "OK",
                    "",
                    "text/plain; version=0.0.4; charset=utf-8",
                    body.as_bytes(),
                )
            }
            "/healthz" => {
                self.board.add(w, m::HTTP_HEALTHZ, 1);
                handshake::http_response(200, "OK", "", "text/plain", b"ok\n")
            }
            _ => {
                self.board.add(w, m::HTTP_NOT_FOUND, 1);
                handshake::http_response(
                    404,
                    "Not Found",
                    "",
                    "text/plain",
                    b"not found: try /metrics, /healthz or a websocket upgrade\n",
                )
            }
        }
    }

    // ----- timers, budget, stats, shutdown -----

    fn tick(&mut self) -> Option<WorkerExit> {
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
        if self.shutting_down.is_none() && self.board.global(m::G_SHUTDOWN) != 0 {
            self.begin_shutdown();
        }
        if let Some(started) = self.shutting_down {
            self.close_batch();
            if self.conns == 0 {
                return Some(WorkerExit::Clean);
            }
            if started.elapsed() >= Duration::from_millis(self.cfg.limits.shutdown_grace_ms) {
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
                    let _ = io::write(fd, &Rejection::Timeout.response());
                    self.close(fd, None);
                }
                State::Open => self.expire_open(fd),
                State::Free => self.set_deadline(i, 0),
                _ => {
                    // Closing and out of time: a peer still holding unsent output is reset.
                    if self.slots[i]
                        .conn
                        .as_ref()
                        .is_some_and(|c| c.pending_out() > 0)
                    {
                        let _ = net::set_abort_on_close(fd);
                    }
                    self.close(fd, None);
                }
            }
        }
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
            Some(Timeout::Frame) => self.fail_open(fd, close::POLICY, CloseReason::FrameTimeout),
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
                self.fail_open(fd, close::GOING_AWAY, CloseReason::IdleTimeout)
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
    /// partial message (1009, then the close handshake).
    fn enforce_budget(&mut self) {
        let mut held = 0;
        for s in &self.slots {
            if let Some(c) = s.conn.as_ref() {
                held += c.footprint();
            }
        }
        self.buffered = held;
        self.board.set(self.w(), m::BUFFERED, held as u64);
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
            if out > 0 || self.slots[i].state != State::Open {
                self.drop_non_reader(fd, CloseReason::OverBudget);
            } else {
                self.fail_open(fd, close::TOO_BIG, CloseReason::OverBudget);
            }
        }
    }

    fn begin_shutdown(&mut self) {
        if self.shutting_down.is_some() {
            return;
        }
        self.shutting_down = Some(Instant::now());
        if let Some(l) = self.listener.take() {
            let _ = self.ep.delete(l.as_raw_fd());
            self.listener_fd = -1;
        }
        let w = self.w();
        self.board.set(w, m::LISTENING, 0);
        self.board.set(w, m::PHASE, m::PHASE_DRAINING);
    }

    /// Closes up to one batch of connections: open websockets get a 1001 close frame first.
    fn close_batch(&mut self) {
        let mut n = 0;
        let frame_1001 = {
            let mut h = [0u8; frame::MAX_HEADER_LEN];
            let k = frame::encode(&mut h, true, frame::CLOSE, None, 2);
            let mut v = h[..k].to_vec();
            v.extend_from_slice(&close::payload(close::GOING_AWAY));
            v
        };
        while n < self.cfg.limits.close_batch && self.close_cursor < self.slots.len() {
            let i = self.close_cursor;
            self.close_cursor += 1;
            let fd = i as RawFd;
            match self.slots[i].state {
                State::Free => continue,
                State::Open => {
                    let _ = io::writev(fd, &[IoSlice::new(&frame_1001)]);
                    self.close(fd, Some(CloseReason::Shutdown));
                }
                State::Handshake => self.close(fd, Some(CloseReason::Shutdown)),
                _ => self.close(fd, None),
            }
            n += 1;
        }
        if self.close_cursor >= self.slots.len() && self.conns > 0 {
            self.close_cursor = 0;
        }
    }

    /// Fd cap and the connection count at which the worker stops listening.
    pub fn fd_limits(&self) -> (usize, usize) {
        (self.fd_cap, self.high)
    }
}

/// Entry point of a worker process: set up, run, and report.
pub fn run_worker(cfg: WorkerConfig) -> anyhow::Result<WorkerExit> {
    let index = cfg.index;
    let w = Worker::new(cfg).with_context(|| format!("server worker {index}"))?;
    w.run()
}

/// The response to a connection refused at admission (handshake slots or source cap).
fn unavailable() -> Vec<u8> {
    handshake::http_response(
        503,
        "Service Unavailable",
        "Retry-After: 1\r\n",
        "text/plain",
        b"busy: too many handshakes in progress (or from this address); retry\n",
    )
}

fn is_handshaking(slots: &[Slot], fd: i32, deadline: u32) -> bool {
    slots
        .get(fd as usize)
        .is_some_and(|s| s.state == State::Handshake && s.deadline == deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 16);
    }
}
