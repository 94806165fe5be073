//! What the verify run reads from the host, through [`Root`]: memory, slab caches, sockstat,
//! netstat/snmp counters, conntrack, the port range and the RSS of given processes. The
//! conntrack statistics parser lives here (the other parsers are in `crate::kernel`).

use std::collections::BTreeMap;

use procfs::FromRead;
use serde::Serialize;

use crate::kernel::{self, netstat::Netstat, slabinfo::SlabCache, sockstat::TcpStat};
use crate::root::Root;

/// /proc/meminfo figures, bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Mem {
    pub total: u64,
    pub free: u64,
    pub available: u64,
    pub slab: u64,
    pub slab_reclaimable: u64,
    /// What tune's memory cgroup still allows (the tightest level's headroom less the
    /// reserve); `None` when no level has a limit.
    pub cgroup_usable: Option<u64>,
}

impl Mem {
    /// Memory the run may still take: MemAvailable less the reclaimable slab that appeared
    /// since `base` (socket inodes and dentries count as reclaimable there, but an open socket
    /// holds them: host facts), so sockets are not counted as free memory.
    pub fn usable_since(&self, base: &Mem) -> u64 {
        let grown = self.slab_reclaimable.saturating_sub(base.slab_reclaimable);
        self.available.saturating_sub(grown)
    }
}

pub fn mem(root: &Root) -> anyhow::Result<Mem> {
    let text = root.read("proc/meminfo")?;
    let m = procfs::Meminfo::from_read(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("{}: {e}", root.path("proc/meminfo").display()))?;
    Ok(Mem {
        total: m.mem_total,
        free: m.mem_free,
        available: m.mem_available.unwrap_or(m.mem_free),
        slab: m.slab,
        slab_reclaimable: m.s_reclaimable.unwrap_or(0),
        cgroup_usable: crate::container::own_cgroups(root)
            .and_then(|c| c.memory)
            .and_then(|m| crate::container::memory_usable(&m)),
    })
}

pub fn slab(root: &Root) -> Option<Vec<SlabCache>> {
    kernel::slabinfo::parse(&root.read("proc/slabinfo").ok()?).ok()
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
    let s = kernel::sockstat::parse(&root.read("proc/net/sockstat").ok()?).ok()?;
    let t: TcpStat = s.tcp()?;
    Some(Sock {
        sockets_used: s.sockets_used().unwrap_or(0),
        tcp_inuse: t.inuse,
        tcp_orphan: t.orphan,
        tcp_tw: t.tw,
        tcp_alloc: t.alloc,
        tcp_mem_pages: t.mem_pages,
    })
}

/// /proc/net/netstat and /proc/net/snmp together.
pub fn netstat(root: &Root) -> Netstat {
    let mut n = Netstat::default();
    for f in ["proc/net/netstat", "proc/net/snmp"] {
        if let Some(p) = root
            .read(f)
            .ok()
            .and_then(|t| kernel::netstat::parse(&t).ok())
        {
            n.groups.extend(p.groups);
        }
    }
    n
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
    let mut out = BTreeMap::new();
    for (g, c) in WATCHED {
        if let (Some(a), Some(b)) = (before.get(g, c), after.get(g, c)) {
            out.insert(c.to_string(), b.saturating_sub(a));
        }
    }
    out
}

/// Conntrack state: entries and the failure counters summed over CPUs. All of it is the
/// network namespace tune runs in (/proc/sys/net and /proc/net follow the reader's namespace)
/// except `max`, one host-wide value the kernel holds every namespace's own count to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Conntrack {
    pub loaded: bool,
    pub count: Option<u64>,
    pub max: Option<u64>,
    pub drop: u64,
    pub insert_failed: u64,
    pub early_drop: u64,
}

pub fn conntrack(root: &Root) -> Conntrack {
    let int = |f: &str| root.read(f).ok().and_then(|t| t.trim().parse::<u64>().ok());
    let mut c = Conntrack {
        loaded: root.exists("proc/sys/net/netfilter/nf_conntrack_max"),
        count: int("proc/sys/net/netfilter/nf_conntrack_count"),
        max: int("proc/sys/net/netfilter/nf_conntrack_max"),
        ..Conntrack::default()
    };
    if let Some(stat) = root
        .read("proc/net/stat/nf_conntrack")
        .ok()
        .and_then(|t| parse_conntrack_stat(&t).ok())
    {
        c.drop = stat.get("drop").copied().unwrap_or(0);
        c.insert_failed = stat.get("insert_failed").copied().unwrap_or(0);
        c.early_drop = stat.get("early_drop").copied().unwrap_or(0);
    }
    c
}

