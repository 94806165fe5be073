//! Counters of every worker in one shared memfd mapping (a block of u64s per worker, written only
//! by its worker), their aggregation into a [`Snapshot`], and the Prometheus text of /metrics.
//!
//! Why shared memory: any worker may receive `GET /metrics` and must answer for all of them, and
//! the supervisor reads them for its live line, without a message round trip or a lock. Each
//! counter has a single writer (its worker; the supervisor writes a dead worker's block only after
//! reaping it), so updates are a relaxed load and store, not a locked read-modify-write.

use std::fmt::Write as _;

use crate::counter_blocks;
use crate::protocol::handshake::Rejection;
use crate::protocol::Violation;

/// u64 slots per worker block (and for the global block in front).
pub const BLOCK: usize = 96;

/// Global block (offset 0).
pub const G_WORKERS: usize = 0;
/// Set to 1 by the supervisor when shutdown starts; workers poll it every tick.
pub const G_SHUTDOWN: usize = 1;

// Worker block offsets.
pub const PID: usize = 0;
/// 0 starting, 1 accepting, 2 draining (shutdown), 3 exited, 4 died.
pub const PHASE: usize = 1;
pub const CONNS: usize = 2;
pub const WS_OPEN: usize = 3;
pub const ACCEPTED: usize = 4;
pub const HANDSHAKES: usize = 5;
pub const FDS: usize = 6;
pub const FD_CAP: usize = 7;
pub const RSS: usize = 8;
pub const LISTENING: usize = 9;
pub const MSG_IN: usize = 10;
pub const MSG_OUT: usize = 11;
pub const BYTES_IN: usize = 12;
pub const BYTES_OUT: usize = 13;
pub const ACCEPT_ERRORS: usize = 14;
pub const LOST: usize = 15;
pub const LISTENER_PAUSES: usize = 16;
pub const HTTP_METRICS: usize = 17;
pub const HTTP_HEALTHZ: usize = 18;
pub const HTTP_NOT_FOUND: usize = 19;
pub const PINGS: usize = 20;
/// Heap bytes the worker's connections hold (buffered output, partial frames and messages):
/// what the memory budget counts.
pub const BUFFERED: usize = 21;
/// Connections still in the handshake.
pub const HANDSHAKING: usize = 22;
/// A request, not a count: the supervisor writes here (the one field of a worker's block it
/// writes while the worker lives) to ask the worker to drain over this many milliseconds
/// (graceful restart); the worker reads it every tick.
pub const DRAIN_MS: usize = 23;
pub const HS_FAILED: usize = 24; // + Rejection index (8)
pub const CLOSED: usize = 32; // + CloseReason index (<= 16)
pub const VIOLATIONS: usize = 48; // + Violation index (<= 16)
/// Connections accepted from IPv4 clients (IPv4-mapped ones on a dual-stack `[::]` count here).
pub const ACCEPTED_IPV4: usize = 64;
/// Connections accepted from IPv6 clients.
pub const ACCEPTED_IPV6: usize = 65;
/// TLS handshakes completed, the worker's thread CPU spent in them (ns), and TLS failures
/// (a garbage ClientHello, an alert, a client that refused our certificate).
pub const TLS_HANDSHAKES: usize = 66;
pub const TLS_HANDSHAKE_CPU_NS: usize = 67;
pub const TLS_FAILED: usize = 68;
/// A request like [`DRAIN_MS`], written by the supervisor once every old worker has closed its
/// listener: the drain's closes may begin (a client closed before then could reconnect to an
/// old worker that still listens, and be drained twice).
pub const DRAIN_GO: usize = 69;

pub const PHASE_STARTING: u64 = 0;
pub const PHASE_ACCEPTING: u64 = 1;
pub const PHASE_DRAINING: u64 = 2;
pub const PHASE_EXITED: u64 = 3;
pub const PHASE_DIED: u64 = 4;

/// Why the server closed (or saw closed) a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent a close frame (normal close handshake).
    ClientClose,
    /// The client's TCP side ended without a close frame.
    PeerEof,
    /// A socket error (reset, broken pipe).
    IoError,
    /// A protocol violation (1002).
    ProtocolError,
    /// Invalid UTF-8 (1007).
    InvalidPayload,
    /// Message beyond the limit (1009).
    TooBig,
    /// The client did not read its replies: output beyond the limit.
    SlowReader,
    /// Server shutdown (1001).
    Shutdown,
    /// The upgrade was refused (HTTP error sent) or timed out.
    HandshakeFailed,
    /// A plain HTTP request was answered.
    Http,
    /// A partial frame or fragmented message missed its deadline (1008).
    FrameTimeout,
    /// Pending output made no progress within its deadline (reset).
    WriteTimeout,
    /// No traffic (or no answer to a ping) within the idle timeout (1001).
    IdleTimeout,
    /// One of the largest holders when the worker's memory budget was exceeded (1008/1009).
    OverBudget,
    /// The oldest handshake, closed (503) to admit a new one when the handshake slots were full.
    HandshakeEvicted,
    /// Refused (503) because its source address held its cap of connections.
    SourceCap,
}

