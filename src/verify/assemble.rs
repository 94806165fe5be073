//! Pure: the verify report from the phases' records. Decides whether the run verified, names
//! the limit ([`diagnose`]) and works out the per-connection figures and the comparison with
//! the prediction.

use std::collections::BTreeMap;

use embedded_server::loadgen::{Died, LoadSnapshot};

use super::tls_cost::{per_handshake_us, TlsCost};

use super::clock::Phases;
use super::connect::Connected;
use super::diagnose::{self, ClientSide, Diagnosis, Evidence};
use super::hold::{Echoed, Held};
use super::measure::{self, Mem, Rss};
use super::other_activity::{self, Counter};
use super::plan::VerifyPlan;
use super::prepare::Prepared;
use super::report::{
    self, CgroupKernel, Comparison, KernelMemory, Latency, MemoryWatchdog, Prediction, Report,
    Teardown, UserMemory,
};
use super::sample::{AfterHold, Peak};
use super::teardown::TornDown;
use crate::kernel::cgroup::{Cgroups, Version};
use crate::kernel::slabinfo::SlabCache;
use crate::outcome::Outcome;
use crate::units;
use crate::units::{bytes, group};

/// Knob values the diagnosis quotes.
#[derive(Debug, Clone, Copy, Default)]
pub struct KnobFacts {
    pub file_max: Option<u64>,
    pub somaxconn: Option<u64>,
    pub tcp_mem: Option<[u64; 3]>,
    pub syncookies: Option<u64>,
}

/// Every phase's record of one run.
#[derive(Debug)]
pub struct Records {
    pub prediction: Prediction,
    pub prepared: Prepared,
    pub connected: Connected,
    pub peak: Peak,
    pub held: Held,
    pub echoed: Echoed,
    pub after_hold: AfterHold,
    pub torn_down: TornDown,
    pub knobs: KnobFacts,
    /// net.ipv4.ip_local_port_range at the end of the connect phase.
    pub port_range: Option<(u64, u64)>,
    /// Wall-clock seconds of each phase.
    pub phases: Phases,
}

/// The run's verdict and what it rests on.
struct RunVerdict {
    reached: u64,
    reached_all: bool,
    interrupted: bool,
    dropped: u64,
    verified: bool,
    dead_server: Vec<String>,
}

fn verdict(plan: &VerifyPlan, r: &Records) -> RunVerdict {
    let (c, n) = (&r.connected, plan.target);
    // The most open at once: in external mode, clients that gave up may have closed theirs
    // by the time the peak is sampled.
    let reached = r.peak.reached.max(r.connected.most_open);
    let reached_all =
        reached >= n && c.dead_server.is_empty() && c.dead_clients.is_empty() && !c.interrupted;
    let interrupted = c.interrupted || r.held.interrupted || r.echoed.interrupted;
    let dropped = match &r.after_hold.load {
        Some(l) => l.dropped + l.lost,
        None => reached.saturating_sub(r.after_hold.server_open),
    };
    let mut dead_server = c.dead_server.clone();
    dead_server.extend(r.held.deaths.server.iter().cloned());
    let echoes_ok = match (r.prepared.client_processes > 0, r.echoed.echoes) {
        (true, Some(e)) => e >= n,
        (true, None) => false,
        (false, _) => true,
    };
    let verified = reached_all
        && !interrupted
        && echoes_ok
        && dropped == 0
        && dead_server.is_empty()
        && r.torn_down.clients_died.is_empty();
    RunVerdict {
        reached,
        reached_all,
        interrupted,
        dropped,
        verified,
        dead_server,
    }
}

fn error_map(s: &LoadSnapshot) -> BTreeMap<String, u64> {
    s.errors
        .iter()
        .map(|(c, n)| (c.label().to_string(), *n))
        .collect()
}

