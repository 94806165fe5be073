//! One client process: one epoll loop, a 16-byte [`Slot`] per connection indexed by fd, one
//! read buffer for the whole loop. A connection owns heap memory (a [`Session`], the protocol
//! state shared with the server) only while its handshake, a partial frame or unsent output is
//! in flight: an idle websocket costs its slot.
//!
//! It opens its share of connections (bounded in flight, optionally rate-limited), holds them,
//! runs echo rounds and closes them in batches when the parent says so (the command word in
//! shared memory), and prints its latency histograms on stdout as one JSON line when it exits.
//!
//! The close handshake is the session's close machine ([`Phase`], kept in the slot). Opening
//! connections is in [`connect`], what is sent in [`traffic`], closing in [`teardown`],
//! reconnecting in a storm in [`reconnect`].

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;

use super::board::{self as b, Board, Cmd, ErrorClass};
use super::{WorkerConfig, ECHO_PAYLOAD};
use crate::protocol::close;
use crate::protocol::handshake::{self, KEY_LEN};
use crate::protocol::session::{self, Event, Phase, Role, Session, Status};
use crate::sys::epoll::{Epoll, EpollEvent, EpollFlags, READ, READABLE};
use crate::sys::fdtable::FdTable;
use crate::sys::signal::Signals;
use crate::sys::{net, Errno};

/// Bytes per read(2) into the loop's buffer (server frames here are small); the TLS layer's
/// least, so a read never leaves decrypted bytes behind.
const READ_BUF: usize = crate::tls::layer::MIN_READ_BUF;
/// Events per epoll_wait.
const EVENTS: usize = 512;
/// A response head or partial frame larger than this is refused (the server misbehaves).
const MAX_PENDING_IN: usize = 1024 * 1024;
/// Pause after a failed connect before the next, so a limit does not turn into a busy loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(5);
/// Longest pause after failures in a row.
const MAX_BACKOFF: Duration = Duration::from_millis(200);
/// A connection we sent a close frame to is closed anyway after this long.
const CLOSE_TIMEOUT_US: u32 = 3_000_000;
/// How often deadlines are checked.
const SCAN_EVERY: Duration = Duration::from_millis(200);

mod connect;
mod reconnect;
mod report;
mod teardown;
mod tls;
mod traffic;

use report::{new_hist, pairs, HIST_MAX_US};
pub use report::{run_worker, WorkerReport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Free,
    /// connect() in progress: waiting for writability.
    Connecting,
    /// Request sent, waiting for the 101.
    Handshaking,
    /// Websocket open, nothing in flight.
    Open,
    /// A message was sent at `t`; waiting for its echo.
    Echoing,
    /// In the close handshake (the session's close machine), since `t`: ours first (waiting
    /// for the server's close or EOF), or answering the server's.
    Closing(Phase),
}

/// The per-connection entry: 16 bytes.
#[derive(Debug, Default)]
struct Slot {
    pending: Option<Box<Session>>,
    /// µs since the loop started (wrapping): connect start, message send or close start.
    t: u32,
    state: State,
    /// The message in flight belongs to an echo round (not to --message-interval).
    round: bool,
    /// The end of this connection was counted when its close began (the server closed first).
    counted: bool,
}

/// The session limits of a client connection: the server's frames are small, a response head
/// or frame beyond this means the server misbehaves. Deadlines are the worker's own (connect,
/// echo and close timeouts), not the session's.
const SESSION: session::Config = session::Config {
    role: Role::Client,
    max_message: MAX_PENDING_IN as u64,
    keep_payload: true,
    frame_timeout_ms: 0,
    write_timeout_ms: 0,
};