impl CloseReason {
    pub const ALL: [CloseReason; 16] = [
        CloseReason::ClientClose,
        CloseReason::PeerEof,
        CloseReason::IoError,
        CloseReason::ProtocolError,
        CloseReason::InvalidPayload,
        CloseReason::TooBig,
        CloseReason::SlowReader,
        CloseReason::Shutdown,
        CloseReason::HandshakeFailed,
        CloseReason::Http,
        CloseReason::FrameTimeout,
        CloseReason::WriteTimeout,
        CloseReason::IdleTimeout,
        CloseReason::OverBudget,
        CloseReason::HandshakeEvicted,
        CloseReason::SourceCap,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CloseReason::ClientClose => "client_close",
            CloseReason::PeerEof => "peer_eof",
            CloseReason::IoError => "io_error",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::InvalidPayload => "invalid_payload",
            CloseReason::TooBig => "too_big",
            CloseReason::SlowReader => "slow_reader",
            CloseReason::Shutdown => "shutdown",
            CloseReason::HandshakeFailed => "handshake_failed",
            CloseReason::Http => "http",
            CloseReason::FrameTimeout => "frame_timeout",
            CloseReason::WriteTimeout => "write_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::OverBudget => "over_budget",
            CloseReason::HandshakeEvicted => "handshake_evicted",
            CloseReason::SourceCap => "source_cap",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    pub fn for_violation(v: Violation) -> Self {
        match v {
            Violation::InvalidUtf8 => CloseReason::InvalidPayload,
            Violation::TooBig => CloseReason::TooBig,
            _ => CloseReason::ProtocolError,
        }
    }
}

pub const VIOLATION_ALL: [Violation; 13] = [
    Violation::Unmasked,
    Violation::Masked,
    Violation::ReservedBits,
    Violation::ReservedOpcode,
    Violation::ControlTooLong,
    Violation::FragmentedControl,
    Violation::UnexpectedContinuation,
    Violation::ExpectedContinuation,
    Violation::BadLength,
    Violation::CloseTooShort,
    Violation::BadCloseCode,
    Violation::InvalidUtf8,
    Violation::TooBig,
];

fn violation_index(v: Violation) -> usize {
    VIOLATION_ALL.iter().position(|x| *x == v).unwrap_or(0)
}

fn rejection_index(r: Rejection) -> usize {
    Rejection::ALL.iter().position(|x| *x == r).unwrap_or(0)
}

/// The server's counter layout.
#[derive(Debug, Clone, Copy)]
pub struct ServerLayout;

impl counter_blocks::Layout for ServerLayout {
    const BLOCK: usize = BLOCK;
}

/// The counters of all workers, shared.
pub type Board = counter_blocks::Board<ServerLayout>;

impl Board {
    pub fn closed(&self, worker: usize, r: CloseReason) {
        self.add(worker, CLOSED + r.index(), 1)
    }

    pub fn violation(&self, worker: usize, v: Violation) {
        self.add(worker, VIOLATIONS + violation_index(v), 1)
    }

    pub fn rejected(&self, worker: usize, r: Rejection) {
        self.add(worker, HS_FAILED + rejection_index(r), 1)
    }

    /// Worker processes configured: the supervisor's count (the board holds two blocks per
    /// worker, one for each generation of a graceful restart).
    pub fn configured(&self) -> usize {
        match self.global(G_WORKERS) {
            0 => self.workers(),
            n => n as usize,
        }
    }

    /// The blocks some worker has used (a graceful restart's spare generation is left out
    /// until it starts).
    pub fn used_blocks(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.workers()).filter(|&w| {
            self.get(w, PID) != 0 || self.get(w, FD_CAP) != 0 || self.get(w, PHASE) != 0
        })
    }

