//! The check report: what `tune check` found, knob by knob, built purely from an observation and a profile, and its renderers.
//!
//! [`evaluate`] decides each knob's status (pure: values in, report out);
//! [`table`], [`json`] and [`junit`] print it. The JSON form is documented in
//! `docs/check-schema.json` and versioned by [`SCHEMA_VERSION`].

use std::collections::BTreeSet;

use crate::capacity::{self, Capacity};
use crate::knobs::Role;
use crate::knobs::{
    Compare, Facts, Knob, KnobId, Observation, Read, Reading, Scope, Value, LIMIT_COUNTERS,
    REGISTRY,
};
use crate::profile::Profile;
use crate::units;
use crate::values::{Input, Refused, Suggest};

pub mod json;
pub mod junit;
pub mod prometheus;
pub mod screen;
pub mod table;
pub mod verdict;

/// Bump when a field changes meaning or disappears (adding fields keeps the version).
pub const SCHEMA_VERSION: u32 = 1;

/// A knob's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Meets the requirement.
    Ok,
    /// Short of the requirement but not binding here (or ignored, or unreadable); exit 0 unless --strict.
    Warn,
    /// Short of the requirement: exit 1.
    Fail,
    /// The knob does not exist here (module not loaded, hidden in a child namespace).
    Absent,
    /// Reported, nothing required.
    Info,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Absent => "absent",
            Status::Info => "info",
        }
    }
}

/// One knob's line of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub knob: &'static str,
    pub scope: Scope,
    pub unit: &'static str,
    /// The live value; `None` when absent or unreadable.
    pub current: Option<Value>,
    pub required: Option<Value>,
    /// Why the profile asks for `required`.
    pub why: Option<String>,
    pub status: Status,
    /// Why the status is what it is when that is not obvious (absent, warn, fail).
    pub note: Option<String>,
    /// The run-time fix (`sysctl -w ...`, `prlimit ...`) when the knob falls short.
    pub fix_runtime: Option<String>,
    /// The persistent fix (a sysctl.d line, LimitNOFILE=) when the knob falls short.
    pub fix_persistent: Option<String>,
    /// Turned from fail into warn by --ignore.
    pub ignored: bool,
    /// What the boot configuration (sysctl.d, modprobe.d) sets for it, and where; `None` when no file does.
    pub boot: Option<BootSetting>,
}

/// A value the boot configuration sets, with the file and line that win.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BootSetting {
    pub value: Value,
    /// Path under the root.
    pub file: String,
    pub line: usize,
}

/// What happened to the values of the last `tune apply` since it ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DriftReport {
    /// The record id (`tune rollback --list`).
    pub apply_id: u64,
    pub profile: String,
    pub applied_unix: u64,
    /// One entry per value that apply set.
    pub values: Vec<crate::state::Drift>,
    /// One line per value that no longer holds live or would not survive a reboot.
    pub problems: Vec<String>,
    /// The values the apply set in another network namespace, which `values` leaves out: one
    /// line naming that namespace and how to reach it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_netns: Option<String>,
}

/// A kernel counter that shows a limit was hit since boot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Counter {
    pub group: &'static str,
    pub name: &'static str,
    pub value: u64,
    pub knob: KnobId,
}

/// One usage figure ("TCP in TIME_WAIT": 12).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Usage {
    pub what: String,
    pub value: u64,
}

/// Counts per status, and the exit code they give.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warn: usize,
    pub fail: usize,
    pub absent: usize,
    pub info: usize,
    pub exit_code: u8,
}

/// The profile as the report names it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProfileRef {
    pub name: String,
    pub source: String,
    pub target: u64,
    pub role: Role,
    /// The profiles it extends, nearest first (empty for --target).
    pub extends: Vec<String>,
}

