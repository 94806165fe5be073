//! Capacity: how many concurrent connections a process and the host can hold, which limit binds first, and the arithmetic.
//!
//! Pure: [`estimate`] takes plain values ([`Inputs`]) and a target and returns
//! figures with the arithmetic as text. [`predict`] builds the inputs from an
//! [`Observation`] for callers that have one (check, the verify run).
//!
//! The model, per role (`s` = sockets per connection: 1 for server and client, 2 for loopback):
//! - per process: usable fds = RLIMIT_NOFILE hard (or fs.nr_open when the hard limit can be
//!   raised: CAP_SYS_RESOURCE) − [`FD_RESERVE`]; every socket is one fd. A process may raise its
//!   soft limit to the hard one by itself, so the soft limit does not bind.
//! - per host, the smallest of:
//!   - memory: (usable memory − [`MEMORY_RESERVE_PERCENT`] % of MemTotal) divided by
//!     (s × kernel bytes per socket plus user bytes per connection). Usable memory is
//!     MemAvailable less the reclaimable slab new sockets add
//!     ([`crate::kernel::meminfo::Meminfo::usable_since`]), the definition the verify run and
//!     its watchdog use too; the socket cost counts that slab in full.
//!   - fs.file-max: (file-max − files in use) / s, unless the process has CAP_SYS_ADMIN (exempt).
//!   - nf_conntrack_max − nf_conntrack_count, one entry per connection, when conntrack tracks
//!     connections in this namespace (count > 0).
//!   - client role: ports in ip_local_port_range × source addresses (per destination). Loopback:
//!     127.0.0.0/8 gives as many source addresses as needed; the count needed is reported. IPv6
//!     loopback has ::1 alone unless `--source` gives more. The one port range (net.ipv4, used
//!     by IPv6 sockets too) and conntrack's one table count both families alike.
//! - tcp_mem is reported, not counted: idle sockets hold no buffer pages.

pub mod cgroup_bounds;

use crate::knobs::Role;
use crate::knobs::{KnobId, Observation, Value};
use crate::units::{approx, bytes, group};
use crate::values::{Input, Suggest};

/// Fds a process keeps for itself (stdio, listener, epoll, logs) and does not spend on connections.
pub const FD_RESERVE: u64 = 10;

/// Share of MemTotal left for the rest of the system when counting memory for connections.
pub const MEMORY_RESERVE_PERCENT: u64 = 5;

/// Usable source addresses for loopback clients: 127.0.0.0/8 without network and broadcast.
pub const LOOPBACK_SOURCE_ADDRESSES: u64 = (1 << 24) - 2;

/// What the estimate is computed from. `None` means the value could not be read here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    pub role: Role,
    pub nofile_soft: Option<u64>,
    pub nofile_hard: Option<u64>,
    /// CAP_SYS_RESOURCE in the effective set of the process that would raise the limit.
    pub can_raise_hard: Option<bool>,
    pub nr_open: Option<u64>,
    pub file_max: Option<u64>,
    pub files_in_use: Option<u64>,
    /// CAP_SYS_ADMIN in the target process: fs.file-max does not hold it.
    pub exempt_from_file_max: Option<bool>,
    pub conntrack_max: Option<u64>,
    pub conntrack_count: Option<u64>,
    /// `Some(true)` when conntrack tracks this namespace's connections, `None` when not loaded.
    pub conntrack_tracking: Option<bool>,
    pub port_range: Option<[u64; 2]>,
    /// Source addresses the client side may use; `None` for loopback means "as many as needed"
    /// (IPv4), or ::1 alone when `ipv6_loopback`.
    pub source_addresses: Option<u64>,
    /// The loopback target is IPv6 (::1): without `source_addresses`, one address.
    pub ipv6_loopback: bool,
    /// Usable memory now ([`crate::kernel::meminfo::Meminfo::usable`]: MemAvailable).
    pub mem_usable: Option<u64>,
    /// The part of it the kernel gives without a reclaim storm (MemFree and Inactive(file)).
    pub mem_quick: Option<u64>,
    pub mem_total: Option<u64>,
    pub bytes_per_socket: u64,
    /// Where `bytes_per_socket` came from ("slabinfo", "default").
    pub bytes_per_socket_source: String,
    /// What the server itself keeps per connection (0: kernel memory only).
    pub user_bytes_per_connection: u64,
    pub tcp_mem_max_pages: Option<u64>,
    /// Why the hard limit cannot be raised when `can_raise_hard` is false ("no CAP_SYS_RESOURCE",
    /// or the user namespace that makes the capability not count).
    pub capability_reason: String,
    /// How conntrack tracking was found (the probe's words), when it was probed.
    pub conntrack_evidence: Option<String>,
    /// The memory cgroup of the process and its ancestors; binds when a level has a limit.
    pub memory_cgroup: Option<crate::kernel::cgroup::MemoryCgroup>,
    /// The pids cgroup levels (leaf first).
    pub pids: Vec<crate::kernel::cgroup::PidsLevel>,
    /// Sockets one server worker holds (RLIMIT_NOFILE less the accept-queue reserve), when the
    /// layout runs `tune serve` workers; shown beside the per-process figure.
    pub per_server_worker: Option<u64>,
    /// Remarks from reading the host (another network namespace for `--pid`).
    pub observation_notes: Vec<String>,
    /// Server worker processes the layout runs (`--workers N`); `None`: as many as needed.
    pub server_workers: Option<u64>,
    /// The server's own cost per connection, measured (`tune load --server-pid`) or given;
    /// `None`: the kernel's socket alone (a near-zero user-space cost).
    pub measured: Option<MeasuredCost>,
    /// What TLS adds to each connection (`check --tls`); `None`: plain connections.
    pub tls: Option<TlsCost>,
}

