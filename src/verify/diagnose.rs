//! Pure: why a run fell short. Takes what the run observed (errors by class on the client
//! side, the server workers' fd caps and listening state, counter deltas, conntrack, the
//! memory watchdog) and names the limit, its value, the evidence and the fix.

mod cgroup_counters;
mod tls;

pub use tls::{handshake_cpu_bound, HandshakeRamp};

use std::collections::BTreeMap;

use serde::Serialize;

use embedded_server::loadgen::ErrorClass;

use crate::knobs::{KnobId, Value};
use crate::units::group;
use crate::values::{Input, Suggest};

/// One server worker as its counters show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ServerWorker {
    pub fd_cap: u64,
    pub connections: u64,
    pub listening: bool,
    pub listener_pauses: u64,
}

/// The server side, when this run started the server (or is the server, external mode).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerSide {
    pub workers: Vec<ServerWorker>,
    pub accept_errors: u64,
    pub handshakes_failed: u64,
    /// The listen backlog of each worker.
    pub backlog: u64,
}

/// The client side, when this run started the load generator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientSide {
    pub processes: u64,
    pub fd_cap: u64,
    /// Errors by class (labels of [`ErrorClass`]).
    pub errors: BTreeMap<String, u64>,
    /// Source addresses bound (0: chosen by the kernel).
    pub sources: u64,
    pub last_errno: i32,
    /// Connects or handshakes still unanswered when the run stopped.
    pub in_flight: u64,
}

impl ClientSide {
    pub fn count(&self, c: ErrorClass) -> u64 {
        self.errors.get(c.label()).copied().unwrap_or(0)
    }
}

/// The memory watchdog's stop.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MemoryStop {
    pub floor: u64,
    pub usable_at_start: u64,
    pub usable_at_stop: u64,
    /// Measured kernel + user bytes per connection when it stopped (the prediction before
    /// 1,000 were open).
    pub bytes_per_connection: f64,
    /// It stopped before the first connection: not even the first step fitted.
    pub before_start: bool,
    /// The memory cgroup's limit, not the host's memory, was the nearer one at the stop.
    pub cgroup: bool,
}

/// Everything the diagnosis looks at.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub target: u64,
    pub established: u64,
    pub client: Option<ClientSide>,
    pub server: Option<ServerSide>,
    /// Growth of the watched netstat counters while connecting.
    pub netstat: BTreeMap<String, u64>,
    pub conntrack_count: Option<u64>,
    pub conntrack_max: Option<u64>,
    pub conntrack_drops: u64,
    pub port_range: Option<(u64, u64)>,
    /// The clients connected over IPv6: source-address fixes are IPv6 ones then.
    pub ipv6: bool,
    pub file_max: Option<u64>,
    pub somaxconn: Option<u64>,
    pub tcp_mem: Option<[u64; 3]>,
    pub memory: Option<MemoryStop>,
    /// tune's cgroups at the baseline and at the peak (OOM kills, refused forks, the limit).
    pub cgroups_before: Option<crate::kernel::cgroup::Cgroups>,
    pub cgroups_peak: Option<crate::kernel::cgroup::Cgroups>,
    /// The run is in the initial network namespace, which every other process of the host
    /// shares: its netstat counters move with every listener and socket there, not only the
    /// run's (false in a namespace of the run's own).
    pub netns_shared: bool,
}

/// The limit that stopped the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    /// Short name: `memory`, `rlimit_nofile`, `file_max`, `ports`, `conntrack`, `tcp_mem`,
    /// `listen_backlog`, `handshake`, `refused`, `timeout`, `unknown`.
    pub limit: String,
    /// The knob in the registry, when there is one.
    pub knob: Option<String>,
    /// `server`, `client` or `host`.
    pub side: String,
    /// The value that bound, in words.
    pub value: String,
    /// What was seen.
    pub evidence: String,
    /// What to do, one command or line each.
    pub fix: Vec<String>,
    /// For memory: the count the host would reach down to the floor.
    pub projected_connections: Option<u64>,
}

fn fix_for(knob: KnobId, v: Value) -> String {
    knob.knob().runtime_fix(&v, None)
}

fn persist_for(knob: KnobId, v: Value) -> Option<String> {
    knob.knob().persist_fix(&v)
}

fn d(limit: &str, knob: Option<KnobId>, side: &str, value: String, evidence: String) -> Diagnosis {
    Diagnosis {
        limit: limit.into(),
        knob: knob.map(|k| k.name().to_string()),
        side: side.into(),
        value,
        evidence,
        fix: Vec::new(),
        projected_connections: None,
    }
}

