//! `tune top`'s state and arithmetic, pure: the history of every limit (ring buffers), rates, time to exhaustion, which limit binds, sorting.
//!
//! A [`Sample`] is what one refresh read (plain numbers, no I/O here); [`State::push`] keeps
//! the last [`HISTORY`] of them per limit and [`State::view`] turns them into the rows the
//! screen and the metrics show.

use std::collections::{BTreeMap, VecDeque};

use crate::kernel::sockstat::TcpStat;

/// Points kept per limit: ten minutes at one refresh a second (the sparklines' span).
pub const HISTORY: usize = 600;
/// Rates are the change over the last this many seconds: long enough to smooth one slow
/// refresh, short enough that a ramp shows within seconds.
pub const RATE_WINDOW_SECONDS: f64 = 10.0;
/// A drop counter is highlighted while it moved within this many seconds.
pub const MOVING_SECONDS: f64 = 5.0;

/// Which limit a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Open fds of one process against its RLIMIT_NOFILE (soft: where open() gets EMFILE).
    Fds,
    /// fs.file-nr's allocated files against fs.file-max.
    FileNr,
    /// nf_conntrack_count against nf_conntrack_max.
    Conntrack,
    /// Local ports of the busiest (source, destination) pair, TIME_WAIT included, against
    /// ip_local_port_range.
    Ports,
    /// Pages TCP buffers hold against tcp_mem's pressure threshold (its middle number).
    TcpMem,
    /// Orphaned TCP sockets against tcp_max_orphans.
    Orphans,
    /// Memory in use against MemTotal less the reserve check keeps.
    Memory,
    /// The memory cgroup's charge against its tightest limit.
    MemoryCgroup,
}

impl Kind {
    /// The `limit` label of the metrics and the row's name: stable, documented in tune-top(1).
    pub fn label(self) -> &'static str {
        match self {
            Kind::Fds => "fds",
            Kind::FileNr => "file_nr",
            Kind::Conntrack => "conntrack",
            Kind::Ports => "ports",
            Kind::TcpMem => "tcp_mem",
            Kind::Orphans => "orphans",
            Kind::Memory => "memory",
            Kind::MemoryCgroup => "memory_cgroup",
        }
    }

    /// What the numbers count.
    pub fn unit(self) -> &'static str {
        match self {
            Kind::Fds => "fds",
            Kind::FileNr => "files",
            Kind::Conntrack => "entries",
            Kind::Ports => "ports",
            Kind::TcpMem => "pages",
            Kind::Orphans => "sockets",
            Kind::Memory | Kind::MemoryCgroup => "bytes",
        }
    }

    /// Every kind, in the order of the metrics list.
    pub const ALL: [Kind; 8] = [
        Kind::Fds,
        Kind::FileNr,
        Kind::Conntrack,
        Kind::Ports,
        Kind::TcpMem,
        Kind::Orphans,
        Kind::Memory,
        Kind::MemoryCgroup,
    ];
}

/// One limit's identity across refreshes: the kind, and the process for [`Kind::Fds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub kind: Kind,
    pub pid: Option<u32>,
}

/// One limit as one refresh read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub key: Key,
    /// What the row is called (`fds nginx 1234`, `conntrack`).
    pub name: String,
    pub used: u64,
    pub limit: u64,
    /// Units of this limit one more connection takes (1 fd, 1 entry, bytes per socket); `None`
    /// when connections do not take it steadily (tcp_mem: idle sockets hold no pages).
    pub per_connection: Option<f64>,
    /// Where the figures come from, for the screen's detail line (`knob 262,144`, the pair).
    pub detail: String,
}

/// What one refresh read: plain numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Seconds since the first refresh.
    pub at: f64,
    pub readings: Vec<Reading>,
    /// Drop counters by their kernel name (`ListenOverflows`), cumulative.
    pub counters: Vec<(&'static str, u64)>,
    /// The TCP line of sockstat (sockets in use, orphans, TIME_WAIT).
    pub tcp: Option<TcpStat>,
    /// What could not be read this time, in words.
    pub notes: Vec<String>,
    /// CPU the last finished scan of the port tables took (on its own thread).
    pub port_scan_cpu_seconds: Option<f64>,
}

/// One series of (seconds, value) points, oldest first, at most [`HISTORY`] long.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    points: VecDeque<(f64, u64)>,
}