impl Inputs {
    /// Bytes TLS adds to each connection on this host (0 without a TLS figure): the server
    /// end's state, the client end's, or both ends' for loopback (each holds a TLS connection).
    pub fn tls_bytes(&self) -> u64 {
        self.tls.as_ref().map_or(0, |t| match self.role {
            Role::Server => t.bytes_per_connection,
            Role::Client => t.client_bytes(),
            Role::Loopback => t.bytes_per_connection + t.client_bytes(),
        })
    }

    /// " + 5.2 KB TLS (given with --tls-cost)", for loopback " + 3.6 KB server + 4.3 KB client
    /// TLS (...)", or nothing without a TLS figure.
    fn tls_text(&self) -> String {
        self.tls.as_ref().map_or_else(String::new, |t| {
            let client = match t.client_bytes_per_connection {
                Some(_) => "",
                None => ", the client end taken as the server's",
            };
            match self.role {
                Role::Server => format!(" + {} TLS ({})", bytes(t.bytes_per_connection), t.source),
                Role::Client => {
                    format!(" + {} TLS ({}{client})", bytes(t.client_bytes()), t.source)
                }
                Role::Loopback => format!(
                    " + {} server + {} client TLS ({}{client})",
                    bytes(t.bytes_per_connection),
                    bytes(t.client_bytes()),
                    t.source
                ),
            }
        })
    }
}

/// What TLS adds to each connection's memory: the state the TLS stack keeps per connection
/// (keys, sequence numbers, buffers), given or measured.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TlsCost {
    /// The server end's bytes per connection.
    pub bytes_per_connection: u64,
    /// The client end's, when measured (a verify report's client growth); `None`: taken as the
    /// server end's (both hold one TLS connection's state).
    pub client_bytes_per_connection: Option<u64>,
    /// Where it came from: "given with --tls-cost", "measured by tune serve --verify --tls, FILE".
    pub source: String,
}

impl TlsCost {
    /// The client end's bytes per connection: measured, else the server end's.
    pub fn client_bytes(&self) -> u64 {
        self.client_bytes_per_connection
            .unwrap_or(self.bytes_per_connection)
    }
}

/// A server's cost per connection, user and kernel memory together, from a measurement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MeasuredCost {
    pub bytes_per_connection: u64,
    /// Where it came from: "measured by tune load on ws://... over 0 to 400 connections".
    pub source: String,
    /// The server's memory cgroup now (`check --pid`), for its bound.
    pub cgroup: Option<CgroupNow>,
}

/// A server's memory cgroup as the measured bound needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CgroupNow {
    pub path: String,
    pub limit: u64,
    /// The charge at no connections, page cache left out (the kernel reclaims it first).
    pub base: u64,
    /// How `base` was found, in words.
    pub base_note: String,
}

/// The memory cgroup bound at a measured cost: where the OOM killer fires, (limit − charge at
/// no connections) / cost; no reserve, since the measurement is the server's own.
fn measured_cgroup_bound(i: &Inputs, m: &MeasuredCost, cg: &CgroupNow) -> Bound {
    let each = m.bytes_per_connection + i.tls_bytes();
    let n = cg.limit.saturating_sub(cg.base) / each.max(1);
    Bound {
        connections: Some(n),
        limit: Limiter::MemoryCgroup,
        arithmetic: format!(
            "memory cgroup {} at {} per connection ({}{}): (limit {} − {} charged at no connections, {}) / {} = {} before its OOM killer",
            cg.path,
            bytes(m.bytes_per_connection),
            m.source,
            i.tls_text(),
            bytes(cg.limit),
            bytes(cg.base),
            cg.base_note,
            bytes(each),
            group(n)
        ),
    }
}

/// One limit and what it allows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Bound {
    /// Connections it allows; `None` when it does not bind here (exempt, not tracking, unknown).
    pub connections: Option<u64>,
    /// The knob, or memory.
    pub limit: Limiter,
    /// The arithmetic and the reason, in words.
    pub arithmetic: String,
}

