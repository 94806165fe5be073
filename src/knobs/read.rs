//! Reading every knob's live value through [`Host`]: the one place check and apply learn the knobs' state.

use std::collections::BTreeMap;

use super::{Knob, KnobId, KnobKey, Limit, MeminfoField, Read, Value, REGISTRY};
use crate::kernel::host::{self, proc_dir, sysctl_path, Host, HostError};
use crate::kernel::{
    self, file_nr::FileNr, meminfo::Meminfo, netstat::Netstat, process::Nofile,
    slabinfo::SocketCost, sockstat::Sockstat,
};
use crate::root::{Root, RootError};

/// What reading one knob gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    Value(Value),
    /// The knob does not exist here; the text says why (module not loaded, hidden in a child namespace).
    Absent(String),
    /// It exists but could not be read or parsed; the text names the file and the problem.
    Unreadable(String),
}

impl Reading {
    pub fn value(&self) -> Option<&Value> {
        match self {
            Reading::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// Facts about the target process and host that are not knobs but decide what can be changed.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The process whose RLIMIT_NOFILE was read: `None` means tune's own (`proc/self`).
    pub pid: Option<u32>,
    /// CapEff of the process running tune, when readable.
    pub cap_eff: Option<u64>,
    /// nf_conntrack is loaded (its sysctls exist).
    pub conntrack_loaded: bool,
    /// CapEff of the target process (`--pid`, else tune itself): CAP_SYS_ADMIN exempts it from fs.file-max.
    pub target_cap_eff: Option<u64>,
    /// `proc/sys/kernel/osrelease` of the root, when readable.
    pub kernel: Option<String>,
    /// fs.file-nr, parsed.
    pub file_nr: Option<FileNr>,
    /// `proc/net/sockstat`: sockets in use now.
    pub sockstat: Option<Sockstat>,
    /// `proc/net/netstat`: counters that show a limit being hit.
    pub netstat: Option<Netstat>,
    /// Kernel memory per socket from `proc/slabinfo`; `None` when unreadable (the default applies).
    pub socket_cost: Option<SocketCost>,
    /// Why `socket_cost` is `None` (slabinfo unreadable or unparsable), for the report.
    pub socket_cost_note: Option<String>,
    /// Memory connections may take now ([`crate::kernel::meminfo::Meminfo::usable`]: MemAvailable).
    pub usable_memory: Option<u64>,
    /// The part of it the kernel gives without a reclaim storm
    /// ([`crate::kernel::meminfo::Meminfo::quick`]: MemFree and the inactive page cache).
    pub quick_memory: Option<u64>,
    /// tune runs in a user namespace other than the initial one (its uid_map is not the
    /// identity map): its capabilities do not count for host-wide limits.
    pub own_user_namespace: Option<bool>,
    /// The target process's cgroups, user namespace and network namespace, and whether
    /// conntrack tracks tune's namespace (`None` only in hand-built observations).
    pub container: Option<crate::container::Container>,
}

/// Bit numbers from linux/capability.h.
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_RESOURCE: u32 = 24;

impl Facts {
    fn has_cap(&self, bit: u32) -> Option<bool> {
        self.cap_eff.map(|c| c & (1u64 << bit) != 0)
    }
    /// Can tune raise a hard RLIMIT_NOFILE (CAP_SYS_RESOURCE in its effective set, held in the
    /// initial user namespace, where the kernel checks it)?
    pub fn cap_sys_resource(&self) -> Option<bool> {
        if self.own_user_namespace == Some(true) {
            return Some(false);
        }
        self.has_cap(CAP_SYS_RESOURCE)
    }
    /// Is tune exempt from fs.file-max (CAP_SYS_ADMIN in the initial user namespace)?
    pub fn cap_sys_admin(&self) -> Option<bool> {
        if self.own_user_namespace == Some(true) {
            return Some(false);
        }
        self.has_cap(CAP_SYS_ADMIN)
    }
    /// Judges host-wide limits for a service without CAP_SYS_ADMIN (check without `--pid`: the
    /// service will not run as tune does, as root); [`Facts::tune_alone_exempt`] then says so.
    pub fn judge_as_unprivileged_service(&mut self) {
        if self.pid.is_none() {
            self.target_cap_eff = self.target_cap_eff.map(|c| c & !(1u64 << CAP_SYS_ADMIN));
        }
    }
    /// tune itself would be exempt from fs.file-max, but the target (a service judged as
    /// unprivileged) is not.
    pub fn tune_alone_exempt(&self) -> bool {
        self.pid.is_none()
            && self.cap_sys_admin() == Some(true)
            && self.target_exempt_from_file_max() == Some(false)
    }
    /// Can the target process (`--pid`, else tune) raise its hard RLIMIT_NOFILE
    /// (CAP_SYS_RESOURCE in its CapEff, held in the initial user namespace)?
    pub fn target_cap_sys_resource(&self) -> Option<bool> {
        if self.target_user_namespace() == Some(true) {
            return Some(false);
        }
        match self.pid {
            None => self.cap_sys_resource(),
            Some(_) => self
                .target_cap_eff
                .map(|c| c & (1u64 << CAP_SYS_RESOURCE) != 0),
        }
    }
    /// Is the target process (`--pid`, else tune) exempt from fs.file-max (CAP_SYS_ADMIN in its
    /// CapEff, held in the initial user namespace)?
    pub fn target_exempt_from_file_max(&self) -> Option<bool> {
        if self.target_user_namespace() == Some(true) {
            return Some(false);
        }
        self.target_cap_eff
            .map(|c| c & (1u64 << CAP_SYS_ADMIN) != 0)
    }
    /// The target process runs in a user namespace other than the initial one.
    pub fn target_user_namespace(&self) -> Option<bool> {
        match self.pid {
            None => self.own_user_namespace,
            Some(_) => self.container.as_ref()?.in_user_namespace(),
        }
    }
    /// Why tune's capabilities do not count here, when they are held only in a user namespace.
    pub fn capability_reason(&self) -> &'static str {
        if self.own_user_namespace == Some(true) {
            crate::container::USERNS_REASON
        } else {
            "no CAP_SYS_RESOURCE"
        }
    }
    /// Kernel bytes per socket: from slabinfo when read, else the documented default.
    pub fn bytes_per_socket(&self) -> u64 {
        self.socket_cost
            .as_ref()
            .map_or(kernel::slabinfo::DEFAULT_BYTES_PER_SOCKET, |c| c.total)
    }
}

/// Every knob's reading plus the facts, as found under one root.
#[derive(Debug, Clone)]
pub struct Observation {
    pub readings: BTreeMap<&'static str, Reading>,
    pub facts: Facts,
}

impl Observation {
    /// What reading the knob gave (absent from the map only in hand-built observations).
    pub fn reading(&self, id: impl KnobKey) -> Option<&Reading> {
        self.readings.get(id.knob_name())
    }

