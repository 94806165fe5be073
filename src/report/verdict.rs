//! The answer first: whether the host holds the target, the limit that binds and at what figure, the next limits behind it, and the fixes ranked by the connections each one gains.
//!
//! Pure: the report's rows and capacity plus the capacity [`Inputs`] in, a [`Verdict`] out.
//! What the host holds is `min(per process × processes / sockets per connection, per host)`,
//! with the profile's `processes` (1 unless it says more): the same figure decides the
//! headline, `meets_target` and which knobs fail. A knob short of the profile that caps
//! nothing at the target (somaxconn, tcp_mem with idle sockets, a limit above what another
//! one already binds at...) only limits: it is a warning, in the text and in the JSON alike.
//!
//! Gains are worked out greedily with [`capacity::estimate`]: the fix that adds the most
//! connections first, each next one on top of those before it, so the list reads as an
//! order of work. A fix whose command the kernel refuses until another knob has risen
//! (a hard RLIMIT_NOFILE above fs.nr_open, a soft one above the hard one) comes after that
//! one ([`PREREQUISITES`]), so the list runs as printed from top to bottom.

use crate::capacity::{self, Capacity, Inputs, Limiter};
use crate::knobs::{KnobId, Observation, Value};
use crate::profile::Profile;
use crate::units;
use crate::units::group;

use super::{CheckReport, Ignore, Row, Status};

/// What `tune check` answers first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// The connections asked for; `None` for `tune check` without a profile or target.
    pub target: Option<u64>,
    /// Connections the host holds now with the profile's processes; `None` when unknown.
    pub holds: Option<u64>,
    /// `holds` is at least the target (always true without a target).
    pub meets_target: bool,
    /// The limit that binds: a knob name, `memory`, or `processes` (the per-process limit times
    /// the processes the profile runs).
    pub bound_by: String,
    /// `process` or `host`: where the binding limit applies.
    pub bound_scope: &'static str,
    /// Processes the profile runs.
    pub processes: u64,
    /// Sockets one process holds, and the limit that binds it.
    pub per_process: Option<u64>,
    pub per_process_limit: String,
    /// Connections the host holds whatever the processes, and the limit that binds it.
    pub per_host: Option<u64>,
    pub per_host_limit: String,
    /// The next two limits behind the binding one, smallest first.
    pub next: Vec<NextLimit>,
    /// Processes needed for the target (or, without a target, for what the host holds).
    pub processes_needed: Option<u64>,
    /// Client source addresses needed (client and loopback roles).
    pub source_addresses_needed: Option<u64>,
    /// Fixes, the largest gain first, each after the fixes it needs ([`PREREQUISITES`]).
    pub fixes: Vec<Fix>,
}

/// A limit behind the binding one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NextLimit {
    pub limit: String,
    pub connections: u64,
}

/// One fix and what it gains.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Fix {
    /// The knob it changes, or `processes` / `memory` for fixes that are not a knob.
    pub knob: String,
    /// What to do: a command to copy for a knob, words otherwise.
    pub action: String,
    /// The line that makes it survive a reboot, when there is one.
    pub persist: Option<String>,
    /// Connections the host holds more after this fix and those above it (0: needed by the
    /// profile, but it caps nothing at the target).
    pub gain: u64,
    /// What the host holds after this fix and those above it.
    pub holds_after: Option<u64>,
    /// Knobs whose fixes must run before this one (listed above it).
    pub requires: Vec<String>,
    /// Why this fix cannot work from where tune runs (no CAP_SYS_RESOURCE, a user namespace,
    /// a read-only /proc/sys), filled in by `cmd/check` from what apply would refuse.
    pub blocked: Option<String>,
}

/// Which knob must rise before which, and why: the kernel refuses the second write otherwise.
pub const PREREQUISITES: &[(KnobId, KnobId, &str)] = &[
    (
        KnobId::NrOpen,
        KnobId::NofileHard,
        "the kernel refuses a hard RLIMIT_NOFILE above fs.nr_open",
    ),
    (
        KnobId::NrOpen,
        KnobId::NofileSoft,
        "the kernel refuses an RLIMIT_NOFILE above fs.nr_open",
    ),
    (
        KnobId::NofileHard,
        KnobId::NofileSoft,
        "the kernel refuses a soft limit above the hard one",
    ),
];

/// Why `first` must rise before `then`, when it must.
pub fn must_precede(first: KnobId, then: KnobId) -> Option<&'static str> {
    PREREQUISITES
        .iter()
        .find(|(a, b, _)| *a == first && *b == then)
        .map(|(_, _, why)| *why)
}