/// What a [`Bound`] counts: a knob of the registry or a resource that is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limiter {
    /// A registry knob (RLIMIT_NOFILE hard, fs.file-max, nf_conntrack_max, ports...).
    Knob(KnobId),
    /// Memory for the sockets (usable memory less the reserve).
    Memory,
    /// The memory cgroup's limit (a container's memory limit).
    MemoryCgroup,
    /// The pids cgroup's limit (processes a container may start).
    PidsCgroup,
    /// No host-wide limit could be read.
    None,
}

impl Limiter {
    /// The name reports and JSON use: the knob's registry name, `memory` or `none`.
    pub fn name(self) -> &'static str {
        match self {
            Limiter::Knob(id) => id.name(),
            Limiter::Memory => "memory",
            Limiter::MemoryCgroup => "memory cgroup",
            Limiter::PidsCgroup => "pids cgroup",
            Limiter::None => "none",
        }
    }
}

impl std::fmt::Display for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Limiter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl PartialEq<&str> for Limiter {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

/// The estimate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Capacity {
    pub role: Role,
    pub target: u64,
    pub sockets_per_connection: u64,
    /// The binding per-process limit.
    pub per_process: Bound,
    /// The binding per-host limit (the smallest of `host_limits`).
    pub per_host: Bound,
    /// Every host-wide limit considered, binding or not.
    pub host_limits: Vec<Bound>,
    /// Processes needed to hold the target's sockets, given the per-process figure.
    pub processes_needed: Option<u64>,
    /// Source addresses needed for the client side (client and loopback roles).
    pub source_addresses_needed: Option<u64>,
    /// The host can hold the target (per-host figure at least the target).
    pub meets_target: bool,
    /// Further remarks (tcp_mem under load, soft limit below hard).
    pub notes: Vec<String>,
    /// Connections one `tune serve` worker holds: RLIMIT_NOFILE hard less the fds it keeps to
    /// drain its accept queue and its own (the figure verify predicts per server worker).
    pub per_server_worker: Option<u64>,
}

impl Capacity {
    /// The two headline sentences: per process and per host.
    pub fn summary(&self) -> Vec<String> {
        let pp = match self.per_process.connections {
            Some(n) => format!("per process: {}, {}", group(n), self.per_process.arithmetic),
            None => format!("per process: unknown, {}", self.per_process.arithmetic),
        };
        let unit = if self.role == Role::Loopback {
            "connection pairs"
        } else {
            "connections"
        };
        let ph = match self.per_host.connections {
            Some(n) => format!(
                "per host: ~{} {unit}, bound by {}",
                approx(n),
                self.per_host.arithmetic
            ),
            None => format!("per host: {}", self.per_host.arithmetic),
        };
        let mut out = vec![pp, ph];
        if let Some(w) = self.per_server_worker {
            out.push(format!(
                "per tune serve worker: {} connections (RLIMIT_NOFILE hard less the accept-queue reserve and the worker's own fds)",
                group(w)
            ));
        }
        out
    }
}

/// The estimate for `target` connections from plain values: the per-process limit, then every
/// host-wide limit, the smallest of which binds.
pub fn estimate(i: &Inputs, target: u64) -> Capacity {
    let s = i.role.sockets_per_connection();
    let mut notes = Vec::new();
    let per_process = per_process(i, &mut notes);
    let mut host = vec![memory_bound(i), file_max_bound(i), conntrack_bound(i)];
    let measured_cg = i
        .measured
        .as_ref()
        .and_then(|m| Some(measured_cgroup_bound(i, m, m.cgroup.as_ref()?)));
    if let Some(b) = measured_cg {
        host.push(b);
    } else if let Some(b) = i.memory_cgroup.as_ref().and_then(|m| {
        let user = i
            .measured
            .as_ref()
            .map_or(i.user_bytes_per_connection, |c| {
                c.bytes_per_connection
                    .saturating_sub(s * cgroup_bounds::CGROUP_BYTES_PER_SOCKET)
            });
        cgroup_bounds::memory_bound(m, s, user + i.tls_bytes())
    }) {
        host.push(b);
    }
    let per_proc_sockets = i.per_server_worker.or(per_process.connections);
    if let Some(b) = per_proc_sockets.and_then(|pp| cgroup_bounds::pids_bound(&i.pids, pp, s)) {
        host.push(b);
    }
    notes.extend(i.observation_notes.iter().cloned());
    if let (Some(w), Some(pw)) = (i.server_workers, i.per_server_worker) {
        host.push(workers_bound(w, pw, i.nofile_hard.unwrap_or(0)));
    }
    let mut source_addresses_needed = None;
    if i.role.uses_ports() {
        let (bound, needed) = ports_bound(i, target);
        host.push(bound);
        source_addresses_needed = needed;
    }
    if let Some(pages) = i.tcp_mem_max_pages {
        notes.push(format!(
            "tcp_mem: idle sockets hold no buffer pages; if every socket held one page of unread data, tcp_mem max {} pages would cover {} connections",
            group(pages),
            group(pages / s)
        ));
    }
    let per_host = host
        .iter()
        .filter(|b| b.connections.is_some())
        .min_by_key(|b| b.connections)
        .cloned()
        .unwrap_or(Bound {
            connections: None,
            limit: Limiter::None,
            arithmetic: "no host-wide limit could be read".into(),
        });
    let processes_needed = per_process
        .connections
        .filter(|&n| n > 0)
        .map(|n| (target * s).div_ceil(n));
    let meets_target = per_host.connections.is_some_and(|n| n >= target);
    Capacity {
        role: i.role,
        target,
        sockets_per_connection: s,
        per_process,
        per_host,
        host_limits: host,
        processes_needed,
        source_addresses_needed,
        meets_target,
        notes,
        per_server_worker: i.per_server_worker,
    }
}

