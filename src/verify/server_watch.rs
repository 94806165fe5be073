//! The server `tune load --server-pid/--server-cgroup` watches: found once (its process, its
//! memory cgroup), sampled at each step of the ramp through `kernel::Host`, and read once more
//! at the end for the evidence of a death (process gone, OOM kills, memory at the limit).

use std::time::Instant;

use serde::Serialize;

use super::cost::ServerSample;
use crate::kernel::cgroup::{self, MemoryAt};
use crate::kernel::Host;
use crate::root::Root;
use crate::values::{Input, Refused};

/// How long the end waits for an OOM-killed server to finish exiting (closing 10,000
/// sockets takes the kernel a moment).
const EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The watched server.
#[derive(Debug, Clone)]
pub struct ServerWatch {
    pub pid: Option<u32>,
    /// The pid's start time when the watch began: a pid reused later is another process.
    start_time: Option<u64>,
    pub cgroup: Option<MemoryAt>,
    /// OOM kills and limit hits counted in the cgroup when the watch began.
    oom_kills_before: Option<u64>,
    limit_hits_before: Option<u64>,
    t0: Instant,
}

/// What the end of the run shows about the server: the evidence a death is named from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerEnd {
    pub pid: Option<u32>,
    /// The process is still there (`None`: no pid watched).
    pub alive: Option<bool>,
    /// The cgroup directory (`/sys/fs/cgroup/memory/...`).
    pub cgroup: Option<String>,
    /// OOM kills the cgroup counted during the run (v1 memory.oom_control, v2 memory.events).
    pub oom_kills: Option<u64>,
    /// Times the charge hit the limit during the run (v1 memory.failcnt, v2 `max` events).
    pub limit_hits: Option<u64>,
    pub limit: Option<u64>,
    /// The charge now and at its peak (v1 memory.max_usage_in_bytes; v2 has no peak here).
    pub charge: Option<u64>,
}

impl ServerWatch {
    /// Finds the server: `pid` must exist; the cgroup is `cgroup_dir` when given, else the
    /// pid's own memory cgroup (none is fine: then RSS and the host's slab are read).
    pub fn new(root: &Root, pid: Option<u32>, cgroup_dir: Option<&str>) -> anyhow::Result<Self> {
        let host = Host::new(root);
        if let Some(p) = pid {
            if let Err(missing) = host.process(Some(p)).exists() {
                let why = format!("no such process ({missing} does not exist)");
                return Err(Refused::new(Input::ServerPid, p, why).into());
            }
        }
        let cg = match (cgroup_dir, pid) {
            (Some(dir), _) => {
                let at = cgroup::memory_at_dir(dir).ok_or_else(|| {
                    Refused::new(
                        Input::ServerCgroup,
                        dir,
                        "not a memory cgroup directory: expected /sys/fs/cgroup/memory/PATH (cgroup v1) or /sys/fs/cgroup/PATH (v2)",
                    )
                })?;
                if host.memory_level(&at).is_none() {
                    let why = format!(
                        "{} is not readable: is it the container's memory cgroup, and is the memory controller enabled there?",
                        root.path(&at.file(match at.version {
                            cgroup::Version::V1 => "memory.usage_in_bytes",
                            cgroup::Version::V2 => "memory.current",
                        }))
                        .display()
                    );
                    return Err(Refused::new(Input::ServerCgroup, dir, why).into());
                }
                Some(at)
            }
            (None, Some(p)) => host
                .memory_cgroup_of(p)
                .map_err(|e| Refused::new(Input::ServerPid, p, e.to_string()))?,
            (None, None) => None,
        };
        let level = cg.as_ref().and_then(|at| host.memory_level(at));
        Ok(ServerWatch {
            pid,
            start_time: pid.and_then(|p| host.process(Some(p)).start_time().ok()),
            oom_kills_before: level.as_ref().and_then(|l| l.oom_kills),
            limit_hits_before: level.as_ref().and_then(|l| l.limit_hits),
            cgroup: cg,
            t0: Instant::now(),
        })
    }

    /// The server's processes: the pid, or everything in the cgroup.
    fn pids(&self, host: &Host) -> Vec<u32> {
        match (self.pid, &self.cgroup) {
            (Some(p), _) => vec![p],
            (None, Some(at)) => host.cgroup_procs(at).unwrap_or_default(),
            (None, None) => Vec::new(),
        }
    }

    /// The process is the one the watch began with.
    fn alive(&self, host: &Host) -> Option<bool> {
        let p = self.pid?;
        let proc = host.process(Some(p));
        let now = proc.start_time().ok();
        Some(now.is_some() && now == self.start_time && !proc.exited())
    }

    /// One sample with `connections` open.
    pub fn sample(&self, root: &Root, connections: u64) -> ServerSample {
        let host = Host::new(root);
        let pids = self.pids(&host);
        let alive = !pids.is_empty() && self.alive(&host) != Some(false);
        let rss = alive.then(|| host.rss(&pids)).filter(|r| r.processes > 0);
        let sockets: Option<u64> = alive
            .then(|| {
                pids.iter()
                    .map(|p| host.process(Some(*p)).socket_count())
                    .sum::<Option<u64>>()
            })
            .flatten();
        let level = self.cgroup.as_ref().and_then(|at| host.memory_level(at));
        let version = self.cgroup.as_ref().map(|at| at.version);
        ServerSample {
            seconds: self.t0.elapsed().as_secs_f64(),
            connections,
            server_sockets: sockets,
            rss: rss.map(|r| r.total),
            rss_anon: rss.map(|r| r.anon),
            cgroup_charge: level.as_ref().and_then(|l| l.usage),
            cgroup_kernel: level
                .as_ref()
                .zip(version)
                .and_then(|(l, v)| l.kernel_charged(v)),
            cgroup_file: self
                .cgroup
                .as_ref()
                .and_then(|at| host.memory_file_pages(at)),
            host_socket_slab: host.socket_slab().ok(),
        }
    }

    /// The evidence at the end of the run. A process the OOM killer chose may still be
    /// closing its sockets: it is given [`EXIT_WAIT`] to go.
    pub fn end(&self, root: &Root) -> ServerEnd {
        let host = Host::new(root);
        let killed = self
            .cgroup
            .as_ref()
            .and_then(|at| host.memory_level(at))
            .and_then(|l| l.oom_kills)
            .zip(self.oom_kills_before)
            .is_some_and(|(now, before)| now > before);
        let t = Instant::now();
        while killed && self.alive(&host) == Some(true) && t.elapsed() < EXIT_WAIT {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let level = self.cgroup.as_ref().and_then(|at| host.memory_level(at));
        let since = |now: Option<u64>, before: Option<u64>| Some(now?.saturating_sub(before?));
        ServerEnd {
            pid: self.pid,
            alive: self.alive(&host),
            cgroup: self.cgroup.as_ref().map(MemoryAt::dir),
            oom_kills: level
                .as_ref()
                .and_then(|l| since(l.oom_kills, self.oom_kills_before)),
            limit_hits: level
                .as_ref()
                .and_then(|l| since(l.limit_hits, self.limit_hits_before)),
            limit: level.as_ref().and_then(|l| l.effective_limit()),
            charge: level.as_ref().and_then(|l| l.usage),
        }
    }

    /// The memory cgroup's limit now, for the projection.
    pub fn limit(&self, root: &Root) -> Option<u64> {
        let host = Host::new(root);
        self.cgroup
            .as_ref()
            .and_then(|at| host.memory_level(at))
            .and_then(|l| l.effective_limit())
    }
}
