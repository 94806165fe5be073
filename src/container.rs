//! What a container changes about capacity: memory and pids cgroups, the user namespace, conntrack and the network namespace, read once through the root, and the bounds they set.
//!
//! [`Container::read`] gathers the facts for tune itself or a `--pid`; the functions
//! below it are pure and turn them into the capacity model's bounds and reasons.

use crate::capacity::{bytes, group, Bound, Limiter};
use crate::kernel::cgroup::{self, Cgroups, MemoryCgroup, PidsLevel};
use crate::kernel::userns::{self, Extent};
use crate::probe;
use crate::root::Root;

/// Memory a memory cgroup is charged per TCP socket of a loopback pair, measured here:
/// `tune serve --verify` in a child v1 memory cgroup (Linux 6.18.44) was charged 116.2 MB at
/// 20,000 pairs and 224.9 MB at 40,000 (memory.max_usage_in_bytes; 97% of it memory.kmem):
/// 5.62 KB per pair with the run's own processes included, 5.43 KB at the margin. Less than the
/// host's slab per socket (/proc/slabinfo): the /proc/PID/fd scanner of these machines is
/// charged to its own cgroup, and not every cache is accounted.
pub const CGROUP_BYTES_PER_SOCKET: u64 = 2_810;

/// Share of the binding cgroup limit left free, as [`crate::capacity::MEMORY_RESERVE_PERCENT`]
/// is of MemTotal: at the limit the kernel reclaims, then its OOM killer picks a process.
pub const CGROUP_RESERVE_PERCENT: u64 = 5;

/// Kept free on top of the reserve when predicting, as the verify watchdog keeps its margin
/// (`verify::watchdog::MARGIN`, 16 MiB) for what it cannot see coming.
pub const CGROUP_SLACK: u64 = 16 << 20;

/// How the memory limit of a container is raised, by what made it.
pub const MEMORY_CGROUP_FIXES: [&str; 3] = [
    "docker run --memory=SIZE (or memory: in compose)",
    "Kubernetes: resources.limits.memory of the container",
    "systemd: MemoryMax= in the unit (systemctl set-property UNIT MemoryMax=SIZE)",
];

/// How the pids limit of a container is raised.
pub const PIDS_CGROUP_FIXES: [&str; 3] = [
    "docker run --pids-limit=N",
    "Kubernetes: the kubelet's podPidsLimit",
    "systemd: TasksMax= in the unit",
];

/// The container facts of one process.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Container {
    /// `None` when /proc/PID/cgroup could not be read or parsed (`cgroup_note` says why).
    pub cgroups: Option<Cgroups>,
    pub cgroup_note: Option<String>,
    /// The process's uid_map; `None` when unreadable.
    pub uid_map: Option<Vec<Extent>>,
    /// Whether conntrack tracks the namespace tune runs in (probed only there).
    pub conntrack: probe::conntrack::Tracking,
    /// For `--pid`: does the process share tune's network namespace? `None`: not asked or unknown.
    pub same_netns: Option<bool>,
}

impl Container {
    /// Reads the facts for `pid` (tune itself when `None`) under `root`. The conntrack probe runs
    /// in tune's namespace, so for a `--pid` in another namespace it is not run.
    pub fn read(root: &Root, pid: Option<u32>) -> Container {
        let proc = match pid {
            Some(p) => format!("proc/{p}"),
            None => "proc/self".into(),
        };
        let files = |p: &str| root.read(p).ok();
        let (cgroups, cgroup_note) = match root.read(&format!("{proc}/cgroup")) {
            Err(e) => (None, Some(e.to_string())),
            Ok(text) => match cgroup::for_process(&files, &text) {
                Ok(c) => (Some(c), None),
                Err(e) => (
                    None,
                    Some(format!(
                        "{}: {e}",
                        root.path(&format!("{proc}/cgroup")).display()
                    )),
                ),
            },
        };
        let uid_map = root
            .read(&format!("{proc}/uid_map"))
            .ok()
            .and_then(|t| userns::parse(&t).ok());
        let same_netns = pid.and_then(|p| probe::netns::same_as_ours(root, p));
        let conntrack = if same_netns == Some(false) {
            probe::conntrack::Tracking::Unknown {
                why: format!(
                    "process {} is in another network namespace",
                    pid.unwrap_or_default()
                ),
            }
        } else {
            probe::conntrack::probe(root)
        };
        Container {
            cgroups,
            cgroup_note,
            uid_map,
            conntrack,
            same_netns,
        }
    }

    /// `Some(true)` when the process is in a user namespace other than the initial one.
    pub fn in_user_namespace(&self) -> Option<bool> {
        self.uid_map.as_ref().map(|m| !userns::is_initial(m))
    }

    pub fn memory(&self) -> Option<&MemoryCgroup> {
        self.cgroups.as_ref()?.memory.as_ref()
    }