/// What the diagnosis looks at.
fn evidence(plan: &VerifyPlan, r: &Records, reached: u64) -> Evidence {
    let (before, peak) = (&r.prepared.host, &r.peak.host);
    let last = r.after_hold.load.as_ref().or(r.peak.load.as_ref());
    Evidence {
        target: plan.target,
        established: reached,
        client: last.map(|l| ClientSide {
            processes: r.prepared.client_processes,
            fd_cap: l.fd_cap,
            errors: error_map(l),
            sources: r.prepared.source_count,
            last_errno: l.last_errno,
            in_flight: l.in_flight,
        }),
        server: Some(r.peak.server_side.clone()),
        netstat: measure::deltas(&before.net, &peak.net),
        conntrack_count: peak.ct.count,
        conntrack_max: peak.ct.max,
        conntrack_drops: (peak.ct.drop + peak.ct.insert_failed)
            .saturating_sub(before.ct.drop + before.ct.insert_failed),
        port_range: r.port_range,
        ipv6: r.prepared.target_ipv6,
        file_max: r.knobs.file_max,
        somaxconn: r.knobs.somaxconn,
        tcp_mem: r.knobs.tcp_mem,
        memory: r.connected.memory_stop,
        cgroups_before: before.cgroups.clone(),
        cgroups_peak: peak.cgroups.clone(),
        netns_shared: plan.netns_shared,
    }
}

/// The limit that stopped the run: a dead process first, then the diagnosis of the evidence,
/// then what kept an open run from verifying.
fn diagnosis(
    ev: &Evidence,
    v: &RunVerdict,
    echoes: Option<u64>,
    died: &[Died],
    open_at_stop: u64,
) -> Option<Diagnosis> {
    let mut d = if v.interrupted {
        None
    } else {
        diagnose::diagnose(ev)
    };
    // A process the kernel killed in the run's cgroup is named by the cgroup's counters, not
    // as a death of unknown cause.
    let container = diagnose::cgroup_counters(ev);
    if !died.is_empty() && !v.interrupted {
        d = Some(diagnose::load_worker_died(died));
    }
    // External mode (no load generator here): nothing failed on the server side, so the
    // clients on the other hosts stopped; their reports say why.
    if ev.client.is_none() && !v.interrupted && d.as_ref().is_some_and(|x| x.limit == "unknown") {
        if let Some(x) = ev
            .server
            .as_ref()
            .and_then(|s| diagnose::external_clients_stopped(ev.target, v.reached, open_at_stop, s))
        {
            d = Some(x);
        }
    }
    if !v.dead_server.is_empty() {
        d = Some(diagnose::server_worker_died(&v.dead_server));
    }
    if container.is_some() && !v.interrupted {
        d = container;
    }
    if v.reached_all && !v.verified && !v.interrupted && d.is_none() {
        d = Some(diagnose::not_answered(
            v.dropped,
            echoes.unwrap_or(0),
            ev.target,
        ));
    }
    d
}

fn per(delta: i64, n: u64) -> Option<f64> {
    (n > 0).then(|| delta as f64 / n as f64)
}

fn user_memory(base: Rss, half: Option<(Rss, u64)>, peak: Rss, peak_n: u64) -> UserMemory {
    let growth = per(peak.anon as i64 - base.anon as i64, peak_n);
    let marginal = half.and_then(|(h, hn)| {
        (peak_n > hn).then(|| (peak.anon as f64 - h.anon as f64) / (peak_n - hn) as f64)
    });
    UserMemory {
        processes: peak.processes.max(base.processes),
        baseline: base,
        half: half.map(|h| h.0),
        half_connections: half.map_or(0, |h| h.1),
        peak,
        peak_connections: peak_n,
        growth_bytes_per_connection: growth,
        marginal_bytes_per_connection: marginal,
    }
}

fn kernel_memory(
    base: &Mem,
    peak: &Mem,
    slab_before: &Option<Vec<SlabCache>>,
    slab_peak: &Option<Vec<SlabCache>>,
    n: u64,
) -> KernelMemory {
    let slab_delta = peak.slab as i64 - base.slab as i64;
    let free_delta = base.free as i64 - peak.free as i64;
    KernelMemory {
        slab_delta_bytes: slab_delta,
        memfree_delta_bytes: free_delta,
        slab_bytes_per_connection: per(slab_delta, n),
        memfree_bytes_per_connection: per(free_delta, n),
        slab_breakdown: match (slab_before, slab_peak) {
            (Some(a), Some(b)) => measure::slab_growth(a, b, n),
            _ => Vec::new(),
        },
        tcp_sockets_allocated_delta: None,
        tcp_sockets_expected: 0,
        cgroup: None,
        source: "host_slab",
        bytes_per_connection: per(slab_delta, n),
    }
}

