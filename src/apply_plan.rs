//! Planning `tune apply`, pure: observed values + profile + where tune runs + options -> the changes to make.
//!
//! By default a change only moves a knob in its [`Compare`] direction (raise an
//! `AtLeast` knob, shorten an `AtMost` one, widen a `PortCount` range); a knob
//! already beyond the profile is kept. `--allow-lower` permits the other
//! direction. A knob that falls short but cannot be changed here says why.
//! Everything here takes values and returns values: the I/O (observing,
//! detecting the namespace, reading boot files) happens in `cmd/apply.rs`.

use std::collections::BTreeMap;

use crate::knobs::{self, Compare, Knob, KnobId, Limit, Persist, Reading, Scope, Value, Write};
use crate::persist::boot::BootValue;
use crate::profile::Profile;
use crate::values::{Input, Suggest};

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub allow_lower: bool,
    /// The process whose RLIMIT_NOFILE to raise (prlimit); without it RLIMIT_NOFILE is only persisted.
    pub pid: Option<u32>,
    pub persist: bool,
}

/// Facts about where tune runs that decide what it may change, gathered at the edge.
#[derive(Debug, Clone, Default)]
pub struct Here {
    /// tune runs in a network namespace other than the host's: host-wide knobs are off limits.
    pub child_netns: bool,
    /// Knobs whose run-time file cannot be written here, with the reason.
    pub read_only: BTreeMap<&'static str, String>,
    /// What the boot configuration sets now, not counting tune's own files.
    pub boot: BTreeMap<&'static str, BootValue>,
}

/// What happens to one knob at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write this value. `lowers` is true when it moves against the knob's direction (--allow-lower).
    Set { to: Value, lowers: bool },
    /// Already what the profile asks.
    AtProfile,
    /// Beyond the profile in the knob's direction; left alone. The text says how.
    Kept(String),
    /// Falls short but tune cannot change it here; the text says why and what to do.
    CannotChange(String),
}

/// One knob the profile names.
#[derive(Debug, Clone)]
pub struct Item {
    pub knob: &'static Knob,
    pub live: Option<Value>,
    /// The value the boot configuration sets now (tune's own files not counted).
    pub boot: Option<BootValue>,
    pub profile: Value,
    pub why: String,
    pub action: Action,
    /// With --persist: the value to write into the boot configuration, or why not.
    pub persist: Option<Result<Value, String>>,
}

impl Item {
    /// The value the knob has once the plan is carried out.
    pub fn after(&self) -> Option<Value> {
        match &self.action {
            Action::Set { to, .. } => Some(*to),
            _ => self.live,
        }
    }
}

/// The plan: one item per knob the profile names, in registry order, and the problems that stop it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub items: Vec<Item>,
    /// Values the kernel would refuse or that make no sense: nothing is written while any exist.
    pub errors: Vec<String>,
}

impl Plan {
    pub fn changes(&self) -> impl Iterator<Item = (&Item, &Value)> {
        self.items.iter().filter_map(|i| match &i.action {
            Action::Set { to, .. } => Some((i, to)),
            _ => None,
        })
    }

    /// True when some knob falls short and cannot be changed here: the plan is incomplete (exit 1).
    pub fn incomplete(&self) -> bool {
        self.items
            .iter()
            .any(|i| matches!(i.action, Action::CannotChange(_)))
    }

    pub fn get(&self, name: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.knob.name == name)
    }
}

/// The value that satisfies both `live` and the profile, moving only in the knob's direction:
/// component-wise max (at-least), min (at-most), or the union of two ranges (covers).
/// The max of two ordered triples is ordered, so this never makes a triple out of order.
pub fn merge(compare: Compare, live: &Value, wanted: &Value) -> Value {
    let zip = |f: fn(u64, u64) -> u64| -> Value {
        let mut out = *wanted;
        let parts: Vec<u64> = live
            .parts()
            .iter()
            .zip(wanted.parts())
            .map(|(a, b)| f(*a, *b))
            .collect();
        match &mut out {
            Value::Int(a) => *a = parts[0],
            Value::Triple(t) => t.copy_from_slice(&parts),
            Value::Range(r) => r.copy_from_slice(&parts),
        }
        out
    };
    if live.shape() != wanted.shape() {
        return *wanted;
    }
    match compare {
        Compare::AtMost => zip(u64::min),
        // Widen the live range to the required port count; never narrower than it is.
        Compare::PortCount => match (live, wanted) {
            (Value::Range(l), Value::Range(w)) => Value::Range(crate::ports::fix(*l, *w)),
            _ => *wanted,
        },
        // A mode has no direction: the profile's value is the only one that satisfies it.
        Compare::Equal => *wanted,
        Compare::AtLeast | Compare::Info => zip(u64::max),
    }
}