pub struct Worker {
    cfg: WorkerConfig,
    board: Board,
    ep: Epoll,
    signals: Signals,
    /// The connections, indexed by fd; the table owns their sockets.
    slots: FdTable<Slot>,
    rbuf: Vec<u8>,
    /// The upgrade request without its key, built once.
    request: handshake::RequestTemplate,
    /// Scratch space the request of each connection is assembled in.
    reqbuf: Vec<u8>,
    /// Frames being written (pongs, close frames, messages).
    obuf: Vec<u8>,
    start: Instant,
    now: u32,
    src_next: usize,
    /// Per source of `cfg.sources`: bind with IP_FREEBIND (an AnyIP prefix's address).
    freebind: Vec<bool>,
    in_flight: usize,
    open: usize,
    closing: usize,
    echoing: usize,
    established: u64,
    hist_hs: Histogram<u64>,
    hist_echo: Histogram<u64>,
    storm: reconnect::Storm,
    backoff_until: Option<Instant>,
    errors_in_row: u32,
    /// The server's certificate was refused: no more connects (each would be refused the same).
    certificate_refused: bool,
    tokens: f64,
    last_refill: Instant,
    echo_round: u64,
    echo_cursor: usize,
    /// Echo messages in flight allowed now, sized from this process's echo rate.
    echo_window: traffic::EchoWindow,
    close_cursor: usize,
    close_tokens: f64,
    msg_budget: f64,
    msg_cursor: usize,
    last_msg: Instant,
    last_scan: Instant,
    last_stats: Instant,
    stopping: bool,
    /// `wss://`: the client configuration, the name to ask for, the connections' TLS state.
    tls_cfg: Option<std::sync::Arc<rustls::ClientConfig>>,
    tls_name: Option<rustls::pki_types::ServerName<'static>>,
    tls: crate::tls::Layer,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.cfg.index)
            .field("open", &self.open)
            .finish()
    }
}

impl Worker {
    pub fn new(cfg: WorkerConfig) -> anyhow::Result<Self> {
        let (signals, fd_cap, board) =
            crate::child::start("parent", cfg.parent_pid, cfg.shm_fd, cfg.workers)?;
        let ep = Epoll::new().context("epoll_create1")?;
        ep.add(signals.as_fd(), EpollFlags::EPOLLIN)?;
        let w = cfg.index;
        board.set(w, b::PID, std::process::id() as u64);
        board.set(w, b::TARGET, cfg.conns);
        board.set(w, b::FD_CAP, fd_cap);
        board.set(w, b::RSS, crate::sys::proc::rss_bytes());
        board.set(w, b::PHASE, b::PHASE_READY);
        let cap = (fd_cap as usize).min(1 << 22) + 64;
        let request = handshake::RequestTemplate::new(&cfg.target.host, &cfg.target.path);
        let freebind = super::sources::freebind_flags(&cfg.sources);
        let (tls_cfg, tls_name) = if cfg.target.tls {
            let name = crate::tls::server_name(cfg.target.tls_name())?;
            (Some(cfg.tls.config()?), Some(name))
        } else {
            (None, None)
        };
        Ok(Worker {
            cfg,
            board,
            ep,
            signals,
            slots: FdTable::with_capacity(cap),
            rbuf: vec![0u8; READ_BUF],
            request,
            reqbuf: Vec::with_capacity(256),
            obuf: Vec::with_capacity(256),
            start: Instant::now(),
            now: 0,
            src_next: 0,
            freebind,
            in_flight: 0,
            open: 0,
            closing: 0,
            echoing: 0,
            established: 0,
            hist_hs: new_hist(),
            hist_echo: new_hist(),
            storm: reconnect::Storm::default(),
            backoff_until: None,
            errors_in_row: 0,
            certificate_refused: false,
            tokens: 0.0,
            last_refill: Instant::now(),
            echo_round: 0,
            echo_cursor: usize::MAX,
            echo_window: traffic::EchoWindow::new(Instant::now()),
            close_cursor: 0,
            close_tokens: 0.0,
            msg_budget: 0.0,
            msg_cursor: 0,
            last_msg: Instant::now(),
            last_scan: Instant::now(),
            last_stats: Instant::now(),
            stopping: false,
            tls_cfg,
            tls_name,
            tls: crate::tls::Layer::default(),
        })
    }

    fn w(&self) -> usize {
        self.cfg.index
    }

    fn tick_now(&mut self) {
        self.now = self.start.elapsed().as_micros() as u32;
    }

    fn since(&self, t: u32) -> u64 {
        self.now.wrapping_sub(t) as u64
    }

