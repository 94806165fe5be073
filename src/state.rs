//! The transaction records of `tune apply`: what each apply touched and what was there before, for rollback and drift.
//!
//! One JSON file per apply, `tx-NNNNNN.json`, under `<root>/var/lib/tune` (or
//! `--state-dir`), written atomically before the first change and again when
//! the apply ends. A record carries a format name and version so a corrupt or
//! foreign file is refused with a clear error instead of being guessed at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::knobs::{self, KnobId, Observation, Value};
use crate::persist::boot::BootView;
use crate::root::{FileState, Root};
use crate::values::{Input, Refused};

pub const FORMAT: &str = "tune-apply-record";
pub const VERSION: u32 = 1;
/// The default state directory, relative to the root.
pub const DEFAULT_DIR: &str = "var/lib/tune";
/// Mode of a state directory tune creates: root only (its records are 0600 as well).
pub const STATE_DIR_MODE: u32 = 0o700;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordStatus {
    /// Recorded before the first write; the apply has not finished (or was killed): rollback restores it.
    InProgress,
    Applied,
    RolledBack,
    /// Restoring failed part way; `tune rollback` tries again.
    RestoreFailed,
}

impl RecordStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordStatus::InProgress => "in-progress",
            RecordStatus::Applied => "applied",
            RecordStatus::RolledBack => "rolled-back",
            RecordStatus::RestoreFailed => "restore-failed",
        }
    }
}

/// A file's modification time to the nanosecond: seconds since the epoch (negative before 1970)
/// and nanoseconds within that second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mtime {
    pub sec: i64,
    pub nsec: u32,
}

/// What a file held before, as stored in the record (bytes as hex, so restoring is exact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Before {
    Absent,
    Regular {
        mode: u32,
        uid: u32,
        gid: u32,
        hex: String,
        /// Recorded since the second session; records written before it have none, and rollback
        /// then leaves the time as the restore makes it (the record format stays version 1: an
        /// older tune ignores the field, a newer one reads records without it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mtime: Option<Mtime>,
    },
    Symlink {
        target: String,
    },
}

impl Before {
    /// What `rel` holds now under `root`, with the modification time of a regular file, so
    /// rollback can put back content, mode, owner and time.
    pub fn capture(root: &Root, rel: &str) -> anyhow::Result<Before> {
        let snap = root.snapshot(rel)?;
        let mut before = Before::from_state(&snap)?;
        if let Before::Regular { mtime, .. } = &mut before {
            *mtime = root.mtime(rel)?.map(|(sec, nsec)| Mtime { sec, nsec });
        }
        Ok(before)
    }

    /// The recorded modification time (regular files recorded by this tune or later).
    pub fn mtime(&self) -> Option<Mtime> {
        match self {
            Before::Regular { mtime, .. } => *mtime,
            _ => None,
        }
    }

    /// The file state without its time (see [`Before::capture`] for a capture with it).
    pub fn from_state(s: &FileState) -> anyhow::Result<Before> {
        Ok(match s {
            FileState::Absent => Before::Absent,
            FileState::Regular {
                mode,
                uid,
                gid,
                bytes,
            } => Before::Regular {
                mode: *mode,
                uid: *uid,
                gid: *gid,
                hex: hex(bytes),
                mtime: None,
            },
            FileState::Symlink { target } => Before::Symlink {
                target: target.to_string_lossy().into_owned(),
            },
            FileState::Other { kind } => {
                anyhow::bail!("is {kind}, not a file: tune will not replace it")
            }
        })
    }

    pub fn to_state(&self) -> anyhow::Result<FileState> {
        Ok(match self {
            Before::Absent => FileState::Absent,
            Before::Regular {
                mode,
                uid,
                gid,
                hex,
                ..
            } => FileState::Regular {
                mode: *mode,
                uid: *uid,
                gid: *gid,
                bytes: unhex(hex)?,
            },
            Before::Symlink { target } => FileState::Symlink {
                target: PathBuf::from(target),
            },
        })
    }
}

