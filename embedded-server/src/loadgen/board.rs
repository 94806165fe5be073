//! The load generator's shared counters: a global block (the parent's command word) and one
//! block per client process, in one memfd mapping; each counter has a single writer (the
//! process itself; once it has died, the parent, which then moves what it held to [`LOST`]).

use serde::Serialize;

use crate::counter_blocks;
use crate::sys::Errno;

/// u64 slots per block.
pub const BLOCK: usize = 64;

// Global block.
pub const G_CMD: usize = 0;
pub const G_ECHO_ROUND: usize = 1;
/// Nonzero: the teardown is paused (the parent saw TCP memory climb); clients close nothing
/// until it is zero again. Not read on [`Cmd::Exit`].
pub const G_CLOSE_PAUSED: usize = 2;
/// Nonzero: a step of a ramp; each process opens no more than this many millionths of its
/// share (`tune load --steps`, so the server is sampled at known counts). Zero: its whole share.
pub const G_STEP_PPM: usize = 3;
/// [`G_STEP_PPM`] for the whole share.
pub const STEP_WHOLE: u64 = 1_000_000;
/// A reconnect storm ([`Cmd::Storm`]): each time this word changes, every client process
/// drops every open connection at once (the clients' storm; a server restart drops them
/// from the other side and leaves this word alone).
pub const G_STORM_DROP: usize = 8;
/// The reconnect policy of a storm: [`crate::loadgen::storm::ReconnectPolicy`] in words.
pub const G_RECONNECT_JITTER_MS: usize = 9;
pub const G_RECONNECT_BACKOFF_MS: usize = 10;

// Per-process block.
pub const PID: usize = 0;
pub const PHASE: usize = 1;
/// Websockets open now.
pub const OPEN: usize = 2;
/// Connects and handshakes in flight.
pub const IN_FLIGHT: usize = 3;
pub const ATTEMPTS: usize = 4;
/// Websockets opened (handshake completed), in total.
pub const ESTABLISHED: usize = 5;
/// Open websockets the server or the network closed (not us).
pub const DROPPED: usize = 6;
pub const ECHO_SENT: usize = 7;
pub const ECHO_RECV: usize = 8;
/// Echo frames whose payload differed from what was sent.
pub const ECHO_BAD: usize = 9;
pub const RSS: usize = 10;
/// Connections we closed (teardown), handshake completed or not.
pub const CLOSED: usize = 11;
pub const TARGET: usize = 12;
pub const MSG_SENT: usize = 13;
pub const MSG_RECV: usize = 14;
pub const FD_CAP: usize = 15;
/// The errno of the most recent failure (for the report).
pub const LAST_ERRNO: usize = 16;
/// Open websockets the server closed with 1001 (going away: it is shutting down).
pub const SERVER_CLOSED: usize = 17;
/// Connections the process held when it died (written by the parent after the death, when
/// it also sets OPEN and IN_FLIGHT to 0 and PHASE to [`PHASE_DIED`]).
pub const LOST: usize = 18;
/// Storm: reconnects waiting for their (jittered) time.
pub const STORM_DUE: usize = 19;
/// Storm: connections reopened.
pub const STORM_OPENED: usize = 20;
/// Storm: reconnect attempts that failed (and were retried or given up).
pub const STORM_FAILED: usize = 21;
/// Storm: clients that gave up reconnecting ([`crate::loadgen::storm::GIVE_UP_AFTER`]).
pub const GAVE_UP: usize = 22;
pub const ERRORS: usize = 24; // + ErrorClass index (< 24)
/// `wss://`: TLS handshakes completed, and the process's thread CPU spent in them (ns).
pub const TLS_HANDSHAKES: usize = 48;
pub const TLS_HANDSHAKE_CPU_NS: usize = 49;

/// What the parent tells every client process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Cmd {
    /// Started; wait.
    Idle = 0,
    /// Open connections up to the process's share.
    Connect = 1,
    /// Open no more; keep what is open.
    Hold = 2,
    /// Every open connection sends one message and waits for its echo ([`G_ECHO_ROUND`]).
    Echo = 3,
    /// Close every connection, in batches.
    Close = 4,
    /// Report histograms on stdout and exit (after closing what is left).
    Exit = 5,
    /// A reconnect storm: every connection lost (dropped by [`G_STORM_DROP`], by the server or
    /// by a failed attempt) reconnects by the reconnect policy, with no cap on connects in
    /// flight (`worker/reconnect.rs`).
    Storm = 6,
}

impl Cmd {
    pub fn from_u64(v: u64) -> Cmd {
        match v {
            1 => Cmd::Connect,
            2 => Cmd::Hold,
            3 => Cmd::Echo,
            4 => Cmd::Close,
            5 => Cmd::Exit,
            6 => Cmd::Storm,
            _ => Cmd::Idle,
        }
    }
}

