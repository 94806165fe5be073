//! What slowed a storm's recovery, and the fixes (pure): the accept queue in effect against the
//! burst, tcp_max_syn_backlog and syncookies, too few workers, handshake CPU, conntrack, the
//! clients' ports; each knob fix through the registry (typed [`KnobId`]), as check gives them.
//! And the reconnect policy this host absorbs, from the accept rate it measured.

use serde::Serialize;

use super::Stormed;
use crate::backlog;
use crate::knobs::{KnobId, Value};
use crate::units::group;

/// The share of the measured accept rate a reconnect policy may plan to use: the rest absorbs
/// the uneven arrival of a random draw and whatever else the host does meanwhile.
pub const RATE_HEADROOM_PERCENT: u64 = 80;
/// The largest accept queue recommended: past it, a queue only delays SYN retransmissions
/// that jitter avoids, and each queued request costs memory.
pub const MAX_QUEUE: u64 = 65_535;

/// Reconnect handshakes' latency, from the storm's histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Handshakes {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Handshakes that took longer than 1 s, 3 s, 7 s: their SYN was retransmitted once, twice,
    /// three times (the kernel retransmits a SYN after 1 s, then 2 s, then 4 s more).
    pub over_1s: u64,
    pub over_3s: u64,
    pub over_7s: u64,
}

impl Handshakes {
    /// From a histogram of µs.
    pub fn of(h: &embedded_server::loadgen::Histogram<u64>) -> Handshakes {
        let ms = |us: u64| us as f64 / 1000.0;
        let over = |s: u64| {
            h.iter_recorded()
                .filter(|v| v.value_iterated_to() > s * 1_000_000)
                .map(|v| v.count_at_value())
                .sum()
        };
        Handshakes {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
            over_1s: over(1),
            over_3s: over(3),
            over_7s: over(7),
        }
    }
}

/// The host's side of a storm, as the diagnosis needs it.
#[derive(Debug, Clone, Copy, Default)]
pub struct StormFacts {
    /// SO_REUSEPORT listeners (server workers); `None` when the server is not ours.
    pub listeners: Option<u64>,
    /// The server's listen(2) backlog; `None` when the server is not ours.
    pub backlog: Option<u64>,
    pub somaxconn: Option<u64>,
    pub tcp_max_syn_backlog: Option<u64>,
    pub syncookies: Option<u64>,
    pub tw_reuse: Option<u64>,
    /// Conntrack tracks this namespace's connections (its count was above 0).
    pub conntrack_tracking: bool,
    pub conntrack_max: Option<u64>,
    pub cores: u64,
    /// The reconnect policy's jitter, seconds (0: none).
    pub jitter_secs: f64,
    /// A graceful restart's drain window, seconds (0: not one): the server paced the
    /// reconnects, so their rate is not the host's accept rate.
    pub drain_secs: f64,
}

/// One thing that slowed the recovery, and its fix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// `accept_queue`, `listen_backlog`, `syn_backlog`, `syncookies`, `workers`,
    /// `handshake_cpu`, `conntrack`, `client_ports`.
    pub limit: String,
    /// The knob in the registry, when there is one.
    pub knob: Option<String>,
    /// The value recommended, when it is a knob's.
    pub recommended: Option<u64>,
    pub evidence: String,
    /// Commands or lines, one each.
    pub fix: Vec<String>,
}

/// The client reconnect policy this host absorbs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyAdvice {
    /// Reconnect handshakes per second the host kept up (10% to 90% of the reconnects back).
    pub accept_rate: f64,
    /// Full jitter over at least this many seconds keeps the clients' rate within
    /// [`RATE_HEADROOM_PERCENT`] of the accept rate.
    pub jitter_secs: u64,
    /// The same for one million clients.
    pub jitter_secs_1m: u64,
    /// In words.
    pub lines: Vec<String>,
}

/// Everything the storm's diagnosis says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StormDiagnosis {
    pub findings: Vec<Finding>,
    pub policy: Option<PolicyAdvice>,
}

fn knob_fix(knob: KnobId, v: u64) -> Vec<String> {
    let k = knob.knob();
    let mut out = vec![k.runtime_fix(&Value::Int(v), None)];
    out.extend(k.persist_fix(&Value::Int(v)));
    out
}

