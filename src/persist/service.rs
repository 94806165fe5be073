//! A service that is not running yet, described by its configuration (`check --unit`, `--user`): whose credentials it runs with, its RLIMIT_NOFILE and memory limit, each with the file and line that set it.
//!
//! `--unit`: systemd starts the service with the unit's `LimitNOFILE=` (else the manager's
//! `DefaultLimitNOFILE=`, else systemd's own default 1024:524288), as `User=` (root when unset:
//! every capability the bounding set keeps; another user: only `AmbientCapabilities=`), in a
//! cgroup limited by `MemoryMax=` / `MemoryHigh=` (`MemoryLimit=` on cgroup v1). pam_limits is
//! not involved unless `PAMName=` opens a session, whose lines then apply over the unit's.
//! `--user`: a login session of that user gets pam_limits' lines for it (limits.conf and
//! limits.d) over what it inherited; root keeps its capabilities, anyone else has none.
//! The unit and passwd/group texts are parsed by pure functions; the files are read here,
//! through the root.

use super::boot::ConfFile;
use super::limits::{self, Account, Nofile};
use super::unit::{self, Set, Size, UnitSettings};
use crate::root::Root;

/// Where systemd looks for system units, most important first (systemd.unit(5), "System Unit
/// Search Path"; Debian keeps its packaged units in /lib/systemd/system).
pub const UNIT_DIRS: [&str; 8] = [
    "etc/systemd/system.control",
    "run/systemd/system.control",
    "run/systemd/transient",
    "etc/systemd/system",
    "run/systemd/system",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];

/// The manager's configuration: system.conf, then the `*.conf` of these directories by name.
const SYSTEM_CONF: &str = "etc/systemd/system.conf";
const SYSTEM_CONF_D: [&str; 4] = [
    "etc/systemd/system.conf.d",
    "run/systemd/system.conf.d",
    "usr/local/lib/systemd/system.conf.d",
    "usr/lib/systemd/system.conf.d",
];

const PASSWD: &str = "etc/passwd";
const GROUP: &str = "etc/group";

/// The capabilities that change the answer: CAP_SYS_ADMIN exempts from fs.file-max,
/// CAP_SYS_RESOURCE lets the process raise its hard RLIMIT_NOFILE.
const CAP_SYS_ADMIN: &str = "CAP_SYS_ADMIN";
const CAP_SYS_RESOURCE: &str = "CAP_SYS_RESOURCE";

/// The service as check judges it.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Whose credentials, in one line for the first screen.
    pub who: String,
    pub nofile_soft: u64,
    pub nofile_hard: u64,
    /// Where the limits came from.
    pub nofile_from: String,
    pub cap_sys_admin: bool,
    pub cap_sys_resource: bool,
    /// The cgroup memory limit the unit sets (hard, high), with where; `None`: none.
    pub memory: Option<Memory>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    pub max: Option<u64>,
    pub high: Option<u64>,
    /// `MemoryMax=512M (FILE:LINE)`.
    pub from: String,
    /// The cgroup systemd would make for the unit.
    pub cgroup: String,
}

/// What the host says that a description needs: fs.nr_open (what `infinity` becomes), MemTotal
/// (for percentages) and the limits a session inherits (PID 1's, for `--user`).
#[derive(Debug, Clone, Copy)]
pub struct HostFigures {
    pub nr_open: u64,
    pub mem_total: u64,
    pub inherited: Option<(u64, u64)>,
}

/// A user from passwd: name, uid, primary gid.
fn passwd_entry(text: &str, who: &str) -> Option<(String, u64, u64)> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let (name, uid, gid) = (f.first()?, f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?);
        (*name == who || who.parse::<u64>().ok() == Some(uid)).then(|| (name.to_string(), uid, gid))
    })
}

/// The groups of `name` (primary gid included) from group(5) text.
fn groups_of(text: &str, name: &str, primary: u64) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let (g, gid) = (f.first()?, f.get(2)?.parse::<u64>().ok()?);
            let member = f.get(3).is_some_and(|m| m.split(',').any(|u| u == name));
            (gid == primary || member).then(|| (g.to_string(), gid))
        })
        .collect()
}

/// The account of `who` (a name or uid) from the root's passwd and group.
pub fn account(root: &Root, who: &str) -> anyhow::Result<Account> {
    let passwd = root.read(PASSWD)?;
    let (name, uid, gid) = passwd_entry(&passwd, who).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: no user {who:?}; name a user this host has (or give its uid)",
            root.path(PASSWD).display()
        )
    })?;
    let group = root.read_bytes_opt(GROUP)?.unwrap_or_default();
    let groups = groups_of(&String::from_utf8_lossy(&group), &name, gid);
    Ok(Account { name, uid, groups })
}