    /// All workers' counters added up.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for w in 0..self.workers() {
            let g = |i| self.get(w, i);
            let phase = g(PHASE);
            if phase == PHASE_ACCEPTING || phase == PHASE_DRAINING {
                s.workers_up += 1;
            }
            s.connections += g(CONNS);
            s.websockets_open += g(WS_OPEN);
            s.accepted += g(ACCEPTED);
            s.accepted_ipv4 += g(ACCEPTED_IPV4);
            s.accepted_ipv6 += g(ACCEPTED_IPV6);
            s.handshakes += g(HANDSHAKES);
            s.messages_in += g(MSG_IN);
            s.messages_out += g(MSG_OUT);
            s.bytes_in += g(BYTES_IN);
            s.bytes_out += g(BYTES_OUT);
            s.rss_bytes += g(RSS);
            s.fds += g(FDS);
            s.lost += g(LOST);
            s.accept_errors += g(ACCEPT_ERRORS);
            s.pings += g(PINGS);
            s.tls_handshakes += g(TLS_HANDSHAKES);
            s.tls_handshake_cpu_ns += g(TLS_HANDSHAKE_CPU_NS);
            s.tls_failed += g(TLS_FAILED);
            for (k, r) in Rejection::ALL.iter().enumerate() {
                s.add_labeled(Family::HandshakeFailed, r.label(), g(HS_FAILED + k));
            }
            for (k, r) in CloseReason::ALL.iter().enumerate() {
                s.add_labeled(Family::Closed, r.label(), g(CLOSED + k));
            }
            for (k, v) in VIOLATION_ALL.iter().enumerate() {
                s.add_labeled(Family::Violation, v.label(), g(VIOLATIONS + k));
            }
        }
        s
    }

    /// Each worker's own gauges, typed (what /metrics shows per worker), for callers that
    /// judge the workers without parsing the text exposition.
    pub fn worker_gauges(&self) -> Vec<WorkerGauges> {
        self.used_blocks()
            .map(|w| WorkerGauges {
                connections: self.get(w, CONNS),
                fd_cap: self.get(w, FD_CAP),
                listening: self.get(w, LISTENING) != 0,
                listener_pauses: self.get(w, LISTENER_PAUSES),
            })
            .collect()
    }

    /// The Prometheus text exposition of every counter, summed over workers, plus per-worker gauges.
    pub fn prometheus(&self) -> String {
        let s = self.snapshot();
        let mut o = String::with_capacity(8192);
        self.prometheus_totals(&s, &mut o);
        self.prometheus_reasons(&s, &mut o);
        self.prometheus_per_worker(&mut o);
        o
    }

    /// The host-wide totals and gauges, one line each.
    fn prometheus_totals(&self, s: &Snapshot, o: &mut String) {
        let mut one = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = write!(
                o,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            );
        };
        one(
            "tune_workers",
            "gauge",
            "Worker processes configured.",
            self.configured() as u64,
        );
        one(
            "tune_workers_up",
            "gauge",
            "Worker processes alive.",
            s.workers_up,
        );
        one(
            "tune_connections",
            "gauge",
            "Client connections held (handshaking, open or closing).",
            s.connections,
        );
        one(
            "tune_websockets_open",
            "gauge",
            "Websocket connections open.",
            s.websockets_open,
        );
        one(
            "tune_accepted_total",
            "counter",
            "Connections accepted.",
            s.accepted,
        );
        one(
            "tune_accepted_ipv4_total",
            "counter",
            "Connections accepted from IPv4 clients (IPv4-mapped on a dual-stack listener included).",
            s.accepted_ipv4,
        );
        one(
            "tune_accepted_ipv6_total",
            "counter",
            "Connections accepted from IPv6 clients.",
            s.accepted_ipv6,
        );
        one(
            "tune_handshakes_total",
            "counter",
            "Websocket handshakes completed.",
            s.handshakes,
        );
        one(
            "tune_messages_in_total",
            "counter",
            "Websocket messages received.",
            s.messages_in,
        );
        one(
            "tune_messages_out_total",
            "counter",
            "Websocket messages sent.",
            s.messages_out,
        );
        one(
            "tune_bytes_in_total",
            "counter",
            "Websocket payload bytes received.",
            s.bytes_in,
        );
        one(
            "tune_bytes_out_total",
            "counter",
            "Websocket payload bytes sent.",
            s.bytes_out,
        );
        one(
            "tune_pings_total",
            "counter",
            "Pings answered with a pong.",
            s.pings,
        );
        one(
            "tune_tls_handshakes_total",
            "counter",
            "TLS handshakes completed (serve --tls).",
            s.tls_handshakes,
        );
        one(
            "tune_tls_failed_total",
            "counter",
            "TLS connections failed: a garbage ClientHello, an alert from a client that refused the certificate, a bad record.",
            s.tls_failed,
        );
        one(
            "tune_accept_errors_total",
            "counter",
            "accept4 failures (EMFILE, ENFILE, ENOBUFS).",
            s.accept_errors,
        );
        one(
            "tune_lost_connections_total",
            "counter",
            "Connections held by workers that died.",
            s.lost,
        );
        one(
            "tune_rss_bytes",
            "gauge",
            "Resident memory of all workers.",
            s.rss_bytes,
        );
    }

    /// The labelled counters: failed handshakes, closes and protocol violations by reason.
    fn prometheus_reasons(&self, s: &Snapshot, o: &mut String) {
        let fams = [
            (
                Family::HandshakeFailed,
                "tune_handshakes_failed_total",
                "Handshakes refused, by reason.",
            ),
            (
                Family::Closed,
                "tune_closed_total",
                "Connections closed, by reason.",
            ),
            (
                Family::Violation,
                "tune_protocol_violations_total",
                "Protocol violations by clients, by kind.",
            ),
        ];
        for (fam, name, help) in fams {
            let _ = write!(o, "# HELP {name} {help}\n# TYPE {name} counter\n");
            for (label, v) in s
                .labeled
                .iter()
                .filter(|(f, _, _)| *f == fam)
                .map(|(_, l, v)| (l, v))
            {
                let _ = writeln!(o, "{name}{{reason=\"{label}\"}} {v}");
            }
        }
        let _ = write!(o, "# HELP tune_http_requests_total Plain HTTP requests, by path.\n# TYPE tune_http_requests_total counter\n");
        for (label, i) in [
            ("metrics", HTTP_METRICS),
            ("healthz", HTTP_HEALTHZ),
            ("other", HTTP_NOT_FOUND),
        ] {
            let v: u64 = (0..self.workers()).map(|w| self.get(w, i)).sum();
            let _ = writeln!(o, "tune_http_requests_total{{path=\"{label}\"}} {v}");
        }
    }

    /// The per-worker series, and plain HTTP requests by path.
    fn prometheus_per_worker(&self, o: &mut String) {
        let per = [
            (
                "tune_worker_up",
                "Whether the worker is alive (1) or not (0).",
                usize::MAX,
            ),
            (
                "tune_worker_connections",
                "Client connections held by the worker.",
                CONNS,
            ),
            (
                "tune_worker_websockets",
                "Websockets open in the worker.",
                WS_OPEN,
            ),
            ("tune_worker_fds", "File descriptors the worker uses.", FDS),
            (
                "tune_worker_fd_cap",
                "The worker's RLIMIT_NOFILE soft limit.",
                FD_CAP,
            ),
            (
                "tune_worker_listening",
                "Whether the worker accepts new connections.",
                LISTENING,
            ),
            (
                "tune_worker_rss_bytes",
                "Resident memory of the worker.",
                RSS,
            ),
            (
                "tune_worker_buffered_bytes",
                "Heap bytes held for connections (output, partial frames and messages); \
                 bounded by --memory-budget.",
                BUFFERED,
            ),
            (
                "tune_worker_handshaking",
                "Connections still in the handshake; bounded by --max-handshaking.",
                HANDSHAKING,
            ),
        ];
        let _ = write!(o, "# HELP tune_worker_accepted_total Connections the worker accepted.\n# TYPE tune_worker_accepted_total counter\n");
        for w in self.used_blocks() {
            let _ = writeln!(
                o,
                "tune_worker_accepted_total{{worker=\"{w}\"}} {}",
                self.get(w, ACCEPTED)
            );
        }
        let _ = write!(o, "# HELP tune_worker_listener_pauses_total Times the worker stopped listening near its fd cap.\n# TYPE tune_worker_listener_pauses_total counter\n");
        for w in self.used_blocks() {
            let _ = writeln!(
                o,
                "tune_worker_listener_pauses_total{{worker=\"{w}\"}} {}",
                self.get(w, LISTENER_PAUSES)
            );
        }
        for (name, help, i) in per {
            let _ = write!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n");
            for w in self.used_blocks() {
                let v = if i == usize::MAX {
                    let p = self.get(w, PHASE);
                    u64::from(p == PHASE_ACCEPTING || p == PHASE_DRAINING)
                } else {
                    self.get(w, i)
                };
                let _ = writeln!(o, "{name}{{worker=\"{w}\"}} {v}");
            }
        }
    }
}