fn finding(limit: &str, knob: Option<KnobId>, v: Option<u64>, evidence: String) -> Finding {
    Finding {
        limit: limit.into(),
        knob: knob.map(|k| k.name().to_string()),
        recommended: v,
        evidence,
        fix: match (knob, v) {
            (Some(k), Some(v)) => knob_fix(k, v),
            _ => Vec::new(),
        },
    }
}

fn counter(s: &Stormed, name: &str) -> u64 {
    s.counters.get(name).copied().unwrap_or(0)
}

/// Connects that reach one listener at once: all of them without jitter, a second's worth with.
fn burst(target: u64, jitter_secs: f64) -> u64 {
    if jitter_secs > 0.0 {
        (target as f64 / jitter_secs).ceil() as u64
    } else {
        target
    }
}

/// The accept queue, the listen backlog, the SYN queue and syncookies, against the burst.
fn queues(s: &Stormed, h: &Handshakes, f: &StormFacts, out: &mut Vec<Finding>) {
    let overflows = counter(s, "ListenOverflows");
    let drops = counter(s, "ListenDrops");
    let reqq = counter(s, "TCPReqQFullDrop");
    let waited = overflows + drops + reqq > 0 || h.over_1s > 0;
    if !waited {
        return;
    }
    let listeners = f.listeners.unwrap_or(1).max(1);
    let burst = burst(s.target, f.jitter_secs);
    let req = backlog::required(burst, listeners);
    let want = req.somaxconn.next_power_of_two().clamp(4096, MAX_QUEUE);
    let backlog_v = f.backlog.unwrap_or(u64::MAX);
    let queue = backlog::queue_in_effect(backlog_v, f.somaxconn);
    let queue_text = match f.backlog {
        Some(b) => format!(
            "the accept queue in effect is {} per listener (min of the listen backlog {} and net.core.somaxconn {})",
            group(queue),
            group(b),
            f.somaxconn.map_or("?".into(), group)
        ),
        None => format!(
            "net.core.somaxconn is {} (the server's own backlog may be lower)",
            f.somaxconn.map_or("?".into(), group)
        ),
    };
    let losses = format!(
        "ListenOverflows +{}, ListenDrops +{}, TCPReqQFullDrop +{}, {} handshakes over 1 s (a SYN retransmitted), {} over 3 s, {} over 7 s",
        group(overflows),
        group(drops),
        group(reqq),
        group(h.over_1s),
        group(h.over_3s),
        group(h.over_7s)
    );
    if f.somaxconn.is_some_and(|v| v < want) {
        out.push(finding(
            "accept_queue",
            Some(KnobId::Somaxconn),
            Some(want),
            format!(
                "{queue_text}, against a burst of {} reconnects over {} listener{} ({}); {losses}",
                group(burst),
                group(listeners),
                if listeners == 1 { "" } else { "s" },
                backlog::reason(&req, burst, listeners)
            ),
        ));
    }
    if f.backlog.is_some_and(|b| b < want) {
        out.push(Finding {
            limit: "listen_backlog".into(),
            knob: None,
            recommended: Some(want),
            evidence: format!(
                "the server's listen(2) backlog {} caps the accept queue below {} whatever somaxconn is",
                group(backlog_v),
                group(want)
            ),
            fix: vec![format!(
                "start the server with a listen backlog of {}",
                group(want)
            )],
        });
    }
    if f.backlog.is_none()
        && overflows + drops > 0
        && !out.iter().any(|x| x.limit == "accept_queue")
    {
        out.push(Finding {
            limit: "listen_backlog".into(),
            knob: None,
            recommended: Some(want),
            evidence: format!(
                "the listen counters rose ({losses}) with net.core.somaxconn {} enough for the burst: the server's own listen(2) backlog is the smaller queue (Python asyncio's default is 100, Go's and nginx's 511 or somaxconn)",
                f.somaxconn.map_or("?".into(), group)
            ),
            fix: vec![format!(
                "raise the server's listen backlog to {} (it is capped at net.core.somaxconn)",
                group(want)
            )],
        });
    }
    let syn_want = ((want * 4).div_ceil(3)).next_power_of_two();
    if f.syncookies == Some(0) {
        out.push(finding(
            "syncookies",
            Some(KnobId::TcpSyncookies),
            Some(1),
            format!("net.ipv4.tcp_syncookies is 0: a SYN that finds the queue full is dropped and retransmitted after 1 s, 3 s, 7 s instead of answered with a cookie; {losses}"),
        ));
    }
    if (reqq > 0 || f.syncookies == Some(0)) && f.tcp_max_syn_backlog.is_some_and(|v| v < syn_want)
    {
        out.push(finding(
            "syn_backlog",
            Some(KnobId::TcpMaxSynBacklog),
            Some(syn_want),
            format!(
                "net.ipv4.tcp_max_syn_backlog is {}: without syncookies SYNs are dropped once a listener's pending handshakes pass three quarters of it (TCPReqQFullDrop +{})",
                f.tcp_max_syn_backlog.map_or("?".into(), group),
                group(reqq)
            ),
        ));
    }
}

