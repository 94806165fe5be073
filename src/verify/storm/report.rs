//! The storm's report: the typed record JSON prints (`storm` in the verify and load reports)
//! and its table, assembled purely from the phase's record, the reconnect handshakes and the
//! diagnosis.

use std::collections::BTreeMap;

use serde::Serialize;

use super::diagnose::{self, Handshakes, StormDiagnosis, StormFacts};
use super::{StormKind, Stormed};
use crate::text::Sheet;
use crate::units::{bytes, group};
use crate::verify::report::LABEL_WIDTH;

/// The listen counters a storm reports, always (0 when they did not move).
const LISTEN_COUNTERS: [&str; 5] = [
    "ListenOverflows",
    "ListenDrops",
    "TCPReqQFullDrop",
    "TCPReqQFullDoCookies",
    "TCPSynRetrans",
];

/// A storm, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StormReport {
    pub kind: StormKind,
    /// The reconnect policy in words.
    pub policy: String,
    pub target: u64,
    pub open_before: u64,
    pub dropped: u64,
    /// Every connection back.
    pub recovered: bool,
    /// Seconds from the storm's start to all back (`null`: not recovered).
    pub recovery_seconds: Option<f64>,
    pub open_after: u64,
    /// Reconnects completed per second: over the recovery, and the best 1 s window.
    pub connects_per_second: f64,
    pub peak_connects_per_second: f64,
    /// Reconnects per second from 10% to 90% of them: the pace the host keeps up, which the
    /// reconnect policy and the rate saved for `check --storm` use.
    pub sustained_connects_per_second: f64,
    /// The listen counters' growth over the storm (always the five, others that moved too).
    pub counters: BTreeMap<String, u64>,
    /// SYN retransmissions from the handshakes' latency: handshakes over 1 s, 3 s, 7 s.
    pub syn_retransmits_1s: u64,
    pub syn_retransmits_3s: u64,
    pub syn_retransmits_7s: u64,
    pub handshakes: Handshakes,
    pub failed_attempts: u64,
    pub errors: BTreeMap<String, u64>,
    pub gave_up: u64,
    /// Peak growth of host memory in use (MemTotal - MemFree) over the storm, peak Slab and the
    /// peak RSS of the run's processes, bytes.
    pub peak_memory_growth_bytes: u64,
    pub peak_slab_bytes: u64,
    pub peak_rss_bytes: u64,
    /// Restart storm made here: seconds to stop the old workers and to start the new ones.
    pub restart_stop_seconds: Option<f64>,
    pub restart_start_seconds: Option<f64>,
    /// `tune load --storm restart`: whether the server's restart was seen.
    pub restart_detected: Option<bool>,
    pub time_wait_after: Option<u64>,
    pub diagnosis: StormDiagnosis,
}

impl StormReport {
    /// The report from the phase's record, the reconnects' histogram and the host's facts.
    pub fn assemble(
        s: &Stormed,
        policy: String,
        kind: StormKind,
        hist: Option<&embedded_server::loadgen::Histogram<u64>>,
        facts: &StormFacts,
    ) -> StormReport {
        let h = hist.map(Handshakes::of).unwrap_or_default();
        let mut counters = s.counters.clone();
        for c in LISTEN_COUNTERS {
            counters.entry(c.to_string()).or_insert(0);
        }
        let s = Stormed {
            counters,
            ..s.clone()
        };
        StormReport {
            kind,
            policy,
            target: s.target,
            open_before: s.open_before,
            dropped: s.dropped,
            recovered: s.recovered_in.is_some(),
            recovery_seconds: s.recovered_in.map(|d| d.as_secs_f64()),
            open_after: s.open_after,
            connects_per_second: s.mean_rate,
            peak_connects_per_second: s.peak_rate,
            sustained_connects_per_second: s.sustained_rate,
            syn_retransmits_1s: h.over_1s,
            syn_retransmits_3s: h.over_3s,
            syn_retransmits_7s: h.over_7s,
            handshakes: h,
            failed_attempts: s.failed_attempts,
            errors: s.errors.clone(),
            gave_up: s.gave_up,
            peak_memory_growth_bytes: s.peak_memory_growth,
            peak_slab_bytes: s.peak_slab,
            peak_rss_bytes: s.peak_rss,
            restart_stop_seconds: s.restart.map(|r| r.0.as_secs_f64()),
            restart_start_seconds: s.restart.map(|r| r.1.as_secs_f64()),
            restart_detected: s.restart_detected,
            time_wait_after: s.time_wait_after,
            diagnosis: diagnose::diagnose(&s, &h, facts),
            counters: s.counters.clone(),
        }
    }