/// `items` reordered so that each comes after every item it needs ([`PREREQUISITES`]), the
/// order otherwise kept: an item is moved up only to sit right before the first one needing it.
pub fn in_dependency_order<T>(items: Vec<T>, knob: impl Fn(&T) -> Option<KnobId>) -> Vec<T> {
    let ids: Vec<Option<KnobId>> = items.iter().map(&knob).collect();
    let mut placed = vec![false; items.len()];
    let mut order = Vec::with_capacity(items.len());
    fn place(i: usize, ids: &[Option<KnobId>], placed: &mut [bool], order: &mut Vec<usize>) {
        if placed[i] {
            return;
        }
        placed[i] = true;
        if let Some(me) = ids[i] {
            for (j, other) in ids.iter().enumerate() {
                if other.is_some_and(|o| must_precede(o, me).is_some()) {
                    place(j, ids, placed, order);
                }
            }
        }
        order.push(i);
    }
    for i in 0..items.len() {
        place(i, &ids, &mut placed, &mut order);
    }
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order
        .into_iter()
        .map(|i| slots[i].take().expect("each placed once"))
        .collect()
}

/// Builds the verdict. `target` is `None` for `tune check` without a profile or target.
pub fn build(r: &CheckReport, inputs: &Inputs, processes: u64, target: Option<u64>) -> Verdict {
    let c = &r.capacity;
    let processes = processes.max(1);
    let (holds, bound_by, bound_scope) = holding(c, processes);
    // Without a target the processes are as many as the host needs: the per-process limit is
    // not a limit behind the host's then.
    let mut next: Vec<NextLimit> = c
        .per_process
        .connections
        .filter(|_| target.is_some())
        .map(|n| NextLimit {
            limit: c.per_process.limit.to_string(),
            connections: per_process_total(c, n, processes),
        })
        .into_iter()
        .chain(c.host_limits.iter().filter_map(|b| {
            b.connections.map(|n| NextLimit {
                limit: b.limit.to_string(),
                connections: n,
            })
        }))
        .filter(|l| l.limit != bound_by)
        .collect();
    next.sort_by_key(|l| l.connections);
    next.truncate(2);
    let goal = target.unwrap_or(u64::MAX);
    Verdict {
        target,
        holds,
        meets_target: target.is_none_or(|t| holds.is_some_and(|h| h >= t)),
        bound_by,
        bound_scope,
        processes,
        per_process: c.per_process.connections,
        per_process_limit: c.per_process.limit.to_string(),
        per_host: c.per_host.connections,
        per_host_limit: c.per_host.limit.to_string(),
        next,
        processes_needed: c.processes_needed,
        source_addresses_needed: c.source_addresses_needed,
        fixes: ranked_fixes(r, inputs, processes, goal),
    }
}

/// Decides the verdict and makes the rows, the summary, `capacity.meets_target` and the exit
/// code agree with it: a knob short of the profile that caps nothing at the target is a warning.
/// `target` is `None` for `tune check` without a profile or target (nothing is required then).
pub fn settle(
    r: &mut CheckReport,
    obs: &Observation,
    profile: &Profile,
    target: Option<u64>,
    opts: &super::Options,
) {
    let mut inputs = Inputs::from_observation(obs, profile.role);
    inputs.source_addresses = profile.params.source_addresses;
    inputs.measured = opts.measured.clone();
    inputs.tls = opts.tls_cost();
    // Without a target the question is what the host holds: with as many processes as that takes.
    let processes = match target {
        Some(_) => profile.params.processes,
        None => r.capacity.processes_needed.unwrap_or(1),
    };
    let v = build(r, &inputs, processes, target);
    for row in &mut r.knobs {
        let caps = KnobId::from_name(row.knob).is_some_and(|id| limits(&v, &r.capacity, id));
        if row.status == Status::Fail && row.current.is_some() && !caps {
            row.status = Status::Warn;
            let why = format!(
                "short of the profile, but it caps nothing at {} connections (the host holds {})",
                target.map_or("?".into(), group),
                v.holds.map_or("?".into(), group)
            );
            row.note = Some(match row.note.take() {
                Some(n) => format!("{why}; {n}"),
                None => why,
            });
        }
    }
    let s = &mut r.summary;
    (s.ok, s.warn, s.fail, s.absent, s.info) = (0, 0, 0, 0, 0);
    for row in &r.knobs {
        match row.status {
            Status::Ok => s.ok += 1,
            Status::Warn => s.warn += 1,
            Status::Fail => s.fail += 1,
            Status::Absent => s.absent += 1,
            Status::Info => s.info += 1,
        }
    }
    // A shortfall whose binding limit --ignore names is accepted like the knob's own failure.
    let short = !v.meets_target && !ignored(&opts.ignore, &v.bound_by);
    s.exit_code = u8::from(s.fail > 0 || short || (opts.strict && s.warn > 0));
    r.capacity.meets_target = v.meets_target;
    r.verdict = Some(v);
}

