//! Boot-time configuration written by `tune apply --persist`: which files, their exact contents, and who overrides them.
//!
//! Conventions admins expect: `/etc/sysctl.d/90-tune.conf` (sysctl --system,
//! systemd-sysctl), `/etc/security/limits.d/90-tune.conf` (pam_limits, login
//! sessions), `/etc/systemd/system.conf.d/90-tune.conf` (DefaultLimitNOFILE= for
//! every service), `/etc/systemd/system/UNIT.d/90-tune.conf` (LimitNOFILE= with
//! `--service`) and `/etc/modprobe.d/90-tune.conf` (nf_conntrack hashsize).
//! Every file starts with a header naming the profile and how to undo.
//! Rendering is pure ([`files`]); [`override_warnings`] reads the boot files through the root
//! (sysctl.d and modprobe.d in [`boot`], limits.conf and limits.d in [`limits`]).

pub mod boot;
pub mod limits;
pub mod service;
pub mod unit;

use crate::knobs::{Knob, Persist, Value};
use crate::root::Root;
use crate::values::{Input, Refused, Suggest};

pub const SYSCTL_FILE: &str = "etc/sysctl.d/90-tune.conf";
pub const LIMITS_FILE: &str = "etc/security/limits.d/90-tune.conf";
pub const SYSTEMD_FILE: &str = "etc/systemd/system.conf.d/90-tune.conf";
pub const MODPROBE_FILE: &str = "etc/modprobe.d/90-tune.conf";

/// Every file name tune may write, for excluding its own files from the boot view.
pub fn own_files() -> [&'static str; 4] {
    [SYSCTL_FILE, LIMITS_FILE, SYSTEMD_FILE, MODPROBE_FILE]
}

/// The drop-in for one systemd unit.
pub fn unit_dropin(unit: &str) -> String {
    format!("etc/systemd/system/{unit}.d/90-tune.conf")
}

/// Checks a `--service` name and adds `.service` when no unit type is given.
pub fn unit_name(s: &str) -> anyhow::Result<String> {
    let ok = !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ":_.@-\\".contains(c));
    if !ok {
        let why =
            "not a systemd unit name (letters, digits and \":_.@-\\\" only, e.g. myserver.service)";
        return Err(Refused::new(Input::Service, format!("{s:?}"), why).into());
    }
    let types = [".service", ".socket", ".scope", ".slice"];
    Ok(if types.iter().any(|t| s.ends_with(t)) {
        s.to_string()
    } else {
        format!("{s}.service")
    })
}

/// One file tune will write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWrite {
    /// Path relative to the root.
    pub rel: String,
    pub contents: String,
    pub mode: u32,
    /// What reads it, for the plan.
    pub what: &'static str,
}

/// Which configuration directories exist under the root (gathered at the edge).
#[derive(Debug, Clone, Copy)]
pub struct Dirs {
    pub sysctl_d: bool,
    pub etc_security: bool,
    pub etc_systemd: bool,
}

impl Dirs {
    pub fn gather(root: &Root) -> Dirs {
        Dirs {
            sysctl_d: root.is_dir("etc/sysctl.d"),
            etc_security: root.is_dir("etc/security"),
            etc_systemd: root.is_dir("etc/systemd"),
        }
    }
}

/// The files to write and the notes on what was left out.
#[derive(Debug, Clone, Default)]
pub struct Files {
    pub writes: Vec<FileWrite>,
    pub notes: Vec<String>,
    /// A unit drop-in was asked for and is not written: the profile sets no RLIMIT_NOFILE (the
    /// last note, which the command line words, since it names the flag).
    pub unit_dropin_skipped: bool,
}

fn header(profile: &str, what: &str, undo: &str) -> String {
    format!(
        "# Written by `tune apply {}` for profile {profile}.\n\
         # {what}\n\
         # Undo: `tune rollback` puts back exactly what was here before; or delete this file{undo}.\n",
        Suggest::input(Input::Persist)
    )
}

