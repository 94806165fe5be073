//! The check report in the Prometheus text format (0.0.4), for node_exporter's textfile collector: knobs, capacity and drift as `tune_*` gauges.
//!
//! Written by hand rather than with a metrics crate: the Rust clients write
//! OpenMetrics (`info` and `stateset` types, `# EOF`), which the textfile
//! collector's text parser does not take. The format is a few lines of
//! escaping; [`Exposition`] keeps every family's samples together, as the
//! parser requires.
//!
//! Names follow the Prometheus conventions: a `tune_` prefix, the unit as the
//! last word (`_bytes`, `_seconds`, `_fds`, `_connections`...), one unit per
//! family, `_info` for a family that carries labels and is always 1. Enums are
//! one series per state (1 for the state it is in, 0 for the others), so alerts
//! can say `tune_knob_status{status="fail"} == 1`.
//!
//! Families:
//! - `tune_info{version,profile,role,kernel,root}` 1
//! - `tune_target_connections{profile,role}`: what the profile asks
//! - `tune_knob_current_<unit>{knob,scope[,part]}`, `tune_knob_required_<unit>{...}`:
//!   the live and the required value (`part` for triples and ranges: `low`/`high`...);
//!   unlimited is `+Inf`, a knob that cannot be read has no sample
//! - `tune_knob_status{knob,status}` for ok, warn, fail, absent, info
//! - `tune_knobs{status}`: knobs per status
//! - `tune_holds_connections{limit,scope}`: what the host holds with the profile's processes,
//!   the figure of `tune check`'s first line, with the limit that binds
//! - `tune_capacity_connections{scope="process"|"host",limit}`: what the host holds now,
//!   with the binding limit as a label; `tune_capacity_limit_connections{limit}` for every
//!   host-wide limit that binds; `tune_capacity_meets_target`,
//!   `tune_capacity_processes_needed`, `tune_capacity_source_addresses_needed`
//! - `tune_apply_info{id,profile}` 1 and `tune_apply_timestamp_seconds`: the last apply
//! - `tune_drift_values{state}`: applied values that `holds`, `changed` (live differs),
//!   `unreadable`, `not_at_boot` (live holds, a reboot loses it); `tune_drift` 1 when any
//!   applied value no longer holds
//! - `tune_check_exit_code`: the exit code `tune check` gives with these options

use std::fmt::Write as _;

use super::{CheckReport, Row, Status};
use crate::knobs::{KnobId, Shape, Value, UNLIMITED};
use crate::state::{BootKeeps, Drift};

/// Every status a knob can have, in the order the series are written.
const STATUSES: [Status; 5] = [
    Status::Ok,
    Status::Warn,
    Status::Fail,
    Status::Absent,
    Status::Info,
];

/// Drift states, in the order the series are written.
const DRIFT_STATES: [&str; 4] = ["holds", "changed", "unreadable", "not_at_boot"];

pub fn render(report: &CheckReport) -> String {
    let mut x = Exposition::default();
    info(&mut x, report);
    knobs(&mut x, report);
    capacity(&mut x, report);
    drift(&mut x, report);
    x.gauge(
        "tune_check_exit_code",
        "The exit code tune check gives for this report: 0 holds, 1 falls short.",
        &[],
        report.summary.exit_code.to_string(),
    );
    x.finish()
}

fn info(x: &mut Exposition, r: &CheckReport) {
    let role = r.profile.role.as_str();
    x.gauge(
        "tune_info",
        "The tune version, profile, role, kernel and root this report describes; always 1.",
        &[
            ("version", r.tune_version),
            ("profile", &r.profile.name),
            ("role", role),
            ("kernel", r.kernel.as_deref().unwrap_or("")),
            ("root", &r.root),
        ],
        "1".into(),
    );
    x.gauge(
        "tune_target_connections",
        "Concurrent connections the profile asks this host to hold.",
        &[("profile", &r.profile.name), ("role", role)],
        r.profile.target.to_string(),
    );
}