fn ignored(ignore: &Ignore, limit: &str) -> bool {
    match ignore {
        Ignore::None => false,
        Ignore::All => true,
        Ignore::Some(set) => set.contains(limit),
    }
}

/// Connections `processes` processes of `per_process` sockets each hold.
fn per_process_total(c: &Capacity, per_process: u64, processes: u64) -> u64 {
    per_process.saturating_mul(processes) / c.sockets_per_connection.max(1)
}

/// What the host holds, the limit that binds and its scope.
fn holding(c: &Capacity, processes: u64) -> (Option<u64>, String, &'static str) {
    let pp = c
        .per_process
        .connections
        .map(|n| per_process_total(c, n, processes));
    match (pp, c.per_host.connections) {
        (Some(p), Some(h)) if p < h => (Some(p), c.per_process.limit.to_string(), "process"),
        (Some(_), Some(h)) | (None, Some(h)) => (Some(h), c.per_host.limit.to_string(), "host"),
        (Some(p), None) => (Some(p), c.per_process.limit.to_string(), "process"),
        (None, None) => (None, "unknown".into(), "host"),
    }
}

/// Every fix the rows offer, plus running more processes or freeing memory when those bind,
/// ordered greedily by what each adds on top of the ones before it.
fn ranked_fixes(r: &CheckReport, inputs: &Inputs, processes: u64, goal: u64) -> Vec<Fix> {
    let short =
        |row: &&Row| matches!(row.status, Status::Fail | Status::Warn) && row.fix_runtime.is_some();
    // The soft limit's fix raises both limits when the hard one is below it: one fix, not two.
    let soft_raises_both = r.knobs.iter().filter(short).any(|row| {
        KnobId::from_name(row.knob) == Some(KnobId::NofileSoft)
            && row
                .fix_runtime
                .as_deref()
                .is_some_and(|f| f.contains("both must rise"))
    });
    let mut open: Vec<&Row> = r
        .knobs
        .iter()
        .filter(short)
        .filter(|row| {
            !(soft_raises_both && KnobId::from_name(row.knob) == Some(KnobId::NofileHard))
        })
        .collect();
    let mut now = inputs.clone();
    let held = |i: &Inputs| {
        let c = capacity::estimate(i, r.capacity.target);
        holding(&c, processes).0.map(|h| h.min(goal))
    };
    let mut fixes = Vec::new();
    while !open.is_empty() {
        let before = held(&now).unwrap_or(0);
        // The largest gain; ties keep the registry's order.
        let (best, after) = open
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let mut next = now.clone();
                apply(&mut next, row);
                (i, next)
            })
            .max_by_key(|(i, next)| (held(next).unwrap_or(0), std::cmp::Reverse(*i)))
            .expect("open is not empty");
        let row = open.remove(best);
        let holds_after = held(&after);
        fixes.push(Fix {
            knob: row.knob.to_string(),
            action: row.fix_runtime.clone().unwrap_or_default(),
            persist: row.fix_persistent.clone(),
            gain: holds_after.unwrap_or(0).saturating_sub(before),
            holds_after,
            requires: Vec::new(),
            blocked: None,
        });
        now = after;
    }
    fixes.extend(beyond_knobs(r, &now, processes, goal));
    // Ranked by what each gains; the greedy order breaks ties; then what the kernel needs
    // first moves above what needs it.
    fixes.sort_by_key(|f| std::cmp::Reverse(f.gain));
    let mut fixes = in_dependency_order(fixes, |f| KnobId::from_name(&f.knob));
    let present: Vec<Option<KnobId>> = fixes.iter().map(|f| KnobId::from_name(&f.knob)).collect();
    for f in &mut fixes {
        let Some(me) = KnobId::from_name(&f.knob) else {
            continue;
        };
        f.requires = present
            .iter()
            .flatten()
            .filter(|o| must_precede(**o, me).is_some())
            .map(|o| o.to_string())
            .collect();
    }
    fixes
}

