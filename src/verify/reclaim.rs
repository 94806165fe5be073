//! Pure: the host's memory pressure over the connect phase: where the kernel began reclaiming
//! page cache to make room for socket slab, what that cost (pages scanned, time stalled, the
//! connect rate before and after), and the stop before the host thrashes (PSI `full`), beside
//! the memory floor the watchdog keeps.
//!
//! MemAvailable counts the page cache as free, but the kernel must reclaim it before a socket
//! can use it: past MemFree every new socket waits on kswapd or reclaims itself (issue 26: from
//! ~2.2M of 2.69M pairs the rate fell from ~17k/s to 2.5-4k/s, the load average reached 277).

use serde::Serialize;

use crate::kernel::pressure::Pressure;
use crate::kernel::vmstat::Reclaim;

/// Share of wall time every task stalled on memory (PSI `full`), over one interval, at which the
/// connect phase stops: the host spends that share doing nothing but reclaim, and it grows with
/// every connection more (issue 26's storm stood at `full avg300=6.7`).
pub const STOP_FULL_SHARE: f64 = 0.05;
/// PSI `full avg10` (percent) at which the connect phase stops even when the last interval was
/// under [`STOP_FULL_SHARE`]: issue 26 asks that it stay under 5 during a run.
pub const STOP_FULL_AVG10: f64 = 2.5;
/// Shortest interval the stall share is measured over: PSI's total moves in whole stalls, so a
/// shorter interval is noise.
pub const MIN_INTERVAL_SECS: f64 = 0.5;
/// Pages scanned (kswapd and direct) in one interval before reclaim counts as begun: 1,024
/// pages (4 MiB) is past the trickle a quiet host scans.
pub const RECLAIM_BEGUN_PAGES: u64 = 1024;

/// One look at the host during the connect phase.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Seconds since the connect phase began.
    pub secs: f64,
    /// Connections open.
    pub open: u64,
    /// `None`: the kernel has no PSI (then only reclaim is recorded, nothing stops on it).
    pub pressure: Option<Pressure>,
    pub reclaim: Option<Reclaim>,
    /// Page cache, bytes (meminfo's Cached + Buffers − Shmem).
    pub page_cache: u64,
    /// MemFree, bytes.
    pub free: u64,
}

/// Where reclaim began.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Began {
    pub open: u64,
    pub secs: f64,
    pub free_bytes: u64,
    pub page_cache_bytes: u64,
}

/// What reclaim cost the run, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Record {
    /// `None`: the kernel scanned no more than a quiet host's trickle during the phase.
    pub began: Option<Began>,
    /// Growth over the phase.
    pub scanned_pages: u64,
    pub stolen_pages: u64,
    pub direct_scanned_pages: u64,
    pub allocation_stalls: u64,
    /// Seconds some task (`some`) and every task (`full`) stalled on memory during the phase.
    pub some_stall_secs: Option<f64>,
    pub full_stall_secs: Option<f64>,
    /// PSI `full avg10` at the last look.
    pub full_avg10_at_end: Option<f64>,
    /// Connections per second before reclaim began and after it (`None` without a start).
    pub rate_before: Option<f64>,
    pub rate_after: Option<f64>,
    pub page_cache_at_start_bytes: u64,
    pub page_cache_at_end_bytes: u64,
    pub free_at_end_bytes: u64,
}

/// The stop before the host thrashes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PressureStop {
    pub open: u64,
    /// Share of the last interval every task stalled on memory.
    pub full_share: f64,
    pub full_avg10: f64,
}

/// The watch over the phase: fed a sample per step, it records and decides.
#[derive(Debug, Clone)]
pub struct ReclaimWatch {
    base: Sample,
    /// Start of the interval the stall share is measured over.
    window: Sample,
    last: Sample,
    began: Option<Began>,
}

impl ReclaimWatch {
    pub fn new(base: Sample) -> Self {
        ReclaimWatch {
            base,
            window: base,
            last: base,
            began: None,
        }
    }