/// Workers, conntrack and the clients' ports.
fn host(s: &Stormed, f: &StormFacts, out: &mut Vec<Finding>) {
    if let Some(w) = f.listeners.filter(|w| *w < f.cores) {
        out.push(finding(
            "workers",
            None,
            None,
            format!(
                "{} server workers for {} cores: handshakes on the busy workers wait while a core idles; start at least {} workers",
                group(w),
                group(f.cores),
                group(f.cores)
            ),
        ));
    }
    if f.conntrack_tracking {
        let want = s.target.saturating_mul(2);
        let short = f.conntrack_max.is_some_and(|m| m < want);
        out.push(finding(
            "conntrack",
            short.then_some(KnobId::ConntrackMax),
            short.then_some(want),
            format!(
                "conntrack tracks this namespace: every reconnect inserts an entry (the old ones linger in TIME_WAIT/CLOSE states), nf_conntrack_max {}",
                f.conntrack_max.map_or("?".into(), group)
            ),
        ));
    }
    let no_port = s.errors.get("eaddrnotavail").copied().unwrap_or(0);
    let tw = s.time_wait_after.unwrap_or(0);
    if no_port > 0 || (f.tw_reuse == Some(0) && tw > s.target / 2) {
        out.push(finding(
            "client_ports",
            (f.tw_reuse != Some(1)).then_some(KnobId::TcpTwReuse),
            (f.tw_reuse != Some(1)).then_some(1),
            format!(
                "the clients' ports: {} TIME_WAIT sockets after the storm, {} connects failed for no free port (EADDRNOTAVAIL), tcp_tw_reuse {}",
                group(tw),
                group(no_port),
                f.tw_reuse.map_or("?".into(), group)
            ),
        ));
    }
}

/// The reconnect policy this host absorbs, from its measured accept rate.
pub fn policy(s: &Stormed, h: &Handshakes, jitter_secs: f64) -> Option<PolicyAdvice> {
    if s.sustained_rate < 1.0 {
        return None;
    }
    let usable = s.sustained_rate * RATE_HEADROOM_PERCENT as f64 / 100.0;
    let need = |n: u64| ((n as f64 / usable).ceil() as u64).max(1);
    let jitter = need(s.target);
    let jitter_1m = need(1_000_000);
    let mut lines = vec![format!(
        "this host keeps up {}/s reconnect handshakes (10% to 90% of the reconnects); {} clients reconnecting with full jitter over {} s need {}/s: OK",
        group(s.sustained_rate as u64),
        group(s.target),
        jitter,
        group(s.target.div_ceil(jitter))
    )];
    lines.push(format!(
        "1,000,000 clients need full jitter over {} s here ({}/s)",
        jitter_1m,
        group(1_000_000u64.div_ceil(jitter_1m))
    ));
    if jitter_secs == 0.0 {
        lines.push(format!(
            "without jitter (this run): recovered in {}; {} handshakes waited for a SYN retransmission (slowest {:.1} s)",
            s.recovered_in
                .map_or("not at all".into(), |d| format!("{:.2} s", d.as_secs_f64())),
            group(h.over_1s),
            h.max_ms / 1000.0
        ));
    }
    Some(PolicyAdvice {
        accept_rate: s.sustained_rate,
        jitter_secs: jitter,
        jitter_secs_1m: jitter_1m,
        lines,
    })
}