/// Where the live value stands when it is beyond the profile, in words.
fn beyond(compare: Compare) -> &'static str {
    match compare {
        Compare::AtMost => "lower than profile, which is better for this knob",
        Compare::PortCount => "more ports than profile",
        Compare::Equal => "another mode than the profile's",
        Compare::AtLeast | Compare::Info => "higher than profile",
    }
}

/// The run-time decision for one knob, before asking whether it can be changed here.
pub fn decide(compare: Compare, live: &Value, wanted: &Value, allow_lower: bool) -> Action {
    if live == wanted {
        return Action::AtProfile;
    }
    let improved = merge(compare, live, wanted);
    if allow_lower {
        return Action::Set {
            to: *wanted,
            lowers: improved != *wanted,
        };
    }
    if improved == *live {
        Action::Kept(format!(
            "kept ({}; {} sets {wanted})",
            beyond(compare),
            Suggest::input(Input::AllowLower)
        ))
    } else {
        Action::Set {
            to: improved,
            lowers: false,
        }
    }
}

/// Values the kernel would refuse or that contradict each other, checked before anything is written.
fn validate_shape(knob: &Knob, v: &Value) -> Option<String> {
    match v {
        Value::Triple([a, b, c]) if !(a <= b && b <= c) => Some(format!(
            "{}: profile asks for \"{v}\": the three numbers must be in order (low <= pressure/default <= high); \
             fix the profile",
            knob.name
        )),
        Value::Range([a, b]) if a > b => Some(format!(
            "{}: profile asks for \"{v}\": the range is out of order (low must not exceed high); fix the profile",
            knob.name
        )),
        _ => None,
    }
}

/// Where a hard RLIMIT_NOFILE can be raised when this process cannot.
fn nofile_fix() -> String {
    let persist = Suggest::input(Input::Persist);
    format!(
        "set LimitNOFILE= in the service's unit (tune apply {persist} {}), \
         a nofile line in /etc/security/limits.d (tune apply {persist}), \
         or run tune with CAP_SYS_RESOURCE",
        Suggest::set(Input::Service, "UNIT")
    )
}

/// Builds the plan. Pure: the same inputs always give the same plan.
pub fn make(obs: &knobs::Observation, profile: &Profile, here: &Here, opts: &Options) -> Plan {
    let mut errors = Vec::new();
    let mut items = Vec::new();
    for knob in knobs::REGISTRY {
        let Some(req) = profile.requirements.get(&knob.id) else {
            continue;
        };
        if let Some(e) = validate_shape(knob, &req.value) {
            errors.push(e);
        }
        let reading = obs.reading(knob.id);
        let live = reading.and_then(Reading::value).copied();
        let mut action = match (reading, &live) {
            (_, Some(l)) => decide(knob.compare, l, &req.value, opts.allow_lower),
            (Some(Reading::Absent(why)), None) | (Some(Reading::Unreadable(why)), None) => {
                Action::CannotChange(why.clone())
            }
            (_, None) => Action::CannotChange("not observed".into()),
        };
        // What tune never sets (memory) only says whether it meets the profile.
        if let (Write::No(why), Some(l)) = (knob.write, &live) {
            action = if knob.compare.satisfied(l, &req.value) {
                Action::Kept("meets the profile (tune does not set it)".into())
            } else {
                Action::CannotChange(why.to_string())
            };
        }
        if matches!(action, Action::Set { .. }) {
            if let Some(why) = cannot_change(knob, here, opts, obs) {
                action = Action::CannotChange(why);
            }
        }
        let boot = here.boot.get(knob.name).cloned();
        items.push(Item {
            knob,
            live,
            boot,
            profile: req.value,
            why: req.why.clone(),
            action,
            persist: None,
        });
    }
    check_nofile(&mut items, obs, opts, &mut errors);
    if opts.persist {
        for item in &mut items {
            item.persist = persist_value(item, opts);
        }
    }
    Plan { items, errors }
}