fn knobs(x: &mut Exposition, r: &CheckReport) {
    for row in &r.knobs {
        let unit = unit_suffix(row.unit);
        for (which, value) in [("current", &row.current), ("required", &row.required)] {
            let Some(v) = value else { continue };
            let name = format!("tune_knob_{which}_{unit}");
            let help = format!(
                "The {} value of each knob counted in {}, one series per part of a triple or range.",
                if which == "current" {
                    "live"
                } else {
                    "profile's required"
                },
                row.unit
            );
            for (part, n) in parts(row, v) {
                let mut labels = vec![("knob", row.knob), ("scope", row.scope.as_str())];
                if let Some(p) = part {
                    labels.push(("part", p));
                }
                x.gauge(&name, &help, &labels, number(n));
            }
        }
        for s in STATUSES {
            x.gauge(
                "tune_knob_status",
                "Each knob's verdict against the profile: 1 for its status, 0 for the others. \
                 fail falls short of the target; warn is short but does not bind here.",
                &[("knob", row.knob), ("status", s.as_str())],
                u8::from(row.status == s).to_string(),
            );
        }
    }
    let counts = [
        (Status::Ok, r.summary.ok),
        (Status::Warn, r.summary.warn),
        (Status::Fail, r.summary.fail),
        (Status::Absent, r.summary.absent),
        (Status::Info, r.summary.info),
    ];
    for (s, n) in counts {
        x.gauge(
            "tune_knobs",
            "Knobs per status.",
            &[("status", s.as_str())],
            n.to_string(),
        );
    }
}

fn capacity(x: &mut Exposition, r: &CheckReport) {
    if let Some(held) = r.verdict.as_ref().and_then(|v| v.holds.map(|h| (v, h))) {
        let (v, h) = held;
        x.gauge(
            "tune_holds_connections",
            "Connections this host holds now with the profile's processes: the first line of tune check; \
             limit is the limit that binds, scope where it applies.",
            &[("limit", &v.bound_by), ("scope", v.bound_scope)],
            h.to_string(),
        );
    }
    let c = &r.capacity;
    let help = "Connections this host holds with its limits now, per process and per host; \
                limit is the limit that binds.";
    for (scope, b) in [("process", &c.per_process), ("host", &c.per_host)] {
        if let Some(n) = b.connections {
            x.gauge(
                "tune_capacity_connections",
                help,
                &[("scope", scope), ("limit", b.limit.name())],
                n.to_string(),
            );
        }
    }
    for b in &c.host_limits {
        if let Some(n) = b.connections {
            x.gauge(
                "tune_capacity_limit_connections",
                "Connections each host-wide limit allows; a limit that does not bind here has no series.",
                &[("limit", b.limit.name())],
                n.to_string(),
            );
        }
    }
    x.gauge(
        "tune_capacity_meets_target",
        "1 when this host holds the profile's target connections, 0 when it does not.",
        &[],
        u8::from(c.meets_target).to_string(),
    );
    if let Some(n) = c.processes_needed {
        x.gauge(
            "tune_capacity_processes_needed",
            "Processes needed to hold the target, given the per-process limit.",
            &[],
            n.to_string(),
        );
    }
    if let Some(n) = c.source_addresses_needed {
        x.gauge(
            "tune_capacity_source_addresses_needed",
            "Client source addresses needed to hold the target.",
            &[],
            n.to_string(),
        );
    }
}

fn drift(x: &mut Exposition, r: &CheckReport) {
    let Some(d) = &r.drift else {
        x.gauge(
            "tune_drift",
            "1 when a value the last tune apply set no longer holds, live or at boot; 0 otherwise (also when nothing was applied).",
            &[],
            "0".into(),
        );
        return;
    };
    let id = d.apply_id.to_string();
    x.gauge(
        "tune_apply_info",
        "The last tune apply on this host: its record id and profile; always 1.",
        &[("id", &id), ("profile", &d.profile)],
        "1".into(),
    );
    x.gauge(
        "tune_apply_timestamp_seconds",
        "When the last tune apply finished, in seconds since the epoch.",
        &[],
        d.applied_unix.to_string(),
    );
    let mut counts = [0usize; DRIFT_STATES.len()];
    for v in &d.values {
        counts[drift_state(v)] += 1;
    }
    for (state, n) in DRIFT_STATES.iter().zip(counts) {
        x.gauge(
            "tune_drift_values",
            "Values the last tune apply set, by what became of them: holds, changed (the live value differs), \
             unreadable, not_at_boot (holds now, a reboot loses it).",
            &[("state", state)],
            n.to_string(),
        );
    }
    x.gauge(
        "tune_drift",
        "1 when a value the last tune apply set no longer holds, live or at boot; 0 otherwise (also when nothing was applied).",
        &[],
        u8::from(counts[0] < d.values.len()).to_string(),
    );
}