    pub fn pids(&self) -> &[PidsLevel] {
        self.cgroups.as_ref().map_or(&[], |c| &c.pids)
    }
}

/// tune's own cgroups (its workers inherit them), for the verify run's samples; `None` when
/// /proc/self/cgroup cannot be read.
pub fn own_cgroups(root: &Root) -> Option<Cgroups> {
    let files = |p: &str| root.read(p).ok();
    cgroup::for_process(&files, &root.read("proc/self/cgroup").ok()?).ok()
}

/// The files [`Container::read`] reads under `root` for `pid` (besides the probes, which need
/// the live host): what a captured `--root` tree must hold. Found by reading them once, since the
/// cgroup paths come from /proc/PID/cgroup.
pub fn sources(root: &Root, pid: Option<u32>) -> Vec<String> {
    let proc = match pid {
        Some(p) => format!("proc/{p}"),
        None => "proc/self".into(),
    };
    let seen = std::cell::RefCell::new(vec![format!("{proc}/cgroup"), format!("{proc}/uid_map")]);
    let files = |p: &str| {
        let text = root.read(p).ok();
        if text.is_some() {
            seen.borrow_mut().push(p.to_string());
        }
        text
    };
    if let Ok(text) = root.read(&format!("{proc}/cgroup")) {
        let _ = cgroup::for_process(&files, &text);
    }
    let mut out = seen.into_inner();
    out.sort();
    out.dedup();
    out
}

/// Why a capability held in the process's user namespace does not count, for reason lines.
pub const USERNS_REASON: &str =
    "user namespace (rootless container): the kernel checks it in the initial user namespace";

/// Bytes a run may still have charged to the memory cgroup: the binding level's headroom less
/// [`CGROUP_RESERVE_PERCENT`] of its limit. `None` when no level has a limit.
pub fn memory_usable(m: &MemoryCgroup) -> Option<u64> {
    let b = m.binding()?;
    let limit = b.effective_limit()?;
    Some(
        b.headroom()?
            .saturating_sub(limit / 100 * CGROUP_RESERVE_PERCENT),
    )
}

/// The memory cgroup as a host-side bound: usable bytes over what one connection is charged.
/// `None` when no level has a limit (the cgroup does not bind).
pub fn memory_bound(
    m: &MemoryCgroup,
    sockets_per_connection: u64,
    user_bytes: u64,
) -> Option<Bound> {
    let b = m.binding()?;
    let limit = b.effective_limit()?;
    let usable = memory_usable(m)?.saturating_sub(CGROUP_SLACK);
    let per_conn = sockets_per_connection * CGROUP_BYTES_PER_SOCKET + user_bytes;
    let n = usable / per_conn.max(1);
    let which = match (b.limit, b.high) {
        (_, Some(h)) if Some(h) == b.effective_limit() => "memory.high",
        _ if m.version == cgroup::Version::V1 => "memory.limit_in_bytes",
        _ => "memory.max",
    };
    let user = if user_bytes > 0 {
        format!(" + {} B user space", group(user_bytes))
    } else {
        String::new()
    };
    Some(Bound {
        connections: Some(n),
        limit: Limiter::MemoryCgroup,
        arithmetic: format!(
            "memory cgroup {} ({}, {which} {}): ({} − {} charged now − {CGROUP_RESERVE_PERCENT}% − {} kept) / ({sockets_per_connection} × {} B charged per socket{user}) = {}; raise it with {}",
            b.path,
            m.version.as_str(),
            bytes(limit),
            bytes(limit),
            bytes(b.usage.unwrap_or(0)),
            bytes(CGROUP_SLACK),
            group(CGROUP_BYTES_PER_SOCKET),
            group(n),
            MEMORY_CGROUP_FIXES.join(", or ")
        ),
    })
}

/// The pids cgroup as a bound: processes that can still start times connections per process.
/// `processes_needed` is what the layout needs; `None` from this function when no level limits.
pub fn pids_bound(
    levels: &[PidsLevel],
    per_process: u64,
    sockets_per_connection: u64,
) -> Option<Bound> {
    let b = cgroup::pids_binding(levels)?;
    let left = b.headroom()?;
    let n = left.saturating_mul(per_process) / sockets_per_connection.max(1);
    Some(Bound {
        connections: Some(n),
        limit: Limiter::PidsCgroup,
        arithmetic: format!(
            "pids cgroup {}: pids.max {} − {} running = {} more processes × {} sockets each / {sockets_per_connection} = {}; raise it with {}",
            b.path,
            group(b.max.unwrap_or(0)),
            group(b.current.unwrap_or(0)),
            group(left),
            group(per_process),
            group(n),
            PIDS_CGROUP_FIXES.join(", or ")
        ),
    })
}