/// One thing an apply changes, with what to put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Change {
    /// A kernel value written in place (/proc/sys, /sys/module/*/parameters); `before` is the exact text read.
    Value {
        knob: String,
        path: String,
        before: String,
        after: String,
        /// For a net.* value: the network namespace it was written in (the inode of
        /// /proc/self/ns/net), so rollback from another namespace is refused. (Absent in older
        /// records and for values that are not per namespace.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        netns: Option<u64>,
    },
    /// RLIMIT_NOFILE of a process, [soft, hard].
    Rlimit {
        pid: u32,
        /// The process's start time (field 22 of /proc/PID/stat), so a reused pid is not touched.
        start_time: Option<u64>,
        before: [u64; 2],
        after: [u64; 2],
    },
    /// A configuration file replaced or created atomically.
    File {
        path: String,
        before: Before,
        after_hex: String,
        /// The modification time of the directory holding it, when that existed: replacing or
        /// removing the file changes it, so rollback sets it back. (Absent in older records.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent_mtime: Option<Mtime>,
    },
    /// A directory tune created for a file; removed on rollback when empty.
    Dir {
        path: String,
        /// The modification time of the directory holding it, when that existed. (Absent in older records.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent_mtime: Option<Mtime>,
    },
}

/// The modification time of the directory holding `rel`, if that directory exists.
pub fn parent_mtime(root: &Root, rel: &str) -> anyhow::Result<Option<Mtime>> {
    let parent = rel
        .trim_end_matches('/')
        .rsplit_once('/')
        .map_or("", |(p, _)| p);
    if parent.is_empty() {
        return Ok(None);
    }
    Ok(root.mtime(parent)?.map(|(sec, nsec)| Mtime { sec, nsec }))
}

/// One apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub format: String,
    pub version: u32,
    pub id: u64,
    pub created_unix: u64,
    pub profile: String,
    pub profile_source: String,
    /// The root the apply ran against; rollback refuses another.
    pub root: String,
    pub status: RecordStatus,
    #[serde(default)]
    pub finished_unix: Option<u64>,
    pub changes: Vec<Change>,
}

impl Record {
    pub fn new(id: u64, profile: &str, source: &str, root: &Root) -> Record {
        Record {
            format: FORMAT.into(),
            version: VERSION,
            id,
            created_unix: now(),
            profile: profile.into(),
            profile_source: source.into(),
            root: root.base().display().to_string(),
            status: RecordStatus::InProgress,
            finished_unix: None,
            changes: Vec::new(),
        }
    }

    /// The value each knob was given, as applied (the `after` of each change).
    pub fn applied_values(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for c in &self.changes {
            match c {
                Change::Value { knob, after, .. } => {
                    out.insert(knob.clone(), after.clone());
                }
                Change::Rlimit { after, .. } => {
                    out.insert(KnobId::NofileSoft.name().into(), after[0].to_string());
                    out.insert(KnobId::NofileHard.name().into(), after[1].to_string());
                }
                _ => {}
            }
        }
        out
    }
}

/// The network namespace this process runs in under `root`: the inode of `proc/self/ns/net`
/// (`net:[4026531833]`), `None` when the root has no such link (a captured tree).
pub fn netns_inode(root: &Root) -> Option<u64> {
    let link = root.read_link("proc/self/ns/net").ok()?;
    let text = link.to_string_lossy();
    text.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// How to run tune in another network namespace, for the lines that send the user there.
pub const REACH_NETNS: &str =
    "inside that namespace (ip netns exec NAME, or nsenter --net=/proc/PID/ns/net)";

/// The values of a record written in a network namespace other than this tune's: rollback
/// refuses them and check leaves them out of the host's drift, both naming the namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtherNetns {
    pub apply_id: u64,
    /// The inode of the namespace the values were written in (`net:[N]`).
    pub netns: u64,
    /// The namespace this tune runs in; `None` when unknown (a captured root).
    pub here: Option<u64>,
    /// The knobs set there, in record order.
    pub knobs: Vec<String>,
}