/// The index into [`DRIFT_STATES`] of one applied value.
fn drift_state(v: &Drift) -> usize {
    match (&v.live, v.live_matches, &v.boot) {
        (None, _, _) => 2,
        (Some(_), false, _) => 1,
        (Some(_), true, BootKeeps::No { .. }) => 3,
        (Some(_), true, _) => 0,
    }
}

/// The unit as the last word of a metric name: lower case, `[a-z0-9_]`.
fn unit_suffix(unit: &str) -> String {
    let s: String = unit
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "value".into()
    } else {
        s
    }
}

/// The numbers of a value with the name of each part (`None` for a single number).
fn parts(row: &Row, v: &Value) -> Vec<(Option<&'static str>, u64)> {
    let names: &[&'static str] = match (v.shape(), KnobId::from_name(row.knob)) {
        (Shape::Int, _) => return vec![(None, v.parts()[0])],
        (Shape::Range, _) => &["low", "high"],
        (Shape::Triple, Some(KnobId::TcpMem)) => &["low", "pressure", "high"],
        (Shape::Triple, Some(KnobId::FileNr)) => &["allocated", "unused", "max"],
        (Shape::Triple, _) => &["min", "default", "max"],
    };
    names
        .iter()
        .copied()
        .map(Some)
        .zip(v.parts().iter().copied())
        .collect()
}

/// A sample value: unlimited is `+Inf`.
fn number(n: u64) -> String {
    if n == UNLIMITED {
        "+Inf".into()
    } else {
        n.to_string()
    }
}

/// One sample: its labels in order and its value.
type Sample = (Vec<(String, String)>, String);

/// Families in the order first seen, each with its help and samples, written together.
/// `tune top --listen` writes its metrics with it too (`top::metrics`), counters included.
#[derive(Default)]
pub(crate) struct Exposition {
    families: Vec<(String, String, &'static str, Vec<Sample>)>,
}

impl Exposition {
    pub(crate) fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: String) {
        self.sample("gauge", name, help, labels, value);
    }

    /// A counter sample (the name ends in `_total`).
    pub(crate) fn counter(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: String,
    ) {
        self.sample("counter", name, help, labels, value);
    }

    fn sample(
        &mut self,
        kind: &'static str,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: String,
    ) {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match self.families.iter_mut().find(|(n, _, _, _)| n == name) {
            Some((_, _, _, samples)) => samples.push((labels, value)),
            None => self.families.push((
                name.to_string(),
                help.to_string(),
                kind,
                vec![(labels, value)],
            )),
        }
    }

    /// The text. Every sample of a family carries the same label names (a single number has
    /// `part=""` where a triple names its parts): node_exporter would fill them in otherwise.
    pub(crate) fn finish(self) -> String {
        let mut out = String::new();
        for (name, help, kind, samples) in self.families {
            let mut names: Vec<String> = Vec::new();
            for (labels, _) in &samples {
                for (k, _) in labels {
                    if !names.contains(k) {
                        names.push(k.clone());
                    }
                }
            }
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&help));
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                out.push_str(&name);
                if !names.is_empty() {
                    let text: Vec<String> = names
                        .iter()
                        .map(|k| {
                            let v = labels.iter().find(|(n, _)| n == k).map_or("", |(_, v)| v);
                            format!("{k}=\"{}\"", escape_label(v))
                        })
                        .collect();
                    let _ = write!(out, "{{{}}}", text.join(","));
                }
                let _ = writeln!(out, " {value}");
            }
        }
        out
    }
}