/// Everything `tune check` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    pub schema_version: u32,
    pub tune_version: &'static str,
    pub root: String,
    pub kernel: Option<String>,
    /// The process whose RLIMIT_NOFILE was read; `None`: tune's own.
    pub pid: Option<u32>,
    pub profile: ProfileRef,
    pub knobs: Vec<Row>,
    pub capacity: Capacity,
    pub counters: Vec<Counter>,
    /// Usage now: sockets, TIME_WAIT, orphans, TCP pages, open files.
    pub usage: Vec<Usage>,
    pub strict: bool,
    pub summary: Summary,
    /// Files that override tune's own boot configuration (their value wins at boot).
    pub boot_warnings: Vec<String>,
    /// The last apply and whether its values still hold; `None` when nothing is applied.
    pub drift: Option<DriftReport>,
    /// Why there is no drift view although records exist (records this user may not read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_note: Option<String>,
    /// The answer first: holds or not, what binds, the fixes ranked by gain
    /// ([`verdict::settle`] fills it in).
    pub verdict: Option<verdict::Verdict>,
    /// The target process's cgroups, user namespace, conntrack and network namespace.
    pub container: Option<crate::container::Container>,
    /// The server's measured cost per connection the capacity used; `None`: the kernel's
    /// socket alone (a near-zero user-space cost assumed).
    pub measured_cost: Option<capacity::MeasuredCost>,
    /// Whose credentials the host-wide limits were judged for, when not tune's own.
    pub credentials: Option<String>,
    /// `--unit`/`--user`: the service judged instead of tune (whose credentials, its
    /// RLIMIT_NOFILE and memory limit, each with the file and line that set it).
    pub service: Option<Vec<String>>,
    /// `check --tls`: what TLS adds per connection (null cost: no figure); null: plain.
    pub tls: Option<TlsTerm>,
    /// Whether the kernel offers kTLS (the `tls` module), and how that was found.
    pub ktls: Option<crate::kernel::Ktls>,
}

/// The TLS term of `check --tls`: its cost per connection when there is a figure.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TlsTerm {
    /// `None`: no figure was given or measured, and the capacity is a plain connection's.
    pub cost: Option<capacity::TlsCost>,
}

/// Which knobs --ignore names.
#[derive(Debug, Clone, Default)]
pub enum Ignore {
    #[default]
    None,
    All,
    Some(BTreeSet<&'static str>),
}

impl Ignore {
    /// Parses --ignore values (already split at commas): knob names or `all`; each as the knob matcher resolves it (full name, unique end or start); unknown names are errors suggesting near ones.
    pub fn parse(values: &[String]) -> anyhow::Result<Ignore> {
        let mut set = BTreeSet::new();
        for v in values.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            if v == "all" {
                return Ok(Ignore::All);
            }
            let k = crate::knobs::resolve(v)
                .map_err(|e| Refused::input(Input::Ignore, e.to_string()))?;
            set.insert(k.name);
        }
        Ok(if set.is_empty() {
            Ignore::None
        } else {
            Ignore::Some(set)
        })
    }

    fn covers(&self, knob: &str) -> bool {
        match self {
            Ignore::None => false,
            Ignore::All => true,
            Ignore::Some(s) => s.contains(knob),
        }
    }
}

/// Options that change the verdicts.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub strict: bool,
    pub ignore: Ignore,
    /// Shown in the report: the root's path.
    pub root: String,
    /// `--workers N`: the layout's server workers, each holding the per-worker figure.
    pub server_workers: Option<u64>,
    /// The server's measured cost per connection (`--cost-from`, `--cost-per-conn`).
    pub measured: Option<capacity::MeasuredCost>,
    /// `--tls`: what TLS adds per connection, when there is a figure.
    pub tls: Option<TlsTerm>,
    /// Whether the kernel offers kTLS, read by `cmd/` through `kernel::Host`.
    pub ktls: Option<crate::kernel::Ktls>,
    /// `--unit`/`--user`: the lines describing the service judged instead of tune.
    pub service: Option<Vec<String>>,
}

impl Options {
    /// What TLS adds per connection, for the capacity arithmetic.
    pub fn tls_cost(&self) -> Option<capacity::TlsCost> {
        self.tls.as_ref().and_then(|t| t.cost.clone())
    }
}

