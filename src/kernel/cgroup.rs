//! Memory and pids cgroups, v1 and v2, from their files' text: limit, usage, kernel memory, OOM kills, and the tightest ancestor.
//!
//! The parsers take text. [`memory`] and [`pids`] walk from a process's cgroup up to
//! the root through a [`Files`] reader (a captured tree in the tests, the live
//! /sys/fs/cgroup through [`crate::root::Root`] otherwise) and return every level
//! with its own figures; the level with the least headroom binds.
//!
//! Where the files are (relative to the root, `cgroup` is the path from /proc/PID/cgroup):
//! - v1: `sys/fs/cgroup/memory/<cgroup>/memory.*`, `sys/fs/cgroup/pids/<cgroup>/pids.*`
//! - v2: `sys/fs/cgroup/<cgroup>/memory.*` and `pids.*` (the unified tree; in hybrid mode
//!   `sys/fs/cgroup/unified`, which only counts when its root lists the memory controller).
//!
//! Kernel facts the walk relies on (Documentation/admin-guide/cgroup-v1/memory.rst and
//! cgroup-v2.rst, Linux 6.18):
//! - v1 prints "no limit" as PAGE_COUNTER_MAX pages in bytes (9223372036854771712 with 4 KiB
//!   pages); v2 prints `max`.
//! - v1 charges a child to its parent only when the parent's `memory.use_hierarchy` is 1
//!   (always 1 since Linux 5.10, where the knob was made a no-op); v2 always does.
//! - Socket slab (TCP, sock_inode_cache, filp, dentry, eventpoll) is kernel memory and is
//!   charged to the cgroup that allocated it: `memory.kmem.usage_in_bytes` (v1), `slab` in
//!   `memory.stat` (v2). Both are part of usage (`memory.usage_in_bytes`, `memory.current`).
//! - OOM kills: `oom_kill` in v1 `memory.oom_control` (Linux 4.13+) and in v2 `memory.events`.

use super::{number, ParseError};

/// Any v1 limit at or above this is "no limit": PAGE_COUNTER_MAX is LONG_MAX / PAGE_SIZE pages,
/// so with any page size the unlimited value printed in bytes is above 2^62.
pub const V1_UNLIMITED_FLOOR: u64 = 1 << 62;

/// Which cgroup hierarchy a controller sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    V1,
    V2,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
    }
}

/// One line of /proc/PID/cgroup: `hierarchy-ID:controller-list:cgroup-path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub hierarchy: u32,
    /// Empty for the v2 line (`0::/path`); `name=systemd` style names are kept as they are.
    pub controllers: Vec<String>,
    /// Path from the hierarchy's root, starting with `/`.
    pub path: String,
}

/// Parses /proc/PID/cgroup.
pub fn parse_proc_cgroup(text: &str) -> Result<Vec<Membership>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ParseError::new(
                n,
                format!("expected \"ID:controllers:path\", found {line:?}"),
            ));
        };
        let hierarchy = u32::try_from(number(n, id)?)
            .map_err(|_| ParseError::new(n, format!("hierarchy id {id} is out of range")))?;
        if !path.starts_with('/') {
            return Err(ParseError::new(
                n,
                format!("cgroup path {path:?} does not start with /"),
            ));
        }
        out.push(Membership {
            hierarchy,
            controllers: ctrl
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
            path: path.to_string(),
        });
    }
    Ok(out)
}

/// Where a controller lives for a process: the v1 hierarchy that lists it, else the v2 line.
/// Returns the version and the cgroup path. Whether v2 really has the controller is for the
/// caller to check (`cgroup.controllers` at the v2 root).
pub fn locate(memberships: &[Membership], controller: &str) -> Option<(Version, String)> {
    if let Some(m) = memberships
        .iter()
        .find(|m| m.controllers.iter().any(|c| c == controller))
    {
        return Some((Version::V1, m.path.clone()));
    }
    memberships
        .iter()
        .find(|m| m.hierarchy == 0 && m.controllers.is_empty())
        .map(|m| (Version::V2, m.path.clone()))
}