impl OtherNetns {
    /// The values of `record` written in another namespace than `here` (a record is written in
    /// one namespace, so the first foreign one names it); `None` when there are none.
    pub fn of(record: &Record, here: Option<u64>) -> Option<OtherNetns> {
        let foreign = |c: &Change| match c {
            Change::Value {
                knob,
                netns: Some(ns),
                ..
            } if here != Some(*ns) => Some((*ns, knob.clone())),
            _ => None,
        };
        let netns = record.changes.iter().find_map(foreign)?.0;
        let knobs = record
            .changes
            .iter()
            .filter_map(foreign)
            .filter(|(ns, _)| *ns == netns)
            .map(|(_, knob)| knob)
            .collect();
        Some(OtherNetns {
            apply_id: record.id,
            netns,
            here,
            knobs,
        })
    }

    /// "apply #N set K1, K2 in network namespace net:[X], but this tune runs in net:[Y]".
    pub fn describe(&self) -> String {
        format!(
            "apply #{} set {} in network namespace net:[{}], but this tune runs in {}",
            self.apply_id,
            self.knobs.join(", "),
            self.netns,
            self.here
                .map_or("an unknown namespace".into(), |n| format!("net:[{n}]"))
        )
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(s: &str) -> anyhow::Result<Vec<u8>> {
    if s.len() % 2 != 0 {
        anyhow::bail!("odd-length hex");
    }
    // from_str_radix alone would take "+f" as a digit pair (found by fuzzing, issue 11).
    if let Some(i) = s.bytes().position(|b| !b.is_ascii_hexdigit()) {
        anyhow::bail!("bad hex at {}", i - i % 2);
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(s.get(i..i + 2).unwrap_or("x"), 16)
                .map_err(|_| anyhow::anyhow!("bad hex at {i}"))
        })
        .collect()
}

/// Where records live: a directory, reached through a root so tests stay inside temp dirs.
#[derive(Debug, Clone)]
pub struct Store {
    root: Root,
    dir: String,
}

impl Store {
    /// `<root>/var/lib/tune`, or `state_dir` (an absolute or relative path on this machine) when given.
    pub fn new(root: &Root, state_dir: Option<&Path>) -> anyhow::Result<Store> {
        Ok(match state_dir {
            None => Store {
                root: root.clone(),
                dir: DEFAULT_DIR.into(),
            },
            Some(d) => {
                let abs = if d.is_absolute() {
                    d.to_path_buf()
                } else {
                    std::env::current_dir()
                        .map_err(|e| {
                            Refused::input(Input::StateDir, format!("current directory: {e}"))
                        })?
                        .join(d)
                };
                Store {
                    root: Root::host(),
                    dir: abs.to_string_lossy().trim_start_matches('/').to_string(),
                }
            }
        })
    }

    /// True when the state directory exists.
    pub fn exists(&self) -> bool {
        self.root.is_dir(&self.dir)
    }

    /// The directory, as a full path.
    pub fn path(&self) -> PathBuf {
        self.root.path(&self.dir)
    }

    fn rel(&self, id: u64) -> String {
        format!("{}/tx-{id:06}.json", self.dir)
    }