/// A fixed number of `tune serve` workers, each holding [`Inputs::per_server_worker`].
fn workers_bound(workers: u64, per_worker: u64, hard: u64) -> Bound {
    let n = workers.saturating_mul(per_worker);
    Bound {
        connections: Some(n),
        limit: Limiter::Knob(KnobId::NofileHard),
        arithmetic: format!(
            "server workers: {} × {} connections each (RLIMIT_NOFILE hard {} less {} fds a worker keeps to drain its accept queue and for itself) = {}",
            group(workers),
            group(per_worker),
            group(hard),
            group(hard.saturating_sub(per_worker)),
            group(n)
        ),
    }
}

/// Sockets one process may hold: RLIMIT_NOFILE hard, or fs.nr_open when the hard limit can be
/// raised, minus [`FD_RESERVE`]. A soft limit below the hard one goes into `notes`.
fn per_process(i: &Inputs, notes: &mut Vec<String>) -> Bound {
    let s = i.role.sockets_per_connection();
    let Some(hard) = i.nofile_hard else {
        return Bound {
            connections: None,
            limit: Limiter::Knob(KnobId::NofileHard),
            arithmetic: "RLIMIT_NOFILE could not be read".into(),
        };
    };
    let raisable = i.can_raise_hard == Some(true);
    let (fds, limit, what) = match (raisable, i.nr_open) {
        (true, Some(nr)) if nr > hard => (
            nr,
            KnobId::NrOpen,
            format!(
                "bound by {} {} (RLIMIT_NOFILE hard {} can be raised to it: CAP_SYS_RESOURCE)",
                KnobId::NrOpen,
                group(nr),
                group(hard)
            ),
        ),
        _ => {
            let why = match i.can_raise_hard {
                Some(true) => format!("the ceiling {} allows no more", KnobId::NrOpen),
                Some(false) => "which cannot be raised here".into(),
                None => "(whether it can be raised is unknown: capabilities unreadable)".into(),
            };
            let reason = if i.can_raise_hard == Some(false) {
                format!(" ({})", i.capability_reason)
            } else {
                String::new()
            };
            (
                hard,
                KnobId::NofileHard,
                format!("bound by RLIMIT_NOFILE hard {} {why}{reason}", group(hard)),
            )
        }
    };
    if let Some(soft) = i.nofile_soft.filter(|&soft| soft < hard) {
        notes.push(format!(
            "RLIMIT_NOFILE soft {} is below hard {}: the process must raise it itself at start-up",
            group(soft),
            group(hard)
        ));
    }
    let n = fds.saturating_sub(FD_RESERVE);
    Bound {
        connections: Some(n),
        limit: Limiter::Knob(limit),
        arithmetic: format!(
            "{what}; {} − {FD_RESERVE} fds kept for the process = {} sockets{}",
            group(fds),
            group(n),
            if s == 2 {
                " (each process holds one end of its connections)"
            } else {
                ""
            }
        ),
    }
}

