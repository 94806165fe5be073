//! What the verify run reads from the host, through the one host reader
//! ([`crate::kernel::host::Host`]): memory, slab caches, sockstat, the netstat/snmp counters,
//! conntrack, the port range and the RSS of given processes, in the shapes the report shows;
//! and the per-connection arithmetic over two readings (counter deltas, slab growth).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::kernel::host::{self, Host};
use crate::kernel::{netstat::Netstat, slabinfo::SlabCache};
use crate::root::Root;

pub use crate::kernel::conntrack_stat::Conntrack;
pub use crate::kernel::host::Rss;
/// /proc/meminfo figures, bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Mem {
    pub total: u64,
    pub free: u64,
    pub available: u64,
    pub slab: u64,
    pub slab_reclaimable: u64,
    /// The page cache (Cached + Buffers − Shmem): in MemAvailable, but reclaimed before use.
    pub page_cache: u64,
    /// What tune's memory cgroup still allows (the tightest level's headroom less the
    /// reserve); `None` when no level has a limit.
    pub cgroup_usable: Option<u64>,
}

impl Mem {
    /// Memory the run may still take: the one definition check's capacity uses too
    /// ([`crate::kernel::meminfo::usable`]: MemAvailable less the reclaimable slab grown since `base`).
    pub fn usable_since(&self, base: &Mem) -> u64 {
        crate::kernel::meminfo::usable(self.available, self.slab_reclaimable, base.slab_reclaimable)
    }
}

pub fn mem(root: &Root) -> anyhow::Result<Mem> {
    let m = Host::new(root).meminfo()?;
    Ok(Mem {
        total: m.total,
        free: m.free,
        available: m.available,
        slab: m.slab,
        slab_reclaimable: m.slab_reclaimable,
        page_cache: m.page_cache,
        cgroup_usable: crate::container::own_cgroups(root)
            .and_then(|c| c.memory)
            .and_then(|m| crate::capacity::cgroup_bounds::memory_usable(&m)),
    })
}

/// The host's memory pressure and reclaim counters with `m`'s page cache and MemFree, for the
/// reclaim watch of the connect phase (`None` fields: the kernel lacks the file).
pub fn pressure(root: &Root, secs: f64, open: u64, m: &Mem) -> super::reclaim::Sample {
    let h = Host::new(root);
    super::reclaim::Sample {
        secs,
        open,
        pressure: h.memory_pressure().ok(),
        reclaim: h.reclaim().ok(),
        page_cache: m.page_cache,
        free: m.free,
    }
}

pub fn slab(root: &Root) -> Option<Vec<SlabCache>> {
    Host::new(root).slabinfo().ok()
}

/// Sockets in use and the TCP line of /proc/net/sockstat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Sock {
    pub sockets_used: u64,
    pub tcp_inuse: u64,
    pub tcp_orphan: u64,
    pub tcp_tw: u64,
    pub tcp_alloc: u64,
    /// Pages of socket buffer memory (what tcp_mem limits).
    pub tcp_mem_pages: u64,
}

pub fn sockstat(root: &Root) -> Option<Sock> {
    Sock::from_sockstat(&Host::new(root).sockstat().ok()?)
}

impl Sock {
    /// The figures of a parsed /proc/net/sockstat; `None` without its TCP line.
    pub fn from_sockstat(s: &crate::kernel::sockstat::Sockstat) -> Option<Sock> {
        let t = s.tcp()?;
        Some(Sock {
            sockets_used: s.sockets_used().unwrap_or(0),
            tcp_inuse: t.inuse,
            tcp_orphan: t.orphan,
            tcp_tw: t.tw,
            tcp_alloc: t.alloc,
            tcp_mem_pages: t.mem_pages,
        })
    }
}

/// /proc/net/netstat and /proc/net/snmp together.
pub fn netstat(root: &Root) -> Netstat {
    Host::new(root).net_counters()
}

/// Counters whose growth during a run shows a limit being hit.
pub const WATCHED: &[(&str, &str)] = &[
    ("TcpExt", "ListenOverflows"),
    ("TcpExt", "ListenDrops"),
    ("TcpExt", "TCPMemoryPressures"),
    ("TcpExt", "TCPAbortOnMemory"),
    ("TcpExt", "TCPTimeWaitOverflow"),
    ("TcpExt", "TCPReqQFullDrop"),
    ("TcpExt", "TCPBacklogDrop"),
    ("TcpExt", "TCPSynRetrans"),
    ("Tcp", "AttemptFails"),
    ("Tcp", "EstabResets"),
    ("Tcp", "RetransSegs"),
];