impl Series {
    pub fn push(&mut self, at: f64, value: u64) {
        if self.points.len() == HISTORY {
            self.points.pop_front();
        }
        self.points.push_back((at, value));
    }

    pub fn last(&self) -> Option<u64> {
        self.points.back().map(|p| p.1)
    }

    /// Change per second over the last `window` seconds (first and last point in it); `None`
    /// with fewer than two points.
    pub fn rate(&self, window: f64) -> Option<f64> {
        let &(t1, v1) = self.points.back()?;
        let &(t0, v0) = self.points.iter().find(|(t, _)| t1 - *t <= window)?;
        (t1 > t0).then(|| (v1 as f64 - v0 as f64) / (t1 - t0))
    }

    /// At most `cols` values for a sparkline, newest last: each the largest of an equal share
    /// of the history (one point a column until the history outgrows the width).
    pub fn spark(&self, cols: usize) -> Vec<u64> {
        if cols == 0 || self.points.is_empty() {
            return Vec::new();
        }
        let per = self.points.len().div_ceil(cols);
        let skip = self.points.len() % per;
        let values: Vec<u64> = self.points.iter().map(|p| p.1).collect();
        let mut out: Vec<u64> = Vec::new();
        if skip > 0 {
            out.push(values[..skip].iter().copied().max().unwrap_or(0));
        }
        out.extend(
            values[skip..]
                .chunks(per)
                .map(|c| c.iter().copied().max().unwrap_or(0)),
        );
        let drop = out.len().saturating_sub(cols);
        out.split_off(drop)
    }
}

/// Seconds until `used` reaches `limit` at `rate` a second; `Some(0.0)` when already there,
/// `None` when it is not rising.
pub fn time_to_exhaustion(used: u64, limit: u64, rate: Option<f64>) -> Option<f64> {
    if used >= limit {
        return Some(0.0);
    }
    match rate {
        Some(r) if r > 0.0 => Some((limit - used) as f64 / r),
        _ => None,
    }
}

/// Connections the limit still admits: its headroom over what one connection takes.
pub fn headroom_connections(used: u64, limit: u64, per_connection: Option<f64>) -> Option<u64> {
    let per = per_connection.filter(|p| *p > 0.0)?;
    Some((limit.saturating_sub(used) as f64 / per) as u64)
}

/// How rows below the binding one are ordered (the `s` key cycles through them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Share of the limit used, highest first.
    #[default]
    Usage,
    /// Time to exhaustion, soonest first (not rising last).
    Exhaustion,
    /// Fewest connections left first (limits without a per-connection cost last).
    Headroom,
    /// By name.
    Name,
}

impl Sort {
    pub fn next(self) -> Sort {
        match self {
            Sort::Usage => Sort::Exhaustion,
            Sort::Exhaustion => Sort::Headroom,
            Sort::Headroom => Sort::Name,
            Sort::Name => Sort::Usage,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Sort::Usage => "use%",
            Sort::Exhaustion => "exhaustion",
            Sort::Headroom => "headroom",
            Sort::Name => "name",
        }
    }
}

/// One row of the view.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: Key,
    pub name: String,
    pub detail: String,
    pub used: u64,
    pub limit: u64,
    /// used / limit (0 for a zero limit).
    pub ratio: f64,
    /// Change of `used` per second over [`RATE_WINDOW_SECONDS`].
    pub rate: Option<f64>,
    pub exhaustion_seconds: Option<f64>,
    pub headroom_connections: Option<u64>,
    pub spark: Vec<u64>,
    /// The limit that admits the fewest more connections: shown first, highlighted.
    pub binding: bool,
}

/// A drop counter's row.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterRow {
    pub name: &'static str,
    pub total: u64,
    pub rate: Option<f64>,
    /// It rose within [`MOVING_SECONDS`]: highlighted.
    pub moving: bool,
}

/// What the screen and the metrics show after a refresh.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct View {
    pub rows: Vec<Row>,
    pub counters: Vec<CounterRow>,
    pub tcp: Option<TcpStat>,
    pub notes: Vec<String>,
    pub sort: Sort,
    pub paused: bool,
    /// Seconds of history behind the sparklines.
    pub span_seconds: f64,
    pub port_scan_cpu_seconds: Option<f64>,
}

/// Everything `tune top` remembers between refreshes.
#[derive(Debug, Clone, Default)]
pub struct State {
    series: BTreeMap<Key, Series>,
    counters: BTreeMap<&'static str, Series>,
    last: Option<Sample>,
    pub sort: Sort,
    pub paused: bool,
}