/// A limit file: `max` (v2) or bytes; v1's "unlimited" figure is read as no limit (`None`).
pub fn parse_limit(text: &str) -> Result<Option<u64>, ParseError> {
    let w = single_word(text)?;
    if w == "max" {
        return Ok(None);
    }
    let v = number(1, w)?;
    Ok((v < V1_UNLIMITED_FLOOR).then_some(v))
}

/// A file holding one counter (`memory.usage_in_bytes`, `memory.current`, `pids.current`).
pub fn parse_counter(text: &str) -> Result<u64, ParseError> {
    number(1, single_word(text)?)
}

/// `memory.use_hierarchy`: 0 or 1.
pub fn parse_flag(text: &str) -> Result<bool, ParseError> {
    match single_word(text)? {
        "0" => Ok(false),
        "1" => Ok(true),
        w => Err(ParseError::new(1, format!("expected 0 or 1, found {w:?}"))),
    }
}

fn single_word(text: &str) -> Result<&str, ParseError> {
    let mut words = text.split_whitespace();
    match (words.next(), words.next()) {
        (Some(w), None) => Ok(w),
        _ => Err(ParseError::new(
            1,
            format!("expected one value, found {:?}", text.trim()),
        )),
    }
}

/// A flat-keyed file, `key value` per line: memory.stat, memory.events, memory.oom_control,
/// pids.events. Keys keep their order.
pub fn parse_keyed(text: &str) -> Result<Vec<(String, u64)>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(k), Some(v), None) => out.push((k.to_string(), number(n, v)?)),
            _ => {
                return Err(ParseError::new(
                    n,
                    format!("expected \"key value\", found {line:?}"),
                ))
            }
        }
    }
    Ok(out)
}

/// The value of `key` in a parsed keyed file.
pub fn keyed(pairs: &[(String, u64)], key: &str) -> Option<u64> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

/// Reads a file of a controller's tree by its path relative to the controller's mount
/// (`/a/b/memory.max`). `None`: absent or unreadable.
pub trait Files {
    fn read(&self, path: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Files for F {
    fn read(&self, path: &str) -> Option<String> {
        self(path)
    }
}

/// One cgroup directory's memory figures. `None`: the file is absent or unreadable.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemoryLevel {
    /// Cgroup path (`/` is the root).
    pub path: String,
    /// Hard limit: v1 `memory.limit_in_bytes`, v2 `memory.max`. `None`: no limit.
    pub limit: Option<u64>,
    /// v2 `memory.high`: the kernel throttles and reclaims above it. `None`: none.
    pub high: Option<u64>,
    /// Charged now: v1 `memory.usage_in_bytes`, v2 `memory.current`.
    pub usage: Option<u64>,
    /// Kernel memory charged: v1 `memory.kmem.usage_in_bytes`, v2 `slab` of `memory.stat`.
    pub kernel: Option<u64>,
    /// Socket buffers charged: v1 `memory.kmem.tcp.usage_in_bytes`, v2 `memory.stat` sock.
    pub sock: Option<u64>,
    /// OOM kills in this cgroup: `oom_kill` of v1 memory.oom_control or v2 memory.events.
    pub oom_kills: Option<u64>,
    /// v1 `memory.failcnt`, v2 `max` of memory.events: times usage hit the limit.
    pub limit_hits: Option<u64>,
}

impl MemoryLevel {
    /// Bytes left under this level's limit (hard, or `memory.high` when lower); `None`: no limit here.
    pub fn headroom(&self) -> Option<u64> {
        let cap = match (self.limit, self.high) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        Some(cap.saturating_sub(self.usage.unwrap_or(0)))
    }