/// One line describing the memory cgroup for a report, or why there is none.
pub fn describe_memory(c: &Container) -> String {
    match (c.memory(), &c.cgroup_note) {
        (Some(m), _) => {
            let leaf = m.leaf();
            match m.binding() {
                Some(b) => format!(
                    "memory cgroup {} ({}): {} charged; tightest limit {} at {}, {} left",
                    leaf.path,
                    m.version.as_str(),
                    bytes(leaf.usage.unwrap_or(0)),
                    bytes(b.effective_limit().unwrap_or(0)),
                    b.path,
                    bytes(b.headroom().unwrap_or(0))
                ),
                None => format!(
                    "memory cgroup {} ({}): {} charged, no limit up to the root",
                    leaf.path,
                    m.version.as_str(),
                    bytes(leaf.usage.unwrap_or(0))
                ),
            }
        }
        (None, Some(note)) => format!("memory cgroup: unknown ({note})"),
        (None, None) => "memory cgroup: none (no memory controller for this process)".into(),
    }
}

/// The lines a report shows about the container: memory cgroup, pids cgroup, user namespace,
/// conntrack, network namespace.
pub fn describe(c: &Container) -> Vec<String> {
    let mut out = vec![describe_memory(c)];
    if let Some(b) = cgroup::pids_binding(c.pids()) {
        out.push(format!(
            "pids cgroup {}: pids.max {}, {} running",
            b.path,
            group(b.max.unwrap_or(0)),
            group(b.current.unwrap_or(0))
        ));
    }
    if let Some(m) = &c.uid_map {
        out.push(format!("user namespace: {}", userns::describe(m)));
    }
    out.push(format!("conntrack: {}", c.conntrack.evidence()));
    if c.same_netns == Some(false) {
        out.push("network namespace: the process is in another one than tune".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::cgroup::{MemoryLevel, Version};

    fn level(path: &str, limit: Option<u64>, usage: u64) -> MemoryLevel {
        MemoryLevel {
            path: path.into(),
            limit,
            high: None,
            usage: Some(usage),
            kernel: None,
            sock: None,
            oom_kills: Some(0),
            limit_hits: Some(0),
        }
    }

    #[test]
    fn a_600m_cgroup_binds_at_its_usable_bytes_over_the_charged_pair() {
        let m = MemoryCgroup {
            version: Version::V1,
            levels: vec![
                level("/ours/child-600m", Some(629_145_600), 10_000_000),
                level("/ours", None, 20_000_000),
            ],
        };
        // (629,145,600 − 10,000,000 − 5% of 629,145,600 − 16 MiB) / 5,620
        let usable = 629_145_600 - 10_000_000 - 629_145_600 / 100 * 5;
        assert_eq!(memory_usable(&m), Some(usable));
        let b = memory_bound(&m, 2, 0).unwrap();
        assert_eq!(b.connections, Some((usable - (16 << 20)) / 5_620));
        assert_eq!(b.limit, "memory cgroup");
        assert!(
            b.arithmetic.contains("docker run --memory"),
            "{}",
            b.arithmetic
        );
        assert!(b.arithmetic.contains("resources.limits.memory"));
        assert!(b.arithmetic.contains("MemoryMax="));
        assert!(b.arithmetic.contains("memory.limit_in_bytes 629.1 MB"));
    }

    #[test]
    fn sources_of_the_v1_capture_are_the_files_the_walk_reads() {
        let root = Root::new(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/cgroup/v1-linux-6.18"),
        )
        .unwrap();
        let s = sources(&root, None);
        assert!(s.contains(&"proc/self/cgroup".to_string()));
        assert!(
            s.iter()
                .any(|f| f.ends_with("child-600m/memory.limit_in_bytes")),
            "{s:#?}"
        );
        assert!(
            s.iter()
                .any(|f| f == "sys/fs/cgroup/memory/memory.usage_in_bytes"),
            "{s:#?}"
        );
        assert!(
            s.iter().any(|f| f.ends_with("tune-fixture-pids/pids.max")),
            "{s:#?}"
        );
        let c = Container::read(&root, None);
        assert_eq!(
            c.memory().unwrap().binding().unwrap().limit,
            Some(629_145_600)
        );
        assert!(
            describe_memory(&c).contains("tightest limit 629.1 MB"),
            "{}",
            describe_memory(&c)
        );
        // A captured root is not probed.
        assert_eq!(c.conntrack.as_bool(), None);
    }

    #[test]
    fn no_limit_anywhere_does_not_bind() {
        let m = MemoryCgroup {
            version: Version::V2,
            levels: vec![level("/a", None, 5)],
        };
        assert!(memory_bound(&m, 2, 0).is_none());
    }

    #[test]
    fn pids_bound_multiplies_the_processes_left() {
        let l = vec![PidsLevel {
            path: "/p".into(),
            max: Some(64),
            current: Some(4),
            refused: Some(0),
        }];
        let b = pids_bound(&l, 18_912, 2).unwrap();
        assert_eq!(b.connections, Some(60 * 18_912 / 2));
        assert!(b.arithmetic.contains("--pids-limit"));
        assert!(pids_bound(&[], 18_912, 2).is_none());
    }
}
