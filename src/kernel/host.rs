//! The one typed reader of the host's kernel state: each method reads its file through a [`Root`]
//! and hands the text to this module's parsers, and every error names the file.
//!
//! check's observation (`knobs::observe`) reads the host through it; verify's measurements
//! and apply's process checks are meant to as well, so nothing else opens /proc.
//! Paths are relative to the root and public as constants, so a capture of a host
//! (`knobs::sources`) lists the same files this reader reads.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::cgroup;
use super::conntrack_stat::{self, Conntrack};
use super::file_nr::{self, FileNr};
use super::ktls;
use super::meminfo::{self, Meminfo};
use super::netstat::{self, Netstat};
use super::pressure::{self, Pressure};
use super::process::{self, Nofile, ProcStatus};
use super::slabinfo::{self, SlabCache, SocketCost};
use super::sockstat::{self, Sockstat};
use super::vmstat::{self, Reclaim};
use super::ParseError;
use crate::root::{Root, RootError};

pub const MEMINFO: &str = "proc/meminfo";
pub const SLABINFO: &str = "proc/slabinfo";
pub const PRESSURE_MEMORY: &str = "proc/pressure/memory";
pub const VMSTAT: &str = "proc/vmstat";
pub const SOCKSTAT: &str = "proc/net/sockstat";
pub const NETSTAT: &str = "proc/net/netstat";
pub const SNMP: &str = "proc/net/snmp";
pub const FILE_NR: &str = "proc/sys/fs/file-nr";
pub const OSRELEASE: &str = "proc/sys/kernel/osrelease";
pub const CONNTRACK_STAT: &str = "proc/net/stat/nf_conntrack";
const CONNTRACK_MAX: &str = "proc/sys/net/netfilter/nf_conntrack_max";
const CONNTRACK_COUNT: &str = "proc/sys/net/netfilter/nf_conntrack_count";
const PORT_RANGE: &str = "proc/sys/net/ipv4/ip_local_port_range";
pub const TCP_AVAILABLE_ULP: &str = "proc/sys/net/ipv4/tcp_available_ulp";
pub const MODULES: &str = "proc/modules";
const TLS_MODULE_DIR: &str = "sys/module/tls";

/// Whether the kernel offers kTLS (TLS records in the kernel), with the evidence in words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ktls {
    /// `None`: nothing under the root could tell.
    pub available: Option<bool>,
    pub evidence: String,
}

/// Why the host could not tell: the file is missing or unreadable, or its text is not the kernel's.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Reading failed; the error names the path.
    #[error(transparent)]
    Read(#[from] RootError),
    /// The text is not what the kernel writes there.
    #[error("{path}: {source}")]
    Malformed { path: PathBuf, source: ParseError },
}

impl HostError {
    /// The file does not exist (a module not loaded, a knob hidden in a child namespace, no such process).
    pub fn is_absent(&self) -> bool {
        matches!(self, HostError::Read(RootError::Absent { .. }))
    }
}

/// The /proc/sys path of a dotted sysctl name, relative to the root.
pub fn sysctl_path(name: &str) -> String {
    format!("proc/sys/{}", name.replace('.', "/"))
}

/// The proc directory of a process: `proc/self` for `None`, else `proc/<pid>`.
pub fn proc_dir(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("proc/{p}"),
        None => "proc/self".to_string(),
    }
}

/// Reads the kernel's files under one root.
#[derive(Debug, Clone, Copy)]
pub struct Host<'r> {
    root: &'r Root,
}

impl<'r> Host<'r> {
    pub fn new(root: &'r Root) -> Host<'r> {
        Host { root }
    }

    pub fn root(&self) -> &'r Root {
        self.root
    }

