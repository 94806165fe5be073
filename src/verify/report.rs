//! The verify report: one serializable struct (the JSON of docs/verify-schema.json) and its
//! table rendering.

use std::collections::BTreeMap;

use embedded_server::loadgen::Histogram;
use serde::Serialize;

use super::clock::Phases;
use super::diagnose::Diagnosis;
use super::measure::{Conntrack, Rss, SlabGrowth, Sock};
use super::teardown::Pacing;
use crate::text::{self, Sheet};
use crate::units::{bytes, group};

pub const SCHEMA_VERSION: u32 = 1;

/// Percentiles of a latency histogram, µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Option<Latency> {
        (!h.is_empty()).then(|| Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub per_process: Option<u64>,
    pub per_host: Option<u64>,
    pub binding_limit: String,
    pub meets_target: bool,
    pub processes_needed: Option<u64>,
    pub source_addresses_needed: Option<u64>,
    pub kernel_bytes_per_connection: u64,
    /// Connections one server worker can hold: its fd cap less the fds it keeps to drain its
    /// accept queue (the figure to compare with what each worker held).
    pub per_server_worker: Option<u64>,
    pub summary: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserMemory {
    pub processes: u64,
    pub baseline: Rss,
    /// At about half the target (for the marginal cost), and the count then.
    pub half: Option<Rss>,
    pub half_connections: u64,
    pub peak: Rss,
    pub peak_connections: u64,
    /// (peak − baseline) anonymous RSS / connections: includes per-process fixed growth.
    pub growth_bytes_per_connection: Option<f64>,
    /// (peak − half) anonymous RSS / (connections between): the cost of one more connection.
    pub marginal_bytes_per_connection: Option<f64>,
}

/// The slab cache of /proc inodes. It grows by one inode per open descriptor when a process
/// lists /proc/PID/fd of the workers (a monitoring agent; tune itself does so only before
/// connections open), so its growth is that process's cost, not the sockets'.
pub const PROC_INODE_CACHE: &str = "proc_inode_cache";
/// Said under the slab table when proc_inode_cache grew with the connections.
const PROC_INODE_NOTE: &str = "a process here lists the workers' /proc/PID/fd: not a socket cost";

/// What to say under the slab table about a cache: only proc_inode_cache, when it grew with
/// the connections (100 B or more per connection), gets a note.
fn slab_note(cache: &str, bytes_per_connection: f64) -> Option<&'static str> {
    (cache == PROC_INODE_CACHE && bytes_per_connection >= 100.0).then_some(PROC_INODE_NOTE)
}

#[derive(Debug, Clone, Serialize)]
pub struct KernelMemory {
    pub slab_delta_bytes: i64,
    pub memfree_delta_bytes: i64,
    pub slab_bytes_per_connection: Option<f64>,
    pub memfree_bytes_per_connection: Option<f64>,
    pub slab_breakdown: Vec<SlabGrowth>,
    /// Growth of the host's allocated TCP sockets (sockstat `alloc`) from the baseline to the
    /// peak; `None` when sockstat was unreadable.
    pub tcp_sockets_allocated_delta: Option<i64>,
    /// The sockets this run's connections account for: 2 per connection on loopback (both
    /// ends here), 1 in external mode.
    pub tcp_sockets_expected: u64,
    /// The kernel memory charged to the run's own memory cgroup, where the run (its server
    /// workers, and the clients on loopback) is in one below the root: other processes of the
    /// host do not move it. `None`: the root cgroup or no memory controller.
    pub cgroup: Option<CgroupKernel>,
    /// Where `bytes_per_connection` comes from: `memory_cgroup`, or `host_slab` (Slab of
    /// /proc/meminfo, host-wide: every process's sockets move it) when there is no cgroup.
    pub source: &'static str,
    /// Kernel memory per connection: the cgroup's when there is one, else host-wide Slab's.
    pub bytes_per_connection: Option<f64>,
}