pub const PHASE_STARTING: u64 = 0;
pub const PHASE_READY: u64 = 1;
pub const PHASE_CONNECTING: u64 = 2;
/// Its share is open (or told to hold).
pub const PHASE_HOLDING: u64 = 3;
pub const PHASE_CLOSING: u64 = 4;
/// Everything closed.
pub const PHASE_CLOSED: u64 = 5;
pub const PHASE_EXITED: u64 = 6;
/// Exited before it was told to (killed, crashed): set by the parent.
pub const PHASE_DIED: u64 = 7;

/// Why a connection attempt failed, by errno or handshake outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// EMFILE: the process's RLIMIT_NOFILE.
    Emfile,
    /// ENFILE: the system-wide fs.file-max.
    Enfile,
    /// EADDRNOTAVAIL: no free ephemeral port for the (source, destination) pair.
    Eaddrnotavail,
    /// EADDRINUSE at bind/connect.
    Eaddrinuse,
    /// ECONNREFUSED: nothing listening (or the listener closed).
    Econnrefused,
    /// ETIMEDOUT from the kernel: SYN retries exhausted.
    Etimedout,
    /// Our own deadline from connect() to the 101 response passed.
    ConnectTimeout,
    /// ECONNRESET / EPIPE during connect or handshake.
    Econnreset,
    /// ENOMEM: kernel memory.
    Enomem,
    /// ENOBUFS: socket buffer memory (tcp_mem) or kernel memory.
    Enobufs,
    /// The server answered the upgrade with another status than 101.
    HandshakeStatus,
    /// The 101 response carried a wrong Sec-WebSocket-Accept.
    HandshakeAccept,
    /// The response was not HTTP.
    HandshakeMalformed,
    /// The server closed before answering the upgrade.
    HandshakeEof,
    /// TLS: the server's certificate does not lead to a trusted root (system store or --ca).
    TlsUnknownIssuer,
    /// TLS: the certificate is not valid for the URL's host.
    TlsNameMismatch,
    /// TLS: the certificate is expired (or not valid yet).
    TlsExpired,
    /// TLS: what came back is not TLS (a plain-TCP server on the port).
    TlsNotTls,
    /// TLS: the handshake did not finish within the connect timeout.
    TlsHandshakeTimeout,
    /// TLS: the server sent a fatal alert.
    TlsAlert,
    /// TLS: any other TLS error.
    TlsOther,
    /// Anything else (the errno is in LAST_ERRNO).
    Other,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 22] = [
        ErrorClass::Emfile,
        ErrorClass::Enfile,
        ErrorClass::Eaddrnotavail,
        ErrorClass::Eaddrinuse,
        ErrorClass::Econnrefused,
        ErrorClass::Etimedout,
        ErrorClass::ConnectTimeout,
        ErrorClass::Econnreset,
        ErrorClass::Enomem,
        ErrorClass::Enobufs,
        ErrorClass::HandshakeStatus,
        ErrorClass::HandshakeAccept,
        ErrorClass::HandshakeMalformed,
        ErrorClass::HandshakeEof,
        ErrorClass::Other,
        ErrorClass::TlsUnknownIssuer,
        ErrorClass::TlsNameMismatch,
        ErrorClass::TlsExpired,
        ErrorClass::TlsNotTls,
        ErrorClass::TlsHandshakeTimeout,
        ErrorClass::TlsAlert,
        ErrorClass::TlsOther,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ErrorClass::Emfile => "emfile",
            ErrorClass::Enfile => "enfile",
            ErrorClass::Eaddrnotavail => "eaddrnotavail",
            ErrorClass::Eaddrinuse => "eaddrinuse",
            ErrorClass::Econnrefused => "econnrefused",
            ErrorClass::Etimedout => "etimedout",
            ErrorClass::ConnectTimeout => "connect_timeout",
            ErrorClass::Econnreset => "econnreset",
            ErrorClass::Enomem => "enomem",
            ErrorClass::Enobufs => "enobufs",
            ErrorClass::HandshakeStatus => "handshake_status",
            ErrorClass::HandshakeAccept => "handshake_accept",
            ErrorClass::HandshakeMalformed => "handshake_malformed",
            ErrorClass::HandshakeEof => "handshake_eof",
            ErrorClass::Other => "other",
            ErrorClass::TlsUnknownIssuer => "tls_unknown_issuer",
            ErrorClass::TlsNameMismatch => "tls_name_mismatch",
            ErrorClass::TlsExpired => "tls_expired",
            ErrorClass::TlsNotTls => "tls_not_tls",
            ErrorClass::TlsHandshakeTimeout => "tls_handshake_timeout",
            ErrorClass::TlsAlert => "tls_alert",
            ErrorClass::TlsOther => "tls_other",
        }
    }

    /// Whether this is a TLS failure.
    pub fn is_tls(self) -> bool {
        self.label().starts_with("tls_")
    }

    /// A certificate the client refuses: every later attempt gets the same answer, so the load
    /// stops at the first rather than retrying (timeouts and alerts may pass and are retried).
    pub fn is_certificate(self) -> bool {
        matches!(
            self,
            ErrorClass::TlsUnknownIssuer | ErrorClass::TlsNameMismatch | ErrorClass::TlsExpired
        )
    }

    /// The class of a TLS failure.
    pub fn of_tls(f: crate::tls::Failure) -> ErrorClass {
        use crate::tls::Failure;
        match f {
            Failure::UnknownIssuer => ErrorClass::TlsUnknownIssuer,
            Failure::NameMismatch => ErrorClass::TlsNameMismatch,
            Failure::Expired => ErrorClass::TlsExpired,
            Failure::NotTls => ErrorClass::TlsNotTls,
            Failure::Alert => ErrorClass::TlsAlert,
            Failure::Other => ErrorClass::TlsOther,
        }
    }

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }

    /// The class of a failed syscall.
    pub fn of_errno(e: Errno) -> ErrorClass {
        match e {
            Errno::EMFILE => ErrorClass::Emfile,
            Errno::ENFILE => ErrorClass::Enfile,
            Errno::EADDRNOTAVAIL => ErrorClass::Eaddrnotavail,
            Errno::EADDRINUSE => ErrorClass::Eaddrinuse,
            Errno::ECONNREFUSED => ErrorClass::Econnrefused,
            Errno::ETIMEDOUT => ErrorClass::Etimedout,
            Errno::ECONNRESET | Errno::EPIPE | Errno::ECONNABORTED => ErrorClass::Econnreset,
            Errno::ENOMEM => ErrorClass::Enomem,
            Errno::ENOBUFS => ErrorClass::Enobufs,
            _ => ErrorClass::Other,
        }
    }
}