/// The kernel part of the run's own memory cgroup's charge from the baseline to the peak:
/// `None` in the root cgroup (every process of the host is charged there), without a memory
/// controller, or when either sample lacks the kernel counter.
fn cgroup_kernel(before: Option<&Cgroups>, peak: Option<&Cgroups>, n: u64) -> Option<CgroupKernel> {
    let (a, b) = (before?.memory.as_ref()?, peak?.memory.as_ref()?);
    let (la, lb) = (a.leaf(), b.leaf());
    if la.path != lb.path || lb.path == "/" {
        return None;
    }
    let delta = lb.kernel_charged(b.version)? as i64 - la.kernel_charged(a.version)? as i64;
    Some(CgroupKernel {
        path: lb.path.clone(),
        version: b.version.as_str(),
        counter: match b.version {
            Version::V1 => "memory.kmem.usage_in_bytes",
            Version::V2 => "memory.stat slab + sock",
        },
        delta_bytes: delta,
        bytes_per_connection: per(delta, n),
    })
}

/// Kernel memory from the baseline to the peak, and a note when other processes' sockets
/// moved the host-wide figures meanwhile.
fn kernel(plan: &VerifyPlan, r: &Records, reached: u64) -> (KernelMemory, Option<String>) {
    let (b, p) = (&r.prepared.host, &r.peak.host);
    let mut k = kernel_memory(&b.mem, &p.mem, &b.slab, &p.slab, reached);
    k.cgroup = cgroup_kernel(b.cgroups.as_ref(), p.cgroups.as_ref(), reached);
    if let Some(c) = &k.cgroup {
        k.source = "memory_cgroup";
        k.bytes_per_connection = c.bytes_per_connection;
    }
    // Slab and MemFree are host-wide: other processes opening or closing sockets meanwhile
    // move them too. The sockets in use of the run's own network namespace tell how much
    // when it has one; in the shared one, only the host's allocated TCP sockets.
    let sockets_per_connection = if plan.external { 1 } else { 2 };
    k.tcp_sockets_expected = reached * sockets_per_connection;
    k.tcp_sockets_allocated_delta = match (&b.sock, &p.sock) {
        (Some(a), Some(b)) => Some(Counter::HostAllocated.delta(a, b)),
        _ => None,
    };
    let counter = Counter::for_run(plan.netns_shared);
    let moved = match (&b.sock, &p.sock) {
        (Some(a), Some(b)) => Some(counter.delta(a, b)),
        _ => None,
    };
    let note = other_activity::note(counter, moved, reached, sockets_per_connection);
    (k, note)
}

/// The predicted figures beside the measured ones.
fn comparisons(
    n: u64,
    pred: &Prediction,
    v: &RunVerdict,
    kernel: &KernelMemory,
    ev: &Evidence,
) -> Vec<Comparison> {
    let mut cmp = vec![Comparison {
        what: "connections the host holds".into(),
        predicted: pred.per_host.map_or("unknown".into(), |x| {
            format!("~{} (bound by {})", units::approx(x), pred.binding_limit)
        }),
        measured: if v.verified {
            format!("{} held (not the limit)", group(n))
        } else {
            format!("{} reached", group(v.reached))
        },
    }];
    cmp.push(Comparison {
        what: "kernel memory per connection".into(),
        predicted: bytes(pred.kernel_bytes_per_connection),
        measured: kernel.bytes_per_connection.map_or("n/a".into(), |x| {
            let proc_inodes = kernel
                .slab_breakdown
                .iter()
                .find(|g| g.cache == report::PROC_INODE_CACHE)
                .map_or(0.0, |g| g.bytes_per_connection);
            let from = kernel.source_words();
            if proc_inodes >= 100.0 {
                format!(
                    "{} ({from}), of which /proc inodes {} (host-wide Slab: see proc_inode_cache above)",
                    bytes(x.max(0.0) as u64),
                    bytes(proc_inodes as u64)
                )
            } else {
                format!("{} ({from})", bytes(x.max(0.0) as u64))
            }
        }),
    });
    // The server workers' own cap (fd cap less the accept-queue reserve), not the host's
    // per-process figure: that is what a worker can really hold.
    if let (Some(pw), Some(s)) = (pred.per_server_worker, &ev.server) {
        cmp.push(Comparison {
            what: "connections per tune serve worker".into(),
            predicted: format!(
                "{} (RLIMIT_NOFILE less the accept-queue reserve)",
                group(pw)
            ),
            measured: format!(
                "{} server workers held at most {}",
                s.workers.len(),
                group(s.workers.iter().map(|w| w.connections).max().unwrap_or(0))
            ),
        });
    }
    cmp
}

