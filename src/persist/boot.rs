//! The boot-time view: which value the persisted configuration (sysctl.d, modprobe.d) sets at boot, and which file wins.
//!
//! Ordering, from sysctl.d(5) (systemd) and sysctl(8) `--system` (procps):
//! files named `*.conf` are read from /etc/sysctl.d, /run/sysctl.d,
//! /usr/local/lib/sysctl.d, /usr/lib/sysctl.d and /lib/sysctl.d; of files with
//! the same name only the one in the earliest directory of that list counts (a
//! symlink to /dev/null there masks the name). All counted files are sorted by
//! file name regardless of directory, and when several set the same key the
//! lexicographically latest file wins. procps applies /etc/sysctl.conf last of
//! all (systemd hosts link it in as /etc/sysctl.d/99-sysctl.conf). modprobe.d(5)
//! uses the same directory and name rules; for a module option the last line read wins.
//!
//! Parsing takes text ([`parse_sysctl`], [`parse_modprobe`], [`resolve`]); file
//! access is in [`gather`], through the root.

use std::collections::BTreeMap;

use crate::knobs::{Knob, Persist, Value};
use crate::root::Root;

/// sysctl.d directories, earliest first (a name found in an earlier one hides the same name later).
pub const SYSCTL_DIRS: [&str; 5] = [
    "etc/sysctl.d",
    "run/sysctl.d",
    "usr/local/lib/sysctl.d",
    "usr/lib/sysctl.d",
    "lib/sysctl.d",
];
/// Read after every sysctl.d file by `sysctl --system`.
pub const SYSCTL_CONF: &str = "etc/sysctl.conf";
pub const MODPROBE_DIRS: [&str; 5] = [
    "etc/modprobe.d",
    "run/modprobe.d",
    "usr/local/lib/modprobe.d",
    "usr/lib/modprobe.d",
    "lib/modprobe.d",
];

/// One configuration file as found: its path relative to the root and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfFile {
    pub rel: String,
    pub text: String,
}

/// One `key = value` setting, where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: String,
    /// Path relative to the root.
    pub file: String,
    pub line: usize,
}

/// Every setting of one kind of configuration, in the order they are applied at boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub settings: Vec<Setting>,
}

impl Applied {
    /// The setting that wins at boot for `key` (the last one applied).
    pub fn winner(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().rev().find(|s| s.key == key)
    }
}

/// Normalises a sysctl key as sysctl.d(5) reads it: `/` and `.` are both separators.
/// (If the first separator is `/`, dots inside components stay dots; tune's knobs have none.)
pub fn normalize_key(key: &str) -> String {
    let key = key.trim().trim_start_matches('-');
    match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'/' => key
            .replace('.', "\u{0}")
            .replace('/', ".")
            .replace('\u{0}', "/"),
        _ => key.to_string(),
    }
}

/// Parses sysctl.d text: `key = value` lines; `#` and `;` start comments; a leading `-` on the key
/// only silences errors, so it counts the same. Glob keys are skipped (tune never writes them).
pub fn parse_sysctl(text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let key = normalize_key(k);
        if key.contains('*') || key.is_empty() {
            continue;
        }
        out.push((i + 1, key, v.trim().to_string()));
    }
    out
}

/// Parses modprobe.d text for `options <module> <param>=<value>` lines, keyed `module.param`.
pub fn parse_modprobe(text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        let mut words = line.split_whitespace();
        if words.next() != Some("options") {
            continue;
        }
        let Some(module) = words.next() else { continue };
        let module = module.replace('-', "_");
        for w in words {
            if w.starts_with('#') {
                break;
            }
            if let Some((p, v)) = w.split_once('=') {
                out.push((i + 1, format!("{module}.{p}"), v.to_string()));
            }
        }
    }
    out
}