/// Growth of the [`WATCHED`] counters between two readings (missing counters are left out).
pub fn deltas(before: &Netstat, after: &Netstat) -> BTreeMap<String, u64> {
    host::growth(before, after, WATCHED)
}

/// Conntrack's state in the network namespace tune runs in (/proc/sys/net and /proc/net follow
/// the reader's namespace), except `max`: one host-wide value the kernel holds every
/// namespace's own count to.
pub fn conntrack(root: &Root) -> Conntrack {
    Host::new(root).conntrack()
}

/// Resident memory of a set of processes (those gone meanwhile are left out).
pub fn rss(root: &Root, pids: &[u32]) -> Rss {
    Host::new(root).rss(pids)
}

/// net.ipv4.ip_local_port_range of the current network namespace.
pub fn port_range(root: &Root) -> Option<(u64, u64)> {
    Host::new(root).port_range().ok().map(|[lo, hi]| (lo, hi))
}

/// Growth of each slab cache between two readings, largest first, bytes per connection given
/// `conns` connections (caches that grew by less than 1% of the total are summed as `other`).
pub fn slab_growth(before: &[SlabCache], after: &[SlabCache], conns: u64) -> Vec<SlabGrowth> {
    let mut grown: Vec<SlabGrowth> = after
        .iter()
        .filter_map(|a| {
            let b_objs = before
                .iter()
                .find(|b| b.name == a.name)
                .map_or(0, |b| b.num_objs);
            let objs = a.num_objs.saturating_sub(b_objs);
            (objs > 0).then(|| {
                let bytes = objs * a.bytes_per_object();
                SlabGrowth {
                    cache: a.name.clone(),
                    objects: objs,
                    bytes,
                    bytes_per_connection: if conns > 0 {
                        bytes as f64 / conns as f64
                    } else {
                        0.0
                    },
                }
            })
        })
        .collect();
    grown.sort_by_key(|g| std::cmp::Reverse(g.bytes));
    let total: u64 = grown.iter().map(|g| g.bytes).sum();
    let (big, small): (Vec<_>, Vec<_>) = grown.into_iter().partition(|g| g.bytes * 100 >= total);
    let mut out = big;
    let other: u64 = small.iter().map(|g| g.bytes).sum();
    if other > 0 {
        out.push(SlabGrowth {
            cache: "other".into(),
            objects: small.iter().map(|g| g.objects).sum(),
            bytes: other,
            bytes_per_connection: if conns > 0 {
                other as f64 / conns as f64
            } else {
                0.0
            },
        });
    }
    out
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlabGrowth {
    pub cache: String,
    pub objects: u64,
    pub bytes: u64,
    pub bytes_per_connection: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_memory_does_not_count_new_socket_slab_as_free() {
        let base = Mem {
            total: 100,
            free: 50,
            available: 80,
            slab: 10,
            slab_reclaimable: 5,
            page_cache: 20,
            cgroup_usable: None,
        };
        let now = Mem {
            available: 70,
            slab_reclaimable: 25,
            ..base
        };
        assert_eq!(now.usable_since(&base), 50);
    }

    #[test]
    fn slab_growth_lists_the_socket_caches() {
        let c = |name: &str, n: u64, size: u64, per: u64, pages: u64| SlabCache {
            name: name.into(),
            active_objs: n,
            num_objs: n,
            objsize: size,
            objperslab: per,
            pagesperslab: pages,
        };
        let before = vec![c("TCP", 26, 2368, 13, 8), c("filp", 588, 192, 21, 1)];
        let after = vec![
            c("TCP", 26 + 13_000, 2368, 13, 8),
            c("filp", 588 + 21_000, 192, 21, 1),
            c("tiny", 1, 64, 64, 1),
        ];
        let g = slab_growth(&before, &after, 10_000);
        assert_eq!(g[0].cache, "TCP");
        assert_eq!(g[0].objects, 13_000);
        assert_eq!(g[0].bytes, 13_000 * 2521);
        assert!((g[0].bytes_per_connection - 3277.3).abs() < 0.1);
        assert_eq!(g[1].cache, "filp");
        assert_eq!(g.last().unwrap().cache, "other");
    }
}
