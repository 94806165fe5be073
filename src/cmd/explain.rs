//! `tune explain`: describe a knob from its registry entry.

use super::{Context, Outcome};
use crate::knobs::{self, sysctl_path, Compare, Knob, Persist, Read, Write, REGISTRY};

/// The explanation of one knob, as printed.
pub fn text(knob: &Knob) -> String {
    let read = match knob.read {
        Read::Sysctl(name) => format!("/{} (sysctl {name})", sysctl_path(name)),
        Read::Nofile(_) => {
            "/proc/<pid>/limits, \"Max open files\" (tune's own unless --pid)".into()
        }
        Read::Meminfo(field) => format!("/proc/meminfo, {}", field.name()),
        Read::SocketCost => {
            "/proc/slabinfo: TCP, sock_inode_cache, filp, dentry, eventpoll caches".into()
        }
    };
    let compare = match knob.compare {
        Compare::AtLeast => {
            "the live value must be at least the required one (each part, for triples)"
        }
        Compare::AtMost => "the live value must be at most the required one",
        Compare::PortCount => "the live range must offer at least as many ports as the required one (judged by count, not by containment)",
        Compare::Equal => "a mode: the live value must be exactly the required one",
        Compare::Info => "reported, not required",
    };
    let runtime = match knob.write {
        Write::Sysctl(name) => format!("sysctl -w {name}=VALUE (or write /{})", sysctl_path(name)),
        Write::ModuleParam { module, param } => {
            format!("echo VALUE > /sys/module/{module}/parameters/{param}")
        }
        Write::Prlimit(knobs::Limit::Soft) => {
            "prlimit --pid PID --nofile=VALUE: (any process may raise its own soft limit up to the hard limit)".into()
        }
        Write::Prlimit(knobs::Limit::Hard) => {
            "prlimit --pid PID --nofile=:VALUE (needs CAP_SYS_RESOURCE; never above fs.nr_open)".into()
        }
        Write::No(why) => format!("cannot be changed: {why}"),
    };
    let persist = match knob.persist {
        Persist::SysctlD => format!(
            "a line \"{} = VALUE\" in /etc/sysctl.d/90-tune.conf",
            knob.name
        ),
        Persist::ModprobeD { module, param } => {
            format!("\"options {module} {param}=VALUE\" in /etc/modprobe.d/90-tune.conf")
        }
        Persist::Nofile(_) => {
            "LimitNOFILE=VALUE in the service's systemd unit (DefaultLimitNOFILE= for all), \
                              \"* - nofile VALUE\" in /etc/security/limits.d/ for login sessions, \
                              --ulimit nofile=VALUE for containers"
                .into()
        }
        Persist::No => "nothing to persist".into(),
    };
    format!(
        "{name}\n  what:       {summary}\n  scope:      {scope}\n  unit:       {unit} ({shape})\n  read from:  {read}\n  compared:   {compare}\n  when short: {symptom}\n  raise now:  {runtime}\n  persist:    {persist}\n",
        name = knob.name,
        summary = knob.summary,
        scope = match knob.scope {
            knobs::Scope::Process => "process: each process has its own",
            knobs::Scope::Host => "host: one value for the whole host, whatever the network namespace",
            knobs::Scope::NetNs => "network namespace: each namespace has its own",
        },
        unit = knob.unit,
        shape = knob.shape.expected(),
        symptom = knob.symptom,
    )
}

pub fn run(_ctx: &Context, args: &crate::cli::explain::ExplainArgs) -> anyhow::Result<Outcome> {
    if args.knob == "all" {
        let all: Vec<String> = REGISTRY.iter().map(text).collect();
        print!("{}", all.join("\n"));
    } else {
        print!("{}", text(knobs::lookup(&args.knob)?));
    }
    Ok(Outcome::Pass)
}
