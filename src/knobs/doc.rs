//! A knob's documentation as data: what `tune explain` prints and tune-knobs(7) renders, built once from the registry entry.

use super::{Knob, Limit, Persist, Read, Shown, Write};
use crate::kernel::host::sysctl_path;
use crate::values::{Input, Suggest};

/// Everything said about one knob, field by field; renderers only lay it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnobDoc {
    pub name: &'static str,
    /// One line: what the knob is.
    pub summary: &'static str,
    pub scope: String,
    /// The shape and unit of its value.
    pub value: String,
    /// The file it is read from.
    pub read_from: String,
    /// How a check judges it.
    pub check: &'static str,
    /// What running short looks like.
    pub symptom: &'static str,
    /// The run-time fix with placeholders (`sysctl -w net.core.somaxconn="N"`), or why there is none.
    pub runtime: String,
    /// What the run-time fix needs or allows, where that is not obvious.
    pub runtime_note: Option<&'static str>,
    /// The boot-time fix with placeholders, or `nothing to persist`.
    pub persist: String,
    /// Other places the boot-time value can be set.
    pub persist_note: Option<&'static str>,
    /// The bounds the kernel accepts, in words.
    pub accepts: Option<String>,
}

impl KnobDoc {
    pub fn of(knob: &'static Knob) -> KnobDoc {
        let placeholder = Shown::Placeholder(knob.shape);
        KnobDoc {
            name: knob.name,
            summary: knob.summary,
            scope: knob.scope.describe(),
            value: knob.shape.describe(knob.unit),
            read_from: read_from(knob.read),
            check: knob.compare.describe(knob.shape),
            symptom: knob.symptom,
            runtime: knob.runtime_command(placeholder, None),
            runtime_note: match knob.write {
                Write::Prlimit(Limit::Soft) => {
                    Some("any process may raise its own soft limit up to the hard limit")
                }
                Write::Prlimit(Limit::Hard) => {
                    Some("needs CAP_SYS_RESOURCE; never above fs.nr_open")
                }
                _ => None,
            },
            persist: knob
                .persist_line(placeholder)
                .unwrap_or_else(|| "nothing to persist".into()),
            persist_note: match knob.persist {
                Persist::Nofile(_) => Some(
                    "\"* - nofile N\" in /etc/security/limits.d/ for login sessions, \
                     --ulimit nofile=N for containers",
                ),
                _ => None,
            },
            accepts: knob
                .accepts
                .map(|(lo, hi)| format!("the kernel accepts {lo} to {hi}")),
        }
    }

    /// The plain-text form `tune explain` prints: the name, then one labelled line per field.
    pub fn text(&self) -> String {
        let mut out = format!("{}\n", self.name);
        let mut line = |label: &str, text: &str| out.push_str(&format!("  {label:<11} {text}\n"));
        line("what:", self.summary);
        line("scope:", &self.scope);
        line("value:", &self.value);
        if let Some(a) = &self.accepts {
            line("accepts:", a);
        }
        line("read from:", &self.read_from);
        line("check:", self.check);
        line("when short:", self.symptom);
        line("raise now:", &with_note(&self.runtime, self.runtime_note));
        line("persist:", &with_note(&self.persist, self.persist_note));
        out
    }
}

/// `text (note)` when there is a note.
pub fn with_note(text: &str, note: Option<&str>) -> String {
    match note {
        Some(n) => format!("{text} ({n})"),
        None => text.to_string(),
    }
}

fn read_from(read: Read) -> String {
    match read {
        Read::Sysctl(name) => format!("/{} (sysctl {name})", sysctl_path(name)),
        Read::Nofile(_) => format!(
            "/proc/PID/limits, \"Max open files\" (tune's own unless {})",
            Suggest::input(Input::Pid)
        ),
        Read::Meminfo(field) => {
            format!("/proc/meminfo, {}", field.name())
        }
        Read::SocketCost => format!(
            "/proc/slabinfo: {} caches",
            crate::kernel::slabinfo::SOCKET_CACHES.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::knobs::{KnobId, REGISTRY};

    #[test]
    fn fixes_use_placeholders() {
        let d = KnobId::Somaxconn.knob().doc();
        assert_eq!(d.runtime, "sysctl -w net.core.somaxconn=\"N\"");
        assert_eq!(
            d.persist,
            "/etc/sysctl.d/90-tune.conf: net.core.somaxconn = N"
        );
        let d = KnobId::TcpMem.knob().doc();
        assert!(d.runtime.contains("=\"LOW MID HIGH\""), "{}", d.runtime);
        assert!(d.check.contains("each live number"), "{}", d.check);
        let d = KnobId::IpLocalPortRange.knob().doc();
        assert!(d.persist.ends_with("= LOW HIGH"), "{}", d.persist);
        assert_eq!(d.accepts.as_deref(), Some("the kernel accepts 1 to 65535"));
        let d = KnobId::NofileHard.knob().doc();
        assert_eq!(d.runtime, "prlimit --pid PID --nofile=:N");
        // A single value is never described part by part.
        assert!(!KnobId::FileMax.knob().doc().check.contains("each"));
    }

    #[test]
    fn every_knob_has_every_field() {
        for k in REGISTRY {
            let t = k.doc().text();
            for label in [
                "what:",
                "scope:",
                "value:",
                "read from:",
                "check:",
                "when short:",
                "raise now:",
                "persist:",
            ] {
                assert!(t.contains(&format!("  {label}")), "{}: no {label}", k.name);
            }
        }
    }
}