fn value(n: Nofile, nr_open: u64) -> u64 {
    match n {
        Nofile::Value(v) => v,
        Nofile::Unlimited => nr_open,
    }
}

/// `--user NAME`: a login session of that user.
pub fn for_user(root: &Root, who: &str, host: HostFigures) -> anyhow::Result<Service> {
    let acct = account(root, who)?;
    let files = limits::gather(root, None)?;
    let s = limits::for_account(&files, &acct);
    let show = |f: &str, l: usize| format!("{}:{l}", root.path(f).display());
    let (inh_soft, inh_hard) = host.inherited.unwrap_or(unit::SYSTEMD_DEFAULT_NOFILE);
    let inherited = if host.inherited.is_some() {
        "inherited from PID 1"
    } else {
        "PID 1's limits unreadable: systemd's default assumed"
    };
    let (soft, hard, from) = match &s.off {
        Some(off) => (
            inh_soft,
            inh_hard,
            format!(
                "{} turns pam_limits off for it: {inh_soft}:{inh_hard}, {inherited}",
                show(&off.file, off.line)
            ),
        ),
        None => {
            let side = |x: &Option<limits::SetBy>, inh: u64| match x {
                Some(b) => (value(b.value, host.nr_open), show(&b.file, b.line)),
                None => (inh, inherited.to_string()),
            };
            let (soft, sf) = side(&s.soft, inh_soft);
            let (hard, hf) = side(&s.hard, inh_hard);
            (
                soft,
                hard,
                format!("pam_limits: soft {soft} ({sf}), hard {hard} ({hf})"),
            )
        }
    };
    let root_user = acct.uid == 0;
    Ok(Service {
        who: format!(
            "user {} (uid {}, {}), a login session",
            acct.name,
            acct.uid,
            if root_user {
                "every capability"
            } else {
                "no capabilities"
            }
        ),
        nofile_soft: soft,
        nofile_hard: hard,
        nofile_from: from,
        cap_sys_admin: root_user,
        cap_sys_resource: root_user,
        memory: None,
    })
}

/// The unit's file and its drop-ins, in reading order. `spec` is a unit name looked up in
/// [`UNIT_DIRS`] or, with a `/`, a file on the local disk (`text` then holds it, read by the
/// caller). A template instance (`a@b.service`) falls back to its template `a@.service`.
pub fn gather_unit(
    root: &Root,
    spec: &str,
    text: Option<String>,
) -> anyhow::Result<(String, Vec<ConfFile>)> {
    let name = spec.rsplit('/').next().unwrap_or(spec).to_string();
    let name = if text.is_none() {
        super::unit_name(&name)?
    } else {
        name
    };
    let template = name
        .split_once('@')
        .map(|(a, b)| format!("{a}@{}", &b[b.rfind('.').unwrap_or(b.len())..]));
    let names: Vec<&str> = std::iter::once(name.as_str())
        .chain(template.as_deref())
        .collect();
    let mut files = Vec::new();
    match text {
        Some(t) => files.push(ConfFile {
            rel: spec.to_string(),
            text: t,
        }),
        None => {
            let found = names.iter().find_map(|n| {
                UNIT_DIRS
                    .iter()
                    .map(|d| format!("{d}/{n}"))
                    .find(|rel| root.exists(rel) && !root.is_dir(rel))
            });
            let rel = found.ok_or_else(|| {
                anyhow::anyhow!(
                    "no unit {name} under {} (looked in {}); give its file with a path",
                    root.base().display(),
                    UNIT_DIRS.map(|d| format!("/{d}")).join(", ")
                )
            })?;
            files.push(ConfFile {
                text: root.read(&rel)?,
                rel,
            });
        }
    }
    // Drop-ins: `<unit>.d/*.conf` of every directory (the template's first), and the type's
    // `service.d/`; a name in a more important directory masks the same name further down;
    // all are read in name order.
    let kind = name.rsplit('.').next().unwrap_or("service");
    let mut dirs: Vec<String> = vec![format!("{kind}.d")];
    dirs.extend(names.iter().rev().map(|n| format!("{n}.d")));
    let mut by_name: std::collections::BTreeMap<String, String> = Default::default();
    for d in UNIT_DIRS.iter().rev() {
        for sub in &dirs {
            let rel = format!("{d}/{sub}");
            for f in root.list_dir(&rel)? {
                if f.ends_with(".conf") && !f.starts_with('.') {
                    by_name.insert(f.clone(), format!("{rel}/{f}"));
                }
            }
        }
    }
    for rel in by_name.into_values() {
        if let Some(b) = root.read_bytes_opt(&rel)? {
            files.push(ConfFile {
                rel,
                text: String::from_utf8_lossy(&b).into_owned(),
            });
        }
    }
    Ok((name, files))
}