/// Memory: (usable memory − [`MEMORY_RESERVE_PERCENT`] % of MemTotal) / bytes per connection.
fn memory_bound(i: &Inputs) -> Bound {
    let s = i.role.sockets_per_connection();
    let (Some(free), Some(total)) = (i.mem_usable, i.mem_total) else {
        return Bound {
            connections: None,
            limit: Limiter::Memory,
            arithmetic: "memory: /proc/meminfo could not be read".into(),
        };
    };
    let plain = match &i.measured {
        Some(m) => m.bytes_per_connection.max(s * i.bytes_per_socket),
        None => s * i.bytes_per_socket + i.user_bytes_per_connection,
    };
    let per_conn = plain + i.tls_bytes();
    let reserve = total / 100 * MEMORY_RESERVE_PERCENT;
    let usable = free.saturating_sub(reserve);
    let n = usable / per_conn.max(1);
    let each = if s == 2 {
        format!(
            "{} × {} B per socket ({})",
            s,
            group(i.bytes_per_socket),
            i.bytes_per_socket_source
        )
    } else {
        format!(
            "{} B per socket ({})",
            group(i.bytes_per_socket),
            i.bytes_per_socket_source
        )
    };
    let user = if i.user_bytes_per_connection > 0 {
        format!(" + {} B user space", group(i.user_bytes_per_connection))
    } else {
        String::new()
    };
    let (each, user) = match &i.measured {
        Some(m) => (
            format!("{} measured: {}", bytes(plain), m.source),
            String::new(),
        ),
        None => (each, user),
    };
    let quick = i
        .mem_quick
        .map(|q| quick_split(q, reserve, per_conn, n))
        .unwrap_or_default();
    Bound {
        connections: Some(n),
        limit: Limiter::Memory,
        arithmetic: format!(
            "memory at ~{} per {}: (MemAvailable {} − {MEMORY_RESERVE_PERCENT}% of MemTotal {}) / ({each}{user}{}) = {}{quick}",
            bytes(per_conn),
            if s == 2 { "connection pair" } else { "connection" },
            bytes(free),
            bytes(total),
            i.tls_text(),
            group(n)
        ),
    }
}

/// The two figures near the memory wall: how many of the `n` fit in what the kernel gives at
/// once (MemFree and the inactive page cache, `quick` bytes) and how many more need the kernel
/// to reclaim the active page cache first, at a falling rate (issue 26).
fn quick_split(quick: u64, reserve: u64, per_conn: u64, n: u64) -> String {
    let at_once = (quick.saturating_sub(reserve) / per_conn.max(1)).min(n);
    if at_once >= n {
        return String::new();
    }
    format!(
        "; ~{} of them without a reclaim storm (MemFree + Inactive(file) {} − the reserve), the other {} only once the kernel reclaims the active page cache, slower",
        group(at_once),
        bytes(quick),
        group(n - at_once)
    )
}

/// fs.file-max: (file-max − files in use) / sockets per connection, unless the process is exempt.
fn file_max_bound(i: &Inputs) -> Bound {
    let s = i.role.sockets_per_connection();
    let file_max = KnobId::FileMax;
    let limit = Limiter::Knob(file_max);
    match (i.file_max, i.exempt_from_file_max) {
        (None, _) => Bound {
            connections: None,
            limit,
            arithmetic: format!("{file_max}: could not be read"),
        },
        (Some(max), Some(true)) => Bound {
            connections: None,
            limit,
            arithmetic: format!(
                "{file_max} {} does not bind: the process has CAP_SYS_ADMIN, which the kernel exempts",
                group(max)
            ),
        },
        (Some(max), _) => {
            let used = i.files_in_use.unwrap_or(0);
            let n = max.saturating_sub(used) / s;
            Bound {
                connections: Some(n),
                limit,
                arithmetic: format!(
                    "{file_max}: ({} − {} files open now) / {s} fd{} per connection = {}",
                    group(max),
                    group(used),
                    if s == 1 { "" } else { "s" },
                    group(n)
                ),
            }
        }
    }
}

/// nf_conntrack_max − nf_conntrack_count, when conntrack tracks this namespace.
fn conntrack_bound(i: &Inputs) -> Bound {
    let limit = Limiter::Knob(KnobId::ConntrackMax);
    match (i.conntrack_tracking, i.conntrack_max) {
        (Some(true), Some(max)) => {
            let count = i.conntrack_count.unwrap_or(0);
            let n = max.saturating_sub(count);
            Bound {
                connections: Some(n),
                limit,
                arithmetic: format!(
                    "nf_conntrack_max: conntrack tracks this namespace ({}; {} entries now): {} − {} = {} more connections, one entry each, IPv4 or IPv6",
                    i.conntrack_evidence
                        .as_deref()
                        .unwrap_or("judged by the entry count"),
                    group(count),
                    group(max),
                    group(count),
                    group(n)
                ),
            }
        }
        (Some(false), Some(max)) => Bound {
            connections: None,
            limit,
            arithmetic: format!(
                "nf_conntrack_max {} does not bind: conntrack is loaded but tracks nothing here ({}); a `ct state` rule or a nat table would make it bind at {}",
                group(max),
                i.conntrack_evidence.as_deref().unwrap_or("count 0"),
                group(max)
            ),
        },
        _ => Bound {
            connections: None,
            limit,
            arithmetic: "nf_conntrack_max does not bind: conntrack is not loaded".into(),
        },
    }
}

