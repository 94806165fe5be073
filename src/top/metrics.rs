//! `tune top --listen`'s metrics: the [`View`] in the Prometheus text format, pure (the names and labels tune-top(1) documents).
//!
//! Families (every `tune_limit_*` sample has the labels `limit`, `unit`, `pid` and `comm`;
//! `pid` and `comm` are empty except for `limit="fds"`, one series per process shown):
//! - `tune_limit_used`, `tune_limit_max`: use and size of the limit, in `unit`
//! - `tune_limit_headroom_ratio`: (max − used) / max
//! - `tune_limit_headroom_connections`: connections the limit still admits at its cost per
//!   connection (absent for tcp_mem and orphans, which connections do not take steadily)
//! - `tune_limit_rate_per_second`: change of `used` over the last 10 s
//! - `tune_limit_exhaustion_seconds`: time to exhaustion at that rate, `+Inf` when not rising
//! - `tune_limit_binding`: 1 for the limit that admits the fewest more connections, else 0
//! - `tune_tcp_sockets{state}`: sockstat's TCP line (`inuse`, `orphan`, `tw`, `alloc`)
//! - `tune_limit_events_total{counter}`: the kernel counters that show a limit being hit
//!   (`ListenOverflows`, `ListenDrops`, `TCPReqQFullDrop`, `TCPMemoryPressures`)
//! - `tune_top_refreshes_total`: refreshes since start

use super::model::{Row, View};
use crate::report::prometheus::Exposition;
use crate::values::{Input, Suggest};

/// The families' names, in the order written: tune-top(1) and the README list them.
pub const FAMILIES: [&str; 13] = [
    "tune_limit_used",
    "tune_limit_max",
    "tune_limit_headroom_ratio",
    "tune_limit_headroom_connections",
    "tune_limit_rate_per_second",
    "tune_limit_exhaustion_seconds",
    "tune_limit_binding",
    "tune_tcp_sockets",
    "tune_limit_events_total",
    "tune_top_refreshes_total",
    "tune_top_refresh_cpu_seconds",
    "tune_top_refresh_cpu_seconds_max",
    "tune_top_port_scan_cpu_seconds",
];

/// tune top's own cost: refreshes so far and the CPU (user and system) of its refresh thread
/// for the last one and the largest, when it could be measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub refreshes: u64,
    pub last_cpu_seconds: Option<f64>,
    pub max_cpu_seconds: Option<f64>,
}

/// What tune-top(1) says about the screen and the metrics (its NOTES section, from clap's long
/// help); a test holds it to [`FAMILIES`].
pub fn doc() -> String {
    DOC.replace("{listen}", &Suggest::set(Input::Listen, "ADDR").to_string())
}

/// [`doc`] with the flag that serves the metrics left as `{listen}`.
const DOC: &str = "\
The screen: one line per limit, the binding one first (marked >): the processes holding the most \
fds against their own RLIMIT_NOFILE (soft), fs.file-nr against fs.file-max, nf_conntrack_count \
against nf_conntrack_max, the ports of the busiest (source, destination) pair, TIME_WAIT \
included, against ip_local_port_range, tcp_mem pages against its pressure threshold, orphans \
against tcp_max_orphans, and memory (or the memory cgroup's charge) at the cost of one \
connection. Each shows use/limit, %, a bar, a sparkline of the last minutes, the rate over \
the last 10 s and the time to exhaustion at that rate. The binding limit is the one that admits \
the fewest more connections. ListenOverflows, ListenDrops, TCPReqQFullDrop (SYN drops) and \
TCPMemoryPressures follow, marked ! while they rise. Keys: s sort (use%, exhaustion, headroom, \
name), p pause, q quit.

Cost: a process's fds are counted with one stat(2) of /proc/PID/fd (Linux 6.2 and later report \
the count as its size); /proc/net/tcp and tcp6 are scanned for the ports at most once every 40 \
times their last scan's duration, since they grow with the sockets.

