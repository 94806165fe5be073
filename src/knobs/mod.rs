//! The knob registry: one entry per limit that caps concurrent connections, driving check, apply, explain and the docs.
//!
//! An entry says what the knob is called, where it lives (scope), how to read
//! it, how to compare it with a requirement, how to change it at run time and
//! at boot, and what running short of it looks like. Nothing else in tune keeps
//! a list of knobs: commands iterate [`REGISTRY`], name one by its [`KnobId`]
//! (`obs.int(KnobId::Somaxconn)`), or resolve what a user typed with [`resolve`]
//! (the one [`matcher`]).
//!
//! Adding a knob (tcp_syncookies, say): a `KnobId` variant and a registry entry at
//! the same position (a compile-time check holds them in step); its requirement
//! formula, if it has one, goes in `profile::formulas`; the counter that
//! shows it running short, if any, in [`LIMIT_COUNTERS`]. Explain, the man page,
//! completions, check, apply and `--root` captures follow from the entry.

pub mod doc;
mod id;
pub mod matcher;
mod read;
mod registry;
mod role;
mod symptoms;
mod value;

pub use crate::kernel::host::{proc_dir, sysctl_path};
pub use doc::KnobDoc;
pub use id::{KnobId, KnobKey};
pub use read::{observe, sources, Described, Facts, Observation, Reading};
pub use registry::REGISTRY;
pub use role::Role;

use crate::values::{Input, Suggest};
pub use symptoms::{LimitCounter, LIMIT_COUNTERS};
pub use value::{Shape, Shown, Value, ValueError, UNLIMITED};

/// Where a knob's value lives, which decides who may change it and where tests may write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// A property of one process (RLIMIT_NOFILE).
    Process,
    /// One value for the whole host, whatever the network namespace.
    Host,
    /// One value per network namespace; a fresh namespace starts from kernel defaults or a copy of the host's.
    #[serde(rename = "net-namespace")]
    NetNs,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Process => "process",
            Scope::Host => "host",
            Scope::NetNs => "net-namespace",
        }
    }

    /// What the scope means for the admin: the one text explain and the man page print.
    pub fn describe(self) -> String {
        match self {
            Scope::Process => format!(
                "process: each process has its own; tune reads its own or, with {}, a running service's",
                Suggest::input(Input::Pid)
            ),
            Scope::Host => {
                "host: one value for the whole machine, whatever the network namespace".into()
            }
            Scope::NetNs => {
                "net-namespace: one value per network namespace; a container with its own network sees its own".into()
            }
        }
    }
}

/// How a live value is measured against a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compare {
    /// Every component must be at least the required one (ints and triples).
    AtLeast,
    /// The value must be at most the required one (tcp_fin_timeout: shorter frees ports sooner).
    AtMost,
    /// The live range must offer at least as many ports as the required one
    /// (ip_local_port_range): a range is judged by its port count, never by containment.
    PortCount,
    /// A mode, not a quantity: the live value must be exactly the required one (tcp_tw_reuse:
    /// 2 "loopback only" is not more than 1 "everywhere").
    Equal,
    /// Reported, never required (usage counters such as nf_conntrack_count).
    Info,
}

impl Compare {
    /// How a check judges a value of `shape`: the one text explain and the man pages print.
    pub fn describe(self, shape: Shape) -> &'static str {
        match (self, shape) {
            (Compare::AtLeast, Shape::Int) => {
                "passes when the live value is at least the required one"
            }
            (Compare::AtLeast, _) => "passes when each live number is at least the required one",
            (Compare::AtMost, Shape::Int) => {
                "passes when the live value is at most the required one (shorter is better)"
            }
            (Compare::AtMost, _) => "passes when each live number is at most the required one",
            (Compare::PortCount, _) => {
                "passes when the live range offers at least as many ports as the required one (judged by count, not by containment)"
            }
            (Compare::Equal, _) => "a mode: passes when the live value is exactly the required one",
            (Compare::Info, _) => "reported only; never fails a check",
        }
    }

    /// Does `live` satisfy `required`?
    pub fn satisfied(self, live: &Value, required: &Value) -> bool {
        match (self, live, required) {
            (Compare::Info, _, _) => true,
            (Compare::Equal, _, _) => live == required,
            (Compare::PortCount, Value::Range(live), Value::Range(req)) => {
                crate::ports::count(*live, 0) >= crate::ports::count(*req, 0)
            }
            (Compare::AtMost, _, _) => {
                live.shape() == required.shape()
                    && live
                        .parts()
                        .iter()
                        .zip(required.parts())
                        .all(|(l, r)| l <= r)
            }
            (_, _, _) => {
                live.shape() == required.shape()
                    && live
                        .parts()
                        .iter()
                        .zip(required.parts())
                        .all(|(l, r)| l >= r)
            }
        }
    }
}