/// Builds the report: each knob against the profile, the capacity, the counters and the exit code.
pub fn evaluate(obs: &Observation, profile: &Profile, opts: &Options) -> CheckReport {
    let facts = &obs.facts;
    let rows: Vec<Row> = REGISTRY
        .iter()
        .map(|knob| row(knob, obs, profile, opts))
        .collect();
    let mut inputs = capacity::Inputs::from_observation(obs, profile.role);
    inputs.source_addresses = profile.params.source_addresses;
    inputs.server_workers = opts.server_workers;
    inputs.measured = opts.measured.clone();
    inputs.tls = opts.tls_cost();
    let cap = capacity::estimate(&inputs, profile.target);
    let summary = summarize(&rows, &cap, opts.strict);
    CheckReport {
        schema_version: SCHEMA_VERSION,
        tune_version: env!("CARGO_PKG_VERSION"),
        root: opts.root.clone(),
        kernel: facts.kernel.clone(),
        pid: facts.pid,
        profile: ProfileRef {
            name: profile.name.clone(),
            source: profile.source.clone(),
            target: profile.target,
            role: profile.role,
            extends: profile.chain.iter().skip(1).cloned().collect(),
        },
        knobs: rows,
        capacity: cap,
        counters: counters(facts),
        usage: usage(facts),
        strict: opts.strict,
        summary,
        boot_warnings: Vec::new(),
        drift: None,
        drift_note: None,
        verdict: None,
        container: facts.container.clone(),
        measured_cost: opts.measured.clone(),
        service: opts.service.clone(),
        credentials: (opts.service.is_none() && facts.tune_alone_exempt()).then(|| {
            format!(
                "{} is judged for a service without CAP_SYS_ADMIN; tune itself, running with it, would be exempt ({} judges a running service by its own capabilities)",
                crate::knobs::KnobId::FileMax,
                Suggest::set(Input::Pid, "PID")
            )
        }),
        tls: opts.tls.clone(),
        ktls: opts.ktls.clone(),
    }
}

/// One knob's row: its reading against the requirement, the note saying why, and the fixes.
fn row(knob: &'static Knob, obs: &Observation, profile: &Profile, opts: &Options) -> Row {
    let facts = &obs.facts;
    let req = profile.requirements.get(&knob.id);
    let reading = obs.reading(knob.id);
    let current = reading.and_then(Reading::value).copied();
    let mut note = None;
    let mut status = match reading {
        Some(Reading::Absent(why)) => {
            note = Some(why.clone());
            Status::Absent
        }
        Some(Reading::Unreadable(why)) => {
            note = Some(why.clone());
            if req.is_some() {
                // A requirement that cannot be confirmed is not met (--ignore accepts it).
                Status::Fail
            } else {
                Status::Info
            }
        }
        None => Status::Info,
        Some(Reading::Value(v)) => match req {
            None => Status::Info,
            Some(r) if knob.compare == Compare::Info => {
                if *v == r.value {
                    Status::Ok
                } else {
                    note = Some(format!("the profile asks for {}", r.value));
                    Status::Info
                }
            }
            Some(r) if knob.compare.satisfied(v, &r.value) => Status::Ok,
            Some(r) => shortfall(knob.id, obs, &r.value, &mut note),
        },
    };
    if knob.read == Read::SocketCost && status == Status::Info {
        note = Some(match (&facts.socket_cost, &facts.socket_cost_note) {
            (Some(c), _) => format!("from /proc/slabinfo: {}", c.arithmetic()),
            (None, why) => format!(
                "documented default (measured on Linux 6.18): /proc/slabinfo unusable: {}",
                why.as_deref().unwrap_or("not read")
            ),
        });
    }
    let mut ignored = false;
    if status == Status::Fail && opts.ignore.covers(knob.name) {
        status = Status::Warn;
        ignored = true;
        note = Some(match note {
            Some(n) => format!("{n} (ignored by {})", Suggest::input(Input::Ignore)),
            None => format!("ignored by {}", Suggest::input(Input::Ignore)),
        });
    }
    let (fix_runtime, fix_persistent) = match (status, req) {
        (Status::Fail | Status::Warn, Some(r)) if current.is_some() => {
            // A port range is widened from the live one to the count required, never
            // replaced by a narrower one.
            let want = match (knob.compare, &current) {
                (Compare::PortCount, Some(live)) => {
                    crate::apply_plan::merge(knob.compare, live, &r.value)
                }
                _ => r.value,
            };
            (
                Some(
                    nofile_soft_fix(knob, &want, obs)
                        .unwrap_or_else(|| knob.runtime_fix(&want, facts.pid)),
                ),
                knob.persist_fix(&want),
            )
        }
        _ => (None, None),
    };
    Row {
        knob: knob.name,
        scope: knob.scope,
        unit: knob.unit,
        current,
        required: req.map(|r| r.value),
        why: req.map(|r| r.why.clone()),
        status,
        note,
        fix_runtime,
        fix_persistent,
        ignored,
        boot: None,
    }
}

