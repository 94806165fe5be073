//! The `tune load` report (the JSON of docs/load-schema.json): assembled (pure) from the
//! phases' records, and its table rendering.

use std::collections::BTreeMap;

use embedded_server::loadgen::{CloseMode, LoadSnapshot};
use serde::Serialize;

use super::connect::Connected;
use super::cost::{self, CostFit, ServerSample};
use super::diagnose::{self, ClientSide, Diagnosis, Evidence};
use super::died::{self, Collapse};
use super::hold::Held;
use super::report::{error_counts, lat, limit_lines, Latency, LABEL_WIDTH};
use super::server_watch::ServerEnd;
use super::teardown::TornDown;
use super::tls_cost::{per_handshake_us, TlsCost};
use crate::outcome::Outcome;
use crate::text::Sheet;
use crate::units::{bytes, group};
use crate::values::{Input, Suggest};

pub const SCHEMA_VERSION: u32 = 1;

/// What `tune load --format json` prints.
#[derive(Debug, Serialize)]
pub struct LoadReport {
    pub schema_version: u32,
    pub url: String,
    pub target: u64,
    pub reached: u64,
    pub all_open: bool,
    pub time_to_reach_seconds: Option<f64>,
    pub connections_per_second: f64,
    pub processes: u64,
    pub sources: String,
    pub held_seconds: f64,
    /// Websockets open at the end of the hold, before the teardown.
    pub open: u64,
    /// Open websockets lost before the teardown: closed by the server or the network, or gone
    /// with a client process that died.
    pub dropped: u64,
    /// Client processes that exited before they were told to.
    pub died_processes: Vec<DiedProcess>,
    /// Closed by the server with 1001 (going away) before our teardown.
    pub closed_by_server: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub handshake_latency: Option<Latency>,
    pub echo_latency: Option<Latency>,
    pub errors: BTreeMap<String, u64>,
    pub netstat_deltas: BTreeMap<String, u64>,
    pub diagnosis: Option<Diagnosis>,
    /// Most held connections dropped at once (the server died or restarted).
    pub collapse: Option<Collapse>,
    /// The watched server (`--server-pid`, `--server-cgroup`): samples, cost, end.
    pub server: Option<ServerReport>,
    pub closed: u64,
    /// How they closed: `websocket` (the close handshake) or `tcp` (close() alone).
    pub close_mode: String,
    /// wss://: what TLS cost per connection: the client's handshake CPU; with a watched
    /// server, its cost per connection split user/kernel (null for ws://).
    pub tls: Option<TlsCost>,
    pub exit_code: u8,
    /// Not in the JSON: what the summary line needs.
    #[serde(skip)]
    peak_open: u64,
    #[serde(skip)]
    dropped_by_peer: u64,
    #[serde(skip)]
    interrupted: bool,
}

/// The watched server in the report.
#[derive(Debug, Serialize)]
pub struct ServerReport {
    pub pid: Option<u32>,
    pub cgroup: Option<String>,
    /// One per step of the ramp, the baseline (0 open) first.
    pub samples: Vec<ServerSample>,
    /// The cost per connection fitted over the samples (`None`: fewer than three samples).
    pub cost: Option<CostFit>,
    /// Connections the memory cgroup's limit allows at that cost.
    pub projected_connections_at_limit: Option<u64>,
    pub limit: Option<u64>,
    /// What the end of the run showed (the process, OOM kills, the charge).
    pub end: ServerEnd,
}

/// What the server watch recorded.
#[derive(Debug)]
pub struct ServerRecords {
    pub samples: Vec<ServerSample>,
    pub end: ServerEnd,
    pub limit: Option<u64>,
    /// Host sockets one connection adds (2: the clients are on this host too).
    pub sockets_per_connection_here: u64,
}

impl ServerRecords {
    fn report(self) -> ServerReport {
        let cost = cost::fit(&self.samples, self.sockets_per_connection_here);
        let projected = cost
            .as_ref()
            .zip(self.limit)
            .and_then(|(c, l)| cost::projected_at_limit(c, l));
        ServerReport {
            pid: self.end.pid,
            cgroup: self.end.cgroup.clone(),
            samples: self.samples,
            cost,
            projected_connections_at_limit: projected,
            limit: self.limit,
            end: self.end,
        }
    }
}

/// A client process that died during the run.
#[derive(Debug, Serialize)]
pub struct DiedProcess {
    pub index: usize,
    pub status: String,
    pub connections_lost: u64,
}

