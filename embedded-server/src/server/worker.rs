//! One worker: one epoll instance, one SO_REUSEPORT listener, a connection table indexed by fd
//! with a 16-byte [`Slot`] per connection, and one read buffer and one write buffer shared by the
//! whole loop. A connection owns heap memory ([`Conn`]) only while something is in flight (a
//! partial request or frame, a fragmented message, unsent output) and frees it when that is done:
//! an idle websocket costs its slot and nothing else.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::metrics::{self as m, Board, CloseReason};
use super::{Mode, WorkerConfig};
use crate::protocol::close;
use crate::protocol::frame::{self, Header};
use crate::protocol::handshake::{self, Parsed, Rejection};
use crate::protocol::mask::apply_mask;
use crate::protocol::utf8::Utf8Validator;
use crate::protocol::{Control, Data, OpCode, Violation};
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
    /// Send what is queued (an HTTP response, our close frame), then shut the write side and
    /// linger.
    LingerAfterFlush,
    /// Write side shut; read and discard until the peer closes or the deadline passes.
    Linger,
}

/// The per-connection entry of the table: 16 bytes.
#[derive(Debug, Default)]
struct Slot {
    /// Heap state, only while something is in flight.
    conn: Option<Box<Conn>>,
    /// Tick at which the connection is dropped (0: none). Set while handshaking and lingering.
    deadline: u32,
    state: State,
    /// Whether EPOLLOUT is in the interest set.
    want_write: bool,
}

/// What a connection holds while something is in flight.
#[derive(Debug, Default)]
struct Conn {
    /// Bytes received but not consumed yet (a partial request head or frame).
    inbuf: Vec<u8>,
    /// Of the frame at the head of `inbuf`: payload bytes already unmasked and validated.
    frame_done: usize,
    /// Output the socket did not take yet, from `out_pos`.
    out: Vec<u8>,
    out_pos: usize,
    /// The data message being received in fragments (Text or Binary), if any.
    msg: Option<OpCode>,
    /// Its payload so far (echo mode only).
    msg_data: Vec<u8>,
    msg_len: u64,
    /// UTF-8 state of the text message being received (whole message, across frames).
    utf8: Utf8Validator,
}