/// The kernel part of the run's own memory cgroup's charge, from the baseline to the peak.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CgroupKernel {
    /// The cgroup's path in its hierarchy.
    pub path: String,
    /// `v1` or `v2`.
    pub version: &'static str,
    /// What was read: v1 `memory.kmem.usage_in_bytes`; v2 `slab` + `sock` of `memory.stat`.
    pub counter: &'static str,
    pub delta_bytes: i64,
    pub bytes_per_connection: Option<f64>,
}

impl KernelMemory {
    /// Where the kernel memory per connection comes from, in words.
    pub fn source_words(&self) -> String {
        match &self.cgroup {
            Some(c) => format!("memory cgroup {} ({} {})", c.path, c.version, c.counter),
            None => "host-wide Slab".into(),
        }
    }
}

/// The memory watchdog (`--memory-floor`) over the connect phase.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryWatchdog {
    pub floor_bytes: u64,
    /// Memory the run could take at the baseline (MemAvailable).
    pub usable_at_start_bytes: u64,
    pub stopped: bool,
    /// It opened no connection: not even the first step fitted above the floor.
    pub stopped_before_start: bool,
    pub usable_at_stop_bytes: Option<u64>,
    /// The bytes per connection it went by when it stopped.
    pub bytes_per_connection: Option<f64>,
    /// It stopped because the host stalled on memory (PSI full), before the floor.
    pub stopped_by_pressure: Option<super::reclaim::PressureStop>,
    /// Page reclaim over the connect phase: where it began and what it cost.
    pub reclaim: Option<super::reclaim::Record>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Teardown {
    pub seconds: f64,
    /// `tcp` (close(), the server closes on end of file) or `websocket` (the close handshake).
    pub close_mode: String,
    /// How the close was paced by the host's TCP memory (`None`: tcp_mem unreadable here).
    pub pacing: Option<Pacing>,
    pub closed: u64,
    pub netstat_deltas: BTreeMap<String, u64>,
    pub tcp_memory_pressures_delta: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub what: String,
    pub predicted: String,
    pub measured: String,
}

/// Connections accepted from IPv4 clients (IPv4-mapped included) and from IPv6 ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Families {
    pub ipv4: u64,
    pub ipv6: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    /// `loopback` (server and load generator here) or `external`.
    pub mode: String,
    pub target: u64,
    pub verified: bool,
    pub exit_code: u8,
    pub listen: String,
    /// Most websockets open at once (client side; server side in external mode).
    pub reached: u64,
    pub server_websockets_at_peak: u64,
    /// Connections the server accepted by client family (a dual-stack `[::]` serves both).
    pub accepted_by_family: Families,
    pub time_to_reach_seconds: Option<f64>,
    pub connect_seconds: f64,
    pub connections_per_second: f64,
    pub echoes_expected: Option<u64>,
    pub echoes: Option<u64>,
    pub dropped: u64,
    pub handshake_latency: Option<Latency>,
    pub echo_latency: Option<Latency>,
    pub server_processes: u64,
    pub client_processes: u64,
    pub sources: String,
    pub server_memory: UserMemory,
    pub client_memory: Option<UserMemory>,
    pub kernel_memory: KernelMemory,
    pub sockstat_before: Option<Sock>,
    pub sockstat_peak: Option<Sock>,
    pub sockstat_after: Option<Sock>,
    pub netstat_deltas: BTreeMap<String, u64>,
    pub conntrack_before: Conntrack,
    pub conntrack_peak: Conntrack,
    pub errors: BTreeMap<String, u64>,
    pub dead_server_workers: Vec<String>,
    /// Load generator processes that exited before they were told to.
    pub dead_client_processes: Vec<String>,
    pub memory_watchdog: MemoryWatchdog,
    pub prediction: Prediction,
    pub predicted_vs_measured: Vec<Comparison>,
    pub diagnosis: Option<Diagnosis>,
    pub teardown: Option<Teardown>,
    /// Wall-clock seconds of each phase, and of the whole command.
    pub phases: Phases,
    pub notes: Vec<String>,
    /// `--tls`: what TLS cost per connection (null for plain websockets).
    pub tls: Option<super::tls_cost::TlsCost>,
    /// What went wrong without stopping the run: handshakes that waited on a full accept queue.
    pub warnings: Vec<String>,
}