/// The counters that show a limit was hit, as read.
fn counters(facts: &Facts) -> Vec<Counter> {
    let Some(n) = &facts.netstat else {
        return Vec::new();
    };
    LIMIT_COUNTERS
        .iter()
        .filter_map(|c| {
            n.get(c.group, c.name).map(|value| Counter {
                group: c.group,
                name: c.name,
                value,
                knob: c.knob,
            })
        })
        .collect()
}

/// Usage figures now: open files and TCP sockets.
fn usage(facts: &Facts) -> Vec<Usage> {
    let mut usage = Vec::new();
    let mut put = |what: &str, value: u64| {
        usage.push(Usage {
            what: what.into(),
            value,
        })
    };
    if let Some(f) = facts.file_nr {
        put(&format!("open files ({})", KnobId::FileNr), f.in_use());
    }
    if let Some(t) = facts.sockstat.as_ref().and_then(|s| s.tcp()) {
        put("TCP sockets in use (this namespace)", t.inuse);
        put("TCP sockets allocated (host)", t.alloc);
        put("TCP in TIME_WAIT", t.tw);
        put("TCP orphans", t.orphan);
        put("TCP buffer pages (compare tcp_mem)", t.mem_pages);
    }
    usage
}

/// Counts per status and the exit code: 1 on a fail, or under --strict on a warning or a
/// capacity short of the target.
fn summarize(rows: &[Row], cap: &Capacity, strict: bool) -> Summary {
    let mut summary = Summary::default();
    for r in rows {
        match r.status {
            Status::Ok => summary.ok += 1,
            Status::Warn => summary.warn += 1,
            Status::Fail => summary.fail += 1,
            Status::Absent => summary.absent += 1,
            Status::Info => summary.info += 1,
        }
    }
    let short_capacity = !cap.meets_target;
    summary.exit_code = if summary.fail > 0 || (strict && (summary.warn > 0 || short_capacity)) {
        1
    } else {
        0
    };
    summary
}

/// A soft RLIMIT_NOFILE above the current hard limit is EINVAL on its own: the fix raises both.
fn nofile_soft_fix(knob: &Knob, required: &Value, obs: &Observation) -> Option<String> {
    let (Value::Int(n), Some(hard)) = (required, obs.int(KnobId::NofileHard)) else {
        return None;
    };
    (knob.id == KnobId::NofileSoft && *n > hard).then(|| {
        let pid = obs.facts.pid.map_or("PID".to_string(), |p| p.to_string());
        format!(
            "prlimit --pid {pid} --nofile={n}:{n} (above the hard limit {}: both must rise)",
            units::group(hard)
        )
    })
}