    /// Reads `rel` and parses it, naming the file in any error.
    fn parsed<T>(
        &self,
        rel: &str,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<T, HostError> {
        let text = self.root.read(rel)?;
        parse(&text).map_err(|source| HostError::Malformed {
            path: self.root.path(rel),
            source,
        })
    }

    /// Files every Linux /proc has in any network namespace that are missing under the root (full
    /// paths): a root without them is a broken mount (an empty hostPath, a wrong --root), not a
    /// host where every knob is absent. `None` when there is no `proc/` at all.
    pub fn missing_essentials(&self) -> Option<Vec<String>> {
        const ESSENTIAL: [&str; 3] = [MEMINFO, "proc/sys/fs/file-max", "proc/sys/fs/nr_open"];
        self.root.exists("proc").then(|| {
            ESSENTIAL
                .iter()
                .filter(|rel| !self.root.exists(rel))
                .map(|rel| self.root.path(rel).display().to_string())
                .collect()
        })
    }

    pub fn meminfo(&self) -> Result<Meminfo, HostError> {
        self.parsed(MEMINFO, meminfo::parse)
    }

    /// Memory pressure (PSI); an error on kernels built without PSI or booted with psi=0.
    pub fn memory_pressure(&self) -> Result<Pressure, HostError> {
        self.parsed(PRESSURE_MEMORY, pressure::parse)
    }

    /// The page reclaim counters of /proc/vmstat.
    pub fn reclaim(&self) -> Result<Reclaim, HostError> {
        self.parsed(VMSTAT, vmstat::parse)
    }

    /// Every slab cache (needs root: /proc/slabinfo is mode 0400).
    pub fn slabinfo(&self) -> Result<Vec<SlabCache>, HostError> {
        self.parsed(SLABINFO, slabinfo::parse)
    }

    /// Kernel memory per socket, from /proc/slabinfo.
    pub fn socket_cost(&self) -> Result<SocketCost, HostError> {
        self.slabinfo().map(|c| slabinfo::socket_cost(&c))
    }

    pub fn sockstat(&self) -> Result<Sockstat, HostError> {
        self.parsed(SOCKSTAT, sockstat::parse)
    }

    /// /proc/net/netstat alone (TcpExt, IpExt, ...).
    pub fn netstat(&self) -> Result<Netstat, HostError> {
        self.parsed(NETSTAT, netstat::parse)
    }

    /// /proc/net/netstat and /proc/net/snmp together (TcpExt and Tcp counters); a file that
    /// cannot be read or parsed leaves its groups out.
    pub fn net_counters(&self) -> Netstat {
        let mut n = Netstat::default();
        for f in [NETSTAT, SNMP] {
            if let Ok(p) = self.parsed(f, netstat::parse) {
                n.groups.extend(p.groups);
            }
        }
        n
    }

    pub fn file_nr(&self) -> Result<FileNr, HostError> {
        self.parsed(FILE_NR, file_nr::parse)
    }

    /// The kernel release (`uname -r`) of the root.
    pub fn os_release(&self) -> Result<String, HostError> {
        Ok(self.root.read(OSRELEASE)?.trim().to_string())
    }

    /// A sysctl's raw text by its dotted name (the registry parses it into a knob value).
    pub fn sysctl_text(&self, name: &str) -> Result<String, HostError> {
        Ok(self.root.read(&sysctl_path(name))?)
    }

    /// net.ipv4.ip_local_port_range of the reader's network namespace, as `[low, high]`.
    pub fn port_range(&self) -> Result<[u64; 2], HostError> {
        self.parsed(PORT_RANGE, |t| {
            let w: Vec<&str> = t.split_whitespace().collect();
            match w.as_slice() {
                [lo, hi] => {
                    let (lo, hi) = (super::number(1, lo)?, super::number(1, hi)?);
                    if lo <= hi {
                        Ok([lo, hi])
                    } else {
                        Err(ParseError::new(1, format!("low {lo} above high {hi}")))
                    }
                }
                _ => Err(ParseError::new(
                    1,
                    format!("expected two numbers (low high), found {:?}", t.trim()),
                )),
            }
        })
    }

    /// Whether the kernel offers kTLS, and the evidence: `tls` among the TCP ULPs (the module
    /// loaded or built in), else in /proc/modules or /sys/module. `available` is `None` when
    /// nothing under the root can tell (no tcp_available_ulp, an unreadable or damaged file).
    pub fn ktls(&self) -> Ktls {
        let ulp = self.parsed(TCP_AVAILABLE_ULP, |t| {
            ktls::available_ulps(t).map(|u| u.contains(&"tls"))
        });
        let module = match self.parsed(MODULES, |t| {
            ktls::module_names(t).map(|m| m.contains(&"tls"))
        }) {
            Ok(true) => Some(format!("{} lists tls", self.root.path(MODULES).display())),
            _ if self.root.is_dir(TLS_MODULE_DIR) => Some(format!(
                "{} exists",
                self.root.path(TLS_MODULE_DIR).display()
            )),
            _ => None,
        };
        let ulp_path = self.root.path(TCP_AVAILABLE_ULP).display().to_string();
        let (available, evidence) = match (ulp, module) {
            (Ok(true), _) => (Some(true), format!("{ulp_path} offers tls")),
            (_, Some(m)) => (Some(true), format!("the tls kernel module is loaded: {m}")),
            (Ok(false), None) => (
                Some(false),
                format!(
                    "no tls kernel module: {ulp_path} does not offer tls, and neither {} nor {} names it (modprobe tls loads it where the kernel ships it)",
                    self.root.path(MODULES).display(),
                    self.root.path(TLS_MODULE_DIR).display()
                ),
            ),
            (Err(e), None) => (None, format!("nothing to tell from: {e}")),
        };
        Ktls {
            available,
            evidence,
        }
    }

    /// nf_conntrack is loaded (its sysctls exist under the root).
    pub fn conntrack_loaded(&self) -> bool {
        self.root.exists(CONNTRACK_MAX)
    }

    /// Conntrack's count, max and failure counters in the reader's namespace; unreadable parts
    /// stay `None` or 0.
    pub fn conntrack(&self) -> Conntrack {
        let int = |f: &str| self.parsed(f, |t| super::number(1, t.trim())).ok();
        let c = Conntrack {
            loaded: self.conntrack_loaded(),
            count: int(CONNTRACK_COUNT),
            max: int(CONNTRACK_MAX),
            ..Conntrack::default()
        };
        match self.parsed(CONNTRACK_STAT, conntrack_stat::parse_stat) {
            Ok(stat) => c.with_stat(&stat),
            Err(_) => c,
        }
    }

    /// A process: tune's own for `None`.
    pub fn process(&self, pid: Option<u32>) -> Process<'r> {
        Process {
            host: *self,
            dir: proc_dir(pid),
        }
    }
}