/// The load generator's counter layout.
#[derive(Debug, Clone, Copy)]
pub struct LoadLayout;

impl counter_blocks::Layout for LoadLayout {
    const BLOCK: usize = BLOCK;
}

/// The shared counters.
pub type Board = counter_blocks::Board<LoadLayout>;

impl Board {
    pub fn error(&self, w: usize, c: ErrorClass, errno: i32) {
        self.add(w, ERRORS + c.index(), 1);
        if errno != 0 {
            self.set(w, LAST_ERRNO, errno as u64);
        }
    }

    /// Process `w` died: what it held moves from OPEN to [`LOST`] (with the connections it
    /// closed itself when the parent had not told it to close, `closing_told` false: a
    /// SIGTERM makes a process close everything before it exits). Returns the count lost.
    pub fn mark_died(&self, w: usize, closing_told: bool) -> u64 {
        let closed = if closing_told { 0 } else { self.get(w, CLOSED) };
        let lost = self.get(w, OPEN) + closed;
        self.set(w, LOST, lost);
        self.set(w, OPEN, 0);
        self.set(w, IN_FLIGHT, 0);
        self.set(w, PHASE, PHASE_DIED);
        lost
    }

    /// All processes' counters added up.
    pub fn snapshot(&self) -> LoadSnapshot {
        let mut s = LoadSnapshot {
            errors: ErrorClass::ALL.iter().map(|c| (*c, 0)).collect(),
            ..LoadSnapshot::default()
        };
        for w in 0..self.workers() {
            let g = |i| self.get(w, i);
            let phase = g(PHASE);
            if (PHASE_READY..PHASE_EXITED).contains(&phase) {
                s.processes_up += 1;
            }
            if phase == PHASE_CLOSED {
                s.processes_closed += 1;
            }
            if phase == PHASE_DIED {
                s.processes_died += 1;
            }
            s.lost += g(LOST);
            s.open += g(OPEN);
            s.in_flight += g(IN_FLIGHT);
            s.attempts += g(ATTEMPTS);
            s.established += g(ESTABLISHED);
            s.dropped += g(DROPPED);
            s.echo_sent += g(ECHO_SENT);
            s.echo_recv += g(ECHO_RECV);
            s.echo_bad += g(ECHO_BAD);
            s.rss_bytes += g(RSS);
            s.closed += g(CLOSED);
            s.server_closed += g(SERVER_CLOSED);
            s.reconnect_due += g(STORM_DUE);
            s.reconnected += g(STORM_OPENED);
            s.reconnect_failed += g(STORM_FAILED);
            s.gave_up += g(GAVE_UP);
            s.target += g(TARGET);
            s.messages_sent += g(MSG_SENT);
            s.messages_received += g(MSG_RECV);
            s.fd_cap = s.fd_cap.max(g(FD_CAP));
            s.tls_handshakes += g(TLS_HANDSHAKES);
            s.tls_handshake_cpu_ns += g(TLS_HANDSHAKE_CPU_NS);
            if g(LAST_ERRNO) != 0 {
                s.last_errno = g(LAST_ERRNO) as i32;
            }
            for (k, c) in ErrorClass::ALL.iter().enumerate() {
                s.errors[k] = (*c, s.errors[k].1 + g(ERRORS + c.index()));
            }
        }
        s
    }
}