/// Why a knob that needs changing cannot be changed here, if it cannot.
fn cannot_change(
    knob: &Knob,
    here: &Here,
    opts: &Options,
    obs: &knobs::Observation,
) -> Option<String> {
    if let Some(why) = blocked_here(knob, here, obs) {
        return Some(why);
    }
    if let Write::Prlimit(_) = knob.write {
        if opts.pid.is_none() {
            return Some(format!(
                "RLIMIT_NOFILE belongs to a process; pass {} to raise a \
                 running process, or {} to set it for new sessions and services",
                Suggest::set(Input::Pid, "PID"),
                Suggest::input(Input::Persist)
            ));
        }
    }
    None
}

/// Why no one could change `knob` at run time from where tune runs (whatever the flags): a
/// host-wide knob from a child network namespace or a user namespace, a read-only file, a
/// hard limit without CAP_SYS_RESOURCE. `tune check` puts it under the fix it blocks.
pub fn blocked_here(knob: &Knob, here: &Here, obs: &knobs::Observation) -> Option<String> {
    if let Write::No(why) = knob.write {
        return Some(why.to_string());
    }
    if here.child_netns
        && knob.scope == Scope::Host
        && matches!(knob.write, Write::Sysctl(_) | Write::ModuleParam { .. })
    {
        return Some(
            "a host-wide knob, and tune runs in a child network namespace \
             (writing it would change the whole host); run tune in the host's namespace"
                .into(),
        );
    }
    if let Some(why) = here.read_only.get(knob.name) {
        return Some(why.clone());
    }
    // The kernel checks host-wide sysctls against the initial user namespace: a user
    // namespace's root may not write them (EPERM), whatever CapEff shows.
    if obs.facts.own_user_namespace == Some(true)
        && knob.scope == Scope::Host
        && matches!(knob.write, Write::Sysctl(_) | Write::ModuleParam { .. })
    {
        return Some(format!(
            "a host-wide knob, and tune runs in a {}; set it on the host",
            crate::container::USERNS_REASON
        ));
    }
    if let Write::Prlimit(which) = knob.write {
        if which == Limit::Hard && obs.facts.cap_sys_resource() == Some(false) {
            return Some(format!(
                "raising a hard limit needs CAP_SYS_RESOURCE, which does not count here ({}); {}",
                obs.facts.capability_reason(),
                nofile_fix()
            ));
        }
    }
    None
}

/// RLIMIT_NOFILE checks across knobs: soft <= hard, and neither above fs.nr_open (the kernel says EPERM).
fn check_nofile(
    items: &mut [Item],
    obs: &knobs::Observation,
    opts: &Options,
    errors: &mut Vec<String>,
) {
    let find = |items: &[Item], id: KnobId| items.iter().position(|i| i.knob.id == id);
    let nr_open = KnobId::NrOpen;
    let live_nr_open = obs.get(KnobId::NrOpen).copied();
    let nr_item = find(items, KnobId::NrOpen);
    // What the profile makes of fs.nr_open wherever it can be applied, and what it is after this run.
    let nr_open_profile = match (nr_item.map(|i| items[i].profile), live_nr_open) {
        (Some(p), Some(l)) => Some(merge(Compare::AtLeast, &l, &p)),
        (Some(p), None) => Some(p),
        (None, l) => l,
    };
    let nr_open_after = nr_item.and_then(|i| items[i].after()).or(live_nr_open);
    let soft = find(items, KnobId::NofileSoft);
    let hard = find(items, KnobId::NofileHard);
    for idx in [soft, hard].into_iter().flatten() {
        let Value::Int(want) = items[idx].profile else {
            continue;
        };
        if want == knobs::UNLIMITED {
            continue;
        }
        // The profile contradicts itself: no host could take this limit.
        if let Some(Value::Int(max)) = nr_open_profile {
            if want > max {
                let knob = items[idx].knob.name;
                errors.push(format!(
                    "{knob}: profile asks for {want}, above {nr_open} {max}: the kernel refuses any \
                     RLIMIT_NOFILE above {nr_open} (EPERM, even for root); raise {nr_open} in the \
                     profile to at least {want} or lower {knob}"
                ));
                continue;
            }
        }
        // fs.nr_open cannot be raised here, so neither can the limit past it.
        if let (
            Action::Set {
                to: Value::Int(t), ..
            },
            Some(Value::Int(max)),
        ) = (&items[idx].action, nr_open_after)
        {
            if *t > max {
                items[idx].action = Action::CannotChange(format!(
                    "{t} is above {nr_open} {max}, which is not raised here (see {nr_open})"
                ));
            }
        }
    }
    if let (Some(s), Some(h)) = (soft, hard) {
        if let (Value::Int(ws), Value::Int(wh)) = (items[s].profile, items[h].profile) {
            if ws > wh {
                errors.push(format!(
                    "{}: profile asks for {ws}, above {} {wh}: \
                     the soft limit can never exceed the hard one (EINVAL); fix the profile",
                    KnobId::NofileSoft,
                    KnobId::NofileHard
                ));
            }
        }
    }
    // A soft limit raised past a hard limit that stays put would be refused.
    if let Some(s) = soft {
        if opts.pid.is_some() {
            let hard_after = hard
                .and_then(|h| items[h].after())
                .or_else(|| obs.get(KnobId::NofileHard).copied());
            if let (
                Action::Set {
                    to: Value::Int(t), ..
                },
                Some(Value::Int(ha)),
            ) = (&items[s].action, hard_after)
            {
                if *t > ha {
                    items[s].action = Action::CannotChange(format!(
                        "{t} is above the hard limit {ha}, which stays; {}",
                        nofile_fix()
                    ));
                }
            }
        }
    }
}