    /// Every record, oldest first. A file that is not a record of this tune is an error naming it.
    pub fn list(&self) -> anyhow::Result<Vec<Record>> {
        if self.root.exists(&self.dir) && !self.root.is_dir(&self.dir) {
            anyhow::bail!(
                "state directory {} is not a directory: move it away (tune keeps its apply records there)",
                self.path().display()
            );
        }
        let mut out = Vec::new();
        for name in self.root.list_dir(&self.dir)? {
            if !(name.starts_with("tx-") && name.ends_with(".json")) {
                continue;
            }
            let rel = format!("{}/{name}", self.dir);
            if self.root.read_link(&rel).is_ok() {
                anyhow::bail!(
                    "state file {} is a symbolic link: tune never follows links in its state \
                     directory (one could point it at any file); remove it",
                    self.root.path(&rel).display()
                );
            }
            let text = self.root.read(&rel)?;
            out.push(parse_record(&text).with_context(|| {
                format!(
                    "state file {}: cannot be used, so tune will not guess what to restore; \
                     move it out of {} (or restore it from a backup) and run tune again",
                    self.root.path(&rel).display(),
                    self.path().display()
                )
            })?);
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// The record rollback acts on: the latest one not rolled back.
    pub fn last_open(&self) -> anyhow::Result<Option<Record>> {
        Ok(self
            .list()?
            .into_iter()
            .rev()
            .find(|r| r.status != RecordStatus::RolledBack))
    }

    /// The latest record whose apply completed, for the drift view.
    pub fn last_applied(&self) -> anyhow::Result<Option<Record>> {
        Ok(self
            .list()?
            .into_iter()
            .rev()
            .find(|r| r.status == RecordStatus::Applied))
    }

    pub fn next_id(&self) -> anyhow::Result<u64> {
        let Some(last) = self.list()?.last().map(|r| r.id) else {
            return Ok(1);
        };
        // A record carrying the largest id (hand-edited or corrupt) must not wrap to 0 or
        // overflow (found by fuzzing, issue 11).
        last.checked_add(1).ok_or_else(|| {
            anyhow::anyhow!(
                "state file {}: its id {last} is the largest there is, so no later apply can be \
                 numbered; move it out of {} (it is not one tune wrote)",
                self.root.path(&self.rel(last)).display(),
                self.path().display()
            )
        })
    }

    /// The state directory's missing ancestors (under its root), outermost first.
    pub fn missing_dirs(&self) -> Vec<String> {
        missing_dirs(&self.root, &self.dir)
    }

    /// Creates the state directory if needed (returning the directories it created, outermost
    /// first) and locks it so no other apply or rollback runs at the same time.
    pub fn lock(&self) -> anyhow::Result<(crate::root::DirLock, Vec<String>)> {
        let created = self.missing_dirs();
        for d in &created {
            self.root.create_dir(d).with_context(|| {
                format!("creating the state directory {}", self.path().display())
            })?;
        }
        if created.last() == Some(&self.dir) {
            // The records say what was there before each apply: for root's eyes only.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(self.path(), std::fs::Permissions::from_mode(STATE_DIR_MODE))
                .with_context(|| format!("making {} private", self.path().display()))?;
        }
        match self.root.try_lock_dir(&self.dir)? {
            Some(l) => Ok((l, created)),
            None => {
                self.remove_dirs(&created);
                anyhow::bail!(
                    "another tune apply or rollback is running (it holds the lock on {}); wait for it to finish",
                    self.path().display()
                )
            }
        }
    }

    /// Writes a record atomically (temporary file, fsync, rename), readable by root only.
    pub fn save(&self, r: &Record) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(r)?;
        self.root
            .write_atomic(&self.rel(r.id), format!("{text}\n").as_bytes(), 0o600)?;
        Ok(())
    }

    pub fn delete(&self, id: u64) -> anyhow::Result<()> {
        self.root.remove(&self.rel(id))?;
        Ok(())
    }

    /// Removes directories (relative to the store's root) if empty, innermost first.
    pub fn remove_dirs(&self, dirs: &[String]) {
        for d in dirs.iter().rev() {
            let _ = self.root.remove_empty_dir(d);
        }
    }
}

/// The ancestors of `rel` (itself included) that do not exist under `root`, outermost first.
pub fn missing_dirs(root: &Root, rel: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = rel.trim_end_matches('/').to_string();
    while !cur.is_empty() && !root.exists(&cur) {
        out.push(cur.clone());
        cur = match cur.rsplit_once('/') {
            Some((p, _)) => p.to_string(),
            None => String::new(),
        };
    }
    out.reverse();
    out
}

/// Where each kind of change may write, relative to the root: kernel values under /proc/sys and
/// module parameters, configuration under /etc. A record naming anything else was not written by
/// tune (or was tampered with) and is refused before rollback acts on it.
const VALUE_DIRS: &[&str] = &["proc/sys/", "sys/module/"];
const FILE_DIRS: &[&str] = &["etc/"];

impl Change {
    /// The path this change writes, relative to the root (`None` for a process limit).
    pub fn path(&self) -> Option<&str> {
        match self {
            Change::Value { path, .. } | Change::File { path, .. } | Change::Dir { path, .. } => {
                Some(path)
            }
            Change::Rlimit { .. } => None,
        }
    }