/// Orders files by the sysctl.d rules. `listing` holds, per directory in priority order,
/// the `.conf` names found there. Returns the counted files' paths in application order.
pub fn order(dirs: &[&str], listing: &[Vec<String>]) -> Vec<String> {
    let mut by_name: BTreeMap<&str, String> = BTreeMap::new();
    for (dir, names) in dirs.iter().zip(listing) {
        for name in names {
            if name.ends_with(".conf") && !by_name.contains_key(name.as_str()) {
                by_name.insert(name, format!("{dir}/{name}"));
            }
        }
    }
    by_name.into_values().collect()
}

/// Applies parsed files in order: every setting, later ones winning.
pub fn resolve(files: &[ConfFile], parse: fn(&str) -> Vec<(usize, String, String)>) -> Applied {
    let mut settings = Vec::new();
    for f in files {
        for (line, key, value) in parse(&f.text) {
            settings.push(Setting {
                key,
                value,
                file: f.rel.clone(),
                line,
            });
        }
    }
    Applied { settings }
}

/// The files that count, read through the root, in application order. `extra` (a file tune is
/// about to write, with its would-be text) replaces or joins the listing; `exclude` drops one path.
pub fn gather(
    root: &Root,
    dirs: &[&str],
    last: Option<&str>,
    exclude: Option<&str>,
    extra: Option<&ConfFile>,
) -> anyhow::Result<Vec<ConfFile>> {
    let mut listing = Vec::new();
    for dir in dirs {
        let mut names = root.list_dir(dir)?;
        if let Some(x) = extra {
            if let Some((xdir, xname)) = x.rel.rsplit_once('/') {
                if xdir == *dir && !names.iter().any(|n| n == xname) {
                    names.push(xname.to_string());
                }
            }
        }
        listing.push(names);
    }
    let mut files = Vec::new();
    for rel in order(dirs, &listing) {
        if exclude == Some(rel.as_str()) {
            continue;
        }
        if let Some(x) = extra.filter(|x| x.rel == rel) {
            files.push(x.clone());
            continue;
        }
        // A name masked by a symlink to /dev/null reads as empty; a dangling link counts as nothing.
        match root.read_bytes_opt(&rel) {
            Ok(Some(b)) => files.push(ConfFile {
                rel,
                text: String::from_utf8_lossy(&b).into_owned(),
            }),
            Ok(None) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(last) = last {
        if let Some(b) = root.read_bytes_opt(last)? {
            files.push(ConfFile {
                rel: last.to_string(),
                text: String::from_utf8_lossy(&b).into_owned(),
            });
        }
    }
    Ok(files)
}

/// The boot configuration of every persistable knob, as sysctl.d and modprobe.d set it.
#[derive(Debug, Clone, Default)]
pub struct BootView {
    pub sysctl: Applied,
    pub modprobe: Applied,
}

/// What the boot configuration sets for one knob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootValue {
    pub value: Value,
    /// Path relative to the root, and line.
    pub file: String,
    pub line: usize,
}

impl BootView {
    /// Reads the boot configuration under `root`. `exclude` drops a file (tune's own, about to
    /// be replaced); `extra_*` adds the file tune is about to write.
    pub fn gather(
        root: &Root,
        exclude: &[&str],
        extra_sysctl: Option<&ConfFile>,
        extra_modprobe: Option<&ConfFile>,
    ) -> anyhow::Result<BootView> {
        let ex = |dirs: &[&str]| {
            exclude
                .iter()
                .copied()
                .find(|e| dirs.iter().any(|d| e.starts_with(d)))
        };
        let sysctl = gather(
            root,
            &SYSCTL_DIRS,
            Some(SYSCTL_CONF),
            ex(&SYSCTL_DIRS),
            extra_sysctl,
        )?;
        let modprobe = gather(
            root,
            &MODPROBE_DIRS,
            None,
            ex(&MODPROBE_DIRS),
            extra_modprobe,
        )?;
        Ok(BootView {
            sysctl: resolve(&sysctl, parse_sysctl),
            modprobe: resolve(&modprobe, parse_modprobe),
        })
    }

    /// The setting that wins at boot for this knob, if any file sets it.
    pub fn setting(&self, knob: &Knob) -> Option<&Setting> {
        match knob.persist {
            Persist::SysctlD => self.sysctl.winner(knob.name),
            Persist::ModprobeD { module, param } => {
                self.modprobe.winner(&format!("{module}.{param}"))
            }
            _ => None,
        }
    }

    /// The value this knob gets at boot, if a file sets it (and the text parses as the knob's shape).
    pub fn value(&self, knob: &Knob) -> Option<BootValue> {
        let s = self.setting(knob)?;
        let value = Value::parse(knob.shape, &s.value).ok()?;
        Some(BootValue {
            value,
            file: s.file.clone(),
            line: s.line,
        })
    }

    /// The boot values of every knob a file sets.
    pub fn values(&self) -> BTreeMap<&'static str, BootValue> {
        crate::knobs::REGISTRY
            .iter()
            .filter_map(|k| self.value(k).map(|v| (k.name, v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(rel: &str, text: &str) -> ConfFile {
        ConfFile {
            rel: rel.into(),
            text: text.into(),
        }
    }

    #[test]
    fn same_name_earlier_directory_hides_later() {
        let listing = vec![
            vec!["50-a.conf".to_string()],
            vec![],
            vec![],
            vec![
                "50-a.conf".to_string(),
                "10-b.conf".to_string(),
                "README".to_string(),
            ],
            vec![],
        ];
        assert_eq!(
            order(&SYSCTL_DIRS, &listing),
            vec!["usr/lib/sysctl.d/10-b.conf", "etc/sysctl.d/50-a.conf"]
        );
    }

    #[test]
    fn latest_name_wins_regardless_of_directory() {
        let files = vec![
            f("etc/sysctl.d/10-admin.conf", "net.core.somaxconn = 1000\n"),
            f(
                "usr/lib/sysctl.d/50-vendor.conf",
                "net/core/somaxconn=2000\n",
            ),
            f(
                "etc/sysctl.d/90-tune.conf",
                "# c\n; c\nnet.core.somaxconn = 65535\n",
            ),
            f("etc/sysctl.d/95-late.conf", "-net.core.somaxconn = 128\n"),
        ];
        let a = resolve(&files, parse_sysctl);
        let w = a.winner("net.core.somaxconn").unwrap();
        assert_eq!(
            (w.value.as_str(), w.file.as_str(), w.line),
            ("128", "etc/sysctl.d/95-late.conf", 1)
        );
        assert_eq!(a.settings.len(), 4);
        assert_eq!(a.settings[1].key, "net.core.somaxconn");
    }

    #[test]
    fn slash_keys_normalise() {
        assert_eq!(normalize_key("net/ipv4/tcp_mem"), "net.ipv4.tcp_mem");
        assert_eq!(normalize_key(" -fs.nr_open "), "fs.nr_open");
    }

    #[test]
    fn debian_files_as_shipped() {
        // Debian 12.11 (procps 2:4.0.2-3): /etc/sysctl.conf, every setting commented out.
        let text = include_str!("../../tests/fixtures/apply/debian12/sysctl.conf");
        assert!(parse_sysctl(text).is_empty());
        // Debian 12.11 (systemd 252.38): /usr/lib/sysctl.d/50-pid-max.conf
        let text = include_str!("../../tests/fixtures/apply/debian12/50-pid-max.conf");
        assert_eq!(
            parse_sysctl(text),
            vec![(16, "kernel.pid_max".into(), "4194304".into())]
        );
    }

    #[test]
    fn modprobe_options() {
        let p = parse_modprobe(
            "# x\noptions nf-conntrack hashsize=262144 expect_hashsize=10 # c\nblacklist foo\n",
        );
        assert_eq!(
            p,
            vec![
                (2, "nf_conntrack.hashsize".into(), "262144".into()),
                (2, "nf_conntrack.expect_hashsize".into(), "10".into())
            ]
        );
    }
}