/// The manager's DefaultLimitNOFILE=, with where it was set.
fn default_nofile(root: &Root) -> anyhow::Result<Option<Set<(Nofile, Nofile)>>> {
    let mut out = None;
    if let Some(b) = root.read_bytes_opt(SYSTEM_CONF)? {
        let file = root.path(SYSTEM_CONF).display().to_string();
        out = unit::default_nofile(out, &file, &String::from_utf8_lossy(&b))?;
    }
    let mut by_name: std::collections::BTreeMap<String, String> = Default::default();
    for d in SYSTEM_CONF_D.iter().rev() {
        for f in root.list_dir(d)? {
            if f.ends_with(".conf") {
                by_name.insert(f.clone(), format!("{d}/{f}"));
            }
        }
    }
    for rel in by_name.into_values() {
        if let Some(b) = root.read_bytes_opt(&rel)? {
            let file = root.path(&rel).display().to_string();
            out = unit::default_nofile(out, &file, &String::from_utf8_lossy(&b))?;
        }
    }
    Ok(out)
}

/// `--unit`: the service systemd would start from the unit (a name under the root, or a file
/// whose text the caller read).
pub fn for_unit(
    root: &Root,
    spec: &str,
    text: Option<String>,
    host: HostFigures,
) -> anyhow::Result<Service> {
    let local = text.is_some();
    let (name, files) = gather_unit(root, spec, text)?;
    let mut s = UnitSettings::default();
    for (i, f) in files.iter().enumerate() {
        let shown = if local && i == 0 {
            f.rel.clone()
        } else {
            root.path(&f.rel).display().to_string()
        };
        unit::apply(&mut s, &shown, &f.text)?;
    }
    let (nofile, nofile_from) = match &s.nofile {
        Some(n) => (n.value, format!("LimitNOFILE= at {}", n.at())),
        None => match default_nofile(root)? {
            Some(d) => (d.value, format!("DefaultLimitNOFILE= at {}", d.at())),
            None => (
                (
                    Nofile::Value(unit::SYSTEMD_DEFAULT_NOFILE.0),
                    Nofile::Value(unit::SYSTEMD_DEFAULT_NOFILE.1),
                ),
                "no LimitNOFILE=: systemd's default".to_string(),
            ),
        },
    };
    let (mut soft, mut hard) = (value(nofile.0, host.nr_open), value(nofile.1, host.nr_open));
    let mut nofile_from = format!("{soft}:{hard} ({nofile_from})");
    let (who, admin, resource) = credentials(root, &s)?;
    // PAMName= opens a session: pam_limits' lines for the user apply over the unit's.
    if let (Some(pam), Some(user)) = (&s.pam_name, s.user.as_ref().filter(|_| !dynamic(&s))) {
        let acct = account(root, &user.value)?;
        let lim = limits::for_account(&limits::gather(root, None)?, &acct);
        if lim.off.is_none() {
            for (slot, set) in [(&mut soft, &lim.soft), (&mut hard, &lim.hard)] {
                if let Some(b) = set {
                    *slot = value(b.value, host.nr_open);
                    nofile_from.push_str(&format!(
                        "; PAMName={} ({}): pam_limits sets {} at {}:{}",
                        pam.value,
                        pam.at(),
                        *slot,
                        root.path(&b.file).display(),
                        b.line
                    ));
                }
            }
        }
    }
    Ok(Service {
        who: format!("unit {name}: {who}"),
        nofile_soft: soft,
        nofile_hard: hard,
        nofile_from,
        cap_sys_admin: admin,
        cap_sys_resource: resource,
        memory: memory(&s, &name, host.mem_total),
    })
}

fn dynamic(s: &UnitSettings) -> bool {
    s.dynamic_user.as_ref().is_some_and(|d| d.value)
}