/// One process's files under `proc/<pid>` (or `proc/self`).
#[derive(Debug, Clone)]
pub struct Process<'r> {
    host: Host<'r>,
    dir: String,
}

impl Process<'_> {
    /// `proc/<pid>` or `proc/self`, relative to the root.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The path of one of its files, relative to the root (`proc/self/limits`).
    pub fn file(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    /// The process exists (its `limits` file is there), else the full path that is missing.
    pub fn exists(&self) -> Result<(), String> {
        let limits = self.file("limits");
        if self.host.root.exists(&limits) {
            Ok(())
        } else {
            Err(self.host.root.path(&limits).display().to_string())
        }
    }

    /// CapEff and resident memory, from `status`.
    pub fn status(&self) -> Result<ProcStatus, HostError> {
        self.host
            .parsed(&self.file("status"), process::parse_status)
    }

    /// RLIMIT_NOFILE, from `limits`.
    pub fn nofile(&self) -> Result<Nofile, HostError> {
        self.host
            .parsed(&self.file("limits"), process::parse_nofile)
    }

    /// It has exited (a zombie its parent has not reaped yet, or gone) rather than running.
    pub fn exited(&self) -> bool {
        match self.host.parsed(&self.file("stat"), process::parse_stat) {
            Ok((state, _)) => matches!(state, 'Z' | 'X'),
            Err(_) => true,
        }
    }

    /// Start time in clock ticks since boot, from `stat`: with the pid it names one process.
    pub fn start_time(&self) -> Result<u64, HostError> {
        self.host
            .parsed(&self.file("stat"), process::parse_start_time)
    }
}

