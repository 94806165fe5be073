//! What a container changes about capacity: memory and pids cgroups, the user namespace, conntrack and the network namespace, read once through the root, and the bounds they set.
//!
//! [`Container::read`] gathers the facts for tune itself or a `--pid`; the functions below it
//! describe them for reports. The bounds they set are arithmetic, in `capacity` (its
//! `cgroup_bounds`), which takes these facts as inputs.

use crate::kernel::cgroup::{self, Cgroups, MemoryCgroup, PidsLevel};
use crate::kernel::userns::{self, Extent};
use crate::probe;
use crate::root::Root;
use crate::units::{bytes, group};

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
}