/// Every phase's record of one `tune load` run.
#[derive(Debug)]
pub struct LoadRecords {
    pub url: String,
    pub target: u64,
    pub processes: u64,
    pub sources: String,
    pub source_count: u64,
    pub connected: Connected,
    pub peak: LoadSnapshot,
    /// Growth of the watched netstat counters over the connect phase.
    pub netstat: BTreeMap<String, u64>,
    pub held: Held,
    pub after_hold: LoadSnapshot,
    pub torn_down: TornDown,
    pub port_range: Option<(u64, u64)>,
    /// The target is an IPv6 address (fixes then name IPv6 sources).
    pub ipv6: bool,
    /// How the clients closed at teardown.
    pub close_mode: CloseMode,
    /// The watched server, when `--server-pid` or `--server-cgroup` named one.
    pub server: Option<ServerRecords>,
    /// The run shares the initial network namespace: its netstat counters are host-wide.
    pub netns_shared: bool,
}

/// The diagnosis of a load run: a dead process explains the shortfall before anything its
/// death caused.
fn diagnosis(r: &LoadRecords, interrupted: bool) -> (Option<Diagnosis>, BTreeMap<String, u64>) {
    let ev = Evidence {
        target: r.target,
        established: r.peak.open.max(r.connected.most_open),
        client: Some(ClientSide {
            processes: r.processes,
            fd_cap: r.peak.fd_cap,
            errors: r
                .peak
                .errors
                .iter()
                .map(|(c, n)| (c.label().to_string(), *n))
                .collect(),
            sources: r.source_count,
            last_errno: r.peak.last_errno,
            in_flight: r.peak.in_flight,
        }),
        server: None,
        netstat: r.netstat.clone(),
        port_range: r.port_range,
        ipv6: r.ipv6,
        netns_shared: r.netns_shared,
        ..Evidence::default()
    };
    let died = &r.torn_down.clients_died;
    let collapse = r.connected.collapse.or(r.held.collapse);
    let d = if interrupted {
        None
    } else if let Some(c) = collapse {
        Some(died::server_died(&c, r.server.as_ref().map(|s| &s.end)))
    } else if !died.is_empty() {
        Some(diagnose::load_worker_died(died))
    } else if let Some(t) = r
        .server
        .as_ref()
        .filter(|_| ev.established < r.target)
        .and_then(|s| died::thrashing(ev.established, &s.end))
    {
        Some(t)
    } else {
        diagnose::diagnose(&ev)
    };
    (d, ev.client.map(|c| c.errors).unwrap_or_default())
}

/// The report of a load run.
pub fn assemble_load(mut r: LoadRecords) -> LoadReport {
    let interrupted = r.connected.interrupted || r.held.interrupted;
    let collapse = r.connected.collapse.or(r.held.collapse);
    let (diagnosis, errors) = diagnosis(&r, interrupted);
    let server = r.server.take().map(ServerRecords::report);
    let c = &r.connected;
    let died = &r.torn_down.clients_died;
    let dropped = r.after_hold.dropped + r.after_hold.lost;
    let all_open = c.reached_at.is_some() && dropped == 0 && died.is_empty() && !interrupted;
    let hist = r.torn_down.latency.as_ref();
    let tls = r.url.starts_with("wss://").then(|| TlsCost {
        handshake_cpu_us_server: None,
        handshake_cpu_us_client: per_handshake_us(
            r.peak.tls_handshakes,
            r.peak.tls_handshake_cpu_ns,
        ),
        idle_bytes_per_connection_user: server
            .as_ref()
            .and_then(|s| s.cost.as_ref())
            .map(|c| c.user_bytes),
        idle_bytes_per_connection_kernel: server
            .as_ref()
            .and_then(|s| s.cost.as_ref())
            .map(|c| c.kernel_bytes),
    });
    LoadReport {
        schema_version: SCHEMA_VERSION,
        target: r.target,
        // The most open at once: a server that gave up first may have closed them by now.
        reached: r.peak.open.max(c.most_open),
        all_open,
        time_to_reach_seconds: c.reached_at.map(|d| d.as_secs_f64()),
        connections_per_second: r.peak.open.max(c.most_open) as f64
            / c.connect_time.as_secs_f64().max(1e-6),
        processes: r.processes,
        held_seconds: r.held.seconds,
        open: r.after_hold.open,
        dropped,
        died_processes: died
            .iter()
            .map(|d| DiedProcess {
                index: d.index,
                status: d.status.clone(),
                connections_lost: d.lost,
            })
            .collect(),
        closed_by_server: r.after_hold.server_closed,
        // Counted once the clients closed: the echo of a message sent just before the hold
        // ended may still have been on its way at the hold's last look.
        messages_sent: r
            .torn_down
            .messages
            .map_or(r.after_hold.messages_sent, |m| m.0),
        messages_received: r
            .torn_down
            .messages
            .map_or(r.after_hold.messages_received, |m| m.1),
        handshake_latency: hist.and_then(|h| Latency::of(&h.handshake_us)),
        echo_latency: hist.and_then(|h| Latency::of(&h.echo_us)),
        errors,
        diagnosis,
        collapse,
        server,
        closed: r.torn_down.closed,
        close_mode: r.close_mode.as_str().to_string(),
        tls,
        exit_code: Outcome::of(all_open).exit_code(),
        peak_open: r.peak.open,
        dropped_by_peer: r.after_hold.dropped,
        interrupted,
        netstat_deltas: r.netstat,
        url: r.url,
        sources: r.sources,
    }
}

