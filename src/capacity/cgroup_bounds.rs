//! The memory and pids cgroups as bounds of the capacity model: the arithmetic on the facts
//! `container` reads (the binding level's headroom over what one connection is charged), and
//! how those limits are raised.

use super::{Bound, Limiter};
use crate::kernel::cgroup::{self, MemoryCgroup, PidsLevel};
use crate::units::{bytes, group};

/// Memory a memory cgroup is charged per TCP socket of a loopback pair, measured here:
/// `tune serve --verify` in a child v1 memory cgroup (Linux 6.18.44) was charged 116.2 MB at
/// 20,000 pairs and 224.9 MB at 40,000 (memory.max_usage_in_bytes; 97% of it memory.kmem):
/// 5.62 KB per pair with the run's own processes included, 5.43 KB at the margin. Less than the
/// host's slab per socket (/proc/slabinfo): the /proc/PID/fd scanner of these machines is
/// charged to its own cgroup, and not every cache is accounted.
pub const CGROUP_BYTES_PER_SOCKET: u64 = 2_810;

/// Share of the binding cgroup limit left free, as [`super::MEMORY_RESERVE_PERCENT`]
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