impl Host<'_> {
    /// The memory cgroup of process `pid` (`None`: no memory controller for it here).
    pub fn memory_cgroup_of(&self, pid: u32) -> Result<Option<cgroup::MemoryAt>, HostError> {
        let rel = format!("{}/cgroup", proc_dir(Some(pid)));
        let v2_has_memory = |mnt: &str| {
            self.root
                .read(&format!("{mnt}/cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|w| w == "memory"))
        };
        self.parsed(&rel, |t| cgroup::memory_at_for_process(t, v2_has_memory))
    }

    /// One memory cgroup's own figures now (`None`: its usage file is gone or unreadable).
    pub fn memory_level(&self, at: &cgroup::MemoryAt) -> Option<cgroup::MemoryLevel> {
        let files = |p: &str| self.root.read(&format!("{}{p}", at.mount)).ok();
        let level = cgroup::memory_level(&files, at.version, &at.path);
        level.usage.is_some().then_some(level)
    }

    /// File pages (reclaimable page cache) charged to a memory cgroup, from memory.stat.
    pub fn memory_file_pages(&self, at: &cgroup::MemoryAt) -> Option<u64> {
        let stat = self
            .parsed(&at.file("memory.stat"), cgroup::parse_keyed)
            .ok()?;
        cgroup::file_pages(at.version, &stat)
    }

    /// Major page faults of a memory cgroup's processes so far (memory.stat).
    pub fn memory_major_faults(&self, at: &cgroup::MemoryAt) -> Option<u64> {
        let stat = self
            .parsed(&at.file("memory.stat"), cgroup::parse_keyed)
            .ok()?;
        cgroup::major_faults(at.version, &stat)
    }

    /// The processes in a cgroup (`cgroup.procs`).
    pub fn cgroup_procs(&self, at: &cgroup::MemoryAt) -> Result<Vec<u32>, HostError> {
        self.parsed(&at.file("cgroup.procs"), cgroup::parse_procs)
    }

    /// Bytes the host's socket caches hold now ([`slabinfo::SOCKET_CACHES`], every object).
    pub fn socket_slab(&self) -> Result<u64, HostError> {
        let caches = self.slabinfo()?;
        Ok(caches
            .iter()
            .filter(|c| slabinfo::SOCKET_CACHES.contains(&c.name.as_str()))
            .map(SlabCache::bytes_total)
            .sum())
    }
}

impl Process<'_> {
    /// Open fds that are sockets (`socket:[inode]` links in `fd/`); `None`: the process is gone.
    pub fn socket_count(&self) -> Option<u64> {
        let dir = self.file("fd");
        if !self.host.root.exists(&dir) {
            return None;
        }
        let fds = self.host.root.list_dir(&dir).ok()?;
        Some(
            fds.iter()
                .filter_map(|fd| self.host.root.read_link(&format!("{dir}/{fd}")).ok())
                .filter(|l| l.to_string_lossy().starts_with("socket:"))
                .count() as u64,
        )
    }
}

/// Resident memory of a set of processes, bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Rss {
    /// Processes whose status could be read.
    pub processes: u64,
    /// VmRSS summed: shared file pages counted in every process.
    pub total: u64,
    /// RssAnon summed: private heap and stacks, what connections can grow.
    pub anon: u64,
}

impl Host<'_> {
    /// Resident memory of `pids` summed; processes gone meanwhile are left out.
    pub fn rss(&self, pids: &[u32]) -> Rss {
        let mut r = Rss::default();
        for st in pids
            .iter()
            .filter_map(|p| self.process(Some(*p)).status().ok())
        {
            r.processes += 1;
            r.total = r.total.saturating_add(st.rss);
            r.anon = r.anon.saturating_add(st.rss_anon);
        }
        r
    }
}

