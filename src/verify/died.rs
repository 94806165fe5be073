//! Pure: when most held connections drop at once, the server died (or restarted); this finds
//! that moment from the counts the phases follow, and names it with the evidence the server
//! watch read (process gone, the memory cgroup's OOM kills, the charge at the limit); and a
//! server that, alive, stalls at its memory cgroup's limit reading its own pages back (thrashing).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::diagnose::Diagnosis;
use super::server_watch::ServerEnd;
use crate::units::{bytes, group};
use crate::values::{Input, Suggest};

/// Drops counted within this window are one event: a server that dies resets every connection
/// at once (the kernel closes its sockets when it exits), well inside it.
pub const WINDOW: Duration = Duration::from_millis(500);

/// Share of the most connections held so far that must drop within the window (a trickle of
/// closes that empties the run slowly is no death).
pub const MOST: f64 = 0.5;

/// The kernel closes a dying process's sockets one by one, so a big server's death takes longer
/// than [`WINDOW`]: measured here, 1M sockets in 18.6 s (54,000/s) on a quiet host, and 17,039
/// of Node's in ~1.4 s (12,000/s) with six builds sharing 2 cores. The window grows to the most
/// connections held at this slower rate.
pub const DYING_CLOSE_RATE: f64 = 5_000.0;

/// When looks come further apart than the window (a step of the ramp settling, the server
/// sampled, a loaded machine), the last look before stays the one compared with, up to this
/// old: a drop seen across a longer gap cannot be told from a slow drain.
pub const MAX_LOOK_GAP: Duration = Duration::from_secs(2);

/// Fewer open connections than this are too few to tell a death from chance closes.
pub const MIN_OPEN: u64 = 10;

/// Most held connections dropped at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Collapse {
    /// Connections open just before.
    pub open_before: u64,
    /// Connections dropped in the window.
    pub dropped: u64,
    /// Seconds between the last count before the drop and the first after it.
    pub within_seconds: f64,
}

/// One look: when, connections open, connections dropped so far.
type Look = (Instant, u64, u64);

/// Follows (open, dropped so far) over time and keeps the first collapse. Whether one happened
/// is decided over the window; what it was (the count before, the drops) is told from the last
/// look before the drops began to rise, which a loaded machine's late looks may have pushed out
/// of the window, and it grows with the drops while they go on rising. When connections still
/// opened while a few dropped (a ramp), the look with the most open since then is the "before".
#[derive(Debug, Clone, Default)]
pub struct CollapseWatch {
    recent: VecDeque<Look>,
    peak: u64,
    /// The look with the most open since the last look whose drops had not risen since the
    /// look before it (that one included).
    calm: Option<Look>,
    last: Option<Look>,
    /// The collapse found, and every look since, dropped more than the look before.
    growing: bool,
    pub found: Option<Collapse>,
}

impl CollapseWatch {
    /// [`WINDOW`], or the time the kernel may take to close the most connections held.
    fn window(&self) -> Duration {
        WINDOW.max(Duration::from_secs_f64(self.peak as f64 / DYING_CLOSE_RATE))
    }

    /// One look: `open` now and `dropped`, the count of connections lost so far.
    pub fn feed(&mut self, now: Instant, open: u64, dropped: u64) {
        let rising = self.last.is_some_and(|(_, _, d)| dropped > d);
        if !rising {
            self.calm = Some((now, open, dropped));
            self.growing = false;
        } else if self.found.is_none() && self.calm.is_some_and(|(_, o, _)| open > o) {
            self.calm = Some((now, open, dropped));
        }
        self.last = Some((now, open, dropped));
        // Older than the window is dropped, but the last look is kept up to MAX_LOOK_GAP.
        let window = self.window();
        while self.recent.front().is_some_and(|(t, _, _)| {
            let age = now.saturating_duration_since(*t);
            age > MAX_LOOK_GAP.max(window) || (age > window && self.recent.len() > 1)
        }) {
            self.recent.pop_front();
        }
        if self.found.is_none() && self.collapsed(dropped) {
            self.growing = true;
        }
        if let (true, Some((t, open0, dropped0))) = (self.growing, self.calm) {
            self.found = Some(Collapse {
                open_before: open0,
                dropped: dropped.saturating_sub(dropped0),
                within_seconds: now.saturating_duration_since(t).as_secs_f64(),
            });
        }
        self.peak = self.peak.max(open);
        self.recent.push_back((now, open, dropped));
    }