    /// Takes the next sample: notes where reclaim began; `Some(stop)` when the host stalls on
    /// memory so much that the connect phase must stop.
    pub fn feed(&mut self, s: Sample) -> Option<PressureStop> {
        let prev = std::mem::replace(&mut self.last, s);
        if self.began.is_none() {
            let scanned = match (s.reclaim, prev.reclaim) {
                (Some(now), Some(before)) => now.since(&before).scanned(),
                _ => 0,
            };
            if scanned >= RECLAIM_BEGUN_PAGES {
                self.began = Some(Began {
                    open: prev.open,
                    secs: prev.secs,
                    free_bytes: prev.free,
                    page_cache_bytes: prev.page_cache,
                });
            }
        }
        let (Some(now), Some(from)) = (s.pressure, self.window.pressure) else {
            return None;
        };
        let dt = s.secs - self.window.secs;
        if dt < MIN_INTERVAL_SECS {
            return None;
        }
        let share = now.full.total_us.saturating_sub(from.full.total_us) as f64 / (dt * 1e6);
        self.window = s;
        (share >= STOP_FULL_SHARE || now.full.avg10 >= STOP_FULL_AVG10).then_some(PressureStop {
            open: s.open,
            full_share: share,
            full_avg10: now.full.avg10,
        })
    }

    pub fn record(&self) -> Record {
        let (b, l) = (&self.base, &self.last);
        let grown = match (l.reclaim, b.reclaim) {
            (Some(now), Some(before)) => now.since(&before),
            _ => Reclaim::default(),
        };
        let stall = |f: fn(&Pressure) -> u64| {
            l.pressure
                .zip(b.pressure)
                .map(|(n, o)| f(&n).saturating_sub(f(&o)) as f64 / 1e6)
        };
        let rate = |from: (f64, u64), to: (f64, u64)| {
            (to.0 > from.0).then(|| to.1.saturating_sub(from.1) as f64 / (to.0 - from.0))
        };
        let began = self.began.map(|g| (g.secs, g.open));
        Record {
            began: self.began,
            scanned_pages: grown.scanned(),
            stolen_pages: grown.stolen(),
            direct_scanned_pages: grown.pgscan_direct,
            allocation_stalls: grown.allocstall,
            some_stall_secs: stall(|p| p.some.total_us),
            full_stall_secs: stall(|p| p.full.total_us),
            full_avg10_at_end: l.pressure.map(|p| p.full.avg10),
            rate_before: began.and_then(|g| rate((b.secs, b.open), g)),
            rate_after: began.and_then(|g| rate(g, (l.secs, l.open))),
            page_cache_at_start_bytes: b.page_cache,
            page_cache_at_end_bytes: l.page_cache,
            free_at_end_bytes: l.free,
        }
    }
}

impl Record {
    /// The report's note: where reclaim began and what it cost, or that it never began.
    pub fn note(&self) -> String {
        use crate::units::{bytes, group};
        let stalls = match (self.some_stall_secs, self.full_stall_secs) {
            (Some(s), Some(f)) => format!("; tasks stalled on memory {s:.2} s (all at once {f:.2} s, PSI full avg10 {:.2} at the end)", self.full_avg10_at_end.unwrap_or(0.0)),
            _ => String::new(),
        };
        match self.began {
            None => format!(
                "no page reclaim while connecting (page cache {} -> {}, MemFree {} at the end){stalls}",
                bytes(self.page_cache_at_start_bytes),
                bytes(self.page_cache_at_end_bytes),
                bytes(self.free_at_end_bytes)
            ),
            Some(g) => format!(
                "page reclaim began at {} open ({:.1} s; MemFree {}, page cache {}): {} pages scanned, {} taken back ({} by allocations themselves, {} allocation stalls); connect rate {}/s before, {}/s after{stalls}",
                group(g.open),
                g.secs,
                bytes(g.free_bytes),
                bytes(g.page_cache_bytes),
                group(self.scanned_pages),
                group(self.stolen_pages),
                group(self.direct_scanned_pages),
                group(self.allocation_stalls),
                group(self.rate_before.unwrap_or(0.0) as u64),
                group(self.rate_after.unwrap_or(0.0) as u64),
            ),
        }
    }
}