    /// Runs until told to exit (or signalled) and everything is closed; returns the report.
    pub fn run(mut self) -> anyhow::Result<WorkerReport> {
        let mut events = vec![EpollEvent::empty(); EVENTS];
        let mut cmd = Cmd::Idle;
        loop {
            let timeout = self.timeout(cmd);
            let n = self.ep.wait(&mut events, timeout).context("epoll_wait")?;
            self.tick_now();
            for ev in &events[..n] {
                let fd = ev.data() as RawFd;
                if fd == self.signals.as_raw_fd() {
                    while let Ok(Some(_)) = self.signals.next() {
                        self.stopping = true;
                    }
                } else {
                    self.on_event(fd, ev.events());
                }
            }
            cmd = Cmd::from_u64(self.board.global(b::G_CMD));
            if self.stopping {
                cmd = Cmd::Exit;
            }
            match cmd {
                Cmd::Idle => {}
                Cmd::Connect => self.connect_some(),
                Cmd::Hold => {}
                Cmd::Echo => self.echo_some(),
                Cmd::Close | Cmd::Exit => self.close_some(cmd),
                Cmd::Storm => self.storm_some(),
            }
            if cmd != Cmd::Storm {
                self.storm_end();
            }
            if matches!(cmd, Cmd::Connect | Cmd::Hold) && self.cfg.message_interval_ms.is_some() {
                self.messages_some();
            }
            if self.last_scan.elapsed() >= SCAN_EVERY {
                self.last_scan = Instant::now();
                if self.in_flight > 0 || self.closing > 0 {
                    self.expire();
                }
            }
            self.publish(cmd);
            if cmd == Cmd::Exit && self.live() == 0 {
                let w = self.w();
                self.board.set(w, b::PHASE, b::PHASE_EXITED);
                return Ok(WorkerReport {
                    index: w,
                    handshake_us: pairs(&self.hist_hs),
                    echo_us: pairs(&self.hist_echo),
                    storm_handshake_us: pairs(&self.storm.hist),
                });
            }
        }
    }

    fn live(&self) -> usize {
        self.in_flight + self.open + self.closing
    }

    fn wants_connect(&self) -> bool {
        if self.certificate_refused {
            return false;
        }
        let step = self.board.global(b::G_STEP_PPM);
        let share = if step == 0 || step >= b::STEP_WHOLE {
            self.cfg.conns
        } else {
            (self.cfg.conns as u128 * step as u128).div_ceil(b::STEP_WHOLE as u128) as u64
        };
        self.established + (self.in_flight as u64) < share && self.in_flight < self.cfg.concurrency
    }

    fn timeout(&self, cmd: Cmd) -> i32 {
        match cmd {
            Cmd::Connect if self.wants_connect() => {
                if let Some(until) = self.backoff_until {
                    return until
                        .saturating_duration_since(Instant::now())
                        .as_millis()
                        .max(1) as i32;
                }
                if self.cfg.rate.is_some() && self.tokens < 1.0 {
                    return 1;
                }
                0
            }
            Cmd::Storm => self.storm_wait_ms().unwrap_or(50),
            Cmd::Close | Cmd::Exit if self.closes_now(cmd) => 0,
            Cmd::Echo | Cmd::Close | Cmd::Exit => 5,
            _ if self.cfg.message_interval_ms.is_some() => 10,
            _ => 50,
        }
    }

    fn publish(&mut self, cmd: Cmd) {
        let w = self.w();
        self.board.set(w, b::OPEN, self.open as u64);
        self.board.set(w, b::IN_FLIGHT, self.in_flight as u64);
        let phase = match cmd {
            Cmd::Idle => b::PHASE_READY,
            Cmd::Connect if self.established < self.cfg.conns => b::PHASE_CONNECTING,
            Cmd::Connect | Cmd::Hold | Cmd::Echo | Cmd::Storm => b::PHASE_HOLDING,
            Cmd::Close | Cmd::Exit if self.live() == 0 => b::PHASE_CLOSED,
            Cmd::Close | Cmd::Exit => b::PHASE_CLOSING,
        };
        self.board.set(w, b::PHASE, phase);
        self.tls_publish();
        if self.last_stats.elapsed() >= Duration::from_secs(1) {
            self.last_stats = Instant::now();
            self.board.set(w, b::RSS, crate::sys::proc::rss_bytes());
        }
    }