/// The notes of a run, in the order they are printed.
fn notes(r: &Records, v: &RunVerdict, activity: Option<String>) -> Vec<String> {
    let mut notes = r.echoed.notes.clone();
    if v.interrupted {
        notes.push("interrupted by a signal before the run finished".into());
    }
    if let Some(h) = &r.torn_down.latency {
        if h.missing_reports > 0 {
            notes.push(format!(
                "{} client processes did not report latency",
                h.missing_reports
            ));
        }
    }
    notes.extend(r.connected.pressure_stop.map(|p| p.note()));
    notes.extend(r.connected.reclaim.map(|c| c.note()));
    notes.extend(tls_ramp(r, v));
    notes.extend(activity);
    notes
}

/// `--tls`: whether the handshakes' CPU (both ends on this host's cores), not a limit, set the
/// ramp's pace.
fn tls_ramp(r: &Records, v: &RunVerdict) -> Option<String> {
    let s = &r.peak.server;
    let server_us = per_handshake_us(s.tls_handshakes, s.tls_handshake_cpu_ns)?;
    let client_us = r
        .peak
        .load
        .as_ref()
        .and_then(|l| per_handshake_us(l.tls_handshakes, l.tls_handshake_cpu_ns))
        .unwrap_or(0.0);
    let secs = r.connected.connect_time.as_secs_f64();
    super::diagnose::handshake_cpu_bound(&super::diagnose::HandshakeRamp {
        server_us,
        client_us,
        cores: r.prepared.cores,
        rate: v.reached as f64 / secs.max(1e-6),
    })
}

fn watchdog(r: &Records) -> MemoryWatchdog {
    let stop = r.connected.memory_stop;
    MemoryWatchdog {
        floor_bytes: r.prepared.floor,
        usable_at_start_bytes: super::connect::headroom(
            &r.prepared.host.mem,
            &r.prepared.host.mem,
            r.prepared.floor,
        ),
        stopped: stop.is_some(),
        stopped_before_start: stop.is_some_and(|m| m.before_start),
        usable_at_stop_bytes: stop.map(|m| m.usable_at_stop),
        bytes_per_connection: stop.map(|m| m.bytes_per_connection),
        stopped_by_pressure: r.connected.pressure_stop,
        reclaim: r.connected.reclaim,
    }
}

/// Handshakes that waited on a full listen queue, even when every connection got through: the
/// listen counters and SYN retransmissions of the connect phase, and connects that timed out.
fn warnings(plan: &VerifyPlan, r: &Records, ev: &Evidence) -> Vec<String> {
    let nc = |name: &str| ev.netstat.get(name).copied().unwrap_or(0);
    let timeouts = ev.client.as_ref().map_or(0, |c| {
        c.errors.get("connect_timeout").copied().unwrap_or(0)
            + c.errors.get("etimedout").copied().unwrap_or(0)
    });
    let waits = crate::backlog::Waits {
        listen_overflows: nc("ListenOverflows"),
        listen_drops: nc("ListenDrops"),
        req_q_full_drops: nc("TCPReqQFullDrop"),
        syn_retransmits: nc("TCPSynRetrans"),
        connect_timeouts: timeouts,
    };
    let backlog = plan.server.limits.backlog.max(0) as u64;
    let queue = crate::backlog::queue_in_effect(backlog, r.knobs.somaxconn);
    crate::backlog::warning(&waits, queue, r.knobs.somaxconn, r.knobs.syncookies)
        .into_iter()
        .collect()
}