impl State {
    /// Adds a refresh. Series of limits the sample no longer has (a process that exited) are
    /// dropped, so memory stays bounded by the rows on screen.
    pub fn push(&mut self, sample: Sample) {
        self.series
            .retain(|k, _| sample.readings.iter().any(|r| r.key == *k));
        for r in &sample.readings {
            self.series
                .entry(r.key)
                .or_default()
                .push(sample.at, r.used);
        }
        for (name, v) in &sample.counters {
            self.counters.entry(name).or_default().push(sample.at, *v);
        }
        self.last = Some(sample);
    }

    /// The rows for sparklines `spark_cols` wide: the binding limit first, the rest by `sort`.
    pub fn view(&self, spark_cols: usize) -> View {
        let Some(last) = &self.last else {
            return View {
                sort: self.sort,
                paused: self.paused,
                ..View::default()
            };
        };
        let mut rows: Vec<Row> = last
            .readings
            .iter()
            .map(|r| self.row(r, spark_cols))
            .collect();
        let binding = rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.headroom_connections.map(|h| (h, i)))
            .min()
            .map(|(_, i)| i);
        if let Some(i) = binding {
            rows[i].binding = true;
        }
        sort_rows(&mut rows, self.sort);
        let counters = last
            .counters
            .iter()
            .map(|(name, total)| {
                let s = &self.counters[name];
                CounterRow {
                    name,
                    total: *total,
                    rate: s.rate(RATE_WINDOW_SECONDS),
                    moving: s.rate(MOVING_SECONDS).is_some_and(|r| r > 0.0),
                }
            })
            .collect();
        let first = self
            .series
            .values()
            .filter_map(|s| s.points.front())
            .map(|p| p.0)
            .fold(last.at, f64::min);
        View {
            rows,
            counters,
            tcp: last.tcp,
            notes: last.notes.clone(),
            sort: self.sort,
            paused: self.paused,
            span_seconds: last.at - first,
            port_scan_cpu_seconds: last.port_scan_cpu_seconds,
        }
    }

    fn row(&self, r: &Reading, spark_cols: usize) -> Row {
        let series = self.series.get(&r.key);
        let rate = series.and_then(|s| s.rate(RATE_WINDOW_SECONDS));
        Row {
            key: r.key,
            name: r.name.clone(),
            detail: r.detail.clone(),
            used: r.used,
            limit: r.limit,
            ratio: if r.limit == 0 {
                0.0
            } else {
                r.used as f64 / r.limit as f64
            },
            rate,
            exhaustion_seconds: time_to_exhaustion(r.used, r.limit, rate),
            headroom_connections: headroom_connections(r.used, r.limit, r.per_connection),
            spark: series.map(|s| s.spark(spark_cols)).unwrap_or_default(),
            binding: false,
        }
    }
}