/// Renders the boot-time files for what a plan persists: each knob with the value to write or
/// why not (`None`: nothing to persist). `profile` is how the header names it.
pub fn files<'a>(
    persist: impl IntoIterator<Item = (&'static Knob, &'a Option<Result<Value, String>>)>,
    profile: &str,
    service: Option<&str>,
    dirs: Dirs,
) -> anyhow::Result<Files> {
    let mut out = Files::default();
    let mut sysctl = Vec::new();
    let mut modprobe = Vec::new();
    let (mut soft, mut hard) = (None, None);
    for (knob, persist) in persist {
        let value = match persist {
            Some(Ok(v)) => *v,
            Some(Err(why)) => {
                out.notes.push(format!("{}: {why}", knob.name));
                continue;
            }
            None => continue,
        };
        match knob.persist {
            Persist::SysctlD => sysctl.push(format!("{} = {}", knob.name, value.to_kernel())),
            Persist::ModprobeD { module, param } => {
                modprobe.push(format!("options {module} {param}={}", value.to_kernel()))
            }
            Persist::Nofile(crate::knobs::Limit::Soft) => soft = Some(value),
            Persist::Nofile(crate::knobs::Limit::Hard) => hard = Some(value),
            Persist::No => {}
        }
    }
    if !sysctl.is_empty() {
        if !dirs.sysctl_d {
            anyhow::bail!(
                "/etc/sysctl.d is missing under the root, so nothing on this host reads sysctl.d at boot; \
                 create it (mkdir /etc/sysctl.d) if the boot runs `sysctl --system` or systemd-sysctl, \
                 or apply without {}. Nothing was written.",
                Suggest::input(Input::Persist)
            );
        }
        if sysctl.iter().any(|l| l.starts_with("net.netfilter.")) {
            out.notes.push(
                "net.netfilter.* lines take effect at boot only if nf_conntrack is loaded when sysctl runs; \
                 list nf_conntrack in /etc/modules-load.d/ if it is loaded later"
                    .into(),
            );
        }
        out.writes.push(FileWrite {
            rel: SYSCTL_FILE.into(),
            contents: format!(
                "{}{}\n",
                header(
                    profile,
                    "Read at boot by systemd-sysctl or `sysctl --system`; a file sorting later, or /etc/sysctl.conf, overrides it.",
                    " and reboot (the live values stay until then)"
                ),
                sysctl.join("\n")
            ),
            mode: 0o644,
            what: "sysctl.d (boot)",
        });
    }
    if !modprobe.is_empty() {
        out.writes.push(FileWrite {
            rel: MODPROBE_FILE.into(),
            contents: format!(
                "{}{}\n",
                header(
                    profile,
                    "Read by modprobe when the module loads (at boot, or when a rule first needs conntrack).",
                    ""
                ),
                modprobe.join("\n")
            ),
            mode: 0o644,
            what: "modprobe.d (module load)",
        });
    }
    if soft.is_some() || hard.is_some() {
        nofile_files(&mut out, profile, soft, hard, service, dirs)?;
    } else if service.is_some() {
        out.unit_dropin_skipped = true;
    }
    Ok(out)
}

fn nofile_files(
    out: &mut Files,
    profile: &str,
    soft: Option<Value>,
    hard: Option<Value>,
    service: Option<&str>,
    dirs: Dirs,
) -> anyhow::Result<()> {
    let s = soft.map(|v| v.to_string());
    let h = hard.map(|v| v.to_string());
    if dirs.etc_security {
        let mut lines = Vec::new();
        // pam_limits: `*` does not apply to root, so root gets its own lines.
        for domain in ["*", "root"] {
            if let Some(s) = &s {
                lines.push(format!("{domain:<5} soft nofile {s}"));
            }
            if let Some(h) = &h {
                lines.push(format!("{domain:<5} hard nofile {h}"));
            }
        }
        out.writes.push(FileWrite {
            rel: LIMITS_FILE.into(),
            contents: format!(
                "{}{}\n",
                header(
                    profile,
                    "Read by pam_limits for new login sessions (ssh, su, login); services under systemd ignore it.",
                    ""
                ),
                lines.join("\n")
            ),
            mode: 0o644,
            what: "limits.d (new sessions)",
        });
    } else {
        out.notes.push(
            "RLIMIT_NOFILE: no /etc/security here (no pam_limits), so no limits.d file".into(),
        );
    }
    let limit = match (&s, &h) {
        (Some(s), Some(h)) => format!("{s}:{h}"),
        (Some(v), None) | (None, Some(v)) => v.clone(),
        (None, None) => return Ok(()),
    };
    if !dirs.etc_systemd {
        if let Some(unit) = service {
            let why =
                "there is no /etc/systemd under the root, so no unit drop-in can take effect; \
                 set the limit where this service is started instead. Nothing was written.";
            return Err(Refused::new(Input::Service, unit, why).into());
        }
        out.notes
            .push("RLIMIT_NOFILE: no /etc/systemd here, so no DefaultLimitNOFILE= drop-in".into());
        return Ok(());
    }
    out.writes.push(FileWrite {
        rel: SYSTEMD_FILE.into(),
        contents: format!(
            "{}[Manager]\nDefaultLimitNOFILE={limit}\n",
            header(
                profile,
                "Read by systemd (PID 1) at boot or `systemctl daemon-reexec`: the default for every service.",
                " and run `systemctl daemon-reexec`"
            )
        ),
        mode: 0o644,
        what: "systemd manager (all services)",
    });
    if let Some(unit) = service {
        let unit = unit_name(unit)?;
        out.writes.push(FileWrite {
            rel: unit_dropin(&unit),
            contents: format!(
                "{}[Service]\nLimitNOFILE={limit}\n",
                header(
                    profile,
                    &format!("Read by systemd for {unit}: takes effect after `systemctl daemon-reload` and a restart of {unit}."),
                    " and run `systemctl daemon-reload`"
                )
            ),
            mode: 0o644,
            what: "systemd unit drop-in",
        });
    }
    Ok(())
}