    /// Most held connections dropped since a look within the window.
    fn collapsed(&self, dropped: u64) -> bool {
        self.recent
            .iter()
            .filter(|(_, o, _)| *o >= MIN_OPEN)
            .max_by_key(|(_, o, _)| *o)
            .is_some_and(|&(_, open0, dropped0)| {
                let gone = dropped.saturating_sub(dropped0);
                gone >= MIN_OPEN && gone as f64 >= MOST * self.peak.max(open0) as f64
            })
    }
}

/// The diagnosis of a collapse: "the server died or restarted at N", with what the watch saw.
pub fn server_died(c: &Collapse, end: Option<&ServerEnd>) -> Diagnosis {
    let seen = format!(
        "{} of {} held connections dropped within {:.1} s (reset by the server's host: a process that exits has its sockets closed by the kernel)",
        group(c.dropped),
        group(c.open_before),
        c.within_seconds.max(0.1)
    );
    let mut evidence = vec![seen];
    let mut value = format!(
        "the server died or restarted at {} connections",
        group(c.open_before)
    );
    let mut fix = Vec::new();
    match end {
        None => fix.push(format!(
            "on the server's host: its logs, `dmesg | grep -i -e oom -e killed`, the supervisor's restart count (systemctl status UNIT, kubectl describe pod: OOMKilled); there, tune load {} or {} names the cause",
            Suggest::set(Input::ServerPid, "PID"),
            Suggest::set(Input::ServerCgroup, "DIR")
        )),
        Some(e) => {
            if let (Some(pid), Some(false)) = (e.pid, e.alive) {
                evidence.push(format!("process {pid} is gone"));
            }
            if let (Some(pid), Some(true)) = (e.pid, e.alive) {
                evidence.push(format!(
                    "process {pid} is still running (it closed the connections itself, or a worker of it died)"
                ));
            }
            let cg = e.cgroup.clone().unwrap_or_default();
            let at_limit = match (e.limit, e.limit_hits) {
                (Some(l), Some(h)) if h > 0 => format!(
                    "; the charge hit its limit {} {} times",
                    bytes(l),
                    group(h)
                ),
                _ => String::new(),
            };
            match e.oom_kills {
                Some(k) if k > 0 => {
                    evidence.push(format!(
                        "memory cgroup {cg}: oom_kill +{k} during the run{at_limit}"
                    ));
                    value = format!(
                        "the server died at {} connections: OOM kill in memory cgroup {cg} (limit {})",
                        group(c.open_before),
                        e.limit.map_or("unknown".into(), bytes)
                    );
                    fix.push(format!(
                        "raise the memory cgroup's limit (the container's memory limit; {cg}/memory.limit_in_bytes or memory.max) or lower the server's cost per connection; tune check {} {} sizes it",
                        Suggest::set(Input::Pid, "PID"),
                        Suggest::set(Input::CostFrom, "REPORT")
                    ));
                }
                Some(_) => {
                    evidence.push(format!(
                        "memory cgroup {cg}: no OOM kill counted{at_limit}"
                    ));
                    fix.push("not the memory cgroup: look at the server's logs and exit status, and at who else may signal it (a supervisor, a deploy, the kernel's global OOM killer in dmesg)".into());
                }
                None if e.cgroup.is_some() => {
                    evidence.push(format!("memory cgroup {cg}: OOM kills not readable"));
                }
                None => fix.push(format!(
                    "no memory cgroup read: {} names the container's, whose OOM kills tell a memory death",
                    Suggest::set(Input::ServerCgroup, "DIR")
                )),
            }
        }
    }
    Diagnosis {
        limit: "server_died".into(),
        knob: None,
        side: "server".into(),
        value,
        evidence: evidence.join("; "),
        fix,
        projected_connections: None,
    }
}

/// Major faults during the run that tell a server reading its pages back from disk: a server at
/// rest takes a handful; Node thrashing at its limit took 150 a second (2,000 in 14 s).
pub const THRASH_MAJOR_FAULTS: u64 = 500;

/// Times the charge hit the limit during the run that tell reclaim going on and on (Node
/// thrashing: 50,000 a second; an OOM kill after a clean climb: tens to hundreds).
pub const THRASH_LIMIT_HITS: u64 = 10_000;

