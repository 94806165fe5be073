//! Pure: the diagnosis of a verify run inside a container, from the cgroup's own counters
//! (OOM kill, pids.max refusals, the watchdog's stop under the memory limit).

use crate::capacity::cgroup_bounds::{MEMORY_CGROUP_FIXES, PIDS_CGROUP_FIXES};
use crate::kernel::cgroup::{MemoryCgroup, PidsLevel};
use crate::units::{bytes, group};

use super::{Diagnosis, MemoryStop};

fn diagnosis(limit: &str, value: String, evidence: String, fix: Vec<String>) -> Diagnosis {
    Diagnosis {
        limit: limit.into(),
        knob: None,
        side: "host".into(),
        value,
        evidence,
        fix,
        projected_connections: None,
    }
}

fn limit_words(cg: &MemoryCgroup) -> String {
    match cg.binding() {
        Some(b) => format!(
            "memory cgroup {} ({}): limit {}, {} charged",
            b.path,
            cg.version.as_str(),
            bytes(b.effective_limit().unwrap_or(0)),
            bytes(b.usage.unwrap_or(0))
        ),
        None => format!("memory cgroup {} ({})", cg.leaf().path, cg.version.as_str()),
    }
}

fn memory_fixes(target: u64, projected: u64, per: f64) -> Vec<String> {
    let mut fix = Vec::new();
    if projected < target {
        fix.push(format!(
            "{} connections need about {} more in the container's memory limit",
            group(target),
            bytes(((target - projected) as f64 * per) as u64)
        ));
    }
    fix.extend(MEMORY_CGROUP_FIXES.iter().map(|f| f.to_string()));
    fix
}

/// The watchdog stopped because the cgroup's limit, not the host's memory, was near.
pub fn memory_stop(
    cg: &MemoryCgroup,
    stop: &MemoryStop,
    established: u64,
    target: u64,
) -> Diagnosis {
    let per = stop.bytes_per_connection.max(1.0);
    let projected =
        established + (stop.usable_at_stop.saturating_sub(stop.floor) as f64 / per) as u64;
    let mut x = diagnosis(
        "memory_cgroup",
        limit_words(cg),
        format!(
            "the memory watchdog stopped opening connections at {} of {}: at {:.0} B per connection charged to the cgroup the next ones would have taken it to its limit, where the kernel's OOM killer picks a process",
            group(established),
            group(target),
            per
        ),
        memory_fixes(target, projected, per),
    );
    x.projected_connections = Some(projected);
    x
}

/// OOM kills the cgroup counted during the run, if any: the kernel killed a process of this run.
pub fn oom_kill(
    before: &MemoryCgroup,
    after: &MemoryCgroup,
    established: u64,
    target: u64,
) -> Option<Diagnosis> {
    let kills = after
        .oom_kills()?
        .saturating_sub(before.oom_kills().unwrap_or(0));
    if kills == 0 {
        return None;
    }
    let hits = after
        .leaf()
        .limit_hits
        .unwrap_or(0)
        .saturating_sub(before.leaf().limit_hits.unwrap_or(0));
    let per = match (after.leaf().usage, before.leaf().usage) {
        (Some(a), Some(b)) if established > 0 => a.saturating_sub(b) as f64 / established as f64,
        _ => 0.0,
    };
    Some(diagnosis(
        "memory_cgroup",
        limit_words(after),
        format!(
            "the kernel's OOM killer killed {} process{} of this run in its memory cgroup ({} oom_kill +{}, limit reached {} times) with {} of {} connections open",
            group(kills),
            if kills == 1 { "" } else { "es" },
            match after.version {
                crate::kernel::cgroup::Version::V1 => "memory.oom_control",
                crate::kernel::cgroup::Version::V2 => "memory.events",
            },
            group(kills),
            group(hits),
            group(established),
            group(target)
        ),
        memory_fixes(target, established, per.max(1.0)),
    ))
}

/// Forks the pids cgroup refused during the run (pids.events `max`), if any.
pub fn pids_refused(before: &[PidsLevel], after: &[PidsLevel]) -> Option<Diagnosis> {
    let refused = |l: &[PidsLevel]| l.iter().filter_map(|p| p.refused).sum::<u64>();
    let n = refused(after).saturating_sub(refused(before));
    if n == 0 {
        return None;
    }
    let b = crate::kernel::cgroup::pids_binding(after).or(after.first())?;
    Some(diagnosis(
        "pids_cgroup",
        format!(
            "pids cgroup {}: pids.max {}, {} running",
            b.path,
            b.max.map_or("max".into(), group),
            group(b.current.unwrap_or(0))
        ),
        format!(
            "the kernel refused {} fork{} of this run at pids.max (pids.events max +{})",
            group(n),
            if n == 1 { "" } else { "s" },
            group(n)
        ),
        PIDS_CGROUP_FIXES.iter().map(|f| f.to_string()).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::cgroup::{MemoryLevel, Version};

    const MB: u64 = 1 << 20;

    fn cg(usage: u64, oom: u64, hits: u64) -> MemoryCgroup {
        MemoryCgroup {
            version: Version::V1,
            levels: vec![MemoryLevel {
                path: "/ours/child".into(),
                limit: Some(400 * MB),
                high: None,
                usage: Some(usage),
                kernel: None,
                sock: None,
                oom_kills: Some(oom),
                limit_hits: Some(hits),
            }],
        }
    }

    #[test]
    fn an_oom_kill_is_named_from_the_cgroup_counters() {
        let x = oom_kill(&cg(10 * MB, 0, 0), &cg(400 * MB, 1, 461), 59_665, 80_000).unwrap();
        assert_eq!(x.limit, "memory_cgroup");
        assert!(
            x.evidence.contains("OOM killer killed 1 process"),
            "{}",
            x.evidence
        );
        assert!(
            x.evidence.contains("oom_kill +1, limit reached 461 times"),
            "{}",
            x.evidence
        );
        assert!(x.fix.iter().any(|f| f.contains("docker run --memory")));
        assert!(x.fix.iter().any(|f| f.contains("MemoryMax=")));
        assert!(oom_kill(&cg(10 * MB, 1, 0), &cg(40 * MB, 1, 0), 10, 20).is_none());
    }

    #[test]
    fn a_watchdog_stop_under_the_cgroup_names_it_and_projects() {
        let stop = MemoryStop {
            floor: 1_200 * MB,
            usable_at_start: 1_580 * MB,
            usable_at_stop: 1_200 * MB + 20 * MB,
            bytes_per_connection: 5_500.0,
            before_start: false,
            cgroup: true,
        };
        let x = memory_stop(&cg(380 * MB, 0, 0), &stop, 65_000, 100_000);
        assert_eq!(x.limit, "memory_cgroup");
        assert!(x.value.contains("limit 419.4 MB"), "{}", x.value);
        assert_eq!(x.projected_connections, Some(65_000 + (20 * MB) / 5_500));
        assert!(
            x.fix[0].contains("100,000 connections need about"),
            "{:?}",
            x.fix
        );
    }

    #[test]
    fn refused_forks_name_the_pids_cgroup() {
        let l = |refused| {
            vec![PidsLevel {
                path: "/p".into(),
                max: Some(32),
                current: Some(32),
                refused: Some(refused),
            }]
        };
        let x = pids_refused(&l(0), &l(3)).unwrap();
        assert_eq!(x.limit, "pids_cgroup");
        assert!(x.evidence.contains("refused 3 forks"));
        assert!(pids_refused(&l(3), &l(3)).is_none());
    }
}