/// Which half of RLIMIT_NOFILE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Limit {
    Soft,
    Hard,
}

/// How to read a knob's live value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// A sysctl by its dotted name, read from `proc/sys/<name with dots as slashes>`.
    Sysctl(&'static str),
    /// RLIMIT_NOFILE of the target process, from `proc/<pid>/limits`.
    Nofile(Limit),
    /// A /proc/meminfo field, in bytes.
    Meminfo(MeminfoField),
    /// Kernel memory one socket costs, estimated from `proc/slabinfo` (see [`crate::kernel::slabinfo`]).
    SocketCost,
}

/// The /proc/meminfo fields that are knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeminfoField {
    /// MemTotal.
    Total,
    /// MemFree.
    Free,
}

impl MeminfoField {
    /// The field's name in /proc/meminfo.
    pub fn name(self) -> &'static str {
        match self {
            MeminfoField::Total => "MemTotal",
            MeminfoField::Free => "MemFree",
        }
    }
}

/// How to change a knob at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Write the value into its /proc/sys file.
    Sysctl(&'static str),
    /// Write the value into `sys/module/<module>/parameters/<param>` (nf_conntrack hashsize).
    ModuleParam {
        module: &'static str,
        param: &'static str,
    },
    /// prlimit(2) on the target process.
    Prlimit(Limit),
    /// Not changeable by tune; the reason says what to do instead.
    No(&'static str),
}

/// How to make a change survive a reboot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// A `name = value` line in /etc/sysctl.d/.
    SysctlD,
    /// `options <module> <param>=<value>` in /etc/modprobe.d/.
    ModprobeD {
        module: &'static str,
        param: &'static str,
    },
    /// /etc/security/limits.d (PAM sessions), systemd DefaultLimitNOFILE= and, with --service, LimitNOFILE=.
    Nofile(Limit),
    /// Nothing to persist.
    No,
}

/// One registry entry.
#[derive(Debug)]
pub struct Knob {
    /// The typed id code uses to name this entry.
    pub id: KnobId,
    /// The name users type: the sysctl name, or `rlimit.nofile.soft` style for the others.
    pub name: &'static str,
    pub scope: Scope,
    pub shape: Shape,
    /// What the numbers count ("fds", "pages", "bytes", "ports", ...).
    pub unit: &'static str,
    pub read: Read,
    pub write: Write,
    pub persist: Persist,
    pub compare: Compare,
    /// One line: what the knob is.
    pub summary: &'static str,
    /// What running short looks like: the errno, the counter, the log line.
    pub symptom: &'static str,
    /// The bounds the kernel accepts for every number of the value, where it has fixed ones;
    /// a profile outside them is refused before anything is written.
    pub accepts: Option<(u64, u64)>,
}

impl Knob {
    /// The same entry with kernel bounds (for the registry's const entries).
    pub const fn accepting(mut self, lo: u64, hi: u64) -> Knob {
        self.accepts = Some((lo, hi));
        self
    }

    /// Checks a requirement against the kernel's fixed bounds for this knob.
    pub fn check_bounds(&self, v: &Value) -> Result<(), String> {
        match self.accepts {
            Some((lo, hi)) if v.parts().iter().any(|n| *n < lo || *n > hi) => Err(format!(
                "{v} is outside what the kernel accepts for {} ({lo} to {hi})",
                self.name
            )),
            _ => Ok(()),
        }
    }