impl ServerReport {
    /// The server's rows of the table: its cost per connection and what its limit holds.
    pub fn rows(&self, o: &mut Sheet) {
        let who = match (self.pid, &self.cgroup) {
            (Some(p), Some(c)) => format!("{p} (memory cgroup {c})"),
            (Some(p), None) => p.to_string(),
            (None, Some(c)) => format!("in {c}"),
            (None, None) => "watched".into(),
        };
        match &self.cost {
            Some(c) => o.row("server", format!("{who}: {}", c.describe())),
            None => o.row("server", format!(
                "{who}: cost per connection not measured: a fit needs {} samples while the count rose (a baseline and {} or more), {} taken",
                cost::MIN_SAMPLES,
                Suggest::set(Input::Steps, 2),
                self.samples.len()
            )),
        }
        if let Some(c) = &self.cost {
            o.row(
                "in a profile",
                format!(
                    "bytes_per_connection = {} (tune check {} and apply size memory with it)",
                    c.bytes_per_connection.round().max(1.0) as u64,
                    Suggest::input(Input::Profile)
                ),
            );
        }
        if let (Some(n), Some(l)) = (self.projected_connections_at_limit, self.limit) {
            o.row(
                "at its memory limit",
                format!(
                    "{} holds ~{} connections at that cost (tune check {} {} this report's JSON)",
                    bytes(l),
                    group(n),
                    Suggest::set(Input::Pid, "PID"),
                    Suggest::input(Input::CostFrom)
                ),
            );
        }
    }
}