/// One worker's gauges at one moment (`tune_worker_*` in /metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerGauges {
    pub connections: u64,
    /// Its RLIMIT_NOFILE soft limit.
    pub fd_cap: u64,
    /// Whether it accepts new connections.
    pub listening: bool,
    /// Times it stopped listening near its fd cap.
    pub listener_pauses: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    HandshakeFailed,
    Closed,
    Violation,
}

/// Counters of all workers added up at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub workers_up: u64,
    pub connections: u64,
    pub websockets_open: u64,
    pub accepted: u64,
    /// Of `accepted`, from IPv4 clients (IPv4-mapped included) and from IPv6 ones.
    pub accepted_ipv4: u64,
    pub accepted_ipv6: u64,
    pub handshakes: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rss_bytes: u64,
    pub fds: u64,
    pub lost: u64,
    pub accept_errors: u64,
    pub pings: u64,
    /// `--tls`: handshakes completed, thread CPU spent in them (ns), failures.
    pub tls_handshakes: u64,
    pub tls_handshake_cpu_ns: u64,
    pub tls_failed: u64,
    /// (family, reason label, count) for failed handshakes, closes and violations.
    pub labeled: Vec<(Family, &'static str, u64)>,
}

impl Snapshot {
    fn add_labeled(&mut self, fam: Family, label: &'static str, v: u64) {
        if let Some(e) = self
            .labeled
            .iter_mut()
            .find(|(f, l, _)| *f == fam && *l == label)
        {
            e.2 += v;
        } else {
            self.labeled.push((fam, label, v));
        }
    }

