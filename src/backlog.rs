//! Listen queues: the accept queue in effect, what somaxconn and tcp_max_syn_backlog must be for the connects in flight, and the warning when handshakes waited.
//!
//! Kernel facts (net/ipv4/tcp_input.c `tcp_conn_request`, net/socket.c `__sys_listen`,
//! Linux 6.18):
//! - listen(fd, backlog) is capped at net.core.somaxconn: the accept queue in effect is
//!   min(backlog, somaxconn), per listener (per SO_REUSEPORT worker).
//! - A SYN is dropped (and retransmitted by the client after 1 s, 3 s, 7 s ...) when that
//!   accept queue is full; with tcp_syncookies 0 also when the listener's queue of pending
//!   handshakes reaches three quarters of tcp_max_syn_backlog. With syncookies (1, the
//!   default) an overflowing SYN queue answers with a cookie instead.
//! - The drops show as TcpExt ListenOverflows / ListenDrops / TCPReqQFullDrop, and the
//!   client's retransmitted SYNs as TcpExt TCPSynRetrans.

use crate::units::group;
use crate::values::{Input, Suggest};

/// SO_REUSEPORT spreads new connections by hash, not evenly: a listener may get this many
/// times its share of a burst (host facts: the busiest of 80 listeners held 1.8% over the
/// mean at 1M; short bursts of ~1,000 spread far less evenly).
pub const SPREAD_FACTOR: u64 = 2;

/// Without syncookies the kernel drops SYNs once pending handshakes exceed 3/4 of
/// tcp_max_syn_backlog: the requirement is 4/3 of the handshakes expected to wait.
const SYN_BACKLOG_NUM: u64 = 4;
const SYN_BACKLOG_DEN: u64 = 3;

/// The accept queue a listener really gets.
pub fn queue_in_effect(backlog: u64, somaxconn: Option<u64>) -> u64 {
    somaxconn.map_or(backlog, |s| backlog.min(s))
}

/// What the connects in flight need of the two knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    pub somaxconn: u64,
    pub tcp_max_syn_backlog: u64,
    /// Connects that may land on one listener at once.
    pub per_listener: u64,
}

/// The requirement for `in_flight` connects spread over `listeners` SO_REUSEPORT listeners.
pub fn required(in_flight: u64, listeners: u64) -> Requirement {
    let per_listener = (in_flight.div_ceil(listeners.max(1)) * SPREAD_FACTOR).min(in_flight.max(1));
    Requirement {
        somaxconn: per_listener,
        tcp_max_syn_backlog: (per_listener * SYN_BACKLOG_NUM).div_ceil(SYN_BACKLOG_DEN),
        per_listener,
    }
}

/// Why the requirement is what it is, for the report.
pub fn reason(r: &Requirement, in_flight: u64, listeners: u64) -> String {
    format!(
        "{} connects in flight over {} listener{} × {SPREAD_FACTOR} for an uneven SO_REUSEPORT spread = {} handshakes that may wait on one listener's queue",
        group(in_flight),
        group(listeners),
        if listeners == 1 { "" } else { "s" },
        group(r.per_listener)
    )
}

/// The listen counters and SYN retransmissions of a run (deltas).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waits {
    pub listen_overflows: u64,
    pub listen_drops: u64,
    pub req_q_full_drops: u64,
    pub syn_retransmits: u64,
    /// Connects the load generator retried after a timeout.
    pub connect_timeouts: u64,
}

/// A warning when handshakes waited on a full queue, even if every connection got through.
pub fn warning(
    w: &Waits,
    queue: u64,
    somaxconn: Option<u64>,
    syncookies: Option<u64>,
) -> Option<String> {
    let dropped = w.listen_overflows + w.listen_drops + w.req_q_full_drops;
    if dropped == 0 && w.syn_retransmits == 0 && w.connect_timeouts == 0 {
        return None;
    }
    Some(format!(
        "handshakes waited on the accept queue: ListenOverflows +{}, ListenDrops +{}, TCPReqQFullDrop +{}, SYN retransmissions +{}, connects timed out and retried {}; the accept queue in effect is {} per listener (min of the listen backlog and net.core.somaxconn {}), tcp_syncookies {}; raise net.core.somaxconn and net.ipv4.tcp_max_syn_backlog (tune check {} says how far)",
        group(w.listen_overflows),
        group(w.listen_drops),
        group(w.req_q_full_drops),
        group(w.syn_retransmits),
        group(w.connect_timeouts),
        group(queue),
        somaxconn.map_or("unknown".into(), group),
        syncookies.map_or("unknown".into(), |v| v.to_string()),
        Suggest::set(Input::Target, "N"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_in_effect_is_capped_by_somaxconn() {
        // Issue 10: backlog 1,024 per worker with somaxconn 8 is a queue of 8.
        assert_eq!(queue_in_effect(1024, Some(8)), 8);
        assert_eq!(queue_in_effect(1024, Some(4096)), 1024);
        assert_eq!(queue_in_effect(1024, None), 1024);
    }

    #[test]
    fn requirement_follows_the_connects_in_flight() {
        // The load generator's 1,024 connects over 2 workers: 512 each, twice for the spread.
        let r = required(1024, 2);
        assert_eq!(r.somaxconn, 1024);
        assert_eq!(r.tcp_max_syn_backlog, 1366);
        // One listener cannot be asked for more than everything in flight.
        assert_eq!(required(1024, 1).somaxconn, 1024);
        assert_eq!(required(0, 0).somaxconn, 0);
        assert!(reason(&r, 1024, 2).contains("1,024 connects in flight over 2 listeners"));
    }

    #[test]
    fn a_run_that_waited_gets_a_warning_naming_the_accept_queue() {
        assert!(warning(&Waits::default(), 8, Some(8), Some(0)).is_none());
        let w = Waits {
            listen_overflows: 0,
            listen_drops: 9354,
            req_q_full_drops: 0,
            syn_retransmits: 1200,
            connect_timeouts: 1148,
        };
        let s = warning(&w, 8, Some(8), Some(0)).unwrap();
        assert!(s.contains("accept queue in effect is 8"), "{s}");
        assert!(s.contains("ListenDrops +9,354"), "{s}");
        assert!(s.contains("tcp_syncookies 0"), "{s}");
    }
}