impl Conn {
    fn is_idle(&self) -> bool {
        self.inbuf.is_empty() && self.out_pos >= self.out.len() && self.msg.is_none()
    }
    fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos
    }
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
    board: Board,
    ep: Epoll,
    listener: Option<OwnedFd>,
    listener_fd: RawFd,
    signals: Signals,
    slots: Vec<Slot>,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    start: Instant,
    now: u32,
    /// Client connections held (any state but Free).
    conns: usize,
    /// Slots with a deadline set.
    timed: usize,
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
        let shm = SharedU64s::from_inherited(cfg.shm_fd, m::shm_len(cfg.workers))
            .context("mapping the shared counters")?;
        let board = Board::new(shm, cfg.workers);
        let ep = Epoll::new().context("epoll_create1")?;
        let listener = net::reuseport_listener(cfg.listen, cfg.limits.backlog)
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
            conns: 0,
            timed: 0,
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
            self.now = (self.start.elapsed().as_millis() as u64 / TICK_MS) as u32 + 1;
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

    fn set_deadline(&mut self, fd: usize, d: u32) {
        let s = &mut self.slots[fd];
        if s.deadline == 0 && d != 0 {
            self.timed += 1;
        } else if s.deadline != 0 && d == 0 {
            self.timed -= 1;
        }
        s.deadline = d;
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
            // A websocket client speaks first, and its request has usually arrived by the time
            // the connection is accepted (strace -f -c of a 20k verify: 100 read() calls in all
            // returned EAGAIN, so at most 100 of these 20,000 found nothing): read it now rather
            // than after another epoll_wait.
            if self.slots.get(fd as usize).map(|s| s.state) == Some(State::Handshake) {
                self.on_readable(fd);
            }
        }
    }

    fn adopt(&mut self, fd: RawFd) {
        let i = fd as usize;
        if i >= self.slots.len() {
            let want = (i / SLOT_CHUNK + 1) * SLOT_CHUNK;
            self.slots.resize_with(want, Slot::default);
        }
        if self.ep.add(fd, READ).is_err() {
            let _ = io::close(fd);
            return;
        }
        self.slots[i].state = State::Handshake;
        let d = self.deadline_after(self.cfg.limits.handshake_timeout_ms);
        self.set_deadline(i, d);
        self.conns += 1;
        let w = self.w();
        self.board.add(w, m::ACCEPTED, 1);
        self.board.set(w, m::CONNS, self.conns as u64);
        self.board
            .set(w, m::FDS, (self.base_fds + self.conns) as u64);
    }

    /// Near the fd cap: take every connection already queued (into the fd reserve, so none is
    /// reset), then close the listener so the kernel sends new ones to the other workers of
    /// the SO_REUSEPORT group. With net.ipv4.tcp_migrate_req=1 the kernel also migrates
    /// half-open requests; without it a connection completing its TCP handshake in the
    /// microseconds between the last accept and close is reset (counted as accept errors by
    /// the client, never silently).
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
        if let Ok(l) = net::reuseport_listener(self.cfg.listen, self.cfg.limits.backlog) {
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
    }

    fn on_readable(&mut self, fd: RawFd) {
        let i = fd as usize;
        let mut rbuf = std::mem::take(&mut self.rbuf);
        match io::read(fd, &mut rbuf) {
            Ok(0) => {
                let reason = match self.slots[i].state {
                    State::Handshake => {
                        // Spoke nothing complete and left: not a refused handshake.
                        Some(CloseReason::PeerEof)
                    }
                    State::Open => Some(CloseReason::PeerEof),
                    _ => None,
                };
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
        if matches!(
            self.slots[i].state,
            State::Linger | State::CloseAfterFlush | State::LingerAfterFlush
        ) {
            return; // discard: we are closing
        }
        let mut conn = self.slots[i].conn.take();
        let has_pending_in = conn.as_ref().is_some_and(|c| !c.inbuf.is_empty());
        if has_pending_in {
            let c = conn.as_mut().expect("checked");
            let mut ib = std::mem::take(&mut c.inbuf);
            ib.extend_from_slice(data);
            let used = self.process(fd, &mut conn, &mut ib);
            if self.slots[i].state != State::Free {
                ib.drain(..used.min(ib.len()));
                if let Some(c) = conn.as_mut() {
                    c.inbuf = ib;
                    if c.inbuf.is_empty() {
                        c.inbuf = Vec::new();
                    }
                }
            }
        } else {
            let used = self.process(fd, &mut conn, data);
            if used < data.len() && self.slots[i].state != State::Free {
                let c = conn.get_or_insert_with(Box::default);
                c.inbuf.extend_from_slice(&data[used..]);
            }
        }
        if self.slots[i].state == State::Free {
            return;
        }
        self.after_processing(fd, conn);
    }

    /// Writes what processing queued, applies close states, frees idle heap state.
    fn after_processing(&mut self, fd: RawFd, mut conn: Option<Box<Conn>>) {
        let i = fd as usize;
        if !self.wbuf.is_empty() {
            let pending = conn.as_ref().is_some_and(|c| c.pending_out() > 0);
            if pending {
                let c = conn.as_mut().expect("checked");
                c.out.extend_from_slice(&self.wbuf);
            } else {
                match io::write(fd, &self.wbuf) {
                    Ok(n) if n == self.wbuf.len() => {}
                    Ok(n) => {
                        let c = conn.get_or_insert_with(Box::default);
                        c.out.extend_from_slice(&self.wbuf[n..]);
                    }
                    Err(Errno::EAGAIN) => {
                        let c = conn.get_or_insert_with(Box::default);
                        c.out.extend_from_slice(&self.wbuf);
                    }
                    Err(_) => {
                        self.wbuf.clear();
                        let r =
                            (self.slots[i].state == State::Open).then_some(CloseReason::IoError);
                        self.close(fd, r);
                        return;
                    }
                }
            }
            self.wbuf.clear();
            if self.wbuf.capacity() > WRITE_BUF_KEEP {
                self.wbuf = Vec::with_capacity(4096);
            }
            let pending = conn.as_ref().map_or(0, |c| c.pending_out());
            if pending > self.cfg.limits.max_output_bytes {
                let r = (self.slots[i].state == State::Open).then_some(CloseReason::SlowReader);
                self.close(fd, r);
                return;
            }
            if pending > 0 && !self.slots[i].want_write {
                self.slots[i].want_write = true;
                let _ = self.ep.modify(fd, READ | WRITE);
            }
        }
        self.settle(fd, conn);
    }

    /// After output was flushed (or nothing was queued): close-after-flush states proceed, and
    /// heap state is freed if nothing is in flight.
    fn settle(&mut self, fd: RawFd, mut conn: Option<Box<Conn>>) {
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
                _ => {}
            }
        }
        if conn.as_ref().is_some_and(|c| c.is_idle()) {
            conn = None;
        }
        self.slots[i].conn = conn;
    }

    /// EPOLLOUT: send queued output. Returns false if the connection was closed.
    fn flush(&mut self, fd: RawFd, conn: &mut Option<Box<Conn>>) -> bool {
        let i = fd as usize;
        if let Some(c) = conn.as_mut() {
            while c.pending_out() > 0 {
                match io::write(fd, &c.out[c.out_pos..]) {
                    Ok(n) => c.out_pos += n,
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
            if c.pending_out() == 0 {
                c.out = Vec::new();
                c.out_pos = 0;
            }
        }
        if conn.as_ref().map_or(0, |c| c.pending_out()) == 0 && self.slots[i].want_write {
            self.slots[i].want_write = false;
            let _ = self.ep.modify(fd, READ);
        }
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
        if self.slots[i].state == State::Open {
            self.board.sub(w, m::WS_OPEN, 1);
        }
        if let Some(r) = reason {
            self.board.closed(w, r);
        }
        self.set_deadline(i, 0);
        self.slots[i] = Slot::default();
        let _ = io::close(fd);
        self.conns -= 1;
        self.board.set(w, m::CONNS, self.conns as u64);
        self.board
            .set(w, m::FDS, (self.base_fds + self.conns) as u64);
        self.maybe_listen_again();
    }

    /// Leaves Open (or Handshake) for a closing state, counting the reason now.
    fn begin_close(&mut self, fd: RawFd, next: State, reason: CloseReason) {
        let i = fd as usize;
        let w = self.w();
        if self.slots[i].state == State::Open {
            self.board.sub(w, m::WS_OPEN, 1);
        }
        self.board.closed(w, reason);
        self.slots[i].state = next;
        let d = self.deadline_after(self.cfg.limits.close_linger_ms);
        self.set_deadline(i, d);
    }

    // ----- protocol -----

    /// Consumes what it can of `buf` and returns how many bytes it used.
    fn process(&mut self, fd: RawFd, conn: &mut Option<Box<Conn>>, buf: &mut [u8]) -> usize {
        let i = fd as usize;
        match self.slots[i].state {
            State::Handshake => self.process_handshake(fd, conn, buf),
            State::Open => self.process_frames(fd, conn, buf),
            _ => buf.len(),
        }
    }

    fn process_handshake(
        &mut self,
        fd: RawFd,
        conn: &mut Option<Box<Conn>>,
        buf: &mut [u8],
    ) -> usize {
        let i = fd as usize;
        let w = self.w();
        match handshake::parse_request(buf, self.cfg.limits.max_handshake_bytes) {
            Parsed::Partial => 0,
            Parsed::Upgrade { accept, consumed } => {
                handshake::upgrade_response(&accept, &mut self.wbuf);
                self.slots[i].state = State::Open;
                self.set_deadline(i, 0);
                self.board.add(w, m::HANDSHAKES, 1);
                self.board.add(w, m::WS_OPEN, 1);
                consumed + self.process_frames(fd, conn, &mut buf[consumed..])
            }
            Parsed::Http { path, .. } => {
                let resp = match path.as_str() {
                    "/metrics" => {
                        self.board.add(w, m::HTTP_METRICS, 1);
                        self.board.set(w, m::RSS, rss_bytes());
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
                };
                self.wbuf.extend_from_slice(&resp);
                self.begin_close(fd, State::LingerAfterFlush, CloseReason::Http);
                buf.len()
            }
            Parsed::Reject(r) => {
                self.reject(fd, r);
                buf.len()
            }
        }
    }

    fn reject(&mut self, fd: RawFd, r: Rejection) {
        self.board.rejected(self.w(), r);
        self.wbuf.extend_from_slice(&r.response());
        self.begin_close(fd, State::LingerAfterFlush, CloseReason::HandshakeFailed);
    }

    /// A protocol violation: send the close frame it earns and linger.
    fn fail(&mut self, fd: RawFd, conn: &mut Option<Box<Conn>>, v: Violation) {
        self.board.violation(self.w(), v);
        self.queue_frame(frame::CLOSE, &[&close::payload(v.close_code())]);
        self.begin_close(fd, State::LingerAfterFlush, CloseReason::for_violation(v));
        if let Some(c) = conn.as_mut() {
            c.msg = None;
            c.msg_data = Vec::new();
            c.inbuf = Vec::new();
        }
    }

    fn queue_frame(&mut self, opcode: OpCode, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut h = [0u8; frame::MAX_HEADER_LEN];
        let n = frame::encode(&mut h, true, opcode, None, len as u64);
        self.wbuf.extend_from_slice(&h[..n]);
        for p in parts {
            self.wbuf.extend_from_slice(p);
        }
    }

    fn process_frames(&mut self, fd: RawFd, conn: &mut Option<Box<Conn>>, buf: &mut [u8]) -> usize {
        let i = fd as usize;
        let max = self.cfg.limits.max_message_bytes as u64;
        let mut pos = 0;
        while self.slots[i].state == State::Open && pos < buf.len() {
            let h = match frame::decode(&buf[pos..]) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(v) => {
                    self.fail(fd, conn, v);
                    return buf.len();
                }
            };
            if let Err(v) = frame::check_client_frame(&h) {
                self.fail(fd, conn, v);
                return buf.len();
            }
            let in_msg = conn.as_ref().and_then(|c| c.msg);
            let so_far = conn.as_ref().map_or(0, |c| c.msg_len);
            match h.opcode() {
                OpCode::Data(Data::Continue) if in_msg.is_none() => {
                    self.fail(fd, conn, Violation::UnexpectedContinuation);
                    return buf.len();
                }
                OpCode::Data(Data::Text | Data::Binary) if in_msg.is_some() => {
                    self.fail(fd, conn, Violation::ExpectedContinuation);
                    return buf.len();
                }
                _ => {}
            }
            if !h.is_control() && so_far + h.payload_len > max {
                self.fail(fd, conn, Violation::TooBig);
                return buf.len();
            }
            let total = h.header_len + h.payload_len as usize;
            let avail = buf.len() - pos;
            let is_text = h.opcode() == frame::TEXT
                || (h.opcode() == frame::CONTINUE && in_msg == Some(frame::TEXT));
            if avail < total {
                // Partial frame: unmask and validate what is here so invalid UTF-8 fails at
                // once, then wait for the rest (kept in the connection's inbuf).
                if is_text {
                    let got = avail - h.header_len;
                    let c = conn.get_or_insert_with(Box::default);
                    if c.frame_done == 0 && h.opcode() == frame::TEXT {
                        c.utf8 = Utf8Validator::new();
                    }
                    if got > c.frame_done {
                        let start = pos + h.header_len;
                        let part = &mut buf[start + c.frame_done..start + got];
                        apply_mask(part, h.header.mask.unwrap_or_default(), c.frame_done);
                        if c.utf8.feed(part).is_err() {
                            self.fail(fd, conn, Violation::InvalidUtf8);
                            return buf.len();
                        }
                        c.frame_done = got;
                    }
                }
                break;
            }
            let done = conn.as_ref().map_or(0, |c| c.frame_done);
            let start = pos + h.header_len;
            apply_mask(
                &mut buf[start + done..pos + total],
                h.header.mask.unwrap_or_default(),
                done,
            );
            if let Some(c) = conn.as_mut() {
                c.frame_done = 0;
            }
            let payload = &buf[start..pos + total];
            if let Err(v) = self.on_frame(fd, conn, &h, payload, done, is_text) {
                self.fail(fd, conn, v);
                return buf.len();
            }
            pos += total;
        }
        pos
    }

    /// A complete frame with its unmasked payload; `validated` bytes of a text payload were
    /// already fed to the validator while the frame was partial.
    fn on_frame(
        &mut self,
        fd: RawFd,
        conn: &mut Option<Box<Conn>>,
        h: &Header,
        payload: &[u8],
        validated: usize,
        is_text: bool,
    ) -> Result<(), Violation> {
        let w = self.w();
        let echo = self.cfg.mode == Mode::Echo;
        match h.opcode() {
            OpCode::Control(Control::Ping) => {
                self.board.add(w, m::PINGS, 1);
                self.queue_frame(frame::PONG, &[payload]);
            }
            OpCode::Control(Control::Pong) => {}
            OpCode::Control(Control::Close) => {
                let code = close::parse_payload(payload)?;
                match code {
                    Some(c) => self.queue_frame(frame::CLOSE, &[&close::payload(c)]),
                    None => self.queue_frame(frame::CLOSE, &[]),
                }
                self.begin_close(fd, State::CloseAfterFlush, CloseReason::ClientClose);
            }
            OpCode::Data(d) => {
                let fin = h.header.is_final;
                let single = fin && d != Data::Continue;
                if is_text {
                    if single && validated == 0 {
                        if !crate::protocol::utf8::is_valid(payload) {
                            return Err(Violation::InvalidUtf8);
                        }
                    } else {
                        let c = conn.get_or_insert_with(Box::default);
                        if d == Data::Text && validated == 0 {
                            c.utf8 = Utf8Validator::new();
                        }
                        c.utf8
                            .feed(&payload[validated..])
                            .map_err(|_| Violation::InvalidUtf8)?;
                        if fin && !c.utf8.is_complete() {
                            return Err(Violation::InvalidUtf8);
                        }
                    }
                }
                if single {
                    self.board.add(w, m::MSG_IN, 1);
                    self.board.add(w, m::BYTES_IN, payload.len() as u64);
                    if echo {
                        self.queue_frame(h.opcode(), &[payload]);
                        self.board.add(w, m::MSG_OUT, 1);
                        self.board.add(w, m::BYTES_OUT, payload.len() as u64);
                    }
                    return Ok(());
                }
                let c = conn.get_or_insert_with(Box::default);
                if d != Data::Continue {
                    c.msg = Some(h.opcode());
                    c.msg_len = 0;
                }
                c.msg_len += payload.len() as u64;
                if echo {
                    c.msg_data.extend_from_slice(payload);
                }
                if fin {
                    let op = c.msg.take().unwrap_or(frame::BINARY);
                    let data = std::mem::take(&mut c.msg_data);
                    let len = c.msg_len;
                    c.msg_len = 0;
                    self.board.add(w, m::MSG_IN, 1);
                    self.board.add(w, m::BYTES_IN, len);
                    if echo {
                        self.queue_frame(op, &[&data]);
                        self.board.add(w, m::MSG_OUT, 1);
                        self.board.add(w, m::BYTES_OUT, len);
                    }
                }
            }
            OpCode::Control(Control::Reserved(_)) => return Err(Violation::ReservedOpcode),
        }
        Ok(())
    }

    // ----- timers, stats, shutdown -----

    fn tick(&mut self) -> Option<WorkerExit> {
        // Deadlines are in ticks: scan the table once per tick, not after every epoll_wait.
        if self.timed > 0 && self.now != self.expired_at {
            self.expired_at = self.now;
            self.expire();
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
                State::Free | State::Open => {
                    self.set_deadline(i, 0);
                }
                _ => self.close(fd, None),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 16);
    }
}