    // ----- events -----

    fn on_event(&mut self, fd: RawFd, flags: EpollFlags) {
        let i = fd as usize;
        if i >= self.slots.len() {
            return;
        }
        match self.slots[i].state {
            State::Free => {}
            State::Connecting => match net::take_error(self.slots.fd(i)) {
                Ok(None) => {
                    if flags.intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR) {
                        self.fail(fd, ErrorClass::Econnreset, Errno::ECONNRESET as i32);
                    } else {
                        self.send_request(fd, false);
                    }
                }
                Ok(Some(e)) | Err(e) => self.fail(fd, ErrorClass::of_errno(e), e as i32),
            },
            _ => {
                if flags.contains(EpollFlags::EPOLLOUT) && !self.flush(fd) {
                    return;
                }
                if flags.intersects(READABLE) {
                    self.on_readable(fd);
                }
            }
        }
    }

    /// Writes pending output; false when the connection was closed on the way.
    fn flush(&mut self, fd: RawFd) -> bool {
        let i = fd as usize;
        if let Err(e) = self.tls.flush(i, self.slots.fd(i)) {
            self.lost(fd, e);
            return false;
        }
        let tls_waits = self.tls.wants_write(i);
        let (sock, slot) = self.slots.fd_and_slot(i);
        let Some(p) = slot.pending.as_mut() else {
            if !tls_waits {
                let _ = self.ep.modify(sock, READ);
            }
            return true;
        };
        if p.pending_out() == 0 {
            if !tls_waits {
                let _ = self.ep.modify(sock, READ);
            }
            return true;
        }
        match self.tls.write(i, sock, p.unsent()) {
            Ok(n) => {
                p.advance(n, &SESSION, 0);
                if p.pending_out() == 0 {
                    let _ = self.ep.modify(sock, READ);
                    self.maybe_free_pending(i);
                    self.close_progress(fd);
                }
                self.slots[i].state != State::Free
            }
            Err(Errno::EAGAIN) => true,
            Err(e) => {
                self.lost(fd, e);
                false
            }
        }
    }

    fn maybe_free_pending(&mut self, i: usize) {
        let s = &mut self.slots[i];
        if s.state != State::Handshaking && s.pending.as_ref().is_some_and(|p| p.is_idle()) {
            s.pending = None;
        }
    }

    /// A connection failed after connecting: an error during the handshake, a drop afterwards.
    fn lost(&mut self, fd: RawFd, e: Errno) {
        match self.slots[fd as usize].state {
            State::Connecting | State::Handshaking => {
                let class = if e == Errno::UnknownErrno {
                    ErrorClass::HandshakeEof
                } else {
                    ErrorClass::of_errno(e)
                };
                self.fail(fd, class, e as i32)
            }
            State::Closing(_) => self.finish_close(fd),
            State::Open | State::Echoing => {
                self.board.add(self.w(), b::DROPPED, 1);
                if e != Errno::UnknownErrno {
                    self.board.set(self.w(), b::LAST_ERRNO, e as u64);
                }
                self.release(fd);
            }
            State::Free => {}
        }
    }

    fn on_readable(&mut self, fd: RawFd) {
        let mut rbuf = std::mem::take(&mut self.rbuf);
        match self
            .tls
            .read(fd as usize, self.slots.fd(fd as usize), &mut rbuf)
        {
            Ok(0) => self.lost(fd, Errno::UnknownErrno),
            Ok(n) => self.on_data(fd, &mut rbuf[..n]),
            Err(Errno::EAGAIN) => {}
            Err(Errno::EPROTO) if self.tls.is_tls(fd as usize) => self.tls_failed(fd),
            Err(e) => self.lost(fd, e),
        }
        self.rbuf = rbuf;
    }

    fn on_data(&mut self, fd: RawFd, data: &mut [u8]) {
        let i = fd as usize;
        let mut p = self.slots[i].pending.take();
        if self.slots[i].state == State::Handshaking {
            match connect::head(&mut p, data) {
                Ok(false) => {
                    self.slots[i].pending = p;
                    return;
                }
                Ok(true) => {
                    if let Some(s) = p.as_mut() {
                        s.key = [0; KEY_LEN];
                    }
                    self.opened(fd);
                }
                Err(class) => {
                    self.slots[i].pending = p;
                    match class {
                        Some(c) => self.fail(fd, c, 0),
                        None => self.lost(fd, Errno::EMSGSIZE),
                    }
                    return;
                }
            }
            // Frames right behind the 101 wait in the session's input.
            if !p.as_ref().is_some_and(|s| s.has_partial_input()) {
                self.slots[i].pending = p;
                self.maybe_free_pending(i);
                return;
            }
            self.on_frames(fd, p, &mut []);
        } else {
            self.on_frames(fd, p, data);
        }
    }

    fn opened(&mut self, fd: RawFd) {
        let i = fd as usize;
        let took = self.since(self.slots[i].t);
        if self.storm.active() {
            self.storm_opened(fd, took);
        } else {
            let _ = self.hist_hs.record(took.clamp(1, HIST_MAX_US));
        }
        self.slots[i].state = State::Open;
        self.in_flight -= 1;
        self.open += 1;
        self.established += 1;
        self.errors_in_row = 0;
        self.board.add(self.w(), b::ESTABLISHED, 1);
    }

    /// The server's frames, through the session's close machine (which answers pings and
    /// close frames): echoes are timed and checked, a protocol error drops the connection;
    /// while closing, what the server sends is discarded until its close frame.
    fn on_frames(&mut self, fd: RawFd, mut p: Option<Box<Session>>, data: &mut [u8]) {
        let i = fd as usize;
        let w = self.w();
        let mut phase = match self.slots[i].state {
            State::Closing(phase) => phase,
            _ => Phase::Open,
        };
        let was_open = phase.is_open();
        let mut out = std::mem::take(&mut self.obuf);
        let st = session::feed(&mut phase, &mut p, &SESSION, 0, data, &mut out, |e, _| {
            if let Event::Message { data, .. } = e {
                self.on_message(i, data == ECHO_PAYLOAD);
            }
        });
        self.slots[i].pending = p;
        let sent = out.is_empty() || self.send_bytes(fd, &out);
        out.clear();
        self.obuf = out;
        if !sent {
            return;
        }
        if !was_open {
            self.slots[i].state = State::Closing(phase);
            return self.close_progress(fd);
        }
        match st {
            Status::Open => self.maybe_free_pending(i),
            Status::PeerClosed(code) => {
                // The server closed first: a shutdown's 1001 is a close, anything else a drop.
                let what = if code == Some(close::GOING_AWAY) {
                    b::SERVER_CLOSED
                } else {
                    b::DROPPED
                };
                self.board.add(w, what, 1);
                self.slots[i].counted = true;
                self.start_closing(i, phase);
                self.close_progress(fd);
            }
            // Our close frame went out with the output above.
            Status::Failed(_) => self.lost(fd, Errno::EPROTO),
        }
    }

    /// A whole message from the server: the echo of the one in flight, or an extra one.
    fn on_message(&mut self, i: usize, is_echo_payload: bool) {
        let w = self.w();
        if self.slots[i].state != State::Echoing {
            self.board.add(w, b::MSG_RECV, 1);
            return;
        }
        let took = self.since(self.slots[i].t);
        let _ = self.hist_echo.record(took.clamp(1, HIST_MAX_US));
        let round = self.slots[i].round;
        self.slots[i].state = State::Open;
        self.echoing -= 1;
        if round {
            self.echo_window.completed();
        }
        if !is_echo_payload {
            self.board.add(w, b::ECHO_BAD, 1);
        } else if round {
            self.board.add(w, b::ECHO_RECV, 1);
        } else {
            self.board.add(w, b::MSG_RECV, 1);
        }
    }
}

/// Entry point of a client process: set up, run, print the report as one JSON line.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 16);
    }
}