/// The status of a knob that falls short, with the note saying what that means here.
fn shortfall(id: KnobId, obs: &Observation, required: &Value, note: &mut Option<String>) -> Status {
    let facts = &obs.facts;
    let req = match required {
        Value::Int(n) => Some(*n),
        _ => None,
    };
    match id {
        KnobId::NofileSoft => {
            if let (Some(h), Some(r)) = (obs.int(KnobId::NofileHard), req) {
                if h >= r {
                    *note = Some(format!(
                        "the process may raise its soft limit to the hard limit {} itself (Go does at start-up, tune serve does)",
                        units::group(h)
                    ));
                    return Status::Warn;
                }
            }
            Status::Fail
        }
        KnobId::NofileHard => {
            let mut parts = Vec::new();
            match facts.cap_sys_resource() {
                Some(false) => parts.push(
                    "cannot be raised here: tune lacks CAP_SYS_RESOURCE (a container or a parent dropped it); \
                     set it where the process starts (LimitNOFILE=, docker --ulimit) or run several processes"
                        .to_string(),
                ),
                Some(true) => parts.push("tune can raise it (CAP_SYS_RESOURCE)".to_string()),
                None => {}
            }
            if let (Some(nr), Some(r)) = (obs.int(KnobId::NrOpen), req) {
                if r > nr {
                    parts.push(format!(
                        "{} {} must be raised first",
                        KnobId::NrOpen,
                        units::group(nr)
                    ));
                }
            }
            if let Some(h) = obs.int(KnobId::NofileHard) {
                parts.push(format!(
                    "or spread the connections over processes of {} fds each (the capacity section says how many)",
                    units::group(h)
                ));
            }
            *note = (!parts.is_empty()).then(|| parts.join("; "));
            Status::Fail
        }
        KnobId::FileMax if facts.target_exempt_from_file_max() == Some(true) => {
            *note = Some(format!(
                "the process has CAP_SYS_ADMIN, which the kernel exempts from {}; processes without it are held to it",
                KnobId::FileMax
            ));
            Status::Warn
        }
        KnobId::ConntrackMax | KnobId::ConntrackBuckets
            if obs.conntrack_tracking() == Some(false) =>
        {
            *note = Some(
                "conntrack is loaded but tracks nothing in this namespace (count 0): this binds as soon as a rule uses conntrack"
                    .into(),
            );
            Status::Warn
        }
        _ => Status::Fail,
    }
}