    /// The limit in effect (the smaller of max and high).
    pub fn effective_limit(&self) -> Option<u64> {
        match (self.limit, self.high) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl MemoryLevel {
    /// The kernel part of the charge: v1 `memory.kmem.usage_in_bytes` (socket buffers are
    /// charged apart there, in kmem.tcp, and not to usage); v2 `slab` + `sock` of memory.stat
    /// (both part of memory.current).
    pub fn kernel_charged(&self, version: Version) -> Option<u64> {
        match version {
            Version::V1 => self.kernel,
            Version::V2 => Some(self.kernel? + self.sock.unwrap_or(0)),
        }
    }
}

/// A process's memory cgroup and every ancestor that charges it, leaf first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemoryCgroup {
    pub version: Version,
    pub levels: Vec<MemoryLevel>,
}

impl MemoryCgroup {
    /// The level with the least headroom, or `None` when no level has a limit.
    pub fn binding(&self) -> Option<&MemoryLevel> {
        self.levels
            .iter()
            .filter(|l| l.headroom().is_some())
            .min_by_key(|l| l.headroom())
    }

    /// Bytes that can still be charged before the tightest limit.
    pub fn headroom(&self) -> Option<u64> {
        self.binding().and_then(MemoryLevel::headroom)
    }

    /// The process's own cgroup.
    pub fn leaf(&self) -> &MemoryLevel {
        &self.levels[0]
    }