    /// Refuses a path that is absolute, has a `..` or lies outside where tune writes.
    fn check_path(&self) -> anyhow::Result<()> {
        let Some(path) = self.path() else {
            return Ok(());
        };
        let allowed = match self {
            Change::Value { .. } => VALUE_DIRS,
            _ => FILE_DIRS,
        };
        let inside = allowed.iter().any(|d| {
            path.starts_with(d)
                || (matches!(self, Change::Dir { .. }) && path == d.trim_end_matches('/'))
        });
        if path.starts_with('/') || path.split('/').any(|c| c == ".." || c == ".") || !inside {
            anyhow::bail!(
                "change of {path:?} leaves the places tune writes ({}): refused",
                allowed.join(", ")
            );
        }
        Ok(())
    }
}

/// Parses a record, refusing foreign and future formats and paths outside where tune writes.
pub fn parse_record(text: &str) -> anyhow::Result<Record> {
    let v: serde_json::Value =
        serde_json::from_str(text).context("not valid JSON (truncated or edited by hand?)")?;
    let format = v.get("format").and_then(|f| f.as_str());
    if format != Some(FORMAT) {
        anyhow::bail!("not a tune apply record (format is {format:?}, expected {FORMAT:?})");
    }
    let version = v.get("version").and_then(|f| f.as_u64());
    match version {
        Some(n) if n == u64::from(VERSION) => {}
        Some(n) if n > u64::from(VERSION) => anyhow::bail!(
            "record version {n} was written by a newer tune (this one reads version {VERSION}); use that tune"
        ),
        other => anyhow::bail!("unknown record version {other:?}"),
    }
    let record: Record = serde_json::from_value(v)
        .context("a tune apply record with missing or malformed fields")?;
    for c in &record.changes {
        c.check_path()?;
    }
    Ok(record)
}

/// How a reboot treats one applied value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum BootKeeps {
    /// The boot configuration sets the applied value (the file that wins, relative to the root).
    Yes { file: String },
    /// The boot configuration sets another value, or nothing (`value: None`: the kernel default).
    No {
        value: Option<String>,
        file: Option<String>,
    },
    /// Not a boot-time setting (RLIMIT_NOFILE of a running process).
    NotApplicable,
}

/// Drift of one applied value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub knob: String,
    pub applied: String,
    /// The live value now; `None` when it cannot be read (or belongs to another process).
    pub live: Option<String>,
    pub live_matches: bool,
    pub boot: BootKeeps,
}

/// Which values of the last apply still hold, and whether a reboot would keep them.
/// For `tune check`: pass `Store::last_applied()`, `knobs::observe(...)` and `BootView::gather(root, &[], None, None)`.
pub fn drift(record: &Record, obs: &Observation, boot: &BootView) -> Vec<Drift> {
    let pid_of_record = record.changes.iter().find_map(|c| match c {
        Change::Rlimit { pid, .. } => Some(*pid),
        _ => None,
    });
    let mut out = Vec::new();
    for (name, applied) in record.applied_values() {
        let Some(knob) = knobs::find(&name) else {
            continue;
        };
        let applied_v = Value::parse(knob.shape, &applied).ok();
        let is_rlimit = matches!(knob.id, KnobId::NofileSoft | KnobId::NofileHard);
        let live = if is_rlimit && obs.facts.pid != pid_of_record {
            None
        } else {
            obs.get(knob.id).copied()
        };
        let live_matches = live.is_some() && live == applied_v;
        let boot_keeps = if is_rlimit {
            BootKeeps::NotApplicable
        } else {
            match boot.value(knob) {
                Some(b) if Some(b.value) == applied_v => BootKeeps::Yes { file: b.file },
                Some(b) => BootKeeps::No {
                    value: Some(b.value.to_string()),
                    file: Some(b.file),
                },
                None => BootKeeps::No {
                    value: None,
                    file: None,
                },
            }
        };
        out.push(Drift {
            knob: name,
            applied: applied_v.map_or(applied.clone(), |v| v.to_string()),
            live: live.map(|v| v.to_string()),
            live_matches,
            boot: boot_keeps,
        });
    }
    out
}