/// The value to persist for one knob, `None` when it has nothing to persist, or why not.
fn persist_value(item: &Item, opts: &Options) -> Option<Result<Value, String>> {
    match item.knob.persist {
        Persist::No => None,
        // RLIMIT_NOFILE at boot belongs to new sessions and services: the profile's value.
        Persist::Nofile(_) => Some(Ok(item.profile)),
        Persist::SysctlD | Persist::ModprobeD { .. } => {
            if item.live.is_none() {
                if let Action::CannotChange(why) = &item.action {
                    return Some(Err(format!("not persisted: {why}")));
                }
            }
            // Persist writes only what tune changes: a value the profile already allows stays
            // out of the boot files (defaults such as fs.file-max scale with RAM, and a copy of
            // today's value would cap them after a memory upgrade).
            if let (Action::AtProfile | Action::Kept(_), Some(live)) = (&item.action, item.live) {
                return Some(Err(format!(
                    "not persisted: {live} already meets the profile, so the boot files leave it \
                     to the kernel and the existing configuration"
                )));
            }
            let want = if opts.allow_lower {
                item.profile
            } else {
                match (&item.action, item.live) {
                    (Action::Set { to, .. }, _) => *to,
                    (_, Some(l)) => merge(item.knob.compare, &l, &item.profile),
                    (_, None) => item.profile,
                }
            };
            match &item.boot {
                Some(b) if b.value == want => None,
                // Boot already sets a value at least as good as what runs after apply.
                Some(b)
                    if !opts.allow_lower
                        && merge(item.knob.compare, &b.value, &want) == b.value =>
                {
                    None
                }
                _ => Some(Ok(want)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knobs::{Facts, Observation};
    use crate::profile::Requirement;

    fn obs(values: &[(&'static str, Value)]) -> Observation {
        let mut readings: BTreeMap<&'static str, Reading> = BTreeMap::new();
        for k in knobs::REGISTRY {
            readings.insert(k.name, Reading::Absent("absent in this test".into()));
        }
        for (n, v) in values {
            readings.insert(n, Reading::Value(*v));
        }
        Observation {
            readings,
            facts: Facts {
                cap_eff: Some(0x1fffeffffff), // this machine: CAP_SYS_RESOURCE (bit 24) clear
                conntrack_loaded: true,
                ..Facts::default()
            },
        }
    }

    /// A profile with exactly these requirements (loaded from a minimal file, so this keeps
    /// working whatever else the loader adds to `Profile`).
    fn profile(reqs: &[(&'static str, Value)]) -> Profile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "target = 1\nrole = \"server\"\n").unwrap();
        let mut p =
            crate::profile::load(&crate::root::Root::host(), path.to_str().unwrap()).unwrap();
        p.requirements = reqs
            .iter()
            .map(|(n, v)| {
                (
                    KnobId::from_name(n).expect("a registry name"),
                    Requirement {
                        value: *v,
                        why: "test".into(),
                    },
                )
            })
            .collect();
        p
    }

    #[test]
    fn raises_only_by_default() {
        let o = obs(&[
            ("net.core.somaxconn", Value::Int(4096)),
            ("net.ipv4.tcp_max_syn_backlog", Value::Int(2048)),
            ("net.ipv4.ip_local_port_range", Value::Range([32768, 60999])),
            ("net.ipv4.tcp_fin_timeout", Value::Int(60)),
            ("net.ipv4.tcp_rmem", Value::Triple([4096, 131072, 33554432])),
        ]);
        let p = profile(&[
            ("net.core.somaxconn", Value::Int(65535)),
            ("net.ipv4.tcp_max_syn_backlog", Value::Int(1024)),
            ("net.ipv4.ip_local_port_range", Value::Range([1024, 65535])),
            ("net.ipv4.tcp_fin_timeout", Value::Int(15)),
            ("net.ipv4.tcp_rmem", Value::Triple([4096, 4096, 16384])),
        ]);
        let plan = make(&o, &p, &Here::default(), &Options::default());
        assert!(plan.errors.is_empty());
        let a = |n: &str| plan.get(n).unwrap().action.clone();
        assert_eq!(
            a("net.core.somaxconn"),
            Action::Set {
                to: Value::Int(65535),
                lowers: false
            }
        );
        assert!(
            matches!(a("net.ipv4.tcp_max_syn_backlog"), Action::Kept(ref s) if s.contains("higher than profile"))
        );
        assert_eq!(
            a("net.ipv4.ip_local_port_range"),
            Action::Set {
                to: Value::Range([1024, 65535]),
                lowers: false
            }
        );
        assert_eq!(
            a("net.ipv4.tcp_fin_timeout"),
            Action::Set {
                to: Value::Int(15),
                lowers: false
            }
        );
        assert!(matches!(a("net.ipv4.tcp_rmem"), Action::Kept(_)));
        assert!(!plan.incomplete());

        let lower = Options {
            allow_lower: true,
            ..Options::default()
        };
        let plan = make(&o, &p, &Here::default(), &lower);
        assert_eq!(
            plan.get("net.ipv4.tcp_max_syn_backlog").unwrap().action,
            Action::Set {
                to: Value::Int(1024),
                lowers: true
            }
        );
        assert_eq!(
            plan.get("net.ipv4.tcp_rmem").unwrap().action,
            Action::Set {
                to: Value::Triple([4096, 4096, 16384]),
                lowers: true
            }
        );
    }

    #[test]
    fn what_tune_never_sets_only_meets_or_falls_short() {
        let o = obs(&[("memory.total", Value::Int(25_276_510_208))]);
        let p = profile(&[("memory.total", Value::Int(5_928_421_053))]);
        let lower = Options {
            allow_lower: true,
            ..Options::default()
        };
        let plan = make(&o, &p, &Here::default(), &lower);
        assert!(
            matches!(&plan.get("memory.total").unwrap().action, Action::Kept(w) if w.contains("does not set"))
        );
        let p = profile(&[("memory.total", Value::Int(50_000_000_000))]);
        let plan = make(&o, &p, &Here::default(), &Options::default());
        assert!(
            matches!(&plan.get("memory.total").unwrap().action, Action::CannotChange(w) if w.contains("RAM"))
        );
    }

    #[test]
    fn triple_raises_component_wise_and_stays_ordered() {
        let v = merge(
            Compare::AtLeast,
            &Value::Triple([10, 20, 300]),
            &Value::Triple([15, 15, 200]),
        );
        assert_eq!(v, Value::Triple([15, 20, 300]));
        // 28,232 ports already offer the 25,536 asked for: the range stays as it is.
        let v = merge(
            Compare::PortCount,
            &Value::Range([32768, 60999]),
            &Value::Range([40000, 65535]),
        );
        assert_eq!(v, Value::Range([32768, 60999]));
        // A profile's range that contains the live one is written as it is.
        let v = merge(
            Compare::PortCount,
            &Value::Range([32768, 60999]),
            &Value::Range([21000, 60999]),
        );
        assert_eq!(v, Value::Range([21000, 60999]));
        assert_eq!(
            decide(Compare::AtLeast, &Value::Int(5), &Value::Int(5), false),
            Action::AtProfile
        );
    }

    #[test]
    fn a_mode_is_set_to_the_profiles_value_without_allow_lower() {
        // tcp_tw_reuse 2 (loopback only) is not "more" than 1 (everywhere).
        assert_eq!(
            decide(Compare::Equal, &Value::Int(2), &Value::Int(1), false),
            Action::Set {
                to: Value::Int(1),
                lowers: false
            }
        );
    }

    #[test]
    fn host_wide_knobs_cannot_change_in_a_child_namespace() {
        let o = obs(&[
            ("fs.file-max", Value::Int(100)),
            ("net.core.somaxconn", Value::Int(4096)),
        ]);
        let p = profile(&[
            ("fs.file-max", Value::Int(2_000_000)),
            ("net.core.somaxconn", Value::Int(8192)),
        ]);
        let here = Here {
            child_netns: true,
            ..Here::default()
        };
        let plan = make(&o, &p, &here, &Options::default());
        assert!(
            matches!(&plan.get("fs.file-max").unwrap().action, Action::CannotChange(w) if w.contains("child network namespace"))
        );
        assert!(matches!(
            plan.get("net.core.somaxconn").unwrap().action,
            Action::Set { .. }
        ));
        assert!(plan.incomplete());
        // Satisfied host-wide knobs are simply fine, even in a child namespace.
        let p = profile(&[("fs.file-max", Value::Int(50))]);
        assert!(!make(&o, &p, &here, &Options::default()).incomplete());
    }

    #[test]
    fn absent_read_only_and_rlimit_reasons() {
        let mut o = obs(&[
            ("net.netfilter.nf_conntrack_max", Value::Int(262144)),
            ("rlimit.nofile.soft", Value::Int(1024)),
            ("rlimit.nofile.hard", Value::Int(20000)),
            ("fs.nr_open", Value::Int(1048576)),
        ]);
        o.readings.insert(
            "net.ipv4.tcp_mem",
            Reading::Absent("hidden in a child namespace".into()),
        );
        let p = profile(&[
            ("net.netfilter.nf_conntrack_max", Value::Int(2_000_000)),
            ("net.ipv4.tcp_mem", Value::Triple([1, 2, 3])),
            ("rlimit.nofile.soft", Value::Int(10000)),
            ("rlimit.nofile.hard", Value::Int(1048576)),
        ]);
        let mut here = Here::default();
        here.read_only.insert(
            "net.netfilter.nf_conntrack_max",
            "x is read-only here (mode 444)".into(),
        );
        let plan = make(&o, &p, &here, &Options::default());
        let a = |n: &str| plan.get(n).unwrap().action.clone();
        assert!(
            matches!(a("net.netfilter.nf_conntrack_max"), Action::CannotChange(w) if w.contains("read-only"))
        );
        assert!(
            matches!(a("net.ipv4.tcp_mem"), Action::CannotChange(w) if w.contains("child namespace"))
        );
        assert!(
            matches!(a("rlimit.nofile.soft"), Action::CannotChange(w) if w.contains(&Suggest::input(Input::Pid).to_string()))
        );
        // With --pid: soft fits under the hard limit; the hard raise needs CAP_SYS_RESOURCE.
        let opts = Options {
            pid: Some(1),
            ..Options::default()
        };
        let plan = make(&o, &p, &here, &opts);
        let a = |n: &str| plan.get(n).unwrap().action.clone();
        assert_eq!(
            a("rlimit.nofile.soft"),
            Action::Set {
                to: Value::Int(10000),
                lowers: false
            }
        );
        assert!(
            matches!(a("rlimit.nofile.hard"), Action::CannotChange(w) if w.contains("CAP_SYS_RESOURCE") && w.contains("LimitNOFILE="))
        );
        // A soft limit above the hard one that stays is refused in the plan.
        let p = profile(&[
            ("rlimit.nofile.soft", Value::Int(30000)),
            ("rlimit.nofile.hard", Value::Int(1048576)),
        ]);
        let plan = make(&o, &p, &here, &opts);
        assert!(
            matches!(&plan.get("rlimit.nofile.soft").unwrap().action, Action::CannotChange(w) if w.contains("above the hard limit 20000"))
        );
    }

    #[test]
    fn kernel_refusals_are_caught_before_writing() {
        let o = obs(&[
            ("fs.nr_open", Value::Int(1048576)),
            ("net.ipv4.tcp_mem", Value::Triple([1, 2, 3])),
        ]);
        let p = profile(&[
            ("rlimit.nofile.hard", Value::Int(2_000_000)),
            ("net.ipv4.tcp_mem", Value::Triple([300, 200, 100])),
            ("net.ipv4.ip_local_port_range", Value::Range([60000, 1024])),
        ]);
        let plan = make(&o, &p, &Here::default(), &Options::default());
        let all = plan.errors.join("\n");
        assert!(
            all.contains("rlimit.nofile.hard: profile asks for 2000000, above fs.nr_open 1048576"),
            "{all}"
        );
        assert!(
            all.contains("net.ipv4.tcp_mem: profile asks for \"300 200 100\""),
            "{all}"
        );
        assert!(all.contains("net.ipv4.ip_local_port_range"), "{all}");
        // Raising fs.nr_open in the same profile makes the limit acceptable.
        let p = profile(&[
            ("rlimit.nofile.hard", Value::Int(2_000_000)),
            ("fs.nr_open", Value::Int(4_000_000)),
        ]);
        assert!(make(&o, &p, &Here::default(), &Options::default())
            .errors
            .is_empty());
    }

    #[test]
    fn a_limit_past_an_nr_open_that_stays_cannot_change() {
        let mut o = obs(&[
            ("fs.nr_open", Value::Int(1048576)),
            ("rlimit.nofile.soft", Value::Int(1024)),
            ("rlimit.nofile.hard", Value::Int(20000)),
        ]);
        o.facts.cap_eff = Some(u64::MAX);
        let p = profile(&[
            ("fs.nr_open", Value::Int(4_000_000)),
            ("rlimit.nofile.hard", Value::Int(1_100_011)),
        ]);
        let here = Here {
            child_netns: true,
            ..Here::default()
        };
        let opts = Options {
            pid: Some(1),
            ..Options::default()
        };
        let plan = make(&o, &p, &here, &opts);
        assert!(plan.errors.is_empty(), "{:?}", plan.errors);
        assert!(matches!(
            &plan.get("fs.nr_open").unwrap().action,
            Action::CannotChange(_)
        ));
        assert!(
            matches!(&plan.get("rlimit.nofile.hard").unwrap().action, Action::CannotChange(w) if w.contains("above fs.nr_open 1048576"))
        );
        // In the host's namespace fs.nr_open is raised first, so the limit can follow.
        let plan = make(&o, &p, &Here::default(), &opts);
        assert_eq!(
            plan.get("rlimit.nofile.hard").unwrap().action,
            Action::Set {
                to: Value::Int(1_100_011),
                lowers: false
            }
        );
    }

    #[test]
    fn persists_only_what_boot_does_not_already_set() {
        let o = obs(&[
            ("net.core.somaxconn", Value::Int(4096)),
            ("fs.file-max", Value::Int(100)),
        ]);
        let p = profile(&[
            ("net.core.somaxconn", Value::Int(65535)),
            ("fs.file-max", Value::Int(50)),
        ]);
        let mut here = Here::default();
        let opts = Options {
            persist: true,
            ..Options::default()
        };
        let plan = make(&o, &p, &here, &opts);
        assert_eq!(
            plan.get("net.core.somaxconn").unwrap().persist,
            Some(Ok(Value::Int(65535)))
        );
        // Kept at run time (100 > 50): tune changes nothing, so it writes nothing for boot
        // either, and the plan says why.
        let Some(Err(why)) = &plan.get("fs.file-max").unwrap().persist else {
            panic!("{:?}", plan.get("fs.file-max").unwrap().persist)
        };
        assert!(why.contains("already meets the profile"), "{why}");
        here.boot.insert(
            "net.core.somaxconn",
            BootValue {
                value: Value::Int(65535),
                file: "etc/sysctl.d/10-a.conf".into(),
                line: 1,
            },
        );
        here.boot.insert(
            "fs.file-max",
            BootValue {
                value: Value::Int(100),
                file: "etc/sysctl.d/10-a.conf".into(),
                line: 2,
            },
        );
        let plan = make(&o, &p, &here, &opts);
        assert_eq!(plan.get("net.core.somaxconn").unwrap().persist, None);
    }
}