/// Fixes that are not a knob: more processes when the per-process limit binds, memory when it does.
fn beyond_knobs(r: &CheckReport, fixed: &Inputs, processes: u64, goal: u64) -> Vec<Fix> {
    let c = capacity::estimate(fixed, r.capacity.target);
    let (held, bound, scope) = holding(&c, processes);
    let mut out = Vec::new();
    let Some(held) = held else { return out };
    if scope == "process" {
        if let (Some(pp), Some(ph)) = (c.per_process.connections, c.per_host.connections) {
            let s = c.sockets_per_connection.max(1);
            let want = ph.min(goal);
            let needed = want.saturating_mul(s).div_ceil(pp.max(1)).max(1);
            if needed > processes {
                out.push(Fix {
                    knob: "processes".into(),
                    action: format!(
                        "run {} processes of {} sockets each (processes = {needed} in the profile)",
                        group(needed),
                        group(pp)
                    ),
                    persist: None,
                    gain: want.saturating_sub(held),
                    holds_after: Some(want),
                    requires: Vec::new(),
                    blocked: None,
                });
            }
        }
    } else if bound == Limiter::Memory.name() && held < goal && goal != u64::MAX {
        let per_conn = c.sockets_per_connection * fixed.bytes_per_socket
            + fixed.user_bytes_per_connection
            + fixed.tls_bytes();
        let more = (goal - held).saturating_mul(per_conn);
        out.push(Fix {
            knob: Limiter::Memory.name().into(),
            action: format!(
                "free or add {} of memory ({} B per connection × {} more connections)",
                units::bytes(more),
                group(per_conn),
                group(goal - held)
            ),
            persist: None,
            gain: goal - held,
            holds_after: Some(goal),
            requires: Vec::new(),
            blocked: None,
        });
    }
    out
}

/// The inputs as they would be with `row`'s required value in place.
fn apply(i: &mut Inputs, row: &Row) {
    let Some(req) = row.required else { return };
    let int = match req {
        Value::Int(n) => Some(n),
        _ => None,
    };
    let Some(id) = KnobId::from_name(row.knob) else {
        return;
    };
    match (id, int) {
        (KnobId::NofileHard, Some(n)) => raise_hard(i, n),
        (KnobId::NofileSoft, Some(n)) => {
            i.nofile_soft = Some(n);
            if i.nofile_hard.is_some_and(|h| h < n) {
                // The soft fix raises both (the kernel refuses a soft limit above the hard one).
                raise_hard(i, n);
            }
        }
        (KnobId::NrOpen, Some(n)) => i.nr_open = Some(n),
        (KnobId::FileMax, Some(n)) => i.file_max = Some(n),
        (KnobId::ConntrackMax, Some(n)) => i.conntrack_max = Some(n),
        (KnobId::IpLocalPortRange, None) => {
            if let Value::Range(r) = req {
                i.port_range = Some(r);
            }
        }
        _ => {}
    }
}

/// The hard RLIMIT_NOFILE raised to `n`, with fs.nr_open first when it is lower: the kernel
/// refuses a hard limit above it, so the check's fix list raises it too.
fn raise_hard(i: &mut Inputs, n: u64) {
    if i.nr_open.is_some_and(|nr| nr < n) {
        i.nr_open = Some(n);
    }
    i.nofile_hard = Some(n.max(i.nofile_hard.unwrap_or(0)));
}

/// Does this short knob cap the connections the host holds below the target? The binding limit
/// does; so does any counted limit whose figure is below the target, and what must rise first
/// for one of those (fs.nr_open under RLIMIT_NOFILE, the soft limit beside the hard one).
pub fn limits(v: &Verdict, c: &Capacity, knob: KnobId) -> bool {
    let Some(target) = v.target else {
        return false;
    };
    let below = |limit: Limiter| {
        let pp = c
            .per_process
            .connections
            .filter(|_| c.per_process.limit == limit)
            .map(|n| per_process_total(c, n, v.processes));
        let host = c
            .host_limits
            .iter()
            .filter(|b| b.limit == limit)
            .find_map(|b| b.connections);
        pp.into_iter().chain(host).any(|n| n < target)
    };
    match knob {
        KnobId::NofileSoft | KnobId::NrOpen => {
            below(Limiter::Knob(KnobId::NofileHard)) || below(Limiter::Knob(KnobId::NrOpen))
        }
        KnobId::MemoryTotal => below(Limiter::Memory),
        k => below(Limiter::Knob(k)),
    }
}