/// The drift view of `tune check`: what the last apply set and whether it still holds.
#[derive(Debug)]
pub enum DriftView {
    /// Nothing applied (or the last apply was rolled back).
    Nothing,
    /// The records exist but this user may not read them (root's 0600 files seen by another
    /// user): the text says so, for a note. Not an error: check works for any user.
    Unreadable(String),
    Applied {
        record: Record,
        /// The drift of the values set in this network namespace (or host-wide).
        values: Vec<Drift>,
        /// The values the record set in another network namespace: their live values are that
        /// namespace's, not these, so they are listed apart and not compared.
        other_netns: Option<Box<OtherNetns>>,
    },
}

impl DriftView {
    /// The record and its drift, when there is an apply to compare with.
    pub fn applied(self) -> Option<(Record, Vec<Drift>)> {
        match self {
            DriftView::Applied { record, values, .. } => Some((record, values)),
            _ => None,
        }
    }
}

/// The line `tune check` prints for values of another network namespace.
pub fn render_other_netns(o: &OtherNetns) -> String {
    format!(
        "{}: their live values are that namespace's, so they are not compared here; \
         run `tune check` {REACH_NETNS}",
        o.describe()
    )
}

/// Everything `tune check` needs for its drift view in one call: the last completed apply recorded
/// for `root` (in `state_dir`, default `<root>/var/lib/tune`) and, per value it set, whether the live
/// value still matches and whether the boot configuration (tune's files included) would keep it.
pub fn drift_view(
    root: &Root,
    state_dir: Option<&Path>,
    obs: &Observation,
) -> anyhow::Result<DriftView> {
    let store = Store::new(root, state_dir)?;
    let records = match store.list() {
        Ok(r) => r,
        Err(e) if denied(&e) => {
            return Ok(DriftView::Unreadable(format!(
                "the apply records in {} are readable by root only, so drift since the last \
                 apply is not shown; run tune check as root to see it",
                store.path().display()
            )))
        }
        Err(e) => return Err(e),
    };
    let last_open = records
        .iter()
        .rev()
        .find(|r| r.status != RecordStatus::RolledBack);
    let Some(record) = last_open
        .filter(|r| r.status == RecordStatus::Applied)
        .cloned()
    else {
        return Ok(DriftView::Nothing);
    };
    let boot = BootView::gather(root, &[], None, None)?;
    let other_netns = OtherNetns::of(&record, netns_inode(root)).map(Box::new);
    let mut values = drift(&record, obs, &boot);
    if let Some(o) = &other_netns {
        values.retain(|d| !o.knobs.contains(&d.knob));
    }
    Ok(DriftView::Applied {
        record,
        values,
        other_netns,
    })
}

/// Whether an error comes from a permission denied (EACCES) on a file or directory.
fn denied(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<crate::root::RootError>(),
            Some(crate::root::RootError::Denied { .. })
        )
    })
}