/// The report of a verify run.
pub fn assemble(plan: &VerifyPlan, r: Records) -> Report {
    let n = plan.target;
    let v = verdict(plan, &r);
    let ev = evidence(plan, &r, v.reached);
    let diagnosis = diagnosis(
        &ev,
        &v,
        r.echoed.echoes,
        &r.torn_down.clients_died,
        r.peak.reached,
    );
    let (kernel, activity) = kernel(plan, &r, v.reached);
    let cmp = comparisons(n, &r.prediction, &v, &kernel, &ev);
    let c = &r.connected;
    let hist = r.torn_down.latency.as_ref();
    let td = &r.torn_down;
    let server_memory = user_memory(
        r.prepared.rss.server,
        c.server_half,
        r.peak.rss.server,
        r.peak.server.connections,
    );
    let tls = plan
        .server
        .tls
        .as_ref()
        .map(|_| tls_cost(&r, &server_memory, &kernel));
    Report {
        schema_version: report::SCHEMA_VERSION,
        mode: if plan.external {
            "external"
        } else {
            "loopback"
        }
        .into(),
        target: n,
        verified: v.verified,
        exit_code: Outcome::of(v.verified).exit_code(),
        listen: r.prepared.listen.to_string(),
        reached: v.reached,
        server_websockets_at_peak: r.peak.server.websockets_open,
        accepted_by_family: super::report::Families {
            ipv4: r.peak.server.accepted_ipv4,
            ipv6: r.peak.server.accepted_ipv6,
        },
        time_to_reach_seconds: c.reached_at.map(|d| d.as_secs_f64()),
        connect_seconds: c.connect_time.as_secs_f64(),
        connections_per_second: v.reached as f64 / c.connect_time.as_secs_f64().max(1e-6),
        echoes_expected: (r.prepared.client_processes > 0 && v.reached_all).then_some(n),
        echoes: r.echoed.echoes,
        dropped: v.dropped,
        handshake_latency: hist.and_then(|h| Latency::of(&h.handshake_us)),
        echo_latency: hist.and_then(|h| Latency::of(&h.echo_us)),
        server_processes: td.server_workers,
        client_processes: r.prepared.client_processes,
        sources: r.prepared.sources.clone(),
        server_memory,
        client_memory: match (r.prepared.rss.clients, r.peak.rss.clients) {
            (Some(b), Some(p)) => Some(user_memory(b, c.clients_half, p, v.reached)),
            _ => None,
        },
        kernel_memory: kernel,
        sockstat_before: r.prepared.host.sock,
        sockstat_peak: r.peak.host.sock,
        sockstat_after: td.sock_after,
        netstat_deltas: ev.netstat.clone(),
        conntrack_before: r.prepared.host.ct.clone(),
        conntrack_peak: r.peak.host.ct.clone(),
        errors: r
            .after_hold
            .load
            .as_ref()
            .or(r.peak.load.as_ref())
            .map(error_map)
            .unwrap_or_default(),
        dead_server_workers: v.dead_server.clone(),
        memory_watchdog: watchdog(&r),
        dead_client_processes: td
            .clients_died
            .iter()
            .map(|d| {
                format!(
                    "load worker {} {}; {} connections lost",
                    d.index,
                    d.status,
                    group(d.lost)
                )
            })
            .collect(),
        predicted_vs_measured: cmp,
        diagnosis,
        teardown: Some(Teardown {
            seconds: td.seconds,
            closed: td.closed,
            tcp_memory_pressures_delta: td.netstat_deltas.get("TCPMemoryPressures").copied(),
            netstat_deltas: td.netstat_deltas.clone(),
            close_mode: plan.load.close_mode.as_str().to_string(),
            pacing: td.pacing.clone(),
        }),
        phases: r.phases.clone(),
        notes: notes(&r, &v, activity),
        tls,
        warnings: warnings(plan, &r, &ev),
        prediction: r.prediction,
    }
}