/// The binding row first, then `sort`; ties by name, so the order is stable between refreshes.
pub fn sort_rows(rows: &mut [Row], sort: Sort) {
    rows.sort_by(|a, b| {
        let key = |r: &Row| -> f64 {
            match sort {
                Sort::Usage => -r.ratio,
                Sort::Exhaustion => r.exhaustion_seconds.unwrap_or(f64::INFINITY),
                Sort::Headroom => r.headroom_connections.map_or(f64::INFINITY, |h| h as f64),
                Sort::Name => 0.0,
            }
        };
        b.binding
            .cmp(&a.binding)
            .then(key(a).total_cmp(&key(b)))
            .then(a.name.cmp(&b.name))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(kind: Kind, pid: Option<u32>, used: u64, limit: u64, per: Option<f64>) -> Reading {
        Reading {
            key: Key { kind, pid },
            name: kind.label().into(),
            used,
            limit,
            per_connection: per,
            detail: String::new(),
        }
    }

    #[test]
    fn rate_is_over_the_window_and_needs_two_points() {
        let mut s = Series::default();
        assert_eq!(s.rate(10.0), None);
        s.push(0.0, 100);
        assert_eq!(s.rate(10.0), None);
        for t in 1..=20 {
            s.push(f64::from(t), 100 + 50 * t as u64);
        }
        // Only the last 10 s count: 50 a second whatever came before.
        assert_eq!(s.rate(10.0), Some(50.0));
        s.push(21.0, 0);
        assert!(s.rate(10.0).unwrap() < 0.0);
    }

    #[test]
    fn the_ring_keeps_the_last_history_points() {
        let mut s = Series::default();
        for t in 0..(HISTORY as u64 + 50) {
            s.push(t as f64, t);
        }
        assert_eq!(s.points.len(), HISTORY);
        assert_eq!(s.points.front().unwrap().1, 50);
    }

    #[test]
    fn sparkline_takes_the_largest_of_each_share_newest_last() {
        let mut s = Series::default();
        for v in [1, 5, 2, 8, 3, 3, 9] {
            s.push(0.0, v);
        }
        assert_eq!(s.spark(10), vec![1, 5, 2, 8, 3, 3, 9]);
        // 7 points in 3 columns: shares of 3, the oldest column takes the remainder.
        assert_eq!(s.spark(3), vec![1, 8, 9]);
        assert_eq!(s.spark(0), Vec::<u64>::new());
    }

    #[test]
    fn exhaustion_at_the_current_rate() {
        assert_eq!(time_to_exhaustion(100, 1100, Some(10.0)), Some(100.0));
        assert_eq!(time_to_exhaustion(100, 1100, Some(0.0)), None);
        assert_eq!(time_to_exhaustion(100, 1100, Some(-3.0)), None);
        assert_eq!(time_to_exhaustion(100, 1100, None), None);
        assert_eq!(time_to_exhaustion(1200, 1100, None), Some(0.0));
        assert_eq!(headroom_connections(100, 1100, Some(2.0)), Some(500));
        assert_eq!(headroom_connections(100, 1100, None), None);
    }

    #[test]
    fn the_binding_limit_comes_first_whatever_the_sort() {
        let mut st = State::default();
        for t in 0..3u64 {
            st.push(Sample {
                at: t as f64,
                readings: vec![
                    // 90% used but no per-connection cost: never binding.
                    reading(Kind::TcpMem, None, 900, 1000, None),
                    // 1000 connections left.
                    reading(
                        Kind::Conntrack,
                        None,
                        1000 + 100 * t,
                        2100 + 100 * t,
                        Some(1.0),
                    ),
                    // 500 connections left at 2 bytes each (usage 50%).
                    reading(Kind::Memory, None, 1000, 2000, Some(2.0)),
                ],
                counters: vec![("ListenDrops", 7 * (t / 2))],
                ..Sample::default()
            });
        }
        for sort in [Sort::Usage, Sort::Exhaustion, Sort::Headroom, Sort::Name] {
            st.sort = sort;
            let v = st.view(10);
            assert_eq!(v.rows[0].key.kind, Kind::Memory, "{sort:?}");
            assert!(v.rows[0].binding && !v.rows[1].binding);
        }
        st.sort = Sort::Usage;
        let v = st.view(10);
        let kinds: Vec<Kind> = v.rows.iter().map(|r| r.key.kind).collect();
        assert_eq!(kinds, [Kind::Memory, Kind::TcpMem, Kind::Conntrack]);
        let ct = &v.rows[2];
        assert_eq!(ct.rate, Some(100.0));
        assert_eq!(
            ct.exhaustion_seconds,
            Some(11.0),
            "(2,300 − 1,200) / 100 a second"
        );
        assert_eq!(ct.spark, vec![1000, 1100, 1200]);
        assert_eq!(v.span_seconds, 2.0);
        // The counter rose between the last two refreshes: moving.
        assert_eq!(v.counters[0].total, 7);
        assert!(v.counters[0].moving);
        st.sort = Sort::Exhaustion;
        let kinds: Vec<Kind> = st.view(10).rows.iter().map(|r| r.key.kind).collect();
        assert_eq!(kinds, [Kind::Memory, Kind::Conntrack, Kind::TcpMem]);
    }

    #[test]
    fn a_process_that_exits_leaves_no_series() {
        let mut st = State::default();
        st.push(Sample {
            readings: vec![reading(Kind::Fds, Some(7), 10, 100, Some(1.0))],
            ..Sample::default()
        });
        st.push(Sample {
            at: 1.0,
            readings: vec![reading(Kind::Fds, Some(8), 10, 100, Some(1.0))],
            ..Sample::default()
        });
        assert_eq!(st.series.len(), 1);
        assert_eq!(st.view(5).rows[0].key.pid, Some(8));
    }
}