/// Why connections were dropped, in words: `worker 3 died`, `300 closed by the server or the
/// network`, or both with their counts.
fn drop_reasons(died: &[DiedProcess], by_peer: u64) -> String {
    let lost: u64 = died.iter().map(|d| d.connections_lost).sum();
    let died_words = match died {
        [] => String::new(),
        [one] => format!("worker {} died", one.index),
        more => format!(
            "workers {} died",
            more.iter()
                .map(|d| d.index.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let peer = format!("{} closed by the server or the network", group(by_peer));
    match (died.is_empty(), by_peer > 0) {
        (false, false) => died_words,
        (true, _) => peer,
        (false, true) => format!("{} when {died_words}, {peer}", group(lost)),
    }
}

impl LoadReport {
    /// The first line of the table: OK, or SHORT with what is open now against the target
    /// and what was lost on the way.
    pub fn summary_line(&self) -> String {
        let whom = format!(
            "to {} ({} processes, sources: {})",
            self.url, self.processes, self.sources
        );
        if self.all_open {
            return format!(
                "OK: {} of {} connections open {whom}",
                group(self.reached),
                group(self.target)
            );
        }
        let mut why = Vec::new();
        if self.peak_open < self.target {
            why.push(format!("at most {} opened", group(self.peak_open)));
        }
        if self.dropped > 0 || !self.died_processes.is_empty() {
            why.push(format!(
                "{} dropped: {}",
                group(self.dropped),
                drop_reasons(&self.died_processes, self.dropped_by_peer)
            ));
        }
        format!(
            "SHORT: {} open of {}{} {whom}",
            group(self.open),
            group(self.target),
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join("; "))
            }
        )
    }

    /// The table for people at `width` columns: the summary, then label/value rows in the
    /// verify report's column.
    pub fn render_table(&self, width: usize) -> String {
        let mut o = Sheet::new(LABEL_WIDTH);
        o.para(self.summary_line(), "", "  ");
        o.row(
            "rate",
            format!(
                "{} connections/s",
                group(self.connections_per_second.round() as u64)
            ),
        );
        o.row("held", format!("{:.1} s", self.held_seconds));
        o.row("dropped", group(self.dropped));
        o.row(
            "closed by the server",
            format!("{} (going away)", group(self.closed_by_server)),
        );
        o.row(
            "closed",
            format!("{} ({} close)", group(self.closed), self.close_mode),
        );
        if self.handshake_latency.is_some() {
            o.row("handshake latency", lat(&self.handshake_latency));
        }
        if self.echo_latency.is_some() {
            o.row("echo latency", lat(&self.echo_latency));
        }
        if self.messages_sent > 0 {
            o.row(
                "messages",
                format!(
                    "{} sent, {} echoed",
                    group(self.messages_sent),
                    group(self.messages_received)
                ),
            );
        }
        let errs = error_counts(&self.errors);
        if !errs.is_empty() {
            o.list("client errors", &errs, "none");
        }
        for line in self.tls.iter().flat_map(|t| t.lines()) {
            o.row("TLS", line);
        }
        if let Some(s) = &self.server {
            s.rows(&mut o);
        }
        if let Some(d) = &self.diagnosis {
            limit_lines(&mut o, d);
        }
        if self.interrupted {
            o.para("interrupted by a signal", "", "  ");
        }
        o.render(width)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use embedded_server::loadgen::Died;

    use super::*;

    fn records(open: u64, died: Vec<Died>) -> LoadRecords {
        let snap = LoadSnapshot {
            open,
            ..Default::default()
        };
        LoadRecords {
            url: "ws://127.0.0.1:8000/".into(),
            target: 100,
            processes: 2,
            sources: "127.0.0.2".into(),
            source_count: 1,
            ipv6: false,
            close_mode: CloseMode::Websocket,
            connected: Connected {
                reached_at: Some(Duration::from_millis(500)),
                connect_time: Duration::from_millis(500),
                ..Default::default()
            },
            peak: LoadSnapshot {
                open: 100,
                ..Default::default()
            },
            netstat: BTreeMap::new(),
            held: Held::default(),
            after_hold: snap,
            torn_down: TornDown {
                clients_died: died,
                ..Default::default()
            },
            port_range: None,
            server: None,
            netns_shared: false,
        }
    }

    #[test]
    fn all_open_is_ok() {
        let r = assemble_load(records(100, vec![]));
        assert!(r.all_open);
        assert_eq!(r.exit_code, 0);
        assert_eq!(r.connections_per_second, 200.0);
        assert!(
            r.summary_line().starts_with("OK: 100 of 100"),
            "{}",
            r.summary_line()
        );
    }

    #[test]
    fn a_dead_process_is_the_limit_and_the_summary_says_what_is_open() {
        let died = vec![Died {
            index: 1,
            status: "signal: 9 (SIGKILL)".into(),
            lost: 50,
        }];
        let mut rec = records(50, died);
        rec.after_hold.lost = 50;
        let r = assemble_load(rec);
        assert!(!r.all_open);
        assert_eq!(r.exit_code, 1);
        assert_eq!(r.diagnosis.as_ref().unwrap().limit, "load_worker_died");
        assert!(
            r.summary_line()
                .contains("SHORT: 50 open of 100 (50 dropped: worker 1 died)"),
            "{}",
            r.summary_line()
        );
    }

    #[test]
    fn messages_are_counted_once_the_clients_closed() {
        // serve_tls under a second copy of the suite: 30 sent, the last echo still on its way
        // at the hold's last look (29), and counted by the close (the histogram had 30).
        let mut rec = records(100, vec![]);
        rec.after_hold.messages_sent = 30;
        rec.after_hold.messages_received = 29;
        rec.torn_down.messages = Some((30, 30));
        let r = assemble_load(rec);
        assert_eq!((r.messages_sent, r.messages_received), (30, 30));
        // Without a close of the clients here, the hold's look is all there is.
        let mut rec = records(100, vec![]);
        rec.after_hold.messages_sent = 30;
        rec.after_hold.messages_received = 29;
        let r = assemble_load(rec);
        assert_eq!((r.messages_sent, r.messages_received), (30, 29));
    }
}