fn errors_text(c: &ClientSide) -> String {
    let mut v: Vec<(&String, &u64)> = c.errors.iter().filter(|(_, n)| **n > 0).collect();
    v.sort_by(|a, b| b.1.cmp(a.1));
    v.iter()
        .map(|(k, n)| format!("{k} {}", group(**n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// External mode: the server saw the count stop with nothing failing on its side (no accept
/// errors, no failed handshakes, every worker listening), so the load generators stopped, not
/// the server. `peak` is the most websockets open at once, `now` the count when it gave up
/// (lower when the clients gave up and closed). `None` when the server side did fail.
pub fn external_clients_stopped(
    target: u64,
    peak: u64,
    now: u64,
    server: &ServerSide,
) -> Option<Diagnosis> {
    let all_listening = server.workers.iter().all(|w| w.listening);
    if peak >= target || server.accept_errors > 0 || server.handshakes_failed > 0 || !all_listening
    {
        return None;
    }
    let mut x = d(
        "clients_stopped",
        None,
        "client",
        format!(
            "the load generators stopped at {} of {} connections",
            group(peak),
            group(target)
        ),
        format!(
            "the server accepted every connection that arrived (no accept errors, no failed handshakes, every worker listening under its fd cap); {} were open when it gave up",
            group(now)
        ),
    );
    x.fix.push(format!(
        "read the load generators' reports (tune load {}): their diagnosis names the client-side limit, e.g. the ports of one source address per destination (net.ipv4.ip_local_port_range)",
        Suggest::set(Input::Format, "json")
    ));
    Some(x)
}

/// A diagnosis from the cgroups' counters between the baseline and the peak, when they moved.
pub fn cgroup_counters(e: &Evidence) -> Option<Diagnosis> {
    let (before, peak) = (e.cgroups_before.as_ref()?, e.cgroups_peak.as_ref()?);
    if let (Some(b), Some(p)) = (&before.memory, &peak.memory) {
        if let Some(x) = cgroup_counters::oom_kill(b, p, e.established, e.target) {
            return Some(x);
        }
    }
    cgroup_counters::pids_refused(&before.pids, &peak.pids)
}

/// Names the limit. `None` only when nothing fell short. The checks run in order: what stops
/// a run first explains the errors it causes later (a server at its fd cap makes clients see
/// refusals).
pub fn diagnose(e: &Evidence) -> Option<Diagnosis> {
    if e.established >= e.target {
        return None;
    }
    let client = e.client.clone().unwrap_or_default();
    let c = &client;
    Some(
        // The container's own counters first: an OOM kill in the memory cgroup, forks
        // refused at pids.max.
        cgroup_counters(e)
            .or_else(|| memory(e))
            .or_else(|| server_fd_cap(e, c))
            .or_else(|| client_fd_cap(e, c))
            .or_else(|| file_max(e, c))
            .or_else(|| ports(e, c))
            .or_else(|| conntrack(e, c))
            .or_else(|| socket_memory(e, c))
            .or_else(|| listen_backlog(e, c))
            .or_else(|| tls(c))
            .or_else(|| not_served(e, c))
            .unwrap_or_else(|| unknown(e, c)),
    )
}

/// Growth of a watched netstat counter while connecting.
fn nc(e: &Evidence, name: &str) -> u64 {
    e.netstat.get(name).copied().unwrap_or(0)
}

/// 1. The memory watchdog stopped the run.
fn memory(e: &Evidence) -> Option<Diagnosis> {
    let short = e.target - e.established;
    if let Some(m) = e.memory {
        if let (true, Some(cg)) = (
            m.cgroup,
            e.cgroups_peak.as_ref().and_then(|c| c.memory.as_ref()),
        ) {
            return Some(cgroup_counters::memory_stop(
                cg,
                &m,
                e.established,
                e.target,
            ));
        }
        let per = m.bytes_per_connection.max(1.0);
        let projected =
            e.established + (m.usable_at_stop.saturating_sub(m.floor) as f64 / per) as u64;
        let mut x = d(
            "memory",
            Some(KnobId::MemoryFree),
            "host",
            format!(
                "memory floor {} (usable memory {} at start, {} at the stop)",
                crate::units::bytes(m.floor),
                crate::units::bytes(m.usable_at_start),
                crate::units::bytes(m.usable_at_stop)
            ),
            if m.before_start {
                format!(
                    "the memory watchdog opened no connection of {}: at {:.0} B per connection (the prediction) the connects of the first step would have taken usable memory under the floor",
                    group(e.target),
                    per
                )
            } else {
                format!(
                    "the memory watchdog stopped opening connections at {} of {}: at {:.0} B per connection (kernel slab + user RSS: measured once 1,000 are open, the prediction before) the next ones would have taken usable memory under the floor",
                    group(e.established),
                    group(e.target),
                    per
                )
            },
        );
        x.projected_connections = Some(projected);
        x.fix = vec![if projected < e.target {
            format!(
                "this host would reach about {} connections down to the floor; {} need about {} more memory",
                group(projected),
                group(e.target),
                crate::units::bytes(((e.target - projected) as f64 * per) as u64)
            )
        } else {
            format!(
                "the floor leaves room for about {} connections at this cost, but too little headroom to open the last {} safely at this rate",
                group(projected),
                group(short)
            )
        }];
        x.fix.push(format!(
            "add RAM, free memory elsewhere, or lower {} if the rest of the host can live with less",
            Suggest::input(Input::MemoryFloor)
        ));
        return Some(x);
    }

    None
}

/// 2. Server workers at their fd cap.
fn server_fd_cap(e: &Evidence, client: &ClientSide) -> Option<Diagnosis> {
    let short = e.target - e.established;
    if let Some(s) = &e.server {
        let all_paused = !s.workers.is_empty() && s.workers.iter().all(|w| !w.listening);
        if s.accept_errors > 0 || all_paused {
            let cap = s.workers.iter().map(|w| w.fd_cap).min().unwrap_or(0);
            let held: u64 = s.workers.iter().map(|w| w.connections).sum();
            let per = s
                .workers
                .iter()
                .map(|w| w.connections)
                .max()
                .unwrap_or(0)
                .max(1);
            let need = e.target.div_ceil(per);
            let mut x = d(
                "rlimit_nofile",
                Some(KnobId::NofileHard),
                "server",
                format!(
                    "RLIMIT_NOFILE {} per server worker: {} worker{} at most {} connections",
                    group(cap),
                    s.workers.len(),
                    if s.workers.len() == 1 { " holds" } else { "s hold" },
                    group(held)
                ),
                format!(
                    "every server worker stopped listening near its fd cap (accept errors {}, listener pauses {}); clients then saw {}",
                    group(s.accept_errors),
                    group(s.workers.iter().map(|w| w.listener_pauses).sum()),
                    if errors_text(client).is_empty() { "no errors".into() } else { errors_text(client) }
                ),
            );
            x.fix.push(format!(
                "run {need} server workers ({}) so each stays under its cap",
                Suggest::set(Input::Workers, need)
            ));
            let want = per + s.backlog + 64 + short.div_ceil(s.workers.len().max(1) as u64);
            x.fix.push(fix_for(KnobId::NofileHard, Value::Int(want)));
            x.fix
                .extend(persist_for(KnobId::NofileHard, Value::Int(want)));
            return Some(x);
        }
    }

    None
}

/// 3. The client processes' own fd cap.
fn client_fd_cap(e: &Evidence, client: &ClientSide) -> Option<Diagnosis> {
    if client.count(ErrorClass::Emfile) > 0 {
        let per = (client.fd_cap.saturating_sub(64)).max(1);
        let need = e.target.div_ceil(per);
        let mut x = d(
            "rlimit_nofile",
            Some(KnobId::NofileHard),
            "client",
            format!(
                "RLIMIT_NOFILE {} per client process, {} processes",
                group(client.fd_cap),
                client.processes
            ),
            format!("client errors: {}", errors_text(client)),
        );
        x.fix.push(format!(
            "run {need} client processes ({})",
            Suggest::set(Input::Processes, need)
        ));
        x.fix.push(fix_for(
            KnobId::NofileHard,
            Value::Int(e.target / client.processes.max(1) + 1024),
        ));
        return Some(x);
    }

    None
}

/// 4. fs.file-max.
fn file_max(e: &Evidence, client: &ClientSide) -> Option<Diagnosis> {
    if client.count(ErrorClass::Enfile) > 0 {
        let want = e.target * 2 + 65_536;
        let mut x = d(
            "file_max",
            Some(KnobId::FileMax),
            "host",
            format!(
                "{} {}",
                KnobId::FileMax.name(),
                e.file_max.map_or("unknown".into(), group)
            ),
            format!("client errors: {}", errors_text(client)),
        );
        x.fix.push(fix_for(KnobId::FileMax, Value::Int(want)));
        x.fix.extend(persist_for(KnobId::FileMax, Value::Int(want)));
        return Some(x);
    }

    None
}

/// 5. Ephemeral ports per (source, destination).
fn ports(e: &Evidence, client: &ClientSide) -> Option<Diagnosis> {
    if client.count(ErrorClass::Eaddrnotavail) > 0 {
        let (ports, range) = match e.port_range {
            Some((lo, hi)) => (hi - lo + 1, format!("{lo}-{hi}")),
            None => (0, "unknown".into()),
        };
        let srcs = client.sources.max(1);
        let mut x = d(
            "ports",
            Some(KnobId::IpLocalPortRange),
            "client",
            format!(
                "ip_local_port_range {range} ({} ports) × {} source address{} = {} connections per destination",
                group(ports),
                group(srcs),
                if srcs == 1 { "" } else { "es" },
                group(ports * srcs)
            ),
            format!("client errors: {}", errors_text(client)),
        );
        if ports > 0 {
            let need = e.target.div_ceil(ports * 9 / 10).max(srcs + 1);
            x.fix.extend(more_sources(need, e.ipv6));
        }
        x.fix.push(fix_for(
            KnobId::IpLocalPortRange,
            Value::Range([1024, 65535]),
        ));
        return Some(x);
    }

    None
}

/// The fix "bind `need` source addresses", in the clients' address family: IPv4 from
/// 127.0.0.0/8 (all local); IPv6 by either of the two ways Linux offers, with documentation
/// prefixes (RFC 3849) as placeholders, never an IPv4 range for an IPv6 target.
fn more_sources(need: u64, ipv6: bool) -> Vec<String> {
    if ipv6 {
        let doc = embedded_server::loadgen::sources::DOC_PREFIX_V6;
        return vec![
            format!("bind more IPv6 source addresses, a whole prefix at once (AnyIP): ip -6 route add local {doc} dev lo, then {} ({need} addresses; tune binds them with IP_FREEBIND)", Suggest::set(Input::Source, format!("{doc}:{need}"))),
            format!("or assign them: ip -6 addr add 2001:db8:200::1/64 dev lo, one command per address up to 2001:db8:200::{need:x}, then {}; on other hosts, add IPv6 addresses to the client's interface (2001:db8::/32 is the documentation prefix: use one that is yours)", Suggest::set(Input::Source, format!("2001:db8:200::1-2001:db8:200::{need:x}"))),
        ];
    }
    let last = embedded_server::loadgen::sources::loopback(need as usize)
        .last()
        .map(|a| a.to_string())
        .unwrap_or_default();
    vec![format!(
        "bind more source addresses: {} ({need} addresses; on other hosts, add addresses to the client's interface)",
        Suggest::set(Input::Source, format!("127.0.0.2-{last}"))
    )]
}

/// 7. Socket memory.
///
/// The clients' own ENOMEM/ENOBUFS, or the kernel's memory counters when they agree with what
/// the clients saw (an abort on memory resets the connection), or when the clients named
/// nothing else.
fn socket_memory(e: &Evidence, client: &ClientSide) -> Option<Diagnosis> {
    let mem_errs = client.count(ErrorClass::Enomem) + client.count(ErrorClass::Enobufs);
    let counted = nc(e, "TCPAbortOnMemory") > 0 || nc(e, "TCPMemoryPressures") > 0;
    let named: u64 = client.errors.values().sum();
    let resets = client.count(ErrorClass::Econnreset);
    if mem_errs > 0 || (counted && (named == 0 || counters_agree(e, client, resets))) {
        let mut x = d(
            "tcp_mem",
            Some(KnobId::TcpMem),
            "host",
            format!(
                "tcp_mem {} pages",
                e.tcp_mem
                    .map_or("unknown".into(), |t| format!("{} {} {}", t[0], t[1], t[2]))
            ),
            format!(
                "ENOMEM/ENOBUFS {}, TCPAbortOnMemory +{}, TCPMemoryPressures +{} ({})",
                group(mem_errs),
                group(nc(e, "TCPAbortOnMemory")),
                group(nc(e, "TCPMemoryPressures")),
                counters_scope(e)
            ),
        );
        if let Some(t) = e.tcp_mem {
            let v = Value::Triple([t[0] * 2, t[1] * 2, t[2] * 2]);
            x.fix.push(fix_for(KnobId::TcpMem, v));
            x.fix.extend(persist_for(KnobId::TcpMem, v));
        }
        x.fix
            .push("if MemFree is low too, the host is out of RAM: add memory".into());
        return Some(x);
    }

    None
}

/// Where the netstat counters come from, for the evidence: host-wide in the initial network
/// namespace, the run's own in a namespace of its own.
fn counters_scope(e: &Evidence) -> &'static str {
    if e.netns_shared {
        "host-wide counters: this run shares the host's network namespace, where every other listener moves them too"
    } else {
        "counters of this run's network namespace"
    }
}

/// Whether counters the run does not own agree with what its own clients saw. `explained` are
/// the client errors the counters would cause. They may be blamed when nothing else was named
/// (no client side, or no named error and connects still waiting), or when those errors are at
/// least as many as every other named error together. Otherwise the clients' own errors lead:
/// a TLS handshake timeout, a reset or a refusal is this run's evidence; a counter in a shared
/// namespace may be another process's.
fn counters_agree(e: &Evidence, client: &ClientSide, explained: u64) -> bool {
    let named: u64 = client.errors.values().sum();
    let others = named.saturating_sub(explained);
    e.client.is_none()
        || (explained > 0 && explained >= others)
        || (named == 0 && client.in_flight > 0)
}

/// 8. Accept queues overflowing.
///
/// An overflowing accept queue drops SYNs (or the handshake's last ACK): the clients' connects
/// time out or keep waiting. Only then do the overflow counters explain the run: refusals mean
/// nothing listened, and a TLS or websocket handshake that timed out had its connect answered.
fn listen_backlog(e: &Evidence, client: &ClientSide) -> Option<Diagnosis> {
    let refused = client.count(ErrorClass::Econnrefused);
    let timeouts = client.count(ErrorClass::ConnectTimeout) + client.count(ErrorClass::Etimedout);
    let overflowed =
        nc(e, "ListenOverflows") > 0 || nc(e, "ListenDrops") > 0 || nc(e, "TCPReqQFullDrop") > 0;
    // Dropped handshakes are retransmitted for a minute before a connect times out: a run that
    // stalled with connections still waiting on them is as telling as the timeouts.
    let waiting = client.in_flight;
    if overflowed && counters_agree(e, client, timeouts) {
        let mut x = d(
            "listen_backlog",
            Some(KnobId::Somaxconn),
            "server",
            match e.server.as_ref().map(|s| s.backlog) {
                Some(b) => format!(
                    "accept queue {} per worker in effect: the smaller of the listen backlog {} and {} {}",
                    group(crate::backlog::queue_in_effect(b, e.somaxconn)),
                    group(b),
                    KnobId::Somaxconn.name(),
                    e.somaxconn.map_or("unknown".into(), group)
                ),
                None => format!(
                    "{} {} (the accept queue of each listener is cut to it)",
                    KnobId::Somaxconn.name(),
                    e.somaxconn.map_or("unknown".into(), group)
                ),
            },
            format!(
                "ListenOverflows +{}, ListenDrops +{}, TCPReqQFullDrop +{} ({}); client timeouts {}, refusals {}, still waiting for the server {}",
                group(nc(e, "ListenOverflows")),
                group(nc(e, "ListenDrops")),
                group(nc(e, "TCPReqQFullDrop")),
                counters_scope(e),
                group(timeouts),
                group(refused),
                group(waiting)
            ),
        );
        x.fix.push(fix_for(KnobId::Somaxconn, Value::Int(65_535)));
        x.fix
            .push(fix_for(KnobId::TcpMaxSynBacklog, Value::Int(65_535)));
        x.fix.push(format!(
            "or open connections more gently: {} / {} on the load generator",
            Suggest::input(Input::Concurrency),
            Suggest::input(Input::Rate)
        ));
        return Some(x);
    }

    None
}

/// The TLS failure most connections met, and what to do about it. TLS failures are never
/// retried away: each attempt that met one is counted under its name.
fn tls(client: &ClientSide) -> Option<Diagnosis> {
    let (class, n) = ErrorClass::ALL
        .iter()
        .filter(|c| c.is_tls())
        .map(|c| (*c, client.count(*c)))
        .max_by_key(|(_, n)| *n)?;
    if n == 0 || n * 2 < client.errors.values().sum::<u64>() {
        return None;
    }
    let (value, fix): (&str, String) = match class {
        ErrorClass::TlsUnknownIssuer => (
            "the server's certificate is not signed by a trusted root (unknown issuer)",
            format!(
                "trust its CA with {} (PEM), or {} for a self-signed test server",
                Suggest::set(Input::Ca, "FILE"),
                Suggest::input(Input::Insecure)
            ),
        ),
        ErrorClass::TlsNameMismatch => (
            "the server's certificate is not valid for the URL's host (name mismatch)",
            "use the host name the certificate names in the wss:// URL"
                .into(),
        ),
        ErrorClass::TlsExpired => (
            "the server's certificate is expired or not valid yet",
            "renew the server's certificate (or check this host's clock)"
                .into(),
        ),
        ErrorClass::TlsNotTls => (
            "the server on that port does not speak TLS (a plain-TCP server)",
            "use ws:// for a plain server, or the server's TLS port"
                .into(),
        ),
        ErrorClass::TlsHandshakeTimeout => (
            "the TLS handshake did not finish within the connect timeout",
            format!(
                "check the server answers TLS on that port; a busy server needs a longer {}",
                Suggest::input(Input::ConnectTimeout)
            ),
        ),
        ErrorClass::TlsAlert => (
            "the server ended the TLS handshake with an alert",
            "the server refused our TLS offer (versions, cipher suites, ALPN http/1.1): see its log"
                .into(),
        ),
        _ => (
            "the TLS handshake failed",
            "see the server's log; openssl s_client -connect HOST:PORT shows the handshake"
                .into(),
        ),
    };
    let mut x = d(
        "tls",
        None,
        "server",
        value.into(),
        format!("client errors: {}", errors_text(client)),
    );
    x.fix.push(fix);
    Some(x)
}

/// 9. Handshakes refused by the server, refusals, timeouts.
fn not_served(e: &Evidence, client: &ClientSide) -> Option<Diagnosis> {
    let refused = client.count(ErrorClass::Econnrefused);
    let timeouts = client.count(ErrorClass::ConnectTimeout) + client.count(ErrorClass::Etimedout);
    // 9. Handshakes refused by the server.
    let hs = client.count(ErrorClass::HandshakeStatus)
        + client.count(ErrorClass::HandshakeAccept)
        + client.count(ErrorClass::HandshakeMalformed)
        + client.count(ErrorClass::HandshakeEof);
    if hs > 0 && hs >= refused && hs >= timeouts {
        let mut x = d(
            "handshake",
            None,
            "server",
            "websocket upgrade refused".into(),
            format!(
                "client errors: {}; server handshakes failed {}",
                errors_text(client),
                e.server.as_ref().map_or(0, |s| s.handshakes_failed)
            ),
        );
        x.fix.push(
            "check the URL path and that the server speaks RFC 6455 (tune serve's /metrics counts refusals by reason)".into(),
        );
        return Some(x);
    }
    if refused > 0 && e.established > 0 {
        // Connections were accepted, then refused: the server stopped listening (its fd cap,
        // a restart, a closed listener), not a wrong address.
        let mut x = d(
            "refused",
            None,
            "server",
            format!(
                "the server stopped accepting after {} connections",
                group(e.established)
            ),
            format!(
                "{} connections open, then refused: client errors: {}",
                group(e.established),
                errors_text(client)
            ),
        );
        x.fix.push(format!(
            "the server closed its listener at a limit of its own: often its fd cap (RLIMIT_NOFILE of the server process: tune check {}), or more server processes",
            Suggest::set(Input::Pid, "PID")
        ));
        return Some(x);
    }
    if refused > 0 {
        let mut x = d(
            "refused",
            None,
            "server",
            "nothing accepted connections on the target address".into(),
            format!("client errors: {}", errors_text(client)),
        );
        x.fix
            .push("check that the server listens on the URL's address and port".into());
        return Some(x);
    }
    if timeouts > 0 {
        let mut x = d(
            "timeout",
            None,
            "server",
            "connections not answered within the connect timeout".into(),
            format!(
                "client errors: {}; no accept-queue overflow counted",
                errors_text(client)
            ),
        );
        x.fix.push(format!(
            "the server (or the path to it) is too slow at this rate: lower {}/{} or raise {}",
            Suggest::input(Input::Rate),
            Suggest::input(Input::Concurrency),
            Suggest::input(Input::ConnectTimeout)
        ));
        return Some(x);
    }
    None
}

/// Nothing known explains the shortfall.
fn unknown(e: &Evidence, client: &ClientSide) -> Diagnosis {
    let mut x = d(
        "unknown",
        None,
        "host",
        "none identified".into(),
        format!(
            "established stopped rising at {} of {} without errors{}",
            group(e.established),
            group(e.target),
            if client.errors.values().any(|n| *n > 0) {
                format!(" of a known class ({})", errors_text(client))
            } else {
                String::new()
            }
        ),
    );
    x.fix
        .push("look at dmesg and the server's /metrics for what stopped it".into());
    x
}

/// Share of nf_conntrack_max (percent) at which the table counts as full at the stop: the
/// kernel refuses an entry only when the count would pass the max, but entries of connections
/// that were just closed or never completed come and go around it.
const CONNTRACK_FULL_PERCENT: u64 = 98;
/// Share of nf_conntrack_max (percent) above which drops are blamed on the table's size; drops
/// with the table far from full come from something else (an allocation failure, a clash).
const CONNTRACK_DROPS_PERCENT: u64 = 90;
/// Headroom over the entries needed, as the profiles' `up()` gives nf_conntrack_max.
const CONNTRACK_HEADROOM_PERCENT: u64 = 10;

/// The conntrack diagnosis. The kernel compares each network namespace's own
/// nf_conntrack_count with the one host-wide nf_conntrack_max (`__nf_conntrack_alloc` in
/// net/netfilter/nf_conntrack_core.c, Linux 6.18), so the count here is the run's namespace's
/// and the max is the host's. One entry per connection: a loopback pair is one flow.
fn conntrack(e: &Evidence, client: &ClientSide) -> Option<Diagnosis> {
    let max = e.conntrack_max.filter(|m| *m > 0);
    let at = |percent: u64| match (e.conntrack_count, max) {
        (Some(c), Some(m)) => c * 100 >= m * percent,
        _ => false,
    };
    let full = at(CONNTRACK_FULL_PERCENT);
    let drops_blamed = e.conntrack_drops > 0
        && (max.is_none() || e.conntrack_count.is_none() || at(CONNTRACK_DROPS_PERCENT));
    if !full && !drops_blamed {
        return None;
    }
    // Entries the run did not hold (other flows, connections closing) stay in the table too.
    let others = e.conntrack_count.unwrap_or(0).saturating_sub(e.established);
    let need = e.target + others;
    let mut want = (need * (100 + CONNTRACK_HEADROOM_PERCENT)).div_ceil(100);
    if let Some(m) = max {
        if want <= m {
            want = m * 2;
        }
    }
    let count = e.conntrack_count.map_or("unknown".into(), group);
    let mut evidence = format!(
        "nf_conntrack_count {count} of nf_conntrack_max {} in this run's network namespace (the count is per namespace, the max one host-wide value)",
        max.map_or("unknown".into(), group)
    );
    if e.conntrack_drops > 0 {
        evidence.push_str(&format!(
            "; conntrack dropped or failed to insert {} packets that found no free entry",
            group(e.conntrack_drops)
        ));
    }
    if others > 0 {
        evidence.push_str(&format!(
            "; {} entries were not this run's open connections",
            group(others)
        ));
    }
    let errors = errors_text(client);
    evidence.push_str(&if errors.is_empty() {
        "; clients saw no error: a SYN dropped for want of an entry is sent again until the connect timeout".to_string()
    } else {
        format!("; client errors: {errors}")
    });
    let mut x = d(
        "conntrack",
        Some(KnobId::ConntrackMax),
        "host",
        format!(
            "nf_conntrack_max {} ({count} entries at the stop)",
            max.map_or("unknown".into(), group)
        ),
        evidence,
    );
    x.fix.push(fix_for(KnobId::ConntrackMax, Value::Int(want)));
    x.fix
        .extend(persist_for(KnobId::ConntrackMax, Value::Int(want)));
    x.fix.push(format!(
        "nf_conntrack_max is one value for the whole host, writable only from the initial network namespace (read-only inside a container's): {} entries = {} connections{} + {CONNTRACK_HEADROOM_PERCENT}% headroom",
        group(want),
        group(e.target),
        if others > 0 {
            format!(" + {} other entries", group(others))
        } else {
            String::new()
        }
    ));
    x.fix
        .push(fix_for(KnobId::ConntrackBuckets, Value::Int(want)));
    x.fix.push(
        "or keep these connections out of conntrack: no `ct` rule in their path, or a `notrack` rule for their port in a raw-priority chain".into(),
    );
    Some(x)
}

/// A load generator process died: the connections it held went with it.
pub fn load_worker_died(died: &[embedded_server::loadgen::Died]) -> Diagnosis {
    let mut x = d(
        "load_worker_died",
        None,
        "client",
        died.iter()
            .map(|w| {
                format!(
                    "load worker {} {}; {} connections lost",
                    w.index,
                    w.status,
                    group(w.lost)
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        "a load generator process exited before it was told to (not restarted)".into(),
    );
    x.fix.push(
        "see the process's error above; dmesg shows OOM kills (signal 9 with no error means it was killed from outside)".into(),
    );
    x
}

/// A server worker exited during the run (not restarted).
pub fn server_worker_died(dead: &[String]) -> Diagnosis {
    let mut x = d(
        "server_worker_died",
        None,
        "server",
        dead.join("; "),
        "a server worker exited during the run (not restarted)".into(),
    );
    x.fix
        .push("see the worker's error above; dmesg shows OOM kills".into());
    x
}

/// Every connection was open, but some were dropped or did not answer their echo.
pub fn not_answered(dropped: u64, echoes: u64, target: u64) -> Diagnosis {
    let mut x = d(
        if dropped > 0 { "dropped" } else { "echo" },
        None,
        "server",
        format!(
            "{} dropped, {} echoes of {}",
            group(dropped),
            group(echoes),
            group(target)
        ),
        "every connection was open, but not every one answered its echo".into(),
    );
    x.fix
        .push("look at the server's /metrics (closed by reason) and dmesg".into());
    x
}

impl ServerSide {
    /// The server side from the supervisor's typed counters: the totals and each worker's
    /// gauges, with the listen backlog every worker was given.
    pub fn from_counters(
        totals: &embedded_server::server::Snapshot,
        workers: &[embedded_server::server::metrics::WorkerGauges],
        backlog: u64,
    ) -> ServerSide {
        ServerSide {
            workers: workers
                .iter()
                .map(|w| ServerWorker {
                    fd_cap: w.fd_cap,
                    connections: w.connections,
                    listening: w.listening,
                    listener_pauses: w.listener_pauses,
                })
                .collect(),
            accept_errors: totals.accept_errors,
            handshakes_failed: totals.handshakes_failed(),
            backlog,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(errs: &[(ErrorClass, u64)]) -> ClientSide {
        ClientSide {
            processes: 2,
            fd_cap: 20_000,
            errors: errs
                .iter()
                .map(|(c, n)| (c.label().to_string(), *n))
                .collect(),
            sources: 1,
            last_errno: 0,
            in_flight: 0,
        }
    }

    fn base() -> Evidence {
        Evidence {
            target: 10_000,
            established: 4_000,
            port_range: Some((40_000, 40_499)),
            file_max: Some(2_466_170),
            somaxconn: Some(4096),
            tcp_mem: Some([287_898, 383_867, 575_796]),
            ..Evidence::default()
        }
    }

    fn listening_server(handshakes_failed: u64) -> ServerSide {
        ServerSide {
            workers: vec![ServerWorker {
                fd_cap: 18_912,
                connections: 28_000,
                listening: true,
                listener_pauses: 0,
            }],
            accept_errors: 0,
            handshakes_failed,
            backlog: 1024,
        }
    }

    #[test]
    fn external_clients_that_stop_are_named_not_the_server() {
        // Three loaders of one address each stopped at their ports (~28k each) of 105,000.
        let x = external_clients_stopped(105_000, 84_696, 0, &listening_server(0)).unwrap();
        assert_eq!(
            (x.limit.as_str(), x.side.as_str()),
            ("clients_stopped", "client")
        );
        assert!(
            x.value.contains("stopped at 84,696 of 105,000"),
            "{}",
            x.value
        );
        assert!(
            x.evidence.contains("0 were open when it gave up"),
            "{}",
            x.evidence
        );
        assert!(x.fix[0].contains("ip_local_port_range"), "{:?}", x.fix);
        // A server that failed handshakes, or reached the target, is not the clients' doing.
        assert_eq!(
            external_clients_stopped(105_000, 84_696, 0, &listening_server(3)),
            None
        );
        assert_eq!(
            external_clients_stopped(100, 100, 100, &listening_server(0)),
            None
        );
    }

    #[test]
    fn nothing_when_reached() {
        let mut e = base();
        e.established = e.target;
        assert_eq!(diagnose(&e), None);
    }

    #[test]
    fn server_fd_cap_comes_before_the_refusals_it_causes() {
        let mut e = base();
        e.client = Some(client(&[(ErrorClass::Econnrefused, 500)]));
        e.server = Some(ServerSide {
            workers: vec![ServerWorker {
                fd_cap: 1500,
                connections: 400,
                listening: false,
                listener_pauses: 1,
            }],
            accept_errors: 0,
            handshakes_failed: 0,
            backlog: 1024,
        });
        let x = diagnose(&e).unwrap();
        assert_eq!(
            (x.limit.as_str(), x.side.as_str()),
            ("rlimit_nofile", "server")
        );
        assert!(
            x.value.contains("RLIMIT_NOFILE 1,500 per server worker"),
            "{}",
            x.value
        );
        let workers = Suggest::set(Input::Workers, 25).to_string();
        assert!(x.fix[0].contains(&workers), "{:?}", x.fix);
        assert!(x.evidence.contains("econnrefused 500"));
    }

    #[test]
    fn an_ipv6_target_gets_ipv6_sources_in_the_fix() {
        let mut e = base();
        e.ipv6 = true;
        e.client = Some(client(&[(ErrorClass::Eaddrnotavail, 70)]));
        let x = diagnose(&e).unwrap();
        assert_eq!(x.limit, "ports");
        let all = x.fix.join("\n");
        assert!(!all.contains("127.0.0."), "{all}");
        assert!(
            x.fix[0].contains("ip -6 route add local 2001:db8:100::/64 dev lo")
                && x.fix[0]
                    .contains(&Suggest::set(Input::Source, "2001:db8:100::/64:23").to_string()),
            "{all}"
        );
        assert!(
            x.fix[1].contains("ip -6 addr add 2001:db8:200::1/64 dev lo"),
            "{all}"
        );
        assert!(all.contains("ip_local_port_range"), "{all}");
    }

    #[test]
    fn eaddrnotavail_names_ports_and_sources() {
        let mut e = base();
        e.client = Some(client(&[(ErrorClass::Eaddrnotavail, 70)]));
        let x = diagnose(&e).unwrap();
        assert_eq!(x.limit, "ports");
        assert!(
            x.value
                .contains("40000-40499 (500 ports) × 1 source address = 500"),
            "{}",
            x.value
        );
        // 10,000 / 450 -> 23 addresses
        assert!(
            x.fix[0].contains(&Suggest::set(Input::Source, "127.0.0.2-127.0.0.24").to_string()),
            "{:?}",
            x.fix
        );
        assert!(
            x.fix[1].contains("sysctl -w net.ipv4.ip_local_port_range"),
            "{:?}",
            x.fix
        );
    }

    #[test]
    fn client_emfile_and_enfile() {
        let mut e = base();
        e.client = Some(client(&[
            (ErrorClass::Emfile, 3),
            (ErrorClass::Econnrefused, 1),
        ]));
        let x = diagnose(&e).unwrap();
        assert_eq!(
            (x.limit.as_str(), x.side.as_str()),
            ("rlimit_nofile", "client")
        );
        e.client = Some(client(&[(ErrorClass::Enfile, 3)]));
        let x = diagnose(&e).unwrap();
        assert_eq!(x.limit, "file_max");
        assert!(
            x.fix[0].starts_with("sysctl -w fs.file-max="),
            "{:?}",
            x.fix
        );
    }

    #[test]
    fn memory_stop_projects_a_count() {
        let mut e = base();
        e.memory = Some(MemoryStop {
            floor: 1_000_000_000,
            usable_at_start: 2_000_000_000,
            usable_at_stop: 1_100_000_000,
            bytes_per_connection: 10_000.0,
            before_start: false,
            cgroup: false,
        });
        let x = diagnose(&e).unwrap();
        assert_eq!(x.limit, "memory");
        assert_eq!(x.projected_connections, Some(4_000 + 10_000));
    }

    #[test]
    fn overflows_conntrack_and_tcp_mem() {
        let mut e = base();
        e.client = Some(client(&[(ErrorClass::ConnectTimeout, 9)]));
        e.netstat.insert("ListenOverflows".into(), 12);
        assert_eq!(diagnose(&e).unwrap().limit, "listen_backlog");
        e.conntrack_count = Some(262_000);
        e.conntrack_max = Some(262_144);
        let x = diagnose(&e).unwrap();
        assert_eq!(x.limit, "conntrack");
        assert!(x.fix[0].contains("nf_conntrack_max"), "{:?}", x.fix);
        e.conntrack_count = Some(10);
        e.client = Some(client(&[(ErrorClass::Enobufs, 1)]));
        assert_eq!(diagnose(&e).unwrap().limit, "tcp_mem");
    }

    /// What the induced run (tests/verify_conntrack.rs) saw here: the namespace's table full at
    /// the host's nf_conntrack_max, the SYNs of the connects in flight dropped, no client
    /// error yet (the dropped SYNs are still being retried).
    fn conntrack_full() -> Evidence {
        Evidence {
            target: 267_387,
            established: 262_144,
            client: Some(client(&[])),
            conntrack_count: Some(262_144),
            conntrack_max: Some(262_144),
            conntrack_drops: 3_264,
            ..base()
        }
    }

    #[test]
    fn a_full_conntrack_table_is_named_with_its_count_drops_and_fix() {
        let x = diagnose(&conntrack_full()).unwrap();
        assert_eq!((x.limit.as_str(), x.side.as_str()), ("conntrack", "host"));
        assert_eq!(x.knob.as_deref(), Some("net.netfilter.nf_conntrack_max"));
        assert_eq!(
            x.value,
            "nf_conntrack_max 262,144 (262,144 entries at the stop)"
        );
        assert!(
            x.evidence
                .contains("nf_conntrack_count 262,144 of nf_conntrack_max 262,144"),
            "{}",
            x.evidence
        );
        assert!(
            x.evidence
                .contains("dropped or failed to insert 3,264 packets"),
            "{}",
            x.evidence
        );
        assert!(
            x.evidence.contains("clients saw no error"),
            "{}",
            x.evidence
        );
        // 267,387 connections + 10% = 294,126 entries (one per loopback pair).
        assert_eq!(
            x.fix[0], "sysctl -w net.netfilter.nf_conntrack_max=\"294126\"",
            "{:?}",
            x.fix
        );
        assert_eq!(
            x.fix[1],
            "/etc/sysctl.d/90-tune.conf: net.netfilter.nf_conntrack_max = 294126"
        );
        assert!(
            x.fix[2].contains("initial network namespace"),
            "{:?}",
            x.fix
        );
        assert!(
            x.fix
                .iter()
                .any(|f| f.contains("nf_conntrack/parameters/hashsize")),
            "{:?}",
            x.fix
        );
    }

    #[test]
    fn conntrack_entries_of_other_flows_are_counted_in_the_fix() {
        let mut e = conntrack_full();
        e.target = 300_000;
        e.established = 200_000;
        e.conntrack_drops = 0;
        e.client = Some(client(&[(ErrorClass::ConnectTimeout, 40)]));
        let x = diagnose(&e).unwrap();
        assert_eq!(x.limit, "conntrack");
        assert!(
            x.evidence
                .contains("62,144 entries were not this run's open connections"),
            "{}",
            x.evidence
        );
        assert!(
            x.evidence.contains("client errors: connect_timeout 40"),
            "{}",
            x.evidence
        );
        // (300,000 + 62,144) + 10%
        assert!(x.fix[0].ends_with("=\"398359\""), "{:?}", x.fix);
    }

    #[test]
    fn conntrack_drops_far_below_the_max_are_not_blamed_on_nf_conntrack_max() {
        let mut e = conntrack_full();
        e.conntrack_count = Some(100_000);
        e.conntrack_drops = 5;
        assert_eq!(diagnose(&e).unwrap().limit, "unknown");
        // Near the max (a few entries freed since), drops are the table's.
        e.conntrack_count = Some(250_000);
        assert_eq!(diagnose(&e).unwrap().limit, "conntrack");
        // Without a count to compare, drops are all there is.
        e.conntrack_count = None;
        assert_eq!(diagnose(&e).unwrap().limit, "conntrack");
        // Full without a drop counted: the count alone names it.
        e.conntrack_count = Some(262_144);
        e.conntrack_drops = 0;
        assert_eq!(diagnose(&e).unwrap().limit, "conntrack");
    }

    #[test]
    fn a_stall_with_handshakes_waiting_and_overflows_is_the_backlog() {
        let mut e = base();
        let mut c = client(&[]);
        c.in_flight = 900;
        e.client = Some(c);
        // Waiting connects alone do not name the backlog...
        assert_eq!(diagnose(&e).unwrap().limit, "unknown");
        // ...with the kernel's overflow counters moving they do.
        e.netstat.insert("ListenDrops".into(), 6_783);
        let x = diagnose(&e).unwrap();
        assert_eq!(x.limit, "listen_backlog");
        assert!(
            x.evidence.contains("still waiting for the server 900"),
            "{x:?}"
        );
    }

    /// Issue 24's pair run, round 5 (/work/ci/round5-a.log, Linux 6.18): `tune load --conns 3`
    /// against a listener that never answers the ClientHello, in the host's network namespace
    /// while a second copy of the suite ran. Its 3 clients saw 3 TLS handshake timeouts and
    /// had 3 attempts still waiting; the other copy's listeners had moved the host-wide
    /// ListenOverflows and ListenDrops by 1,317 each.
    fn round_5() -> Evidence {
        let mut c = client(&[(ErrorClass::TlsHandshakeTimeout, 3)]);
        c.in_flight = 3;
        let mut e = Evidence {
            target: 3,
            established: 0,
            client: Some(c),
            netns_shared: true,
            ..base()
        };
        e.netstat.insert("ListenOverflows".into(), 1_317);
        e.netstat.insert("ListenDrops".into(), 1_317);
        e
    }

    #[test]
    fn the_clients_own_tls_timeouts_lead_over_host_wide_overflows() {
        let x = diagnose(&round_5()).unwrap();
        assert_eq!(x.limit, "tls", "{x:?}");
        assert!(x.value.contains("did not finish"), "{x:?}");
        assert!(x.evidence.contains("tls_handshake_timeout 3"), "{x:?}");
        // Resets and refusals lead the same way.
        for own in [ErrorClass::Econnreset, ErrorClass::Econnrefused] {
            let mut e = round_5();
            e.client = Some(client(&[(own, 3), (ErrorClass::ConnectTimeout, 1)]));
            assert_ne!(diagnose(&e).unwrap().limit, "listen_backlog", "{own:?}");
        }
    }

    #[test]
    fn host_wide_overflows_are_blamed_when_the_clients_saw_syn_timeouts_and_say_so() {
        // The same counters with what an overflowing queue does to clients: connects that
        // time out, more of them than anything else.
        let mut e = round_5();
        e.client = Some(client(&[
            (ErrorClass::ConnectTimeout, 3),
            (ErrorClass::TlsHandshakeTimeout, 1),
        ]));
        let x = diagnose(&e).unwrap();
        assert_eq!(x.limit, "listen_backlog");
        assert!(
            x.evidence.contains("ListenOverflows +1,317")
                && x.evidence.contains("host-wide counters")
                && x.evidence.contains("shares the host's network namespace"),
            "{}",
            x.evidence
        );
        // In a namespace of the run's own, the counters are its own and said to be.
        e.netns_shared = false;
        let x = diagnose(&e).unwrap();
        assert!(
            x.evidence
                .contains("counters of this run's network namespace"),
            "{}",
            x.evidence
        );
        assert!(!x.evidence.contains("host-wide"), "{}", x.evidence);
    }

    #[test]
    fn host_wide_memory_counters_do_not_outrank_the_clients_own_errors() {
        let mut e = round_5();
        e.netstat.clear();
        e.netstat.insert("TCPMemoryPressures".into(), 4);
        assert_eq!(diagnose(&e).unwrap().limit, "tls");
        // Nothing named by the clients: the counters are all there is.
        e.client = Some(client(&[]));
        let x = diagnose(&e).unwrap();
        assert_eq!(x.limit, "tcp_mem");
        assert!(x.evidence.contains("host-wide"), "{}", x.evidence);
    }

    #[test]
    fn the_backlog_diagnosis_quotes_the_queue_in_effect() {
        // Issue 10: somaxconn 8 cuts the workers' listen backlog of 1,024 to 8.
        let mut e = base();
        e.somaxconn = Some(8);
        e.client = Some(client(&[(ErrorClass::ConnectTimeout, 40)]));
        e.server = Some(ServerSide {
            backlog: 1024,
            ..ServerSide::default()
        });
        e.netstat.insert("ListenDrops".into(), 9_354);
        let x = diagnose(&e).unwrap();
        assert_eq!(x.limit, "listen_backlog");
        assert!(
            x.value.starts_with("accept queue 8 per worker in effect"),
            "{x:?}"
        );
    }

    #[test]
    fn refusals_after_connections_say_the_server_stopped_accepting() {
        // tune load against a server that stopped accepting at its fd cap, 777 held.
        let mut e = base();
        e.established = 777;
        e.client = Some(client(&[(ErrorClass::Econnrefused, 30)]));
        let x = diagnose(&e).unwrap();
        assert_eq!(x.limit, "refused");
        assert_eq!(
            x.value,
            "the server stopped accepting after 777 connections"
        );
        // Nothing ever accepted: nothing listens.
        e.established = 0;
        let x = diagnose(&e).unwrap();
        assert_eq!(
            x.value,
            "nothing accepted connections on the target address"
        );
    }

    #[test]
    fn unknown_when_nothing_explains_it() {
        let mut e = base();
        e.client = Some(client(&[]));
        assert_eq!(diagnose(&e).unwrap().limit, "unknown");
    }

    #[test]
    fn server_side_comes_from_the_typed_counters() {
        use embedded_server::server::metrics::WorkerGauges;
        let totals = embedded_server::server::Snapshot {
            accept_errors: 3,
            ..Default::default()
        };
        let g = |connections, listening| WorkerGauges {
            connections,
            fd_cap: 1500,
            listening,
            listener_pauses: u64::from(!listening),
        };
        let s = ServerSide::from_counters(&totals, &[g(400, false), g(0, true)], 128);
        assert_eq!(s.accept_errors, 3);
        assert_eq!(s.backlog, 128);
        assert_eq!(s.workers.len(), 2);
        assert_eq!(s.workers[0].connections, 400);
        assert_eq!(s.workers[0].listener_pauses, 1);
        assert!(!s.workers[0].listening);
        assert!(s.workers[1].listening);
    }
}