    /// OOM kills summed over the levels (a kill below the binding level counts too).
    pub fn oom_kills(&self) -> Option<u64> {
        self.levels
            .iter()
            .filter_map(|l| l.oom_kills)
            .reduce(u64::saturating_add)
    }
}

/// The ancestors of `path`, itself first, the root `/` last.
pub fn ancestors(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut p = path.trim_end_matches('/').to_string();
    loop {
        if p.is_empty() {
            out.push("/".to_string());
            return out;
        }
        out.push(p.clone());
        match p.rfind('/') {
            Some(i) => p.truncate(i),
            None => p.clear(),
        }
    }
}

fn file(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// One level's memory figures, read through `files`.
pub fn memory_level(files: &dyn Files, version: Version, dir: &str) -> MemoryLevel {
    let read = |name: &str| files.read(&file(dir, name));
    let counter = |name: &str| read(name).and_then(|t| parse_counter(&t).ok());
    let limit = |name: &str| read(name).and_then(|t| parse_limit(&t).ok()).flatten();
    let keyed_file = |name: &str| read(name).and_then(|t| parse_keyed(&t).ok());
    match version {
        Version::V1 => MemoryLevel {
            path: dir.to_string(),
            limit: limit("memory.limit_in_bytes"),
            high: None,
            usage: counter("memory.usage_in_bytes"),
            kernel: counter("memory.kmem.usage_in_bytes"),
            sock: counter("memory.kmem.tcp.usage_in_bytes"),
            oom_kills: keyed_file("memory.oom_control").and_then(|k| keyed(&k, "oom_kill")),
            limit_hits: counter("memory.failcnt"),
        },
        Version::V2 => {
            let stat = keyed_file("memory.stat");
            let events = keyed_file("memory.events");
            MemoryLevel {
                path: dir.to_string(),
                limit: limit("memory.max"),
                high: limit("memory.high"),
                usage: counter("memory.current"),
                kernel: stat.as_ref().and_then(|s| keyed(s, "slab")),
                sock: stat.as_ref().and_then(|s| keyed(s, "sock")),
                oom_kills: events.as_ref().and_then(|e| keyed(e, "oom_kill")),
                limit_hits: events.as_ref().and_then(|e| keyed(e, "max")),
            }
        }
    }
}

/// The memory cgroup at `path` and the ancestors that charge it, read through `files`
/// (paths relative to the memory controller's mount). `None` when `path` itself has no
/// memory files (controller absent there).
pub fn memory(files: &dyn Files, version: Version, path: &str) -> Option<MemoryCgroup> {
    let usage_file = match version {
        Version::V1 => "memory.usage_in_bytes",
        Version::V2 => "memory.current",
    };
    let mut levels = Vec::new();
    for dir in ancestors(path) {
        let is_root = dir == "/";
        // The v2 root has no memory.current/max; v1's root has both.
        if version == Version::V2 && is_root {
            break;
        }
        if files.read(&file(&dir, usage_file)).is_none() {
            if levels.is_empty() {
                return None;
            }
            break;
        }
        levels.push(memory_level(files, version, &dir));
        // v1: the parent charges this child only when the parent has use_hierarchy 1.
        if version == Version::V1 && !is_root {
            let parent = ancestors(&dir).get(1).cloned().unwrap_or_default();
            let hier = files
                .read(&file(&parent, "memory.use_hierarchy"))
                .and_then(|t| parse_flag(&t).ok());
            if hier == Some(false) {
                break;
            }
        }
    }
    if levels.is_empty() {
        return None;
    }
    Some(MemoryCgroup { version, levels })
}

/// One cgroup directory's pids figures.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PidsLevel {
    pub path: String,
    /// `pids.max`; `None`: `max`.
    pub max: Option<u64>,
    pub current: Option<u64>,
    /// `max` of pids.events: forks refused at the limit.
    pub refused: Option<u64>,
}

impl PidsLevel {
    pub fn headroom(&self) -> Option<u64> {
        Some(self.max?.saturating_sub(self.current.unwrap_or(0)))
    }
}

/// The pids cgroup at `path` and its ancestors (pids limits are always hierarchical), leaf first.
pub fn pids(files: &dyn Files, path: &str) -> Vec<PidsLevel> {
    let mut out = Vec::new();
    for dir in ancestors(path) {
        // The root of either version has no pids.max.
        let Some(max) = files.read(&file(&dir, "pids.max")) else {
            break;
        };
        let read = |name: &str| files.read(&file(&dir, name));
        out.push(PidsLevel {
            path: dir.clone(),
            max: parse_limit(&max).ok().flatten(),
            current: read("pids.current").and_then(|t| parse_counter(&t).ok()),
            refused: read("pids.events")
                .and_then(|t| parse_keyed(&t).ok())
                .and_then(|k| keyed(&k, "max")),
        });
    }
    out
}

/// The pids level with the least headroom.
pub fn pids_binding(levels: &[PidsLevel]) -> Option<&PidsLevel> {
    levels
        .iter()
        .filter(|l| l.headroom().is_some())
        .min_by_key(|l| l.headroom())
}

/// Mount points of the controllers, relative to the root.
pub const V1_MEMORY_MOUNT: &str = "sys/fs/cgroup/memory";
pub const V1_PIDS_MOUNT: &str = "sys/fs/cgroup/pids";
/// The unified tree: `sys/fs/cgroup` on a v2-only host, `sys/fs/cgroup/unified` in hybrid mode.
pub const V2_MOUNTS: [&str; 2] = ["sys/fs/cgroup", "sys/fs/cgroup/unified"];

/// Where one memory cgroup is: its hierarchy's version, the mount (relative to the root) and the
/// cgroup path from that mount (`/` is the mount itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemoryAt {
    pub version: Version,
    pub mount: String,
    pub path: String,
}

impl MemoryAt {
    /// The directory, as the user would type it (`/sys/fs/cgroup/memory/a/b`).
    pub fn dir(&self) -> String {
        format!(
            "/{}{}",
            self.mount,
            if self.path == "/" { "" } else { &self.path }
        )
    }