    /// The knob's value, when it was read.
    pub fn get(&self, id: impl KnobKey) -> Option<&Value> {
        self.reading(id).and_then(Reading::value)
    }

    /// The integer value of an Int knob, if present.
    pub fn int(&self, id: impl KnobKey) -> Option<u64> {
        match self.get(id) {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        }
    }

    /// Is conntrack tracking connections in this namespace? `None` when it is not loaded
    /// (or the count is unreadable); loaded with a count of 0 means no rule hooks it (or nothing is open).
    pub fn conntrack_tracking(&self) -> Option<bool> {
        if !self.facts.conntrack_loaded {
            return None;
        }
        // The probe's answer when it ran (a fresh loopback connection tracked or not); the
        // entry count only when it could not (a captured root, another namespace).
        if let Some(t) = self
            .facts
            .container
            .as_ref()
            .and_then(|c| c.conntrack.as_bool())
        {
            return Some(t);
        }
        self.int(KnobId::ConntrackCount).map(|c| c > 0)
    }

    /// How conntrack tracking was judged, for reason lines.
    pub fn conntrack_evidence(&self) -> Option<String> {
        let c = self.facts.container.as_ref()?;
        c.conntrack.as_bool()?;
        Some(c.conntrack.evidence())
    }
}

/// A service described rather than running (`check --unit`, `--user`): the limits and
/// capabilities it would start with, and the memory cgroup limit its unit sets.
#[derive(Debug, Clone)]
pub struct Described {
    pub nofile_soft: u64,
    pub nofile_hard: u64,
    pub cap_sys_admin: bool,
    pub cap_sys_resource: bool,
    /// (cgroup path, hard limit, high) of the cgroup the service would run in.
    pub memory: Option<(String, Option<u64>, Option<u64>)>,
}

impl Observation {
    /// Judges the described service instead of tune: its RLIMIT_NOFILE, its capabilities, and
    /// (when its unit limits memory) a fresh memory cgroup with that limit and nothing charged,
    /// in place of tune's own.
    pub fn as_service(&mut self, d: &Described) {
        for (id, v) in [
            (KnobId::NofileSoft, d.nofile_soft),
            (KnobId::NofileHard, d.nofile_hard),
        ] {
            self.readings
                .insert(id.name(), Reading::Value(Value::Int(v)));
        }
        let bit = |on: bool, b: u32| if on { 1u64 << b } else { 0 };
        self.facts.target_cap_eff =
            Some(bit(d.cap_sys_admin, CAP_SYS_ADMIN) | bit(d.cap_sys_resource, CAP_SYS_RESOURCE));
        let Some((path, limit, high)) = d.memory.clone() else {
            return;
        };
        let Some(c) = self.facts.container.as_mut() else {
            return;
        };
        let version = c
            .memory()
            .map_or(kernel::cgroup::Version::V2, |m| m.version);
        let level = kernel::cgroup::MemoryLevel {
            path,
            limit,
            high,
            usage: Some(0),
            kernel: None,
            sock: None,
            oom_kills: None,
            limit_hits: None,
        };
        let cg = c.cgroups.get_or_insert_with(|| kernel::cgroup::Cgroups {
            memory: None,
            pids: Vec::new(),
        });
        cg.memory = Some(kernel::cgroup::MemoryCgroup {
            version,
            levels: vec![level],
        });
    }
}

/// Reads every knob in the registry and the facts, for the process `pid` (default: tune's own).
pub fn observe(root: &Root, pid: Option<u32>) -> Observation {
    let host = Host::new(root);
    let facts = facts(&host, pid);
    let nofile = host.process(pid).nofile();
    let meminfo = host.meminfo();
    let readings = REGISTRY
        .iter()
        .map(|k| (k.name, read_one(&host, k, &facts, &nofile, &meminfo)))
        .collect();
    Observation { readings, facts }
}

/// The facts beside the knobs: capabilities, kernel, usage counters, the socket cost.
fn facts(host: &Host, pid: Option<u32>) -> Facts {
    let cap_eff = host.process(None).status().ok().map(|s| s.cap_eff);
    let target_cap_eff = match pid {
        None => cap_eff,
        Some(_) => host.process(pid).status().ok().map(|s| s.cap_eff),
    };
    let (socket_cost, socket_cost_note) = match host.socket_cost() {
        Ok(c) => (Some(c), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let own_user_namespace = host
        .root()
        .read("proc/self/uid_map")
        .ok()
        .and_then(|t| kernel::userns::parse(&t).ok())
        .map(|m| !kernel::userns::is_initial(&m));
    Facts {
        pid,
        cap_eff,
        own_user_namespace,
        container: Some(crate::container::Container::read(host.root(), pid)),
        conntrack_loaded: host.conntrack_loaded(),
        target_cap_eff,
        kernel: host.os_release().ok(),
        file_nr: host.file_nr().ok(),
        sockstat: host.sockstat().ok(),
        netstat: host.netstat().ok(),
        socket_cost,
        socket_cost_note,
        usable_memory: host.meminfo().ok().map(|m| m.usable()),
        quick_memory: host.meminfo().ok().map(|m| m.quick()),
    }
}

/// Every file (relative to the root) that [`observe`] reads for process `pid`: what a captured
/// fixture tree must contain. Derived from the registry, so it is not a second knob list.
pub fn sources(pid: Option<u32>) -> Vec<String> {
    let (me, target) = (proc_dir(None), proc_dir(pid));
    let mut out: Vec<String> = vec![
        format!("{me}/status"),
        format!("{target}/status"),
        format!("{target}/limits"),
        host::MEMINFO.into(),
        host::SLABINFO.into(),
        host::OSRELEASE.into(),
        host::SOCKSTAT.into(),
        host::NETSTAT.into(),
    ];
    for k in REGISTRY {
        if let Read::Sysctl(name) = k.read {
            out.push(sysctl_path(name));
        }
        if let super::Write::ModuleParam { module, param } = k.write {
            out.push(format!("sys/module/{module}/parameters/{param}"));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The reading of a sysctl whose file could not be read: a missing file gets the knob's own reason.
fn sysctl_error(knob: &Knob, facts: &Facts, e: HostError) -> Reading {
    match e {
        HostError::Read(RootError::Absent { path }) => {
            Reading::Absent(absent_reason(knob, facts, &path.display().to_string()))
        }
        e => Reading::Unreadable(e.to_string()),
    }
}

fn read_one(
    host: &Host,
    knob: &Knob,
    facts: &Facts,
    nofile: &Result<Nofile, HostError>,
    meminfo: &Result<Meminfo, HostError>,
) -> Reading {
    match knob.read {
        Read::Sysctl(name) => match host.sysctl_text(name) {
            Ok(text) => match Value::parse(knob.shape, &text) {
                Ok(v) => Reading::Value(v),
                Err(e) => Reading::Unreadable(format!(
                    "{}: {e}",
                    host.root().path(&sysctl_path(name)).display()
                )),
            },
            Err(e) => sysctl_error(knob, facts, e),
        },
        Read::Nofile(which) => match nofile {
            Ok(n) => Reading::Value(Value::Int(match which {
                Limit::Soft => n.soft,
                Limit::Hard => n.hard,
            })),
            Err(HostError::Read(RootError::Absent { path })) => {
                Reading::Absent(format!("{}: no such process", path.display()))
            }
            Err(e) => Reading::Unreadable(e.to_string()),
        },
        Read::Meminfo(field) => match meminfo {
            Ok(m) => match field {
                MeminfoField::Total => Reading::Value(Value::Int(m.total)),
                MeminfoField::Free => Reading::Value(Value::Int(m.free)),
            },
            Err(HostError::Read(RootError::Absent { path })) => {
                Reading::Absent(format!("{}: absent", path.display()))
            }
            Err(e) => Reading::Unreadable(e.to_string()),
        },
        Read::SocketCost => Reading::Value(Value::Int(facts.bytes_per_socket())),
    }
}

/// Why a knob's file is missing, in words an admin can act on.
fn absent_reason(knob: &Knob, facts: &Facts, path: &str) -> String {
    if knob.name.starts_with("net.netfilter.nf_conntrack") && !facts.conntrack_loaded {
        return "nf_conntrack is not loaded: connections are not tracked, so conntrack limits nothing here".into();
    }
    if knob.scope == super::Scope::Host && knob.name.starts_with("net.") {
        return format!("{path} is absent: a host-wide knob, hidden inside a child network namespace; read it from the host");
    }
    format!("{path} is absent on this kernel")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_live_host() {
        // The live kernel always has these; tune's own limits are readable.
        let obs = observe(&Root::host(), None);
        assert!(obs.int("net.core.somaxconn").unwrap() > 0);
        assert!(obs.int("rlimit.nofile.hard").unwrap() >= obs.int("rlimit.nofile.soft").unwrap());
        assert!(obs.int("memory.total").unwrap() > obs.int("memory.free").unwrap());
        assert!(obs.facts.cap_eff.is_some());
    }

    #[test]
    fn sources_cover_every_file_observe_reads() {
        // Copy only the listed files of the live host into a temp root: every knob that exists
        // on the host must read the same there (volatile counters aside).
        let host = Root::host();
        let dir = tempfile::tempdir().unwrap();
        let copy = Root::new(dir.path()).unwrap();
        for rel in sources(None) {
            if let Ok(text) = host.read(&rel) {
                copy.write_atomic(&rel, text.as_bytes(), 0o644).unwrap();
            }
        }
        let live = observe(&host, None);
        let copied = observe(&copy, None);
        let volatile = [
            "fs.file-nr",
            "memory.free",
            "net.netfilter.nf_conntrack_count",
        ];
        for k in REGISTRY.iter().filter(|k| !volatile.contains(&k.name)) {
            let (a, b) = (&live.readings[k.name], &copied.readings[k.name]);
            match (a, b) {
                (Reading::Value(_), Reading::Value(_)) if k.name == "memory.per-socket" => {}
                _ => assert_eq!(a, b, "{}: not captured by sources()", k.name),
            }
        }
        assert_eq!(live.facts.kernel, copied.facts.kernel);
        assert_eq!(live.facts.cap_eff, copied.facts.cap_eff);
        assert_eq!(
            live.facts.socket_cost.is_some(),
            copied.facts.socket_cost.is_some()
        );
    }

    #[test]
    fn missing_conntrack_is_absent_not_zero() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        let obs = observe(&root, None);
        match &obs.readings["net.netfilter.nf_conntrack_max"] {
            Reading::Absent(why) => assert!(why.contains("not loaded"), "{why}"),
            other => panic!("expected absent, got {other:?}"),
        }
    }
}