/// Label values: backslash, double quote and newline escaped (text format 0.0.4).
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// HELP text: backslash and newline escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_help_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_help("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");
    }

    #[test]
    fn families_stay_together_in_first_seen_order() {
        let mut x = Exposition::default();
        x.gauge("b", "B.", &[("k", "1")], "1".into());
        x.gauge("a", "A.", &[], "2".into());
        x.gauge("b", "B.", &[("k", "2"), ("part", "low")], "3".into());
        assert_eq!(
            x.finish(),
            "# HELP b B.\n# TYPE b gauge\nb{k=\"1\",part=\"\"} 1\nb{k=\"2\",part=\"low\"} 3\n# HELP a A.\n# TYPE a gauge\na 2\n"
        );
    }

    /// A report from fixed readings, as `report::evaluate` builds it for a host.
    fn report() -> CheckReport {
        use crate::knobs::{Facts, Observation, Reading, REGISTRY};
        let mut readings: std::collections::BTreeMap<&'static str, Reading> = REGISTRY
            .iter()
            .map(|k| (k.name, Reading::Absent("not in this test".into())))
            .collect();
        for (k, v) in [
            ("rlimit.nofile.soft", Value::Int(1024)),
            ("rlimit.nofile.hard", Value::Int(UNLIMITED)),
            ("fs.nr_open", Value::Int(1_048_576)),
            ("net.ipv4.tcp_mem", Value::Triple([1, 2, 3])),
        ] {
            readings.insert(k, Reading::Value(v));
        }
        let obs = Observation {
            readings,
            facts: Facts::default(),
        };
        let p = crate::profile::for_target(100_000, crate::knobs::Role::Server);
        super::super::evaluate(&obs, &p, &super::super::Options::default())
    }

    #[test]
    fn knobs_capacity_and_exit_code_as_gauges() {
        let text = render(&report());
        for line in [
            "tune_target_connections{profile=\"target-100000\",role=\"server\"} 100000",
            "tune_knob_current_fds{knob=\"rlimit.nofile.hard\",scope=\"process\"} +Inf",
            "tune_knob_required_fds{knob=\"rlimit.nofile.soft\",scope=\"process\"} 110011",
            "tune_knob_current_pages{knob=\"net.ipv4.tcp_mem\",scope=\"host\",part=\"pressure\"} 2",
            "tune_knob_status{knob=\"net.ipv4.tcp_mem\",status=\"fail\"} 1",
            "tune_knob_status{knob=\"net.ipv4.tcp_mem\",status=\"ok\"} 0",
            "tune_capacity_meets_target 0",
            "tune_drift 0",
            "tune_check_exit_code 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        // One HELP and TYPE per family, and each family's samples together.
        let mut seen = Vec::new();
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            if seen.last() != Some(&name) {
                assert!(!seen.contains(&name), "{name} split in two");
                seen.push(name);
            }
        }
        assert_eq!(text.matches("# TYPE ").count(), seen.len());
    }

    #[test]
    fn drift_counts_each_applied_value_by_state() {
        let mut r = report();
        let d = |knob: &str, live: Option<&str>, matches: bool, boot: BootKeeps| Drift {
            knob: knob.into(),
            applied: "1".into(),
            live: live.map(str::to_string),
            live_matches: matches,
            boot,
        };
        let yes = || BootKeeps::Yes {
            file: "etc/sysctl.d/90-tune.conf".into(),
        };
        r.drift = Some(super::super::DriftReport {
            apply_id: 7,
            profile: "1m".into(),
            applied_unix: 1_700_000_000,
            values: vec![
                d("net.core.somaxconn", Some("1"), true, yes()),
                d("fs.file-max", Some("2"), false, yes()),
                d(
                    "fs.nr_open",
                    Some("1"),
                    true,
                    BootKeeps::No {
                        value: None,
                        file: None,
                    },
                ),
                d("rlimit.nofile.soft", None, false, BootKeeps::NotApplicable),
            ],
            problems: Vec::new(),
            other_netns: None,
        });
        let text = render(&r);
        for line in [
            "tune_apply_info{id=\"7\",profile=\"1m\"} 1",
            "tune_apply_timestamp_seconds 1700000000",
            "tune_drift_values{state=\"holds\"} 1",
            "tune_drift_values{state=\"changed\"} 1",
            "tune_drift_values{state=\"unreadable\"} 1",
            "tune_drift_values{state=\"not_at_boot\"} 1",
            "tune_drift 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        r.drift.as_mut().unwrap().values.truncate(1);
        assert!(render(&r).lines().any(|l| l == "tune_drift 0"));
    }

    #[test]
    fn units_become_name_suffixes() {
        assert_eq!(unit_suffix("fds"), "fds");
        assert_eq!(unit_suffix("KiB pages"), "kib_pages");
        assert_eq!(number(UNLIMITED), "+Inf");
    }
}