    /// A file of this cgroup, relative to the root.
    pub fn file(&self, name: &str) -> String {
        format!("{}{}", self.mount, file(&self.path, name))
    }
}

/// The memory cgroup a directory names: `/sys/fs/cgroup/memory/...` is v1's memory
/// controller; under `/sys/fs/cgroup/unified/...` or `/sys/fs/cgroup/...` it is v2's unified
/// tree. `None`: not a directory under /sys/fs/cgroup, or another v1 controller's tree.
pub fn memory_at_dir(dir: &str) -> Option<MemoryAt> {
    let rel = dir.trim_end_matches('/').trim_start_matches('/');
    let split = |mount: &str| {
        let rest = rel.strip_prefix(mount)?;
        match rest {
            "" => Some("/".to_string()),
            r if r.starts_with('/') => Some(r.to_string()),
            _ => None,
        }
    };
    if let Some(path) = split(V1_MEMORY_MOUNT) {
        return Some(MemoryAt {
            version: Version::V1,
            mount: V1_MEMORY_MOUNT.into(),
            path,
        });
    }
    // A v1 controller other than memory (`sys/fs/cgroup/pids/...`) is not a memory cgroup.
    let v1_other = [
        "cpu",
        "cpuacct",
        "cpuset",
        "blkio",
        "devices",
        "freezer",
        "pids",
        "net_cls",
        "perf_event",
        "hugetlb",
        "systemd",
    ];
    for mount in [V2_MOUNTS[1], V2_MOUNTS[0]] {
        if let Some(path) = split(mount) {
            let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
            if mount == V2_MOUNTS[0]
                && v1_other
                    .iter()
                    .any(|c| first == *c || first.starts_with(&format!("{c},")))
            {
                return None;
            }
            return Some(MemoryAt {
                version: Version::V2,
                mount: mount.into(),
                path,
            });
        }
    }
    None
}

/// The memory cgroup of a process from its /proc/PID/cgroup text; `v2_has_memory(mount)` says
/// whether a unified mount lists the memory controller (`cgroup.controllers`).
pub fn memory_at_for_process(
    proc_cgroup: &str,
    v2_has_memory: impl Fn(&str) -> bool,
) -> Result<Option<MemoryAt>, ParseError> {
    let m = parse_proc_cgroup(proc_cgroup)?;
    Ok(match locate(&m, "memory") {
        Some((Version::V1, path)) => Some(MemoryAt {
            version: Version::V1,
            mount: V1_MEMORY_MOUNT.into(),
            path,
        }),
        Some((Version::V2, path)) => {
            V2_MOUNTS
                .iter()
                .find(|mnt| v2_has_memory(mnt))
                .map(|mnt| MemoryAt {
                    version: Version::V2,
                    mount: (*mnt).into(),
                    path,
                })
        }
        None => None,
    })
}

/// File pages charged to the cgroup and its children, from memory.stat's pairs: the page
/// cache the kernel reclaims before it OOM-kills (v1 `total_inactive_file` +
/// `total_active_file`, v2 `file`). A charge less these is what must fit under the limit.
pub fn file_pages(version: Version, stat: &[(String, u64)]) -> Option<u64> {
    match version {
        Version::V1 => {
            Some(keyed(stat, "total_inactive_file")? + keyed(stat, "total_active_file")?)
        }
        Version::V2 => keyed(stat, "file"),
    }
}

/// Major page faults of the cgroup's processes so far (pages read back from disk: v1
/// `total_pgmajfault`, v2 `pgmajfault`). With no swap, these are file pages (the programs' own
/// code among them) the kernel reclaimed at the limit and the processes needed again.
pub fn major_faults(version: Version, stat: &[(String, u64)]) -> Option<u64> {
    match version {
        Version::V1 => keyed(stat, "total_pgmajfault"),
        Version::V2 => keyed(stat, "pgmajfault"),
    }
}

/// The processes of a cgroup from `cgroup.procs`, one pid a line.
pub fn parse_procs(text: &str) -> Result<Vec<u32>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            l.trim()
                .parse::<u32>()
                .map_err(|_| ParseError::new(i + 1, format!("expected a pid, found {l:?}")))
        })
        .collect()
}

/// A process's memory and pids cgroups as the kernel charges them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cgroups {
    /// `None`: no memory controller for this process (none mounted, or not in its tree).
    pub memory: Option<MemoryCgroup>,
    /// Leaf first; empty when no pids controller or no level has pids.max.
    pub pids: Vec<PidsLevel>,
}