/// Ports × source addresses per destination, and the source addresses `target` needs.
fn ports_bound(i: &Inputs, target: u64) -> (Bound, Option<u64>) {
    let limit = Limiter::Knob(KnobId::IpLocalPortRange);
    let Some([lo, hi]) = i.port_range.filter(|[lo, hi]| hi >= lo) else {
        let b = Bound {
            connections: None,
            limit,
            arithmetic: "ports: ip_local_port_range could not be read".into(),
        };
        return (b, None);
    };
    let ports = crate::ports::count([lo, hi], 0);
    let needed = crate::ports::sources_needed(target, ports).unwrap_or(1);
    let (addrs, whence) = match (i.role, i.source_addresses) {
        (_, Some(a)) => (a, "given".to_string()),
        (Role::Loopback, None) if i.ipv6_loopback => (
            1,
            format!(
                "::1 alone: IPv6 loopback has one address; {} adds more",
                Suggest::input(Input::Source)
            ),
        ),
        (Role::Loopback, None) => (LOOPBACK_SOURCE_ADDRESSES, "127.0.0.0/8".to_string()),
        (_, None) => (1, "one address assumed".to_string()),
    };
    let n = ports.saturating_mul(addrs);
    let b = Bound {
        connections: Some(n),
        limit,
        arithmetic: format!(
            "ports: {} ephemeral ports ({lo}-{hi}, one range for IPv4 and IPv6) × {} source addresses ({whence}) = {} per destination; {} connections need {} source address{}",
            group(ports),
            group(addrs),
            group(n),
            group(target),
            group(needed),
            if needed == 1 { "" } else { "es" }
        ),
    };
    (b, Some(needed))
}

impl Inputs {
    /// The inputs as observed under a root.
    pub fn from_observation(obs: &Observation, role: Role) -> Inputs {
        let triple_last = |id: KnobId| match obs.get(id) {
            Some(Value::Triple([_, _, c])) => Some(*c),
            _ => None,
        };
        Inputs {
            role,
            nofile_soft: obs.int(KnobId::NofileSoft),
            nofile_hard: obs.int(KnobId::NofileHard),
            can_raise_hard: obs.facts.target_cap_sys_resource(),
            nr_open: obs.int(KnobId::NrOpen),
            file_max: obs.int(KnobId::FileMax),
            files_in_use: obs.facts.file_nr.map(|f| f.in_use()),
            exempt_from_file_max: obs.facts.target_exempt_from_file_max(),
            conntrack_max: obs.int(KnobId::ConntrackMax),
            conntrack_count: obs.int(KnobId::ConntrackCount),
            conntrack_tracking: obs.conntrack_tracking(),
            port_range: match obs.get(KnobId::IpLocalPortRange) {
                Some(Value::Range(r)) => Some(*r),
                _ => None,
            },
            source_addresses: None,
            ipv6_loopback: false,
            mem_usable: obs.facts.usable_memory,
            mem_quick: obs.facts.quick_memory,
            mem_total: obs.int(KnobId::MemoryTotal),
            bytes_per_socket: obs.facts.bytes_per_socket(),
            bytes_per_socket_source: if obs.facts.socket_cost.is_some() {
                "from /proc/slabinfo".into()
            } else {
                "default, /proc/slabinfo unreadable".into()
            },
            user_bytes_per_connection: 0,
            tcp_mem_max_pages: triple_last(KnobId::TcpMem),
            capability_reason: obs.facts.capability_reason().into(),
            conntrack_evidence: obs.conntrack_evidence(),
            memory_cgroup: obs
                .facts
                .container
                .as_ref()
                .and_then(|c| c.memory().cloned()),
            pids: obs
                .facts
                .container
                .as_ref()
                .map_or_else(Vec::new, |c| c.pids().to_vec()),
            per_server_worker: match role {
                Role::Client => None,
                _ => obs.int(KnobId::NofileHard).map(|h| {
                    embedded_server::server::per_worker_capacity(
                        h,
                        embedded_server::server::FD_RESERVE,
                    )
                }),
            },
            observation_notes: observation_notes(obs),
            server_workers: None,
            measured: None,
            tls: None,
        }
    }
}

/// Remarks about what the observation could not see as the target process sees it.
fn observation_notes(obs: &Observation) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(pid), Some(c)) = (obs.facts.pid, obs.facts.container.as_ref()) {
        if c.same_netns == Some(false) {
            out.push(format!(
                "process {pid} is in another network namespace: the net.* sysctls, ports and conntrack above are tune's own namespace's, not that process's; run tune there (nsenter --net=/proc/{pid}/ns/net tune check ...)"
            ));
        }
    }
    out
}