/// Parses /proc/net/stat/nf_conntrack (a header of names, one row of hex numbers per CPU) and
/// sums each column over the CPUs, except `entries`: the namespace's entry count, printed
/// alike on every CPU's row, so it is taken once.
pub fn parse_conntrack_stat(text: &str) -> Result<BTreeMap<String, u64>, kernel::ParseError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let names: Vec<&str> = lines
        .next()
        .ok_or_else(|| kernel::ParseError {
            line: 1,
            problem: "empty nf_conntrack statistics".into(),
        })?
        .split_whitespace()
        .collect();
    let mut sums: BTreeMap<String, u64> = names.iter().map(|n| (n.to_string(), 0)).collect();
    for (i, line) in lines.enumerate() {
        let vals: Vec<&str> = line.split_whitespace().collect();
        if vals.len() != names.len() {
            return Err(kernel::ParseError {
                line: i + 2,
                problem: format!("{} names but {} values", names.len(), vals.len()),
            });
        }
        for (n, v) in names.iter().zip(vals) {
            let v = u64::from_str_radix(v, 16).map_err(|_| kernel::ParseError {
                line: i + 2,
                problem: format!("expected a hex number, found {v:?}"),
            })?;
            let sum = sums.get_mut(*n).expect("name inserted");
            if *n == "entries" {
                *sum = (*sum).max(v);
            } else {
                *sum += v;
            }
        }
    }
    Ok(sums)
}

/// Resident memory of a set of processes, bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Rss {
    pub processes: u64,
    /// VmRSS: everything resident, shared file pages counted in every process.
    pub total: u64,
    /// RssAnon: private heap and stacks, what connections can grow.
    pub anon: u64,
}

pub fn rss(root: &Root, pids: &[u32]) -> Rss {
    let mut r = Rss::default();
    for pid in pids {
        let Ok(text) = root.read(&format!("proc/{pid}/status")) else {
            continue;
        };
        let Ok(st) = procfs::process::Status::from_read(text.as_bytes()) else {
            continue;
        };
        r.processes += 1;
        r.total += st.vmrss.unwrap_or(0) * 1024;
        r.anon += st.rssanon.unwrap_or(0) * 1024;
    }
    r
}

/// net.ipv4.ip_local_port_range of the current network namespace.
pub fn port_range(root: &Root) -> Option<(u64, u64)> {
    let t = root.read("proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = t.split_whitespace().map(|w| w.parse::<u64>().ok());
    match (it.next()??, it.next()??) {
        (lo, hi) if hi >= lo => Some((lo, hi)),
        _ => None,
    }
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

    /// /proc/net/stat/nf_conntrack on Linux 6.18 (two CPUs), with made-up drops on CPU 1.
    const CT_6_18: &str = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000000  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000000
00000000  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000002 0000001a 00000000 00000000  00000000 00000000 00000000 00000000
";

    /// /proc/net/stat/nf_conntrack on Linux 6.18.44 (two CPUs), read inside the network
    /// namespace of tests/verify_conntrack.rs after its run filled the table (262,144 entries,
    /// nf_conntrack_max 262,144): the SYNs that found no free entry counted under `drop`.
    const CT_FULL_6_18_44: &str = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00040000  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000594 00000000 00000000  00000000 00000000 00000000 00000000
00040000  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000b28 00000000 00000000  00000000 00000000 00000000 00000000
";

    #[test]
    fn conntrack_stat_of_a_full_table_counts_entries_once_and_sums_drops() {
        let s = parse_conntrack_stat(CT_FULL_6_18_44).unwrap();
        assert_eq!(s["entries"], 262_144);
        assert_eq!(s["drop"], 0x594 + 0xb28);
        assert_eq!(s["insert_failed"], 0);
        assert_eq!(s["early_drop"], 0);
    }

    #[test]
    fn conntrack_stat_sums_cpus_in_hex() {
        let s = parse_conntrack_stat(CT_6_18).unwrap();
        assert_eq!(s["drop"], 26);
        assert_eq!(s["insert_failed"], 2);
        assert_eq!(s["early_drop"], 0);
        assert!(parse_conntrack_stat("").is_err());
        assert_eq!(parse_conntrack_stat("a b\n1\n").unwrap_err().line, 2);
        assert!(parse_conntrack_stat("a\nzz\n").is_err());
    }

    #[test]
    fn usable_memory_does_not_count_new_socket_slab_as_free() {
        let base = Mem {
            total: 100,
            free: 50,
            available: 80,
            slab: 10,
            slab_reclaimable: 5,
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