/// The cgroups of a process from its /proc/PID/cgroup text, reading the controller files
/// through `files` (paths relative to the root: `sys/fs/cgroup/memory/a/memory.usage_in_bytes`).
pub fn for_process(files: &dyn Files, proc_cgroup: &str) -> Result<Cgroups, ParseError> {
    let m = parse_proc_cgroup(proc_cgroup)?;
    let v2_mount = V2_MOUNTS.iter().copied().find(|mnt| {
        files
            .read(&format!("{mnt}/cgroup.controllers"))
            .is_some_and(|c| c.split_whitespace().any(|w| w == "memory"))
    });
    let under = |mount: &str| {
        let mount = mount.to_string();
        move |p: &str| files.read(&format!("{mount}{p}"))
    };
    let memory = match locate(&m, "memory") {
        Some((Version::V1, path)) => memory(&under(V1_MEMORY_MOUNT), Version::V1, &path),
        Some((Version::V2, path)) => {
            v2_mount.and_then(|mnt| memory(&under(mnt), Version::V2, &path))
        }
        None => None,
    };
    let pids = match locate(&m, "pids") {
        Some((Version::V1, path)) => pids(&under(V1_PIDS_MOUNT), &path),
        Some((Version::V2, path)) => v2_mount
            .map(|mnt| pids(&under(mnt), &path))
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(Cgroups { memory, pids })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Linux 6.18.44 (this project's development machine): cat /proc/self/cgroup
    const PROC_CGROUP_6_18: &str = "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n4:memory:/process_api/30e2b3b2c5f37570d7d3424d9bdf2945\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n";

    /// A cgroup-v2 only host, as Documentation/admin-guide/cgroup-v2.rst gives /proc/PID/cgroup.
    const PROC_CGROUP_V2: &str = "0::/system.slice/app.service\n";

    #[test]
    fn a_directory_names_its_memory_cgroup_and_version() {
        let v1 = memory_at_dir("/sys/fs/cgroup/memory/process_api/x/").unwrap();
        assert_eq!(
            (v1.version, v1.path.as_str()),
            (Version::V1, "/process_api/x")
        );
        assert_eq!(v1.dir(), "/sys/fs/cgroup/memory/process_api/x");
        assert_eq!(
            v1.file("memory.usage_in_bytes"),
            "sys/fs/cgroup/memory/process_api/x/memory.usage_in_bytes"
        );
        let v2 = memory_at_dir("/sys/fs/cgroup/system.slice/app.service").unwrap();
        assert_eq!(
            (v2.version, v2.mount.as_str()),
            (Version::V2, "sys/fs/cgroup")
        );
        let hybrid = memory_at_dir("/sys/fs/cgroup/unified/a").unwrap();
        assert_eq!(hybrid.mount, "sys/fs/cgroup/unified");
        assert!(memory_at_dir("/sys/fs/cgroup/pids/a").is_none());
        assert!(memory_at_dir("/sys/fs/cgroupx/a").is_none());
        assert!(memory_at_dir("/tmp/a").is_none());
        let root = memory_at_dir("/sys/fs/cgroup/memory").unwrap();
        assert_eq!(root.dir(), "/sys/fs/cgroup/memory");
        // v1 memory.stat (Linux 6.18.44, trimmed) and v2's `file`.
        let stat =
            parse_keyed("cache 8282112\ntotal_inactive_file 7933952\ntotal_active_file 348160\n")
                .unwrap();
        assert_eq!(file_pages(Version::V1, &stat), Some(8_282_112));
        let v2stat = parse_keyed("anon 100\nfile 4096\nslab 20\nsock 3\n").unwrap();
        assert_eq!(file_pages(Version::V2, &v2stat), Some(4096));
        // A Node server thrashing at its limit (v1 memory.stat, Linux 6.18.44, trimmed).
        let thrash = parse_keyed(
            "cache 1200128\nrss 48529408\npgmajfault 2020\ntotal_cache 1200128\ntotal_rss 48529408\ntotal_pgmajfault 2020\n",
        )
        .unwrap();
        assert_eq!(major_faults(Version::V1, &thrash), Some(2020));
        let v2 = parse_keyed("anon 100\nfile 4096\npgfault 90\npgmajfault 7\n").unwrap();
        assert_eq!(major_faults(Version::V2, &v2), Some(7));
        assert_eq!(parse_procs("12\n34\n").unwrap(), vec![12, 34]);
        assert!(parse_procs("x\n").is_err());
    }

    #[test]
    fn proc_cgroup_finds_the_v1_memory_hierarchy() {
        let m = parse_proc_cgroup(PROC_CGROUP_6_18).unwrap();
        assert_eq!(m.len(), 10);
        assert_eq!(
            locate(&m, "memory"),
            Some((
                Version::V1,
                "/process_api/30e2b3b2c5f37570d7d3424d9bdf2945".to_string()
            ))
        );
        assert_eq!(locate(&m, "pids"), Some((Version::V1, "/".to_string())));
        let m = parse_proc_cgroup(PROC_CGROUP_V2).unwrap();
        assert_eq!(
            locate(&m, "memory"),
            Some((Version::V2, "/system.slice/app.service".to_string()))
        );
    }

    #[test]
    fn proc_cgroup_rejects_garbage_naming_the_line() {
        let e = parse_proc_cgroup("0::/\nnonsense\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse_proc_cgroup("x:memory:/").is_err());
        assert!(parse_proc_cgroup("4:memory:relative").is_err());
    }

    #[test]
    fn limits_read_max_and_the_v1_unlimited_figure_as_none() {
        // Linux 6.18.44, v1, 4 KiB pages: cat memory.limit_in_bytes of an unlimited cgroup
        assert_eq!(parse_limit("9223372036854771712\n").unwrap(), None);
        assert_eq!(parse_limit("max\n").unwrap(), None);
        assert_eq!(parse_limit("629145600\n").unwrap(), Some(629_145_600));
        assert!(parse_limit("lots\n").is_err());
        assert!(parse_limit("1 2\n").is_err());
        assert!(parse_flag("2\n").is_err());
    }

    #[test]
    fn oom_control_is_keyed() {
        // Linux 6.18.44: cat memory.oom_control
        let k = parse_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        assert_eq!(keyed(&k, "oom_kill"), Some(3));
        assert!(parse_keyed("a 1 2\n").is_err());
    }

    fn tree(files: &[(&str, &str)]) -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_tightest_ancestor_binds_in_v2() {
        let t = tree(&[
            ("/a/memory.max", "1000000\n"),
            ("/a/memory.high", "max\n"),
            ("/a/memory.current", "900000\n"),
            ("/a/b/memory.max", "max\n"),
            ("/a/b/memory.high", "max\n"),
            ("/a/b/memory.current", "100000\n"),
            (
                "/a/b/memory.events",
                "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n",
            ),
        ]);
        let f = |p: &str| t.get(p).cloned();
        let m = memory(&f, Version::V2, "/a/b").unwrap();
        assert_eq!(m.levels.len(), 2);
        assert_eq!(m.binding().unwrap().path, "/a");
        assert_eq!(m.headroom(), Some(100_000));
        assert_eq!(m.oom_kills(), Some(1));
        assert_eq!(m.leaf().limit_hits, Some(2));
    }

    #[test]
    fn memory_high_counts_when_below_max() {
        let t = tree(&[
            ("/s/memory.max", "2000\n"),
            ("/s/memory.high", "1500\n"),
            ("/s/memory.current", "1000\n"),
        ]);
        let f = |p: &str| t.get(p).cloned();
        let m = memory(&f, Version::V2, "/s").unwrap();
        assert_eq!(m.headroom(), Some(500));
        assert_eq!(m.binding().unwrap().effective_limit(), Some(1500));
    }

    #[test]
    fn v1_parent_without_use_hierarchy_does_not_charge_the_child() {
        let t = tree(&[
            ("/memory.usage_in_bytes", "5000000\n"),
            ("/memory.limit_in_bytes", "9223372036854771712\n"),
            ("/p/memory.use_hierarchy", "0\n"),
            ("/p/memory.limit_in_bytes", "1000\n"),
            ("/p/memory.usage_in_bytes", "999\n"),
            ("/p/c/memory.limit_in_bytes", "9223372036854771712\n"),
            ("/p/c/memory.usage_in_bytes", "10\n"),
        ]);
        let f = |p: &str| t.get(p).cloned();
        let m = memory(&f, Version::V1, "/p/c").unwrap();
        assert_eq!(m.levels.len(), 1);
        assert_eq!(m.headroom(), None);
    }

    #[test]
    fn no_memory_files_means_no_memory_cgroup() {
        let f = |_: &str| None;
        assert!(memory(&f, Version::V1, "/x").is_none());
        assert!(pids(&f, "/x").is_empty());
    }

    #[test]
    fn pids_tightest_level_binds() {
        let t = tree(&[
            ("/a/pids.max", "100\n"),
            ("/a/pids.current", "90\n"),
            ("/a/b/pids.max", "max\n"),
            ("/a/b/pids.current", "5\n"),
            ("/a/b/pids.events", "max 4\n"),
        ]);
        let f = |p: &str| t.get(p).cloned();
        let l = pids(&f, "/a/b");
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].refused, Some(4));
        assert_eq!(pids_binding(&l).unwrap().path, "/a");
        assert_eq!(pids_binding(&l).unwrap().headroom(), Some(10));
    }

    #[test]
    fn ancestors_run_to_the_root() {
        assert_eq!(ancestors("/a/b"), vec!["/a/b", "/a", "/"]);
        assert_eq!(ancestors("/"), vec!["/"]);
    }

    fn fixture(name: &str) -> impl Fn(&str) -> Option<String> {
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/cgroup")
            .join(name);
        move |p: &str| std::fs::read_to_string(base.join(p)).ok()
    }

    #[test]
    fn v1_capture_finds_the_600m_child_and_its_ancestors() {
        let f = fixture("v1-linux-6.18");
        let c = for_process(&f, &f("proc/self/cgroup").unwrap()).unwrap();
        let m = c.memory.unwrap();
        assert_eq!(m.version, Version::V1);
        // child-600m, our cgroup, process_api, the root
        assert_eq!(m.levels.len(), 4, "{m:#?}");
        assert!(m.leaf().path.ends_with("/child-600m"));
        let b = m.binding().unwrap();
        assert_eq!(b.path, m.leaf().path);
        assert_eq!(b.limit, Some(629_145_600));
        assert_eq!(m.headroom(), Some(629_145_600 - m.leaf().usage.unwrap()));
        assert_eq!(m.oom_kills(), Some(0));
        assert!(m.leaf().kernel.is_some());
        // Linux 6.18's v1 pids child with pids.max 64.
        assert_eq!(c.pids.len(), 1);
        assert_eq!(pids_binding(&c.pids).unwrap().max, Some(64));
    }

    #[test]
    fn v2_docs_tree_binds_at_memory_high_and_counts_the_oom_kill() {
        let f = fixture("v2-docs");
        let c = for_process(&f, &f("proc/self/cgroup").unwrap()).unwrap();
        let m = c.memory.unwrap();
        assert_eq!(m.version, Version::V2);
        assert_eq!(m.levels.len(), 2);
        let b = m.binding().unwrap();
        assert_eq!(b.path, "/system.slice/app.service");
        assert_eq!(b.effective_limit(), Some(629_145_600));
        assert_eq!(m.headroom(), Some(629_145_600 - 524_288_000));
        assert_eq!(m.leaf().kernel, Some(481_296_384));
        assert_eq!(m.leaf().sock, Some(0));
        assert_eq!(m.oom_kills(), Some(1));
        assert_eq!(pids_binding(&c.pids).unwrap().headroom(), Some(23));
    }

    #[test]
    fn v2_without_the_memory_controller_is_no_memory_cgroup() {
        // Linux 6.18.44 here: cgroup2 at sys/fs/cgroup/unified lists only hugetlb.
        let t = tree(&[
            ("sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n"),
            ("sys/fs/cgroup/unified/memory.current", "5\n"),
        ]);
        let f = |p: &str| t.get(p).cloned();
        let c = for_process(&f, "0::/\n").unwrap();
        assert!(c.memory.is_none());
        assert!(c.pids.is_empty());
    }
}