/// The prediction for `target` connections in `role` on the observed host: what the verify run compares with.
pub fn predict(obs: &Observation, target: u64, role: Role) -> Capacity {
    estimate(&Inputs::from_observation(obs, role), target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figures of the development machine (host facts), as plain values.
    fn this_host(role: Role) -> Inputs {
        Inputs {
            role,
            nofile_soft: Some(20000),
            nofile_hard: Some(20000),
            can_raise_hard: Some(false),
            nr_open: Some(1048576),
            file_max: Some(2466170),
            files_in_use: Some(450),
            exempt_from_file_max: Some(true),
            conntrack_max: Some(262144),
            conntrack_count: Some(0),
            conntrack_tracking: Some(false),
            port_range: Some([32768, 60999]),
            source_addresses: None,
            ipv6_loopback: false,
            mem_usable: Some(18_000_000_000),
            mem_quick: None,
            mem_total: Some(24_000_000_000),
            bytes_per_socket: 4160,
            bytes_per_socket_source: "slabinfo".into(),
            user_bytes_per_connection: 0,
            tcp_mem_max_pages: Some(575796),
            capability_reason: "no CAP_SYS_RESOURCE".into(),
            conntrack_evidence: None,
            memory_cgroup: None,
            pids: Vec::new(),
            per_server_worker: None,
            observation_notes: Vec::new(),
            server_workers: None,
            measured: None,
            tls: None,
        }
    }

    #[test]
    fn loopback_tls_counts_both_ends() {
        let tls = TlsCost {
            bytes_per_connection: 3_600,
            client_bytes_per_connection: Some(4_300),
            source: "measured".into(),
        };
        let mut i = this_host(Role::Loopback);
        i.tls = Some(tls.clone());
        assert_eq!(i.tls_bytes(), 7_900);
        let m = memory_bound(&i);
        // (18 GB − 5% of 24 GB) / (2 × 4,160 + 3,600 + 4,300) = 16.8 GB / 16,220 B.
        assert_eq!(m.connections, Some(16_800_000_000 / 16_220));
        assert!(
            m.arithmetic.contains("+ 3.6 KB server + 4.3 KB client TLS"),
            "{}",
            m.arithmetic
        );
        // Each end alone holds its own.
        i.role = Role::Server;
        assert_eq!(i.tls_bytes(), 3_600);
        i.role = Role::Client;
        assert_eq!(i.tls_bytes(), 4_300);
        // Without a client figure the client end is taken as the server's, and says so.
        i.role = Role::Loopback;
        i.tls = Some(TlsCost {
            client_bytes_per_connection: None,
            ..tls
        });
        assert_eq!(i.tls_bytes(), 7_200);
        assert!(memory_bound(&i)
            .arithmetic
            .contains("the client end taken as the server's"));
    }

    #[test]
    fn the_memory_bound_says_what_fits_without_a_reclaim_storm() {
        // 10 GB given at once, 1 GB reserve, 10 kB each: 900,000 of the 1.7M at once.
        let t = quick_split(10_000_000_000, 1_000_000_000, 10_000, 1_700_000);
        assert!(
            t.contains("~900,000 of them without a reclaim storm"),
            "{t}"
        );
        assert!(t.contains("the other 800,000"), "{t}");
        // All of it given at once: nothing to add.
        assert_eq!(
            quick_split(30_000_000_000, 1_000_000_000, 10_000, 1_700_000),
            ""
        );
        let mut i = this_host(Role::Loopback);
        i.mem_quick = Some(8_000_000_000);
        let b = memory_bound(&i);
        assert!(
            b.arithmetic.contains("without a reclaim storm"),
            "{}",
            b.arithmetic
        );
    }

    #[test]
    fn per_process_is_bound_by_a_hard_limit_that_cannot_be_raised() {
        let c = estimate(&this_host(Role::Server), 1_000_000);
        assert_eq!(c.per_process.connections, Some(19_990));
        assert_eq!(c.per_process.limit, Limiter::Knob(KnobId::NofileHard));
        assert!(c
            .per_process
            .arithmetic
            .contains("cannot be raised here (no CAP_SYS_RESOURCE)"));
        assert!(
            c.summary()[0].starts_with("per process: 19,990, bound by RLIMIT_NOFILE hard 20,000")
        );
        // 1M sockets over 19,990 per process
        assert_eq!(c.processes_needed, Some(51));
    }

    #[test]
    fn per_process_rises_to_nr_open_with_cap_sys_resource() {
        let mut i = this_host(Role::Server);
        i.can_raise_hard = Some(true);
        let c = estimate(&i, 1_000_000);
        assert_eq!(c.per_process.connections, Some(1048576 - FD_RESERVE));
        assert_eq!(c.per_process.limit, Limiter::Knob(KnobId::NrOpen));
        assert_eq!(c.processes_needed, Some(1));
    }

    #[test]
    fn per_host_is_bound_by_memory_when_exempt_from_file_max() {
        let c = estimate(&this_host(Role::Server), 1_000_000);
        // (18e9 - 5% of 24e9) / 4160 = 16.8e9 / 4160
        assert_eq!(c.per_host.connections, Some(16_800_000_000 / 4160));
        assert_eq!(c.per_host.limit, Limiter::Memory);
        assert!(c.meets_target);
        assert!(
            c.summary()[1].contains("bound by memory at ~4.2 KB per connection"),
            "{:?}",
            c.summary()
        );
    }

    #[test]
    fn loopback_doubles_sockets_and_needs_source_addresses() {
        let c = estimate(&this_host(Role::Loopback), 1_000_000);
        assert_eq!(c.sockets_per_connection, 2);
        assert_eq!(c.per_host.connections, Some(16_800_000_000 / 8320));
        assert!(
            c.summary()[1].contains("~8.3 KB per connection pair"),
            "{:?}",
            c.summary()
        );
        // 1M / 28,232 ports = 35.4 -> 36 source addresses
        assert_eq!(c.source_addresses_needed, Some(36));
        assert_eq!(c.processes_needed, Some(2_000_000u64.div_ceil(19_990)));
    }

    #[test]
    fn file_max_binds_without_cap_sys_admin() {
        let mut i = this_host(Role::Loopback);
        i.exempt_from_file_max = Some(false);
        let c = estimate(&i, 1_000_000);
        assert_eq!(c.per_host.limit, Limiter::Knob(KnobId::FileMax));
        assert_eq!(c.per_host.connections, Some((2466170 - 450) / 2));
        assert!(c.meets_target);
        let c = estimate(&i, 2_500_000);
        assert!(!c.meets_target);
    }

    #[test]
    fn conntrack_binds_only_when_tracking() {
        let mut i = this_host(Role::Server);
        i.conntrack_max = Some(65536);
        i.conntrack_count = Some(1000);
        let c = estimate(&i, 100_000);
        assert_ne!(c.per_host.limit, Limiter::Knob(KnobId::ConntrackMax));
        i.conntrack_tracking = Some(true);
        let c = estimate(&i, 100_000);
        assert_eq!(c.per_host.limit, Limiter::Knob(KnobId::ConntrackMax));
        assert_eq!(c.per_host.connections, Some(64536));
        assert!(!c.meets_target);
    }

    #[test]
    fn ipv6_loopback_counts_sources_like_ipv4() {
        // ::1 alone: the port range binds at 28,232 pairs (the issue's "~2.6M, bound by
        // memory" was 127.0.0.0/8's count applied to an IPv6 target).
        let mut i = this_host(Role::Loopback);
        i.ipv6_loopback = true;
        let c = estimate(&i, 40_000);
        assert_eq!(c.per_host.limit, Limiter::Knob(KnobId::IpLocalPortRange));
        assert_eq!(c.per_host.connections, Some(28_232));
        assert!(!c.meets_target);
        assert!(
            c.per_host.arithmetic.contains("::1 alone"),
            "{}",
            c.per_host.arithmetic
        );
        assert!(c
            .per_host
            .arithmetic
            .contains("one range for IPv4 and IPv6"));
        // Sources from --source (an AnyIP /64 with a count): ports × sources, as for IPv4.
        i.source_addresses = Some(3);
        let c = estimate(&i, 60_000);
        assert!(c.meets_target);
        let ports = c
            .host_limits
            .iter()
            .find(|b| b.limit == Limiter::Knob(KnobId::IpLocalPortRange))
            .unwrap();
        assert_eq!(ports.connections, Some(3 * 28_232));
    }

    #[test]
    fn a_client_with_one_address_is_bound_by_ports() {
        let c = estimate(&this_host(Role::Client), 100_000);
        assert_eq!(c.per_host.limit, Limiter::Knob(KnobId::IpLocalPortRange));
        assert_eq!(c.per_host.connections, Some(28_232));
        assert_eq!(c.source_addresses_needed, Some(4));
        assert!(!c.meets_target);
        let mut i = this_host(Role::Client);
        i.source_addresses = Some(4);
        assert!(estimate(&i, 100_000).meets_target);
    }

    #[test]
    fn unknown_values_do_not_become_zero() {
        let mut i = this_host(Role::Server);
        i.nofile_hard = None;
        i.mem_usable = None;
        i.file_max = None;
        i.conntrack_tracking = None;
        let c = estimate(&i, 10);
        assert_eq!(c.per_process.connections, None);
        assert_eq!(c.per_host.connections, None);
        assert!(!c.meets_target);
        assert_eq!(c.processes_needed, None);
    }

    #[test]
    fn soft_below_hard_is_noted() {
        let mut i = this_host(Role::Server);
        i.nofile_soft = Some(1024);
        let c = estimate(&i, 10);
        assert!(c
            .notes
            .iter()
            .any(|n| n.contains("soft 1,024 is below hard 20,000")));
    }
}