/// The boot-override warnings for the files tune already wrote (for `tune check`): the same
/// check apply makes before writing, run on what is on disk now.
pub fn installed_override_warnings(root: &Root) -> anyhow::Result<Vec<String>> {
    let mut writes = Vec::new();
    for (rel, what) in [
        (SYSCTL_FILE, "sysctl --system"),
        (MODPROBE_FILE, "modprobe"),
        (LIMITS_FILE, "pam_limits"),
    ] {
        if let Some(bytes) = root.read_bytes_opt(rel)? {
            writes.push(FileWrite {
                rel: rel.to_string(),
                contents: String::from_utf8_lossy(&bytes).into_owned(),
                mode: 0o644,
                what,
            });
        }
    }
    override_warnings(root, &writes)
}

/// Warnings for settings tune writes that another file overrides at boot (a later sysctl.d
/// name, /etc/sysctl.conf, a later modprobe.d line) or at login (a limits.conf / limits.d line
/// that wins for a domain tune's limits.d file covers), naming the file, line and value that win.
pub fn override_warnings(root: &Root, writes: &[FileWrite]) -> anyhow::Result<Vec<String>> {
    let as_conf = |rel: &str| {
        writes
            .iter()
            .find(|w| w.rel == rel)
            .map(|w| boot::ConfFile {
                rel: w.rel.clone(),
                text: w.contents.clone(),
            })
    };
    let sysctl = as_conf(SYSCTL_FILE);
    let modprobe = as_conf(MODPROBE_FILE);
    let view = boot::BootView::gather(root, &[], sysctl.as_ref(), modprobe.as_ref())?;
    let mut out = Vec::new();
    for (ours, applied, parse) in [
        (sysctl, &view.sysctl, boot::parse_sysctl as fn(&str) -> _),
        (modprobe, &view.modprobe, boot::parse_modprobe),
    ] {
        let Some(ours) = ours else { continue };
        for (_, key, value) in parse(&ours.text) {
            if let Some(w) = applied.winner(&key) {
                if w.file != ours.rel && w.value != value {
                    out.push(format!(
                        "{key}: {}:{} sets {} and is read after {} at boot, so it wins: the boot value will be {} \
                         not {value}; remove that line or give it the same value",
                        root.path(&w.file).display(),
                        w.line,
                        w.value,
                        root.path(&ours.rel).display(),
                        w.value
                    ));
                }
            }
        }
    }
    // pam_limits: limits.conf, then limits.d in name order; see persist::limits for the rules.
    if let Some(ours) = as_conf(LIMITS_FILE) {
        let files = limits::gather(root, Some(&ours))?;
        out.extend(limits::warnings(&files, LIMITS_FILE, &|r| {
            root.path(r).display().to_string()
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names() {
        assert_eq!(unit_name("myserver").unwrap(), "myserver.service");
        assert_eq!(unit_name("ws@1.service").unwrap(), "ws@1.service");
        assert!(unit_name("../../etc/passwd").is_err());
        assert!(unit_name("a b").is_err());
        assert!(unit_name("").is_err());
    }
}