/// The error classes that occurred, each with its count (`EMFILE 1,024`), in the map's order.
pub(super) fn error_counts(errors: &BTreeMap<String, u64>) -> Vec<String> {
    errors
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k} {}", group(*v)))
        .collect()
}

/// Counter growths as list items (`EstabResets +0`), each kept whole on a line.
pub(super) fn counter_items(deltas: &BTreeMap<String, u64>) -> Vec<String> {
    deltas
        .iter()
        .map(|(k, v)| format!("{k} +{}", group(*v)))
        .collect()
}

/// Width of the label column of the verify and load reports: the widest label
/// (`predicted vs measured`) and a space, so a value starts in column 23 in both.
pub(super) const LABEL_WIDTH: usize = 22;

/// Bytes per connection: a decimal under 1,000 B, grouped above it.
fn per_connection(v: Option<f64>) -> String {
    match v {
        Some(x) if x.abs() >= 1000.0 => format!("{} B", group(x.round().max(0.0) as u64)),
        Some(x) => format!("{x:.1} B"),
        None => "n/a".into(),
    }
}

/// A latency row's value: each percentile whole on a line.
pub(super) fn lat(l: &Option<Latency>) -> String {
    match l {
        Some(l) => [
            format!("p50 {:.2} ms,", l.p50_us as f64 / 1000.0),
            format!("p99 {:.2} ms,", l.p99_us as f64 / 1000.0),
            format!("max {:.2} ms", l.max_us as f64 / 1000.0),
            format!("({} samples)", group(l.count)),
        ]
        .map(|p| text::keep(&p))
        .join(" "),
        None => "n/a".into(),
    }
}

fn sock(s: &Option<Sock>) -> String {
    match s {
        Some(s) => [
            format!("sockets {} |", group(s.sockets_used)),
            "TCP".to_string(),
            format!("inuse {}", group(s.tcp_inuse)),
            format!("orphan {}", group(s.tcp_orphan)),
            format!("tw {}", group(s.tcp_tw)),
            format!("alloc {}", group(s.tcp_alloc)),
            format!("mem {} pages", group(s.tcp_mem_pages)),
        ]
        .map(|p| text::keep(&p))
        .join(" "),
        None => "unreadable".into(),
    }
}

fn user(o: &mut Sheet, name: &str, u: &UserMemory) {
    o.row(
        name,
        format!(
            "{} processes: anon RSS {} before, {} at {} connections; growth {} per connection, marginal {} (from {} to {} connections); VmRSS {} at peak",
            u.processes,
            bytes(u.baseline.anon),
            bytes(u.peak.anon),
            group(u.peak_connections),
            per_connection(u.growth_bytes_per_connection),
            per_connection(u.marginal_bytes_per_connection),
            group(u.half_connections),
            group(u.peak_connections),
            bytes(u.peak.total),
        ),
    );
}

/// A diagnosis as every report says it: `LIMIT:` with what and where, then what was seen,
/// the projection and each fix, each wrapped under its own label.
pub(super) fn limit_lines(o: &mut Sheet, d: &Diagnosis) {
    let knob = d.knob.as_ref().map_or(String::new(), |k| format!(", {k}"));
    o.para(
        format!("LIMIT: {} ({} side{knob}): {}", d.limit, d.side, d.value),
        "",
        "  ",
    );
    o.para(format!("seen: {}", d.evidence), "  ", "    ");
    if let Some(p) = d.projected_connections {
        o.para(
            format!("projected: about {} connections", group(p)),
            "  ",
            "    ",
        );
    }
    for f in &d.fix {
        o.para(format!("fix: {f}"), "  ", "    ");
    }
}