/// Whose credentials the unit runs with, and whether they hold CAP_SYS_ADMIN and
/// CAP_SYS_RESOURCE.
fn credentials(root: &Root, s: &UnitSettings) -> anyhow::Result<(String, bool, bool)> {
    let bounded = |cap: &str| {
        s.bounding
            .as_ref()
            .is_none_or(|b| unit::holds(&b.value, cap))
    };
    let ambient = |cap: &str| {
        bounded(cap)
            && s.ambient
                .as_ref()
                .is_some_and(|a| unit::holds(&a.value, cap))
    };
    let caps = |admin: bool, res: bool| match (admin, res) {
        (true, true) => "CAP_SYS_ADMIN and CAP_SYS_RESOURCE".to_string(),
        (true, false) => "CAP_SYS_ADMIN, no CAP_SYS_RESOURCE".to_string(),
        (false, true) => "CAP_SYS_RESOURCE, no CAP_SYS_ADMIN".to_string(),
        (false, false) => "no CAP_SYS_ADMIN or CAP_SYS_RESOURCE".to_string(),
    };
    if let Some(d) = s.dynamic_user.as_ref().filter(|d| d.value) {
        let (a, r) = (ambient(CAP_SYS_ADMIN), ambient(CAP_SYS_RESOURCE));
        return Ok((
            format!(
                "a dynamic user (DynamicUser= at {}), {}",
                d.at(),
                caps(a, r)
            ),
            a,
            r,
        ));
    }
    let Some(user) = &s.user else {
        let (a, r) = (bounded(CAP_SYS_ADMIN), bounded(CAP_SYS_RESOURCE));
        return Ok((format!("root (no User=), {}", caps(a, r)), a, r));
    };
    let uid = passwd_entry(&root.read(PASSWD).unwrap_or_default(), &user.value).map(|e| e.1);
    if uid == Some(0) || user.value == "0" {
        let (a, r) = (bounded(CAP_SYS_ADMIN), bounded(CAP_SYS_RESOURCE));
        return Ok((format!("User=root at {}, {}", user.at(), caps(a, r)), a, r));
    }
    let (a, r) = (ambient(CAP_SYS_ADMIN), ambient(CAP_SYS_RESOURCE));
    let uid = match uid {
        Some(u) => format!("uid {u}"),
        None => format!(
            "not in {}: systemd will refuse to start it",
            root.path(PASSWD).display()
        ),
    };
    Ok((
        format!(
            "User={} ({uid}) at {}, {}",
            user.value,
            user.at(),
            caps(a, r)
        ),
        a,
        r,
    ))
}

/// The unit's memory limit: MemoryMax= (else MemoryLimit=) and MemoryHigh=.
fn memory(s: &UnitSettings, name: &str, mem_total: u64) -> Option<Memory> {
    let max = s.memory_max.as_ref().or(s.memory_limit.as_ref());
    let key = if s.memory_max.is_some() {
        "MemoryMax="
    } else {
        "MemoryLimit="
    };
    let b = |x: Option<&Set<Size>>| x.and_then(|x| x.value.bytes(mem_total));
    let (max_b, high_b) = (b(max), b(s.memory_high.as_ref()));
    if max_b.is_none() && high_b.is_none() {
        return None;
    }
    let mut from = Vec::new();
    if let (Some(m), Some(v)) = (max, max_b) {
        from.push(format!("{key}{} at {}", crate::units::bytes(v), m.at()));
    }
    if let (Some(h), Some(v)) = (&s.memory_high, high_b) {
        from.push(format!(
            "MemoryHigh={} at {}",
            crate::units::bytes(v),
            h.at()
        ));
    }
    Some(Memory {
        max: max_b,
        high: high_b,
        from: from.join(", "),
        cgroup: format!("/system.slice/{name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Debian 12.11's base-passwd layout, trimmed.
    const PASSWD_TEXT: &str =
        "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n";
    const GROUP_TEXT: &str = "root:x:0:\nwww-data:x:33:\nweb:x:1001:alice,www-data\n";

    #[test]
    fn passwd_and_group_name_the_account_by_name_or_uid() {
        assert_eq!(
            passwd_entry(PASSWD_TEXT, "33"),
            Some(("www-data".into(), 33, 33))
        );
        assert_eq!(passwd_entry(PASSWD_TEXT, "nobody"), None);
        assert_eq!(
            groups_of(GROUP_TEXT, "www-data", 33),
            vec![("www-data".to_string(), 33), ("web".to_string(), 1001)]
        );
    }
}