/// Text for a value with its unit, `absent`/`unreadable` otherwise.
pub fn value_text(v: Option<&Value>, unit: &str) -> String {
    match v {
        None => "-".into(),
        Some(Value::Int(n)) if *n == crate::knobs::UNLIMITED => "unlimited".into(),
        Some(Value::Int(n)) if unit == "bytes" => {
            format!("{} ({})", units::group(*n), units::bytes(*n))
        }
        Some(Value::Int(n)) => units::group(*n),
        // Port numbers name ports: no thousands separators.
        Some(v) if unit == "ports" => v.to_string(),
        Some(v) => v
            .parts()
            .iter()
            .map(|n| {
                if *n == crate::knobs::UNLIMITED {
                    "unlimited".to_string()
                } else {
                    units::group(*n)
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knobs::{Facts, Reading};
    use std::collections::BTreeMap;

    fn obs(pairs: &[(&'static str, Reading)], facts: Facts) -> Observation {
        let mut readings: BTreeMap<&'static str, Reading> = REGISTRY
            .iter()
            .map(|k| (k.name, Reading::Absent("not in this test".into())))
            .collect();
        for (k, r) in pairs {
            readings.insert(k, r.clone());
        }
        Observation { readings, facts }
    }

    fn v(n: u64) -> Reading {
        Reading::Value(Value::Int(n))
    }

    fn host_facts() -> Facts {
        Facts {
            cap_eff: Some(0x1fffeffffff),
            target_cap_eff: Some(0x1fffeffffff),
            conntrack_loaded: true,
            ..Facts::default()
        }
    }

    #[test]
    fn statuses_follow_the_rules() {
        let o = obs(
            &[
                ("rlimit.nofile.soft", v(1024)),
                ("rlimit.nofile.hard", v(20000)),
                ("fs.nr_open", v(1048576)),
                ("fs.file-max", v(1000)),
                ("net.netfilter.nf_conntrack_max", v(10)),
                ("net.netfilter.nf_conntrack_count", v(0)),
                ("net.core.somaxconn", v(4096)),
            ],
            host_facts(),
        );
        let p = crate::profile::for_target(15_000, Role::Server);
        let r = evaluate(&o, &p, &Options::default());
        let st = |k: &str| r.knobs.iter().find(|x| x.knob == k).unwrap().status;
        // soft 1024 < 16,512 but hard 20,000 covers it: the process raises it itself
        assert_eq!(st("rlimit.nofile.soft"), Status::Warn);
        assert_eq!(st("rlimit.nofile.hard"), Status::Ok);
        // exempt through CAP_SYS_ADMIN
        assert_eq!(st("fs.file-max"), Status::Warn);
        // loaded, tracking nothing
        assert_eq!(st("net.netfilter.nf_conntrack_max"), Status::Warn);
        // 4,096 covers the 1,024 handshakes the load generator may have in flight
        assert_eq!(st("net.core.somaxconn"), Status::Ok);
        assert_eq!(st("net.ipv4.tcp_mem"), Status::Absent);
        assert_eq!(r.summary.fail, 0);
        assert_eq!(r.summary.exit_code, 0);
        let strict = evaluate(
            &o,
            &p,
            &Options {
                strict: true,
                ..Options::default()
            },
        );
        assert_eq!(strict.summary.exit_code, 1);
    }

    #[test]
    fn a_hard_limit_that_cannot_be_raised_fails_with_the_fix() {
        let o = obs(
            &[
                ("rlimit.nofile.soft", v(20000)),
                ("rlimit.nofile.hard", v(20000)),
                ("fs.nr_open", v(1048576)),
            ],
            host_facts(),
        );
        let p = crate::profile::for_target(1_000_000, Role::Server);
        let r = evaluate(&o, &p, &Options::default());
        let row = r
            .knobs
            .iter()
            .find(|x| x.knob == "rlimit.nofile.hard")
            .unwrap();
        assert_eq!(row.status, Status::Fail);
        let note = row.note.as_deref().unwrap();
        assert!(
            note.contains("CAP_SYS_RESOURCE")
                && note.contains("fs.nr_open 1,048,576 must be raised first"),
            "{note}"
        );
        assert!(row
            .fix_persistent
            .as_deref()
            .unwrap()
            .contains("LimitNOFILE=1100011"));
        assert_eq!(r.summary.exit_code, 1);
        let ignored = evaluate(
            &o,
            &p,
            &Options {
                ignore: Ignore::parse(&[
                    "rlimit.nofile.hard".into(),
                    "rlimit.nofile.soft".into(),
                    "fs.nr_open".into(),
                ])
                .unwrap(),
                ..Options::default()
            },
        );
        let row = ignored
            .knobs
            .iter()
            .find(|x| x.knob == "rlimit.nofile.hard")
            .unwrap();
        assert_eq!((row.status, row.ignored), (Status::Warn, true));
        assert_eq!(ignored.summary.exit_code, 0);
    }

    #[test]
    fn conntrack_that_tracks_fails() {
        let o = obs(
            &[
                ("net.netfilter.nf_conntrack_max", v(65536)),
                ("net.netfilter.nf_conntrack_count", v(60000)),
            ],
            host_facts(),
        );
        let r = evaluate(
            &o,
            &crate::profile::for_target(100_000, Role::Server),
            &Options::default(),
        );
        let row = r
            .knobs
            .iter()
            .find(|x| x.knob == "net.netfilter.nf_conntrack_max")
            .unwrap();
        assert_eq!(row.status, Status::Fail);
        assert_eq!(
            row.fix_runtime.as_deref(),
            Some("sysctl -w net.netfilter.nf_conntrack_max=\"110000\"")
        );
        assert_eq!(r.capacity.per_host.limit, "net.netfilter.nf_conntrack_max");
    }

    #[test]
    fn ignore_rejects_unknown_names() {
        let e = Ignore::parse(&["net.core.somaxconn".into(), "bogus".into()]).unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("unknown knob \"bogus\"") && !e.contains("fs.file-max"),
            "{e}"
        );
        // A unique end of a name is enough, as for explain.
        assert!(
            matches!(Ignore::parse(&["somaxconn".into()]).unwrap(), Ignore::Some(s) if s.contains("net.core.somaxconn"))
        );
        assert!(matches!(
            Ignore::parse(&["all".into()]).unwrap(),
            Ignore::All
        ));
    }
}