/// The verdict as the first line: "holds N: bound by X at Y" or "does not hold N: ...".
pub fn headline(v: &Verdict) -> String {
    let at = v.holds.map_or("?".to_string(), group);
    let by = match v.bound_scope {
        "process" if v.processes > 1 => format!(
            "{} at {at} ({} processes of {})",
            v.bound_by,
            group(v.processes),
            v.per_process.map_or("?".into(), group)
        ),
        "process" => format!("{} at {at} (one process)", v.bound_by),
        _ => format!("{} at {at}", v.bound_by),
    };
    match (v.target, v.meets_target) {
        (None, _) => format!("holds {at} connections: bound by {by}"),
        (Some(t), true) => format!("holds {}: bound by {by}", group(t)),
        (Some(t), false) => format!("does not hold {}: bound by {by}", group(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::Bound;

    fn bound(limit: &str, n: Option<u64>) -> Bound {
        Bound {
            connections: n,
            limit: match crate::knobs::KnobId::from_name(limit) {
                Some(id) => crate::capacity::Limiter::Knob(id),
                None => crate::capacity::Limiter::Memory,
            },
            arithmetic: String::new(),
        }
    }

    fn cap(pp: u64, host: &[(&str, Option<u64>)], target: u64) -> Capacity {
        let host_limits: Vec<Bound> = host.iter().map(|(l, n)| bound(l, *n)).collect();
        let per_host = host_limits
            .iter()
            .filter(|b| b.connections.is_some())
            .min_by_key(|b| b.connections)
            .cloned()
            .unwrap();
        Capacity {
            role: crate::knobs::Role::Server,
            target,
            sockets_per_connection: 1,
            per_process: bound("rlimit.nofile.hard", Some(pp)),
            per_host,
            host_limits,
            processes_needed: Some(target.div_ceil(pp)),
            source_addresses_needed: None,
            meets_target: false,
            notes: Vec::new(),
            per_server_worker: None,
        }
    }

    #[test]
    fn one_process_binds_at_its_fd_limit_and_more_processes_lift_it() {
        let c = cap(
            19_990,
            &[("memory", Some(557_449)), ("fs.file-max", None)],
            1_000_000,
        );
        let (held, by, scope) = holding(&c, 1);
        assert_eq!(
            (held, by.as_str(), scope),
            (Some(19_990), "rlimit.nofile.hard", "process")
        );
        let (held, by, scope) = holding(&c, 51);
        assert_eq!(
            (held, by.as_str(), scope),
            (Some(557_449), "memory", "host")
        );
    }

    #[test]
    fn headlines() {
        let mut v = Verdict {
            target: Some(1_000_000),
            holds: Some(19_990),
            meets_target: false,
            bound_by: "rlimit.nofile.hard".into(),
            bound_scope: "process",
            processes: 1,
            per_process: Some(19_990),
            per_process_limit: "rlimit.nofile.hard".into(),
            per_host: Some(557_449),
            per_host_limit: "memory".into(),
            next: Vec::new(),
            processes_needed: Some(51),
            source_addresses_needed: None,
            fixes: Vec::new(),
        };
        assert_eq!(
            headline(&v),
            "does not hold 1,000,000: bound by rlimit.nofile.hard at 19,990 (one process)"
        );
        v.target = None;
        assert_eq!(
            headline(&v),
            "holds 19,990 connections: bound by rlimit.nofile.hard at 19,990 (one process)"
        );
        v.target = Some(10_000);
        v.meets_target = true;
        assert_eq!(
            headline(&v),
            "holds 10,000: bound by rlimit.nofile.hard at 19,990 (one process)"
        );
    }

    #[test]
    fn a_short_knob_that_caps_nothing_only_limits() {
        let c = cap(
            1_100_001,
            &[("memory", Some(2_000_000)), ("fs.file-max", Some(900_000))],
            1_000_000,
        );
        let v = Verdict {
            target: Some(1_000_000),
            holds: Some(900_000),
            meets_target: false,
            bound_by: "fs.file-max".into(),
            bound_scope: "host",
            processes: 1,
            per_process: Some(1_100_001),
            per_process_limit: "rlimit.nofile.hard".into(),
            per_host: Some(900_000),
            per_host_limit: "fs.file-max".into(),
            next: Vec::new(),
            processes_needed: Some(1),
            source_addresses_needed: None,
            fixes: Vec::new(),
        };
        assert!(limits(&v, &c, KnobId::FileMax));
        assert!(!limits(&v, &c, KnobId::Somaxconn));
        assert!(!limits(&v, &c, KnobId::NofileHard));
        assert!(!limits(&v, &c, KnobId::MemoryTotal));
    }
}