    /// One labelled count, e.g. `(Family::HandshakeFailed, "version")`.
    pub fn labeled(&self, fam: Family, label: &str) -> u64 {
        self.labeled
            .iter()
            .find(|(f, l, _)| *f == fam && *l == label)
            .map_or(0, |e| e.2)
    }

    pub fn handshakes_failed(&self) -> u64 {
        self.labeled
            .iter()
            .filter(|(f, _, _)| *f == Family::HandshakeFailed)
            .map(|e| e.2)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::shm::SharedU64s;

    #[test]
    fn aggregates_across_workers_and_renders_prometheus() {
        let b = Board::new(SharedU64s::create("t", Board::shm_len(2)).unwrap(), 2);
        b.set(0, PHASE, PHASE_ACCEPTING);
        b.set(1, PHASE, PHASE_ACCEPTING);
        b.add(0, CONNS, 3);
        b.add(1, CONNS, 4);
        b.rejected(0, Rejection::Version);
        b.rejected(1, Rejection::Version);
        b.closed(1, CloseReason::TooBig);
        b.violation(0, Violation::Unmasked);
        let s = b.snapshot();
        assert_eq!(s.connections, 7);
        assert_eq!(s.workers_up, 2);
        assert_eq!(s.labeled(Family::HandshakeFailed, "version"), 2);
        assert_eq!(s.handshakes_failed(), 2);
        let text = b.prometheus();
        assert!(text.contains("\ntune_connections 7\n"), "{text}");
        assert!(text.contains("tune_handshakes_failed_total{reason=\"version\"} 2\n"));
        assert!(text.contains("tune_closed_total{reason=\"too_big\"} 1\n"));
        assert!(text.contains("tune_protocol_violations_total{reason=\"unmasked_frame\"} 1\n"));
        assert!(text.contains("tune_worker_connections{worker=\"1\"} 4\n"));
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = line.rsplit_once(' ').unwrap();
            v.parse::<u64>().unwrap();
        }
    }

    #[test]
    fn worker_gauges_are_the_per_worker_lines_typed() {
        let b = Board::new(SharedU64s::create("g", Board::shm_len(2)).unwrap(), 2);
        b.add(0, CONNS, 3);
        b.set(0, FD_CAP, 1500);
        b.set(0, LISTENING, 1);
        b.set(1, FD_CAP, 1500);
        b.add(1, LISTENER_PAUSES, 2);
        let g = b.worker_gauges();
        assert_eq!(
            g,
            vec![
                WorkerGauges {
                    connections: 3,
                    fd_cap: 1500,
                    listening: true,
                    listener_pauses: 0
                },
                WorkerGauges {
                    connections: 0,
                    fd_cap: 1500,
                    listening: false,
                    listener_pauses: 2
                },
            ]
        );
        let text = b.prometheus();
        assert!(
            text.contains("tune_worker_listening{worker=\"1\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("tune_worker_listener_pauses_total{worker=\"1\"} 2\n"));
    }
}