Metrics ({listen}, at /metrics, Prometheus text format 0.0.4). Every tune_limit_* series \
has the labels limit (fds, file_nr, conntrack, ports, tcp_mem, orphans, memory, memory_cgroup), \
unit (fds, files, entries, ports, pages, sockets, bytes), and pid and comm (set for limit=fds \
only, one series per process shown):
  tune_limit_used: gauge, what is used, in unit
  tune_limit_max: gauge, the limit, in unit
  tune_limit_headroom_ratio: gauge, (max - used) / max
  tune_limit_headroom_connections: gauge, connections still admitted
  tune_limit_rate_per_second: gauge, change of used over 10 s
  tune_limit_exhaustion_seconds: gauge, time left (+Inf: not rising)
  tune_limit_binding: gauge, 1 for the binding limit, else 0
  tune_tcp_sockets{state}: gauge, sockstat inuse/orphan/tw/alloc
  tune_limit_events_total{counter}: counter, one per kernel counter:
    ListenOverflows, ListenDrops, TCPReqQFullDrop, TCPMemoryPressures
  tune_top_refreshes_total: counter, refreshes since start
  tune_top_refresh_cpu_seconds: gauge, CPU of the last refresh
  tune_top_refresh_cpu_seconds_max: gauge, largest refresh CPU since start
  tune_top_port_scan_cpu_seconds: gauge, CPU of the last port-table scan