    /// The run-time fix as a command line for `value` (`sysctl -w ...`, `prlimit ...`).
    pub fn runtime_fix(&self, value: &Value, pid: Option<u32>) -> String {
        self.runtime_command(Shown::Value(value), pid)
    }

    /// The run-time fix for a value or for placeholders (`N`, `PID`), as the man page shows it.
    pub fn runtime_command(&self, value: Shown, pid: Option<u32>) -> String {
        let pid = || pid.map_or("PID".to_string(), |p| p.to_string());
        match self.write {
            Write::Sysctl(name) => format!("sysctl -w {name}=\"{}\"", value.kernel_text()),
            Write::ModuleParam { module, param } => {
                format!(
                    "echo {} > /sys/module/{module}/parameters/{param}",
                    value.kernel_text()
                )
            }
            Write::Prlimit(Limit::Soft) => format!("prlimit --pid {} --nofile={value}:", pid()),
            Write::Prlimit(Limit::Hard) => format!("prlimit --pid {} --nofile=:{value}", pid()),
            Write::No(why) => why.to_string(),
        }
    }

    /// The persistent fix as the line an admin would put in a file, with the file.
    pub fn persist_fix(&self, value: &Value) -> Option<String> {
        self.persist_line(Shown::Value(value))
    }

    /// The persistent fix for a value or for placeholders; `None` when nothing persists.
    pub fn persist_line(&self, value: Shown) -> Option<String> {
        let v = value.kernel_text();
        match self.persist {
            Persist::SysctlD => Some(format!("/etc/sysctl.d/90-tune.conf: {} = {v}", self.name)),
            Persist::ModprobeD { module, param } => {
                Some(format!("/etc/modprobe.d/90-tune.conf: options {module} {param}={v}"))
            }
            Persist::Nofile(_) => Some(format!("LimitNOFILE={value} in the service's unit (or DefaultLimitNOFILE=, limits.d nofile)")),
            Persist::No => None,
        }
    }

    /// Everything explain and the man page say about this knob.
    pub fn doc(&'static self) -> KnobDoc {
        KnobDoc::of(self)
    }
}

/// Looks a knob up by name.
pub fn find(name: &str) -> Option<&'static Knob> {
    REGISTRY.iter().find(|k| k.name == name)
}

/// Looks a knob up as a user types it (`tune explain`, `check --ignore`): its full name, a
/// unique end at a dot (`somaxconn`) or a unique start (`soma`); see [`matcher`].
pub fn resolve(name: &str) -> Result<&'static Knob, matcher::NoMatch> {
    matcher::match_in(REGISTRY, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = REGISTRY.iter().map(|k| k.name).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn compare_directions() {
        assert!(Compare::AtLeast.satisfied(&Value::Int(5), &Value::Int(4)));
        assert!(!Compare::AtLeast.satisfied(&Value::Int(3), &Value::Int(4)));
        assert!(!Compare::AtLeast.satisfied(&Value::Triple([9, 9, 1]), &Value::Triple([1, 1, 2])));
        assert!(Compare::AtMost.satisfied(&Value::Int(15), &Value::Int(30)));
        assert!(!Compare::Equal.satisfied(&Value::Int(2), &Value::Int(1)));
        assert!(Compare::Equal.satisfied(&Value::Int(1), &Value::Int(1)));
        assert!(Compare::PortCount
            .satisfied(&Value::Range([1024, 65535]), &Value::Range([10000, 60000])));
        assert!(!Compare::PortCount
            .satisfied(&Value::Range([32768, 60999]), &Value::Range([1024, 65535])));
        assert!(!Compare::AtLeast.satisfied(&Value::Int(5), &Value::Triple([1, 1, 1])));
    }

    #[test]
    fn sysctl_paths() {
        assert_eq!(
            sysctl_path("net.core.somaxconn"),
            "proc/sys/net/core/somaxconn"
        );
    }
}