/// One line per drifted value, for people: what was applied, what runs now, what boot sets.
pub fn render_drift(root: &Root, drift: &[Drift]) -> Vec<String> {
    drift
        .iter()
        .filter(|d| {
            !d.live_matches || !matches!(d.boot, BootKeeps::Yes { .. } | BootKeeps::NotApplicable)
        })
        .map(|d| {
            let live = if d.live_matches {
                "still live".to_string()
            } else {
                format!(
                    "live is {} (changed since apply)",
                    d.live.as_deref().unwrap_or("unknown")
                )
            };
            let boot = match &d.boot {
                BootKeeps::Yes { file } => {
                    format!("a reboot keeps it ({})", root.path(file).display())
                }
                BootKeeps::No {
                    value: Some(v),
                    file: Some(f),
                } => format!("a reboot sets {v} ({})", root.path(f).display()),
                BootKeeps::No { .. } => "a reboot loses it (no boot file sets it)".into(),
                BootKeeps::NotApplicable => "set where the process starts".into(),
            };
            format!("{}: applied {}; {live}; {boot}", d.knob, d.applied)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knobs::{Facts, Reading};
    use crate::persist::boot::{Applied, Setting};

    fn record() -> Record {
        let root = Root::host();
        let mut r = Record::new(7, "1m", "profiles/1m.toml", &root);
        r.status = RecordStatus::Applied;
        r.changes = vec![
            Change::Value {
                knob: "net.core.somaxconn".into(),
                path: "proc/sys/net/core/somaxconn".into(),
                before: "4096\n".into(),
                after: "65535".into(),
                netns: None,
            },
            Change::Value {
                knob: "fs.file-max".into(),
                path: "proc/sys/fs/file-max".into(),
                before: "2466170\n".into(),
                after: "4000000".into(),
                netns: None,
            },
            Change::File {
                path: "etc/sysctl.d/90-tune.conf".into(),
                before: Before::Absent,
                after_hex: hex(b"x"),
                parent_mtime: None,
            },
        ];
        r
    }

    #[test]
    fn records_round_trip_and_refuse_strangers() {
        let r = record();
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(parse_record(&text).unwrap(), r);
        let e = parse_record("{\"format\":\"something-else\",\"version\":1}").unwrap_err();
        assert!(
            format!("{e:#}").contains("not a tune apply record"),
            "{e:#}"
        );
        let e = parse_record(&text.replace("\"version\":1", "\"version\":9")).unwrap_err();
        assert!(format!("{e:#}").contains("newer tune"), "{e:#}");
        let e = parse_record(&text[..text.len() / 2]).unwrap_err();
        assert!(format!("{e:#}").contains("not valid JSON"), "{e:#}");
        assert_eq!(unhex(&hex(b"\x00\xffab")).unwrap(), b"\x00\xffab");
    }

    #[test]
    fn values_of_another_network_namespace_are_named_with_it() {
        let mut r = record();
        assert_eq!(OtherNetns::of(&r, Some(1)), None, "no namespace recorded");
        if let Change::Value { netns, .. } = &mut r.changes[0] {
            *netns = Some(4026532174);
        }
        assert_eq!(OtherNetns::of(&r, Some(4026532174)), None, "this namespace");
        let o = OtherNetns::of(&r, Some(4026531833)).unwrap();
        assert_eq!(o.knobs, ["net.core.somaxconn"]);
        assert_eq!(
            o.describe(),
            "apply #7 set net.core.somaxconn in network namespace net:[4026532174], but this \
             tune runs in net:[4026531833]"
        );
        let unknown = OtherNetns::of(&r, None).unwrap().describe();
        assert!(
            unknown.ends_with("runs in an unknown namespace"),
            "{unknown}"
        );
    }

    #[test]
    fn unhex_takes_hex_digits_only() {
        // Fuzz find (issue 11): from_str_radix accepts a sign, so "+f" read as 0x0f.
        for bad in ["+f", "0+", "-1", " a", "zz"] {
            assert!(unhex(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(unhex("0aFf").unwrap(), vec![0x0a, 0xff]);
    }

    #[test]
    fn the_largest_id_is_refused_not_wrapped() {
        // Fuzz find (issue 11): next_id did `id + 1` on u64::MAX.
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        let store = Store::new(&root, None).unwrap();
        let mut r = record();
        r.id = u64::MAX;
        store.save(&r).unwrap();
        let e = format!("{:#}", store.next_id().unwrap_err());
        assert!(e.contains("largest") && e.contains("move it out"), "{e}");
    }

    #[test]
    fn a_record_whose_paths_leave_the_root_is_refused() {
        let text = serde_json::to_string(&record()).unwrap();
        for (from, to) in [
            (
                "etc/sysctl.d/90-tune.conf",
                "etc/../../root/.ssh/authorized_keys",
            ),
            ("etc/sysctl.d/90-tune.conf", "/etc/shadow"),
            ("etc/sysctl.d/90-tune.conf", "var/lib/tune/x"),
            ("proc/sys/net/core/somaxconn", "etc/passwd"),
        ] {
            let e = format!("{:#}", parse_record(&text.replace(from, to)).unwrap_err());
            assert!(e.contains("refused") && e.contains(to), "{to}: {e}");
        }
    }

    #[test]
    fn records_without_a_modification_time_still_read() {
        // A file change as the first session's tune wrote it (no mtime field).
        let old = r#"{"format":"tune-apply-record","version":1,"id":3,"created_unix":1795750682,
            "profile":"1m","profile_source":"shipped","root":"/","status":"applied",
            "changes":[{"kind":"dir","path":"etc/modprobe.d"},{"kind":"file","path":"etc/sysctl.d/90-tune.conf",
            "before":{"type":"regular","mode":384,"uid":0,"gid":0,"hex":"610a"},"after_hex":"620a"}]}"#;
        let r = parse_record(old).unwrap();
        let Change::File {
            before,
            parent_mtime: None,
            ..
        } = &r.changes[1]
        else {
            panic!("{r:?}")
        };
        assert_eq!(before.mtime(), None);
        assert!(matches!(
            &r.changes[0],
            Change::Dir {
                parent_mtime: None,
                ..
            }
        ));
        assert_eq!(
            before.to_state().unwrap(),
            FileState::Regular {
                mode: 0o600,
                uid: 0,
                gid: 0,
                bytes: b"a\n".to_vec()
            }
        );
        // A time is written only when there is one, to the nanosecond, and reads back.
        let mut with = before.clone();
        if let Before::Regular { mtime, .. } = &mut with {
            *mtime = Some(Mtime {
                sec: -34_560_000,
                nsec: 999_999_999,
            });
        }
        let text = serde_json::to_string(&with).unwrap();
        assert!(
            text.contains(r#""mtime":{"sec":-34560000,"nsec":999999999}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Before>(&text).unwrap(), with);
        assert!(!serde_json::to_string(before).unwrap().contains("mtime"));
    }

    #[test]
    fn drift_says_what_moved_and_what_boot_keeps() {
        let r = record();
        let mut readings = BTreeMap::new();
        readings.insert("net.core.somaxconn", Reading::Value(Value::Int(65535)));
        readings.insert("fs.file-max", Reading::Value(Value::Int(2466170)));
        let obs = Observation {
            readings,
            facts: Facts::default(),
        };
        let boot = BootView {
            sysctl: Applied {
                settings: vec![Setting {
                    key: "net.core.somaxconn".into(),
                    value: "65535".into(),
                    file: "etc/sysctl.d/90-tune.conf".into(),
                    line: 4,
                }],
            },
            modprobe: Applied::default(),
        };
        let d = drift(&r, &obs, &boot);
        let file_max = d.iter().find(|d| d.knob == "fs.file-max").unwrap();
        assert!(!file_max.live_matches);
        assert_eq!(file_max.live.as_deref(), Some("2466170"));
        assert_eq!(
            file_max.boot,
            BootKeeps::No {
                value: None,
                file: None
            }
        );
        let somax = d.iter().find(|d| d.knob == "net.core.somaxconn").unwrap();
        assert!(somax.live_matches);
        assert_eq!(
            somax.boot,
            BootKeeps::Yes {
                file: "etc/sysctl.d/90-tune.conf".into()
            }
        );
    }

    #[test]
    fn store_lists_in_order_and_names_a_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        let store = Store::new(&root, None).unwrap();
        assert_eq!(store.missing_dirs(), vec!["var", "var/lib", "var/lib/tune"]);
        assert_eq!(store.next_id().unwrap(), 1);
        let mut r = record();
        r.id = 1;
        store.save(&r).unwrap();
        r.id = 2;
        r.status = RecordStatus::RolledBack;
        store.save(&r).unwrap();
        assert_eq!(store.next_id().unwrap(), 3);
        assert_eq!(store.last_open().unwrap().unwrap().id, 1);
        std::fs::write(dir.path().join("var/lib/tune/tx-000003.json"), "{garbage").unwrap();
        let e = format!("{:#}", store.list().unwrap_err());
        assert!(
            e.contains("tx-000003.json") && e.contains("move it out"),
            "{e}"
        );
    }
}