Alert rules for these (predict_linear on conntrack, fds and ports; tune's time to exhaustion; \
the drops) ship as examples/prometheus/tune-top-alerts.yml, with promtool unit tests.";

/// A float as the text format writes it (`+Inf`, no exponent for ordinary values).
fn float(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

/// The exposition of `view` and of what the refreshes cost.
pub fn render(view: &View, cost: &Cost) -> String {
    let mut x = Exposition::default();
    for r in &view.rows {
        limit(&mut x, r);
    }
    if let Some(t) = &view.tcp {
        for (state, v) in [
            ("inuse", t.inuse),
            ("orphan", t.orphan),
            ("tw", t.tw),
            ("alloc", t.alloc),
        ] {
            x.gauge(
                "tune_tcp_sockets",
                "TCP sockets by state, from /proc/net/sockstat (inuse is per network namespace).",
                &[("state", state)],
                v.to_string(),
            );
        }
    }
    for c in &view.counters {
        x.counter(
            "tune_limit_events_total",
            "Kernel counters that show a connection limit being hit (TcpExt of /proc/net/netstat).",
            &[("counter", c.name)],
            c.total.to_string(),
        );
    }
    x.counter(
        "tune_top_refreshes_total",
        "Refreshes tune top has made since it started.",
        &[],
        cost.refreshes.to_string(),
    );
    if let (Some(last), Some(max)) = (cost.last_cpu_seconds, cost.max_cpu_seconds) {
        x.gauge(
            "tune_top_refresh_cpu_seconds",
            "CPU (user and system) the last refresh took: reading every limit and writing these metrics.",
            &[],
            float(last),
        );
        x.gauge(
            "tune_top_refresh_cpu_seconds_max",
            "The largest refresh CPU since start (the port-table scan runs apart).",
            &[],
            float(max),
        );
    }
    if let Some(scan) = view.port_scan_cpu_seconds {
        x.gauge(
            "tune_top_port_scan_cpu_seconds",
            "CPU the last scan of /proc/net/tcp and tcp6 took (a thread of its own, at most once every 40 times this).",
            &[],
            float(scan),
        );
    }
    x.finish()
}

fn limit(x: &mut Exposition, r: &Row) {
    let pid = r.key.pid.map(|p| p.to_string()).unwrap_or_default();
    let comm = match r.key.pid {
        // The row's name is `fd PID COMM`.
        Some(_) => r.name.splitn(3, ' ').nth(2).unwrap_or(""),
        None => "",
    };
    let labels = [
        ("limit", r.key.kind.label()),
        ("unit", r.key.kind.unit()),
        ("pid", pid.as_str()),
        ("comm", comm),
    ];
    x.gauge(
        "tune_limit_used",
        "What is used of the limit, in its unit.",
        &labels,
        r.used.to_string(),
    );
    x.gauge(
        "tune_limit_max",
        "The limit, in its unit.",
        &labels,
        r.limit.to_string(),
    );
    let headroom = if r.limit == 0 {
        0.0
    } else {
        r.limit.saturating_sub(r.used) as f64 / r.limit as f64
    };
    x.gauge(
        "tune_limit_headroom_ratio",
        "(max - used) / max.",
        &labels,
        float(headroom),
    );
    if let Some(h) = r.headroom_connections {
        x.gauge(
            "tune_limit_headroom_connections",
            "Connections the limit still admits at its cost per connection.",
            &labels,
            h.to_string(),
        );
    }
    if let Some(rate) = r.rate {
        x.gauge(
            "tune_limit_rate_per_second",
            "Change of the used amount per second over the last 10 seconds.",
            &labels,
            float(rate),
        );
    }
    x.gauge(
        "tune_limit_exhaustion_seconds",
        "Seconds until the limit is used up at the current rate; +Inf when not rising.",
        &labels,
        float(r.exhaustion_seconds.unwrap_or(f64::INFINITY)),
    );
    x.gauge(
        "tune_limit_binding",
        "1 for the limit that admits the fewest more connections.",
        &labels,
        u8::from(r.binding).to_string(),
    );
}

#[cfg(test)]
mod tests {
    use super::super::model::{Key, Kind, Reading, Sample, State};
    use super::*;

    #[test]
    fn every_family_is_written_with_stable_labels() {
        let mut st = State::default();
        for t in 0..2u64 {
            st.push(Sample {
                at: t as f64,
                readings: vec![
                    Reading {
                        key: Key {
                            kind: Kind::Conntrack,
                            pid: None,
                        },
                        name: "conntrack".into(),
                        used: 100 + 50 * t,
                        limit: 1000,
                        per_connection: Some(1.0),
                        detail: String::new(),
                    },
                    Reading {
                        key: Key {
                            kind: Kind::Fds,
                            pid: Some(9),
                        },
                        name: "fd 9 nginx".into(),
                        used: 10,
                        limit: 1024,
                        per_connection: Some(1.0),
                        detail: String::new(),
                    },
                ],
                counters: vec![("ListenDrops", 4)],
                tcp: Some(crate::kernel::sockstat::TcpStat {
                    inuse: 5,
                    orphan: 0,
                    tw: 1,
                    alloc: 7,
                    mem_pages: 2,
                }),
                notes: vec![],
                port_scan_cpu_seconds: Some(0.25),
            });
        }
        let cost = Cost {
            refreshes: 2,
            last_cpu_seconds: Some(0.001),
            max_cpu_seconds: Some(0.003),
        };
        let text = render(&st.view(10), &cost);
        for f in FAMILIES {
            assert!(doc().contains(f), "{f} is not in tune-top(1)");
        }
        for f in FAMILIES {
            assert!(
                text.contains(&format!("# TYPE {f} ")),
                "{f} missing:\n{text}"
            );
        }
        let ct = r#"{limit="conntrack",unit="entries",pid="",comm=""}"#;
        for line in [
            format!("tune_limit_used{ct} 150"),
            format!("tune_limit_max{ct} 1000"),
            format!("tune_limit_headroom_ratio{ct} 0.85"),
            format!("tune_limit_rate_per_second{ct} 50"),
            format!("tune_limit_exhaustion_seconds{ct} 17"),
            format!("tune_limit_headroom_connections{ct} 850"),
            r#"tune_limit_binding{limit="fds",unit="fds",pid="9",comm="nginx"} 0"#.into(),
            r#"tune_limit_exhaustion_seconds{limit="fds",unit="fds",pid="9",comm="nginx"} +Inf"#
                .into(),
            r#"tune_limit_events_total{counter="ListenDrops"} 4"#.into(),
            "# TYPE tune_limit_events_total counter".into(),
            r#"tune_tcp_sockets{state="tw"} 1"#.into(),
            "tune_top_refreshes_total 2".into(),
            "tune_top_refresh_cpu_seconds_max 0.003".into(),
            "tune_top_port_scan_cpu_seconds 0.25".into(),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }
}