    /// The section for people, laid out at `width` as verify's report is (the same value
    /// column), so no figure is cut from its unit.
    pub fn render_table(&self, width: usize) -> String {
        let mut o = Sheet::new(LABEL_WIDTH);
        let kind = self.kind.label();
        o.para("", "", "");
        o.para(
            format!(
                "reconnect storm ({kind}), clients reconnect {}",
                self.policy
            ),
            "",
            "  ",
        );
        let row = |o: &mut Sheet, k: &str, v: String| o.row(k, v);
        if self.restart_detected == Some(false) {
            row(&mut o, "server restart", "none seen while waiting".into());
            return o.render(width);
        }
        row(
            &mut o,
            "recovered",
            match self.recovery_seconds {
                Some(t) => format!("all {} in {t:.2} s", group(self.target)),
                None => format!(
                    "NO: {} of {} open at the end",
                    group(self.open_after),
                    group(self.target)
                ),
            },
        );
        match (self.kind, self.restart_stop_seconds, self.restart_start_seconds) {
            (StormKind::Graceful, Some(a), Some(b)) => row(
                &mut o,
                "server restart",
                format!("new workers listening in {b:.2} s, old ones drained and gone {a:.2} s after the start"),
            ),
            (_, Some(a), Some(b)) => row(
                &mut o,
                "server restart",
                format!("old workers gone in {a:.2} s, new ones listening {b:.2} s later"),
            ),
            _ => {}
        }
        row(
            &mut o,
            "connects/s",
            format!(
                "{} mean, {} kept up (10% to 90% back), {} best second",
                group(self.connects_per_second as u64),
                group(self.sustained_connects_per_second as u64),
                group(self.peak_connects_per_second as u64)
            ),
        );
        for c in LISTEN_COUNTERS {
            row(&mut o, c, group(self.counters.get(c).copied().unwrap_or(0)));
        }
        row(
            &mut o,
            "SYN retransmitted",
            format!(
                "{} handshakes over 1 s, {} over 3 s, {} over 7 s",
                group(self.syn_retransmits_1s),
                group(self.syn_retransmits_3s),
                group(self.syn_retransmits_7s)
            ),
        );
        let h = &self.handshakes;
        row(
            &mut o,
            "handshake",
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} reconnects)",
                h.p50_ms,
                h.p99_ms,
                h.max_ms,
                group(h.count)
            ),
        );
        row(
            &mut o,
            "failed attempts",
            if self.errors.is_empty() {
                group(self.failed_attempts)
            } else {
                let e: Vec<String> = self
                    .errors
                    .iter()
                    .map(|(k, v)| format!("{k} {}", group(*v)))
                    .collect();
                format!("{} ({})", group(self.failed_attempts), e.join(", "))
            },
        );
        row(&mut o, "gave up", group(self.gave_up));
        row(
            &mut o,
            "peak memory",
            format!(
                "+{} in use, Slab {}, processes' RSS {}",
                bytes(self.peak_memory_growth_bytes),
                bytes(self.peak_slab_bytes),
                bytes(self.peak_rss_bytes)
            ),
        );
        o.para("what slowed the recovery:", "", "");
        for f in &self.diagnosis.findings {
            o.para(format!("{}: {}", f.limit, f.evidence), "  ", "    ");
            for x in &f.fix {
                o.para(format!("fix: {x}"), "    ", "      ");
            }
        }
        if let Some(p) = &self.diagnosis.policy {
            o.para("client reconnect policy:", "", "");
            for l in &p.lines {
                o.para(l.as_str(), "  ", "    ");
            }
        }
        o.render(width)
    }
}