/// Every client process's counters added up at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSnapshot {
    pub processes_up: u64,
    pub processes_closed: u64,
    /// Processes that exited before they were told to (see [`Board::mark_died`]).
    pub processes_died: u64,
    /// Connections held by processes that died: gone with them, not in `open`.
    pub lost: u64,
    pub open: u64,
    pub in_flight: u64,
    pub attempts: u64,
    pub established: u64,
    pub dropped: u64,
    pub echo_sent: u64,
    pub echo_recv: u64,
    pub echo_bad: u64,
    pub rss_bytes: u64,
    pub closed: u64,
    /// Closed by the server with 1001 (going away), not counted in `dropped`.
    pub server_closed: u64,
    /// Storm: reconnects waiting for their time, reopened, failed attempts, clients that gave up.
    pub reconnect_due: u64,
    pub reconnected: u64,
    pub reconnect_failed: u64,
    pub gave_up: u64,
    pub target: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub fd_cap: u64,
    /// `wss://`: TLS handshakes completed and the client CPU spent in them (ns).
    pub tls_handshakes: u64,
    pub tls_handshake_cpu_ns: u64,
    pub last_errno: i32,
    pub errors: Vec<(ErrorClass, u64)>,
}

impl LoadSnapshot {
    pub fn error(&self, c: ErrorClass) -> u64 {
        self.errors.iter().find(|(k, _)| *k == c).map_or(0, |e| e.1)
    }
    /// The first certificate error class seen (see [`ErrorClass::is_certificate`]) and its count.
    pub fn certificate_error(&self) -> Option<(ErrorClass, u64)> {
        self.errors
            .iter()
            .find(|(k, n)| k.is_certificate() && *n > 0)
            .copied()
    }
    pub fn errors_total(&self) -> u64 {
        self.errors.iter().map(|e| e.1).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::shm::SharedU64s;

    #[test]
    fn errno_classes_and_aggregation() {
        assert_eq!(ErrorClass::of_errno(Errno::EMFILE), ErrorClass::Emfile);
        assert_eq!(ErrorClass::of_errno(Errno::EPIPE), ErrorClass::Econnreset);
        assert_eq!(ErrorClass::of_errno(Errno::EINVAL), ErrorClass::Other);
        assert!(ErrorClass::ALL.len() + ERRORS <= BLOCK);
        let b = Board::new(SharedU64s::create("t", Board::shm_len(2)).unwrap(), 2);
        b.error(0, ErrorClass::Eaddrnotavail, 99);
        b.error(1, ErrorClass::Eaddrnotavail, 99);
        b.add(1, OPEN, 5);
        b.set(0, PHASE, PHASE_CONNECTING);
        let s = b.snapshot();
        assert_eq!(s.error(ErrorClass::Eaddrnotavail), 2);
        assert_eq!(s.errors_total(), 2);
        assert_eq!(s.open, 5);
        assert_eq!(s.processes_up, 1);
        assert_eq!(s.last_errno, 99);
        assert_eq!(Cmd::from_u64(Cmd::Echo as u64), Cmd::Echo);
    }

    #[test]
    fn a_dead_process_moves_what_it_held_to_lost() {
        const { assert!(LOST < ERRORS) };
        let b = Board::new(SharedU64s::create("t", Board::shm_len(2)).unwrap(), 2);
        b.set(0, OPEN, 7);
        b.set(1, OPEN, 5);
        b.set(1, IN_FLIGHT, 2);
        b.set(1, PHASE, PHASE_HOLDING);
        assert_eq!(b.mark_died(1, false), 5);
        let s = b.snapshot();
        assert_eq!((s.open, s.in_flight, s.lost), (7, 0, 5));
        assert_eq!((s.processes_died, s.processes_up), (1, 0));
        // A process told to close that dies meanwhile loses only what it still held.
        b.set(0, CLOSED, 4);
        b.set(0, OPEN, 3);
        assert_eq!(b.mark_died(0, true), 3);
        // One that closed by itself (SIGTERM) before being told lost what it closed too.
        let b = Board::new(SharedU64s::create("t", Board::shm_len(1)).unwrap(), 1);
        b.set(0, CLOSED, 6);
        assert_eq!(b.mark_died(0, false), 6);
    }
}