/// Sums of counters by name, for diffing two readings (`after - before`).
pub fn growth(
    before: &Netstat,
    after: &Netstat,
    watched: &[(&str, &str)],
) -> BTreeMap<String, u64> {
    watched
        .iter()
        .filter_map(|(g, c)| {
            let (a, b) = (before.get(g, c)?, after.get(g, c)?);
            Some((c.to_string(), b.saturating_sub(a)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_live_host() {
        let root = Root::host();
        let h = Host::new(&root);
        let m = h.meminfo().unwrap();
        assert!(m.total > m.free && m.free > 0);
        assert!(h.sockstat().unwrap().tcp().is_some());
        assert!(h.netstat().unwrap().get("TcpExt", "ListenDrops").is_some());
        assert!(h.net_counters().get("Tcp", "ActiveOpens").is_some());
        let [lo, hi] = h.port_range().unwrap();
        assert!(lo <= hi);
        assert!(h.file_nr().unwrap().in_use() > 0);
        assert!(!h.os_release().unwrap().is_empty());
        let me = h.process(None);
        assert!(me.nofile().unwrap().hard >= me.nofile().unwrap().soft);
        assert!(me.start_time().unwrap() > 0);
        let r = h.rss(&[std::process::id()]);
        assert_eq!(r.processes, 1);
        assert!(r.anon > 0);
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        let h = Host::new(&root);
        let e = h.meminfo().unwrap_err();
        assert!(e.is_absent());
        assert!(e.to_string().contains("proc/meminfo"), "{e}");
        // The fuzzer's slabinfo (issue 11): refused with the file, line and cache named.
        root.write_atomic(
            SLABINFO,
            b"slabinfo - version: 2.1\nTCP 1 1 2368 13 18446744073709551615 : tunables 0 0 0\n",
            0o644,
        )
        .unwrap();
        let e = h.socket_cost().unwrap_err().to_string();
        assert!(
            e.contains("proc/slabinfo: line 2: TCP: 18446744073709551615 pages per slab"),
            "{e}"
        );
        root.write_atomic(PORT_RANGE, b"60999 32768\n", 0o644)
            .unwrap();
        let e = h.port_range().unwrap_err().to_string();
        assert!(
            e.contains("ip_local_port_range: line 1: low 60999 above high 32768"),
            "{e}"
        );
        assert!(!h.conntrack_loaded());
        assert_eq!(h.conntrack(), Conntrack::default());
        assert!(h.process(Some(1)).status().unwrap_err().is_absent());
        assert!(h
            .process(Some(1))
            .exists()
            .unwrap_err()
            .ends_with("proc/1/limits"));
        let empty = tempfile::tempdir().unwrap();
        let empty = Root::new(empty.path()).unwrap();
        assert_eq!(Host::new(&empty).missing_essentials(), None);
        assert_eq!(h.missing_essentials().unwrap().len(), 3);
        root.write_atomic("proc/sys/fs/nr_open", b"1048576\n", 0o644)
            .unwrap();
        let missing = h.missing_essentials().unwrap();
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert!(missing[0].ends_with("proc/meminfo"), "{missing:?}");
    }

    #[test]
    fn growth_counts_only_watched_counters_present_in_both() {
        let parse = |t: &str| netstat::parse(t).unwrap();
        let before = parse("TcpExt: ListenDrops TW\nTcpExt: 5 1\n");
        let after = parse("TcpExt: ListenDrops TW\nTcpExt: 9 7\n");
        let g = growth(
            &before,
            &after,
            &[("TcpExt", "ListenDrops"), ("Tcp", "RetransSegs")],
        );
        assert_eq!(g.len(), 1);
        assert_eq!(g["ListenDrops"], 4);
    }
}