/// What slowed the recovery, and the policy to reconnect with.
pub fn diagnose(s: &Stormed, h: &Handshakes, f: &StormFacts) -> StormDiagnosis {
    let mut findings = Vec::new();
    queues(s, h, f, &mut findings);
    host(s, f, &mut findings);
    if f.drain_secs > 0.0 {
        findings.push(finding(
            "drain",
            None,
            None,
            format!(
                "a graceful restart: the old workers closed {} connections evenly over {:.0} s ({}/s), so the clients came back at the drain's pace ({}/s at best), not as fast as the host accepts; a longer drain spreads them thinner, a shorter one comes closer to a restart's storm",
                group(s.dropped),
                f.drain_secs,
                group((s.dropped as f64 / f.drain_secs) as u64),
                group(s.peak_rate as u64)
            ),
        ));
        // A rate the server paced says nothing of what the host absorbs.
        return StormDiagnosis {
            findings,
            policy: None,
        };
    }
    if findings.is_empty() {
        findings.push(finding(
            "handshake_cpu",
            None,
            None,
            format!(
                "no SYN or accept-queue losses: the recovery went as fast as {} cores complete handshakes ({}/s kept up)",
                group(f.cores),
                group(s.sustained_rate as u64)
            ),
        ));
    }
    StormDiagnosis {
        findings,
        policy: policy(s, h, f.jitter_secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stormed(counters: &[(&str, u64)]) -> Stormed {
        Stormed {
            target: 20_000,
            recovered_in: Some(Duration::from_secs(9)),
            peak_rate: 10_000.0,
            sustained_rate: 10_000.0,
            counters: counters.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Stormed::default()
        }
    }

    fn facts() -> StormFacts {
        StormFacts {
            listeners: Some(2),
            backlog: Some(1024),
            somaxconn: Some(64),
            tcp_max_syn_backlog: Some(128),
            syncookies: Some(0),
            tw_reuse: Some(2),
            cores: 2,
            ..StormFacts::default()
        }
    }

    #[test]
    fn a_small_accept_queue_is_named_with_a_value_and_a_jitter() {
        let s = stormed(&[("ListenOverflows", 900), ("ListenDrops", 4000)]);
        let h = Handshakes {
            over_1s: 3000,
            max_ms: 7200.0,
            ..Handshakes::default()
        };
        let d = diagnose(&s, &h, &facts());
        let q = &d.findings[0];
        assert_eq!(q.limit, "accept_queue");
        assert_eq!(q.knob.as_deref(), Some("net.core.somaxconn"));
        // 20,000 at once over 2 listeners, x2 for the spread: 20,000 -> 32,768.
        assert_eq!(q.recommended, Some(32_768));
        assert!(
            q.evidence.contains("accept queue in effect is 64"),
            "{}",
            q.evidence
        );
        assert_eq!(
            q.fix[0], "sysctl -w net.core.somaxconn=\"32768\"",
            "{:?}",
            q.fix
        );
        assert!(d.findings.iter().any(|f| f.limit == "listen_backlog"));
        assert!(d.findings.iter().any(|f| f.limit == "syncookies"));
        let p = d.policy.unwrap();
        // 80% of 10,000/s: 20,000 need 2.5 s -> 3 s.
        assert_eq!(p.jitter_secs, 3);
        assert_eq!(p.jitter_secs_1m, 125);
        assert!(p.lines[0].contains("full jitter over 3 s"), "{:?}", p.lines);
        assert!(
            p.lines[2].contains("3,000 handshakes waited"),
            "{:?}",
            p.lines
        );
    }

    #[test]
    fn no_losses_names_the_handshake_cpu() {
        let s = stormed(&[]);
        let d = diagnose(
            &s,
            &Handshakes::default(),
            &StormFacts {
                somaxconn: Some(4096),
                syncookies: Some(1),
                ..facts()
            },
        );
        assert_eq!(d.findings.len(), 1);
        assert_eq!(d.findings[0].limit, "handshake_cpu");
    }

    #[test]
    fn handshakes_over_retransmit_times() {
        let mut h =
            embedded_server::loadgen::Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).unwrap();
        for us in [500, 800, 1_200_000, 3_100_000, 7_300_000] {
            h.record(us).unwrap();
        }
        let s = Handshakes::of(&h);
        assert_eq!((s.count, s.over_1s, s.over_3s, s.over_7s), (5, 3, 2, 1));
        assert!(s.max_ms > 7000.0);
    }
}