impl PressureStop {
    pub fn note(&self) -> String {
        format!(
            "stopped at {} open before the host thrashes: every task stalled on memory {:.1}% of the last interval (PSI full avg10 {:.2}; the stop is at {:.0}% or avg10 {STOP_FULL_AVG10})",
            crate::units::group(self.open),
            self.full_share * 100.0,
            self.full_avg10,
            STOP_FULL_SHARE * 100.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::pressure::Stall;

    fn at(secs: f64, open: u64, full_total_us: u64, avg10: f64, scanned: u64) -> Sample {
        Sample {
            secs,
            open,
            pressure: Some(Pressure {
                some: Stall {
                    total_us: full_total_us * 2,
                    ..Stall::default()
                },
                full: Stall {
                    avg10,
                    total_us: full_total_us,
                    ..Stall::default()
                },
            }),
            reclaim: Some(Reclaim {
                pgscan_kswapd: scanned,
                pgsteal_kswapd: scanned / 2,
                ..Reclaim::default()
            }),
            page_cache: 10 << 30,
            free: 1 << 30,
        }
    }

    #[test]
    fn a_quiet_host_neither_stops_nor_reclaims() {
        let mut w = ReclaimWatch::new(at(0.0, 0, 1_000, 0.0, 500));
        for k in 1..=20 {
            // A trickle of scanning and a 0.1% stall: nothing.
            let s = at(
                k as f64 * 0.5,
                k * 10_000,
                1_000 + k * 500,
                0.0,
                500 + k * 100,
            );
            assert_eq!(w.feed(s), None);
        }
        let r = w.record();
        assert_eq!(r.began, None);
        assert_eq!(r.scanned_pages, 2_000);
        assert!(r.note().starts_with("no page reclaim"), "{}", r.note());
    }

    #[test]
    fn reclaim_start_and_its_cost_are_recorded() {
        let mut w = ReclaimWatch::new(at(0.0, 0, 0, 0.0, 0));
        // 20k/s for 10 s, then kswapd scans and the rate falls to 4k/s.
        assert_eq!(w.feed(at(10.0, 200_000, 0, 0.0, 100)), None);
        assert_eq!(w.feed(at(11.0, 210_000, 10_000, 0.0, 50_000)), None);
        assert_eq!(w.feed(at(21.0, 250_000, 20_000, 0.1, 500_000)), None);
        let r = w.record();
        let g = r.began.unwrap();
        assert_eq!((g.open, g.secs), (200_000, 10.0));
        assert_eq!(r.rate_before, Some(20_000.0));
        assert_eq!(r.rate_after, Some(50_000.0 / 11.0));
        assert_eq!(r.scanned_pages, 500_000);
        assert_eq!(r.full_stall_secs, Some(0.02));
        assert!(r.note().contains("began at 200,000 open"), "{}", r.note());
    }

    #[test]
    fn a_full_stall_share_past_the_threshold_stops() {
        let mut w = ReclaimWatch::new(at(0.0, 0, 0, 0.0, 0));
        // 40 ms stalled in 1 s: 4%, under the threshold.
        assert_eq!(w.feed(at(1.0, 10_000, 40_000, 0.3, 0)), None);
        // Too short an interval is not judged, however high.
        assert_eq!(w.feed(at(1.2, 11_000, 140_000, 0.3, 0)), None);
        // 100 ms more stalled in 0.8 s since the last judged sample: 12.5%: stop.
        let stop = w.feed(at(1.8, 12_000, 140_000, 0.9, 0)).unwrap();
        assert_eq!(stop.open, 12_000);
        assert!((stop.full_share - 0.125).abs() < 1e-9);
        assert!(stop.note().contains("12.5%"), "{}", stop.note());
    }

    #[test]
    fn avg10_past_its_threshold_stops_even_after_a_quiet_interval() {
        let mut w = ReclaimWatch::new(at(0.0, 0, 0, 0.0, 0));
        let stop = w.feed(at(1.0, 5_000, 0, STOP_FULL_AVG10, 0)).unwrap();
        assert_eq!(stop.full_avg10, STOP_FULL_AVG10);
    }

    #[test]
    fn without_psi_nothing_stops() {
        let mut s = at(0.0, 0, 0, 0.0, 0);
        s.pressure = None;
        let mut w = ReclaimWatch::new(s);
        let mut later = at(5.0, 1, 5_000_000, 50.0, 0);
        later.pressure = None;
        assert_eq!(w.feed(later), None);
        assert_eq!(w.record().full_stall_secs, None);
    }
}