/// `--tls`: handshake CPU from both sides' counters at the peak; an idle TLS connection's
/// memory is the server's growth per connection and the kernel's slab per connection, as the
/// plain figures are measured.
fn tls_cost(r: &Records, server: &UserMemory, kernel: &KernelMemory) -> TlsCost {
    let s = &r.peak.server;
    let client = r.peak.load.as_ref();
    TlsCost {
        handshake_cpu_us_server: per_handshake_us(s.tls_handshakes, s.tls_handshake_cpu_ns),
        handshake_cpu_us_client: client
            .and_then(|l| per_handshake_us(l.tls_handshakes, l.tls_handshake_cpu_ns)),
        idle_bytes_per_connection_user: server.growth_bytes_per_connection,
        idle_bytes_per_connection_kernel: kernel.bytes_per_connection,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use embedded_server::server::{Limits, Mode, ServerConfig, Workers};

    use super::*;
    use crate::values::Processes;
    use crate::verify::plan::LoadOptions;
    use crate::verify::sample::{HostSample, ProcessRss};

    const GIB: u64 = 1 << 30;

    fn plan(n: u64) -> VerifyPlan {
        VerifyPlan {
            target: n,
            external: false,
            server: ServerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                workers: Workers::Fixed(1),
                mode: Mode::Echo,
                limits: Limits::default(),
                tls: None,
            },
            load: LoadOptions {
                processes: Processes::Auto,
                concurrency: 100,
                rate: None,
                sources: None,
                connect_timeout: Duration::from_secs(10),
                close_rate: None,
                close_mode: embedded_server::loadgen::CloseMode::Tcp,
                message_interval: None,
                stall: Duration::from_secs(5),
                hold: Duration::from_secs(5),
                tls: Default::default(),
            },
            memory_floor: None,
            storm: None,
            netns_shared: false,
        }
    }

    fn host(slab: u64) -> HostSample {
        HostSample {
            mem: Mem {
                total: 24 * GIB,
                free: 20 * GIB - slab,
                available: 20 * GIB - slab,
                slab,
                slab_reclaimable: 0,
                page_cache: 0,
                cgroup_usable: None,
            },
            slab: None,
            sock: None,
            net: Default::default(),
            ct: Default::default(),
            cgroups: None,
        }
    }

    /// The records of a loopback run that opened `open` of `n` and echoed `echoes`.
    fn records(n: u64, open: u64, echoes: Option<u64>) -> Records {
        let load = LoadSnapshot {
            open,
            ..Default::default()
        };
        Records {
            prediction: Prediction {
                per_process: Some(19_000),
                per_host: Some(2_000_000),
                binding_limit: "memory".into(),
                meets_target: true,
                processes_needed: Some(1),
                source_addresses_needed: None,
                kernel_bytes_per_connection: 4096,
                per_server_worker: None,
                summary: vec![],
            },
            prepared: Prepared {
                cores: 2,
                listen: "127.0.0.1:8000".parse().unwrap(),
                floor: GIB,
                host: host(100 << 20),
                rss: ProcessRss {
                    server: Rss::default(),
                    clients: Some(Rss::default()),
                },
                sources: "127.0.0.2".into(),
                source_count: 1,
                client_processes: 2,
                target_ipv6: false,
            },
            connected: Connected {
                reached_at: (open >= n).then_some(Duration::from_secs(1)),
                connect_time: Duration::from_secs(1),
                ..Default::default()
            },
            peak: Peak {
                host: host((100 << 20) + open * 4096),
                rss: ProcessRss {
                    server: Rss::default(),
                    clients: Some(Rss::default()),
                },
                server: Default::default(),
                load: Some(load.clone()),
                server_side: Default::default(),
                reached: open,
            },
            held: Held::default(),
            echoed: Echoed {
                echoes,
                ..Default::default()
            },
            after_hold: AfterHold {
                load: Some(load),
                server_open: open,
            },
            torn_down: TornDown::default(),
            knobs: KnobFacts::default(),
            port_range: Some((32768, 60999)),
            phases: Phases::default(),
        }
    }

    #[test]
    fn all_open_and_echoed_is_verified_with_the_measured_cost() {
        let r = assemble(&plan(1000), records(1000, 1000, Some(1000)));
        assert!(r.verified);
        assert_eq!(r.exit_code, 0);
        assert_eq!(r.diagnosis, None);
        assert_eq!(r.echoes_expected, Some(1000));
        assert_eq!(r.kernel_memory.slab_bytes_per_connection, Some(4096.0));
        assert_eq!(r.kernel_memory.tcp_sockets_expected, 2000);
        assert_eq!(r.connections_per_second, 1000.0);
    }

    #[test]
    fn a_tls_ramp_at_the_handshake_cpu_ceiling_says_so_in_the_notes() {
        // 1,000 in 1 s on 2 cores at 1,200 µs a handshake (both ends): ~1,700/s allowed.
        let tls = |cpu_ns: u64| {
            let mut rec = records(1000, 1000, Some(1000));
            rec.peak.server.tls_handshakes = 1000;
            rec.peak.server.tls_handshake_cpu_ns = 1000 * cpu_ns;
            rec
        };
        let r = assemble(&plan(1000), tls(1_200_000));
        let note = r.notes.iter().find(|n| n.contains("CPU-bound")).unwrap();
        assert!(
            note.contains("~1,700/s") && note.contains("1,000/s"),
            "{note}"
        );
        // At a tenth of the cost the ramp was not held by the handshakes.
        let r = assemble(&plan(1000), tls(120_000));
        assert!(
            !r.notes.iter().any(|n| n.contains("CPU-bound")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn missing_echoes_are_not_verified_and_say_so() {
        let r = assemble(&plan(1000), records(1000, 1000, Some(990)));
        assert!(!r.verified);
        assert_eq!(r.exit_code, 1);
        let d = r.diagnosis.unwrap();
        assert_eq!(d.limit, "echo");
        assert!(d.value.contains("990 echoes of 1,000"), "{}", d.value);
    }

    #[test]
    fn a_server_worker_that_died_in_the_hold_is_the_limit() {
        let mut rec = records(1000, 1000, Some(1000));
        rec.held.deaths.server = vec!["worker 0 (pid 7) signal: 9; 500 connections lost".into()];
        let r = assemble(&plan(1000), rec);
        assert!(!r.verified);
        assert_eq!(r.dead_server_workers.len(), 1);
        assert_eq!(r.diagnosis.unwrap().limit, "server_worker_died");
    }

    #[test]
    fn an_interrupted_run_has_no_diagnosis_and_a_note() {
        let mut rec = records(1000, 400, None);
        rec.connected.interrupted = true;
        let r = assemble(&plan(1000), rec);
        assert!(!r.verified);
        assert_eq!(r.diagnosis, None);
        assert!(r.notes.iter().any(|n| n.contains("interrupted")));
        assert_eq!(r.echoes_expected, None);
    }

    /// tune's own memory cgroup as `container::own_cgroups` reads it: the leaf at `path`, its
    /// kernel counters `kernel` and `sock`.
    fn own(version: Version, path: &str, kernel: u64, sock: u64) -> Cgroups {
        use crate::kernel::cgroup::{MemoryCgroup, MemoryLevel};
        Cgroups {
            memory: Some(MemoryCgroup {
                version,
                levels: vec![MemoryLevel {
                    path: path.into(),
                    limit: None,
                    high: None,
                    usage: Some(kernel + sock),
                    kernel: Some(kernel),
                    sock: Some(sock),
                    oom_kills: Some(0),
                    limit_hits: Some(0),
                }],
            }),
            pids: Vec::new(),
        }
    }

    #[test]
    fn kernel_memory_comes_from_the_runs_own_cgroup_and_host_wide_slab_is_the_fallback() {
        // This machine: tune runs in a child v1 memory cgroup; 20,000 loopback connections
        // grew its kmem by 96 MB while other processes moved the host's Slab by 400 MB.
        let path = "/process_api/1679da8a660f584d0458ff815a29567c";
        let c = cgroup_kernel(
            Some(&own(Version::V1, path, 12_000_000, 0)),
            Some(&own(Version::V1, path, 108_000_000, 0)),
            20_000,
        )
        .unwrap();
        assert_eq!(
            (c.path.as_str(), c.version, c.counter, c.delta_bytes),
            (path, "v1", "memory.kmem.usage_in_bytes", 96_000_000)
        );
        assert_eq!(c.bytes_per_connection, Some(4_800.0));
        // v2 counts slab and sock of memory.stat.
        let c = cgroup_kernel(
            Some(&own(Version::V2, "/a", 1_000, 0)),
            Some(&own(Version::V2, "/a", 3_001_000, 1_000_000)),
            1_000,
        )
        .unwrap();
        assert_eq!(
            (c.counter, c.delta_bytes),
            ("memory.stat slab + sock", 4_000_000)
        );
        // The root cgroup is every process's: no figure of the run's own there.
        let root = own(Version::V2, "/", 0, 0);
        assert_eq!(cgroup_kernel(Some(&root), Some(&root), 1_000), None);
        assert_eq!(cgroup_kernel(None, Some(&root), 1_000), None);
        // In the report: the cgroup's figure leads and says where it is from; host-wide Slab
        // stays beside it, labelled.
        let mut k = kernel_memory(&host(0).mem, &host(400_000_000).mem, &None, &None, 20_000);
        assert_eq!(
            (k.source, k.bytes_per_connection),
            ("host_slab", Some(20_000.0))
        );
        k.cgroup = cgroup_kernel(
            Some(&own(Version::V1, path, 12_000_000, 0)),
            Some(&own(Version::V1, path, 108_000_000, 0)),
            20_000,
        );
        assert_eq!(
            k.source_words(),
            format!("memory cgroup {path} (v1 memory.kmem.usage_in_bytes)")
        );
    }
}