impl Report {
    /// The report for people at `width` columns: the verdict, then label/value rows.
    pub fn render_table(&self, width: usize) -> String {
        let mut o = Sheet::new(LABEL_WIDTH);
        self.render_run(&mut o);
        self.render_memory(&mut o);
        self.render_host(&mut o);
        self.render_verdict_detail(&mut o);
        o.render(width)
    }

    /// The verdict and the run: mode, prediction, processes, counts, rate, latency, echoes.
    fn render_run(&self, o: &mut Sheet) {
        let verdict = if self.verified {
            format!(
                "VERIFIED: this host held {} websocket connections",
                group(self.target)
            )
        } else {
            format!(
                "NOT VERIFIED: reached {} of {} connections",
                group(self.reached),
                group(self.target)
            )
        };
        o.para(verdict, "", "  ");
        o.row("mode", &self.mode);
        o.row("listen", &self.listen);
        for (i, s) in self.prediction.summary.iter().enumerate() {
            o.row(if i == 0 { "predicted" } else { "" }, s);
        }
        o.row(
            "processes",
            format!(
                "{} server, {} client; sources: {}",
                self.server_processes, self.client_processes, self.sources
            ),
        );
        o.row(
            "reached",
            format!(
                "{} (server side {})",
                group(self.reached),
                group(self.server_websockets_at_peak)
            ),
        );
        o.row(
            "client families",
            format!(
                "IPv4 {}, IPv6 {} accepted by the server",
                group(self.accepted_by_family.ipv4),
                group(self.accepted_by_family.ipv6)
            ),
        );
        o.row(
            "time to reach",
            self.time_to_reach_seconds
                .map_or("not reached".into(), |t| format!("{t:.2} s")),
        );
        o.row(
            "rate",
            format!(
                "{} connections/s over {:.2} s",
                group(self.connections_per_second.round() as u64),
                self.connect_seconds
            ),
        );
        o.row("handshake latency", lat(&self.handshake_latency));
        match (self.echoes, self.echoes_expected) {
            (Some(e), Some(x)) => o.row("echoes", format!("{} of {}", group(e), group(x))),
            _ => o.row("echoes", "no echo round"),
        }
        o.row("echo latency", lat(&self.echo_latency));
        o.row("dropped", group(self.dropped));
    }

    /// User and kernel memory, with the slab caches that grew as a table under them.
    fn render_memory(&self, o: &mut Sheet) {
        user(o, "server user memory", &self.server_memory);
        if let Some(c) = &self.client_memory {
            user(o, "client user memory", c);
        }
        let k = &self.kernel_memory;
        if let Some(c) = &k.cgroup {
            o.row(
                "kernel memory",
                format!(
                    "+{} ({} per connection): {}",
                    bytes(c.delta_bytes.max(0) as u64),
                    per_connection(c.bytes_per_connection),
                    k.source_words()
                ),
            );
        }
        o.row(
            if k.cgroup.is_some() {
                ""
            } else {
                "kernel memory"
            },
            format!(
                "host-wide Slab +{} ({} per connection), MemFree −{} ({} per connection)",
                bytes(k.slab_delta_bytes.max(0) as u64),
                per_connection(k.slab_bytes_per_connection),
                bytes(k.memfree_delta_bytes.max(0) as u64),
                per_connection(k.memfree_bytes_per_connection),
            ),
        );
        let rows = k
            .slab_breakdown
            .iter()
            .map(|g| {
                vec![
                    g.cache.clone(),
                    format!("+{} objects", group(g.objects)),
                    bytes(g.bytes),
                    format!(
                        "{} B/conn",
                        group(g.bytes_per_connection.round().max(0.0) as u64)
                    ),
                ]
            })
            .collect();
        o.table("    ", rows, &[false, true, true, true]);
        if let Some(g) = k
            .slab_breakdown
            .iter()
            .find(|g| slab_note(&g.cache, g.bytes_per_connection).is_some())
        {
            o.para(
                format!(
                    "{}: {}",
                    g.cache,
                    slab_note(&g.cache, g.bytes_per_connection).unwrap_or_default()
                ),
                "    ",
                "      ",
            );
        }
        for line in self.tls.iter().flat_map(|t| t.lines()) {
            o.row("TLS", line);
        }
    }