/// A server that stalled short of the target, still alive, its memory cgroup hitting its limit
/// over and over and its pages read back from disk: it thrashes at the limit, where the kernel
/// reclaims its file pages (its own code among them) rather than OOM-kill it.
pub fn thrashing(reached: u64, end: &ServerEnd) -> Option<Diagnosis> {
    let (faults, hits) = (end.major_faults?, end.limit_hits?);
    if end.alive == Some(false)
        || end.oom_kills.unwrap_or(0) > 0
        || faults < THRASH_MAJOR_FAULTS
        || hits < THRASH_LIMIT_HITS
    {
        return None;
    }
    let cg = end.cgroup.clone().unwrap_or_default();
    let limit = end.limit.map_or("unknown".into(), bytes);
    Some(Diagnosis {
        limit: "server_thrashing".into(),
        knob: None,
        side: "server".into(),
        value: format!(
            "the server thrashes at its memory cgroup's limit at {} connections: memory cgroup {cg} (limit {limit})",
            group(reached)
        ),
        evidence: format!(
            "the charge hit its limit {} {} times and the server read {} pages back from disk (major faults) during the run, and it is still running: at the limit the kernel reclaims its file pages, its own code among them, instead of OOM-killing it, so it slows to a crawl and stops accepting",
            limit,
            group(hits),
            group(faults)
        ),
        fix: vec![
            format!(
                "raise the memory cgroup's limit ({cg}/memory.limit_in_bytes or memory.max) or lower the server's cost per connection; tune check {} {} sizes it",
                Suggest::set(Input::Pid, "PID"),
                Suggest::set(Input::CostFrom, "REPORT")
            ),
            "to have it killed and restarted instead of crawling: a memory.high (v2) below the limit, or a supervisor that restarts it on a stall (a health check)".into(),
        ],
        projected_connections: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sudden_drop_of_most_connections_is_a_collapse() {
        let t = Instant::now();
        let mut w = CollapseWatch::default();
        w.feed(t, 1000, 0);
        w.feed(t + Duration::from_millis(100), 1990, 0);
        w.feed(t + Duration::from_millis(200), 10, 1980);
        let c = w.found.unwrap();
        assert_eq!((c.open_before, c.dropped), (1990, 1980));
        assert!((c.within_seconds - 0.1).abs() < 0.01);
    }

    #[test]
    fn a_drop_across_looks_further_apart_than_the_window_is_still_seen() {
        // A step of the ramp settles and the server is sampled for 1.2 s between two looks;
        // the server died in between.
        let t = Instant::now();
        let mut w = CollapseWatch::default();
        w.feed(t, 17_000, 0);
        w.feed(t + Duration::from_millis(1200), 0, 17_000);
        let c = w.found.unwrap();
        assert_eq!((c.open_before, c.dropped), (17_000, 17_000));
        assert!((c.within_seconds - 1.2).abs() < 0.01);
        // Further apart than MAX_LOOK_GAP and the time 17,000 closes take (3.4 s): no telling
        // a death from a drain.
        let mut w = CollapseWatch::default();
        w.feed(t, 17_000, 0);
        w.feed(t + Duration::from_secs(5), 0, 17_000);
        assert!(w.found.is_none());
    }

    #[test]
    fn a_big_server_dying_over_a_second_and_a_half_is_a_collapse() {
        // Node's 17,039 connections as the socket table showed them after its OOM kill.
        let t = Instant::now();
        let mut w = CollapseWatch::default();
        let seen = [
            (0, 17_039),
            (700, 15_740),
            (1040, 6_937),
            (1400, 1_244),
            (1620, 0),
        ];
        for (ms, open) in seen {
            w.feed(t + Duration::from_millis(ms), open, 17_039 - open);
            if w.found.is_some() {
                break;
            }
        }
        let c = w.found.unwrap();
        assert_eq!(c.open_before, 17_039);
        assert!(c.dropped >= 17_039 / 2, "{c:?}");
    }

    #[test]
    fn a_death_seen_late_is_told_from_the_look_before_the_drops_rose() {
        // Issue 24's pair run, round 2 (/work/ci/round2-a.log): a Python server killed while
        // 300 were held, looked at late on a loaded machine. The look of 300 open had left
        // the 0.5 s window when the drops passed half, and the report said "151 of 179 held
        // connections dropped within 0.1 s", "died ... at 179 connections".
        let t = Instant::now();
        let mut w = CollapseWatch::default();
        let seen = [(0, 300, 0), (550, 179, 121), (650, 28, 272), (750, 0, 300)];
        for (ms, open, dropped) in seen {
            w.feed(t + Duration::from_millis(ms), open, dropped);
        }
        let c = w.found.unwrap();
        assert_eq!((c.open_before, c.dropped), (300, 300), "{c:?}");
        assert!((c.within_seconds - 0.75).abs() < 0.01, "{c:?}");
        // Once the drops stop rising the collapse is told: later drops are not added to it.
        w.feed(t + Duration::from_millis(850), 0, 300);
        w.feed(t + Duration::from_millis(950), 5, 310);
        assert_eq!(w.found.unwrap().dropped, 300);
    }

    #[test]
    fn a_ramp_that_drops_a_few_as_it_climbs_is_told_from_its_top() {
        // A server that loses a connection at every look while the ramp still climbs, then
        // dies: "before" is the top of the climb, not the last look without a drop.
        let t = Instant::now();
        let mut w = CollapseWatch::default();
        let seen = [
            (0, 1_000, 0),
            (100, 2_000, 1),
            (200, 3_000, 2),
            (300, 4_000, 3),
            (400, 100, 3_903),
            (500, 0, 4_003),
        ];
        for (ms, open, dropped) in seen {
            w.feed(t + Duration::from_millis(ms), open, dropped);
        }
        let c = w.found.unwrap();
        assert_eq!((c.open_before, c.dropped), (4_000, 4_000), "{c:?}");
        assert!((c.within_seconds - 0.2).abs() < 0.01, "{c:?}");
    }

    #[test]
    fn a_slow_trickle_of_closes_is_not() {
        let t = Instant::now();
        let mut w = CollapseWatch::default();
        for i in 0..100u64 {
            w.feed(t + Duration::from_millis(100 * i), 1000 - i * 10, i * 10);
        }
        assert!(w.found.is_none());
    }

    #[test]
    fn the_diagnosis_names_the_oom_kill_or_says_what_it_saw() {
        let c = Collapse {
            open_before: 2007,
            dropped: 2007,
            within_seconds: 0.1,
        };
        let d = server_died(&c, None);
        assert_eq!(d.value, "the server died or restarted at 2,007 connections");
        assert!(d
            .evidence
            .starts_with("2,007 of 2,007 held connections dropped within 0.1 s"));
        assert!(d.fix[0].contains("dmesg"));
        let e = ServerEnd {
            pid: Some(42),
            alive: Some(false),
            cgroup: Some("/sys/fs/cgroup/memory/a".into()),
            oom_kills: Some(1),
            limit_hits: Some(30),
            major_faults: Some(0),
            limit: Some(50_331_648),
            charge: Some(1_000_000),
        };
        let d = server_died(&c, Some(&e));
        assert_eq!(
            d.value,
            "the server died at 2,007 connections: OOM kill in memory cgroup /sys/fs/cgroup/memory/a (limit 50.3 MB)"
        );
        assert!(d.evidence.contains("process 42 is gone"), "{}", d.evidence);
        assert!(d.evidence.contains("oom_kill +1"), "{}", d.evidence);
    }

    #[test]
    fn a_server_alive_at_its_limit_reading_its_pages_back_thrashes() {
        // Node ws in 64 MiB with its code pages charged to its own cgroup (measured: 14 s at
        // the limit, failcnt +50,000/s, pgmajfault +150/s, no connection accepted).
        let mut e = ServerEnd {
            pid: Some(7),
            alive: Some(true),
            cgroup: Some("/sys/fs/cgroup/memory/n".into()),
            oom_kills: Some(0),
            limit_hits: Some(2_487_878),
            major_faults: Some(4_017),
            limit: Some(67_108_864),
            charge: Some(66_981_888),
        };
        let d = thrashing(10_600, &e).unwrap();
        assert_eq!(d.limit, "server_thrashing");
        assert_eq!(
            d.value,
            "the server thrashes at its memory cgroup's limit at 10,600 connections: memory cgroup /sys/fs/cgroup/memory/n (limit 67.1 MB)"
        );
        assert!(d.evidence.contains("2,487,878 times"), "{}", d.evidence);
        assert!(d.evidence.contains("4,017 pages"), "{}", d.evidence);
        // Killed in the end, or a clean climb to the limit: not thrashing.
        e.oom_kills = Some(1);
        assert!(thrashing(10_600, &e).is_none());
        e.oom_kills = Some(0);
        e.major_faults = Some(3);
        assert!(thrashing(10_600, &e).is_none());
    }
}