    /// Sockstat, counters, conntrack, errors and dead processes.
    fn render_host(&self, o: &mut Sheet) {
        o.row("sockstat before", sock(&self.sockstat_before));
        o.row("sockstat at peak", sock(&self.sockstat_peak));
        o.row("sockstat after", sock(&self.sockstat_after));
        o.list(
            "counters (connect)",
            &counter_items(&self.netstat_deltas),
            "none read",
        );
        o.row(
            "conntrack",
            format!(
                "count {} at peak (max {}), drops {}, insert failures {}",
                self.conntrack_peak.count.map_or("n/a".into(), group),
                self.conntrack_peak.max.map_or("n/a".into(), group),
                self.conntrack_peak
                    .drop
                    .saturating_sub(self.conntrack_before.drop),
                self.conntrack_peak
                    .insert_failed
                    .saturating_sub(self.conntrack_before.insert_failed)
            ),
        );
        o.list("client errors", &error_counts(&self.errors), "none");
        for d in &self.dead_server_workers {
            o.row("dead server worker", d);
        }
        for d in &self.dead_client_processes {
            o.row("dead client process", d);
        }
    }

    /// The watchdog, the comparison with the prediction, the teardown, the limit and notes.
    fn render_verdict_detail(&self, o: &mut Sheet) {
        let w = &self.memory_watchdog;
        o.row(
            "memory watchdog",
            format!(
                "floor {}, usable {} at the start; {}",
                bytes(w.floor_bytes),
                bytes(w.usable_at_start_bytes),
                match (w.stopped, w.stopped_before_start) {
                    (false, _) => "did not stop the run".to_string(),
                    (true, true) => "stopped it before the first connection".to_string(),
                    (true, false) => format!(
                        "stopped it with {} usable",
                        w.usable_at_stop_bytes.map_or("n/a".into(), bytes)
                    ),
                }
            ),
        );
        for c in &self.predicted_vs_measured {
            o.row(
                "predicted vs measured",
                format!(
                    "{}: predicted {}, measured {}",
                    c.what, c.predicted, c.measured
                ),
            );
        }
        if let Some(t) = &self.teardown {
            let counters: Vec<String> = counter_items(&t.netstat_deltas)
                .iter()
                .map(|c| text::keep(c))
                .collect();
            o.row(
                "teardown",
                format!(
                    "{} closed ({} close) in {:.2} s; {}",
                    group(t.closed),
                    t.close_mode,
                    t.seconds,
                    counters.join(", ")
                ),
            );
            if let Some(p) = &t.pacing {
                o.row(
                    "",
                    format!(
                        "TCP memory peaked at {} pages (pressure at {}); paused {} times",
                        group(p.peak_pages),
                        group(p.pressure_pages),
                        p.pauses
                    ),
                );
            }
        }
        o.row("phases", self.phases.line());
        if let Some(d) = &self.diagnosis {
            limit_lines(o, d);
        }
        for w in &self.warnings {
            o.para(format!("WARNING: {w}"), "", "  ");
        }
        for n in &self.notes {
            o.para(format!("note: {n}"), "", "  ");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_inodes_that_grew_with_the_run_are_said_not_to_be_socket_cost() {
        assert_eq!(slab_note("proc_inode_cache", 1394.0), Some(PROC_INODE_NOTE));
        assert_eq!(slab_note("proc_inode_cache", 12.0), None);
        assert_eq!(slab_note("TCP", 5042.0), None);
    }
}
