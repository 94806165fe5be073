//! The apply/rollback executor: captures what a plan touches, makes the changes as one recorded transaction (undone on failure), and surveys and undoes a record.
//!
//! Both `tune apply` (its failure path) and `tune rollback` put changes back through
//! [`restore`]; rollback first [`survey`]s each change, so a value something else changed
//! since the apply is left alone unless forced. No printing here: callers render the texts.

use anyhow::Context as _;

use crate::apply_plan::Plan;
use crate::kernel::host::Host;
use crate::knobs::{self, Limit, Value, Write};
use crate::persist::{FileWrite, Files};
use crate::probe::netns;
use crate::root::{FileState, Root};
use crate::state::{self, Before, Change, Record, RecordStatus, Store};
use crate::values::{Input, Refused, Suggest};

pub use crate::state::netns_inode;

/// The test-only hook that makes apply pause after its step k (0: after the record is
/// written, before the first change), so a test can kill it there. Unset in real use.
pub const PAUSE_HOOK: &str = "TUNE_TEST_PAUSE_AFTER_STEP";

/// The file a knob is written through at run time, relative to the root.
pub fn write_path(w: Write) -> Option<String> {
    match w {
        Write::Sysctl(name) => Some(knobs::sysctl_path(name)),
        Write::ModuleParam { module, param } => {
            Some(format!("sys/module/{module}/parameters/{param}"))
        }
        _ => None,
    }
}

/// Captures everything the plan will touch, in the order it is changed.
pub fn capture(
    root: &Root,
    plan: &Plan,
    files: &[FileWrite],
    pid: Option<u32>,
) -> anyhow::Result<Vec<Change>> {
    let mut changes = Vec::new();
    let netns = netns::inode(root);
    let (mut soft, mut hard) = (None, None);
    for (item, to) in plan.changes() {
        match item.knob.write {
            Write::Prlimit(Limit::Soft) => soft = Some(*to),
            Write::Prlimit(Limit::Hard) => hard = Some(*to),
            w => {
                let Some(path) = write_path(w) else { continue };
                let before = root.read(&path).with_context(|| {
                    format!("{}: reading the value to keep for rollback", item.knob.name)
                })?;
                changes.push(Change::Value {
                    knob: item.knob.name.to_string(),
                    netns: netns.filter(|_| path.starts_with("proc/sys/net/")),
                    path,
                    before,
                    after: to.to_kernel(),
                });
            }
        }
    }
    if let (Some(pid), true) = (pid, soft.is_some() || hard.is_some()) {
        let (s, h) = embedded_server::sys::rlimit::get_nofile_of(pid)
            .map_err(|e| Refused::new(Input::Pid, pid, format!("reading RLIMIT_NOFILE: {e}")))?;
        let int = |v: Option<Value>, d: u64| match v {
            Some(Value::Int(n)) => n,
            _ => d,
        };
        changes.push(Change::Rlimit {
            pid,
            start_time: start_time(root, pid),
            before: [s, h],
            after: [int(soft, s), int(hard, h)],
        });
    }
    for w in files {
        let parent = w.rel.rsplit_once('/').map_or("", |(p, _)| p);
        for dir in state::missing_dirs(root, parent) {
            let parent_mtime = state::parent_mtime(root, &dir)?;
            changes.push(Change::Dir {
                path: dir,
                parent_mtime,
            });
        }
        let before = Before::capture(root, &w.rel)
            .with_context(|| format!("{}", root.path(&w.rel).display()))?;
        changes.push(Change::File {
            path: w.rel.clone(),
            before,
            after_hex: state::hex(w.contents.as_bytes()),
            parent_mtime: state::parent_mtime(root, &w.rel)?,
        });
    }
    Ok(changes)
}

/// When process `pid` started (clock ticks since boot), to recognise it later.
pub fn start_time(root: &Root, pid: u32) -> Option<u64> {
    Host::new(root).process(Some(pid)).start_time().ok()
}

fn norm(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Carries out one change; the text says what was done. For a kernel value it also returns
/// what the kernel shows afterwards when that differs from what was asked (it may round).
fn make(root: &Root, c: &Change) -> Result<(String, Option<String>), String> {
    match c {
        Change::Value {
            knob,
            path,
            before,
            after,
            ..
        } => {
            root.write_in_place(path, after).map_err(|e| {
                let full = root.path(path).display().to_string();
                match e.raw_os_error().map(nix::errno::Errno::from_raw) {
                    Some(nix::errno::Errno::EINVAL) => format!(
                        "{knob}: the kernel refused \"{after}\" (EINVAL) at {full}: the value is outside \
                         what this kernel accepts for {knob}; fix it in the profile"
                    ),
                    Some(nix::errno::Errno::EPERM) => format!(
                        "{knob}: the kernel refused the write (EPERM) at {full}: this knob is read-only \
                         here (outside the initial network namespace, or without CAP_SYS_ADMIN / CAP_NET_ADMIN)"
                    ),
                    _ => format!("{knob}: {e}"),
                }
            })?;
            let now = root.read(path).unwrap_or_default();
            let shown = knobs::find(knob)
                .and_then(|k| Value::parse(k.shape, &now).ok())
                .map_or(now.trim().to_string(), |v| v.to_string());
            if norm(&now) != norm(after) {
                Ok((
                    format!(
                        "{knob}: {} -> {shown} (asked {after}: the kernel adjusted it)",
                        norm(before)
                    ),
                    Some(norm(&now)),
                ))
            } else {
                Ok((format!("{knob}: {} -> {shown}", norm(before)), None))
            }
        }
        Change::Rlimit {
            pid, before, after, ..
        } => {
            embedded_server::sys::rlimit::prlimit_nofile(*pid, after[0], after[1]).map_err(|e| {
                use nix::errno::Errno;
                match e {
                    Errno::EPERM => format!(
                        "RLIMIT_NOFILE of process {pid}: prlimit refused {}:{} (EPERM): raising the hard \
                         limit needs CAP_SYS_RESOURCE and never goes above fs.nr_open. Fix: LimitNOFILE= in \
                         the service's unit (tune apply {} {}), a nofile line in \
                         /etc/security/limits.d, or run tune with CAP_SYS_RESOURCE",
                        after[0],
                        after[1],
                        Suggest::input(Input::Persist),
                        Suggest::set(Input::Service, "UNIT")
                    ),
                    Errno::ESRCH => format!("RLIMIT_NOFILE of process {pid}: the process has exited"),
                    e => format!("RLIMIT_NOFILE of process {pid}: prlimit {}:{}: {e}", after[0], after[1]),
                }
            })?;
            Ok((
                format!(
                    "RLIMIT_NOFILE of process {pid}: {}:{} -> {}:{}",
                    before[0], before[1], after[0], after[1]
                ),
                None,
            ))
        }
        Change::File {
            path, after_hex, ..
        } => {
            let bytes = state::unhex(after_hex).map_err(|e| e.to_string())?;
            root.write_atomic(path, &bytes, 0o644)
                .map_err(|e| format!("writing {e}"))?;
            Ok((format!("wrote {}", root.path(path).display()), None))
        }
        Change::Dir { path, .. } => {
            root.create_dir(path)
                .map_err(|e| format!("creating directory {e}"))?;
            Ok((
                format!("created directory {}", root.path(path).display()),
                None,
            ))
        }
    }
}

/// Refuses to stack a new apply on one that never finished: its record holds the true originals.
fn unfinished(store: &Store) -> anyhow::Result<()> {
    if let Some(r) = store.last_open()? {
        if matches!(
            r.status,
            RecordStatus::InProgress | RecordStatus::RestoreFailed
        ) {
            anyhow::bail!(
                "apply #{} (profile {}) did not finish (status {}): its record in {} holds what was there \
                 before it; run `tune rollback` first to put that back",
                r.id,
                r.profile,
                r.status.as_str(),
                store.path().display()
            );
        }
    }
    Ok(())
}

/// Under the test-only [`PAUSE_HOOK`], pauses after step `k` so a test can kill the apply there.
fn pause_hook(k: usize) {
    if std::env::var(PAUSE_HOOK).ok().and_then(|v| v.parse().ok()) == Some(k) {
        eprintln!("tune: paused after step {k} ({PAUSE_HOOK})");
        std::thread::sleep(std::time::Duration::from_secs(600));
    }
}

/// Records, then makes every change, printing one line per change; on a failure puts back what
/// was changed and fails saying how many steps that took. Returns the record's id.
pub fn apply(
    root: &Root,
    store: &Store,
    profile: &crate::profile::Profile,
    plan: &Plan,
    files: &Files,
    pid: Option<u32>,
) -> anyhow::Result<u64> {
    // Lock first, so the values kept for rollback are not changing under another apply.
    let (_lock, state_dirs) = store.lock()?;
    let recorded = unfinished(store)
        .and_then(|()| capture(root, plan, &files.writes, pid))
        .and_then(|changes| {
            let mut record = Record::new(store.next_id()?, &profile.name, &profile.source, root);
            record.changes = changes;
            store.save(&record).with_context(|| {
                format!(
                    "recording the apply in {} before changing anything",
                    store.path().display()
                )
            })?;
            Ok(record)
        });
    let mut record = match recorded {
        Ok(r) => r,
        Err(e) => {
            store.remove_dirs(&state_dirs);
            return Err(anyhow::anyhow!("{e:#}; nothing was changed"));
        }
    };
    println!();
    pause_hook(0);
    for i in 0..record.changes.len() {
        match make(root, &record.changes[i]) {
            Ok((msg, adjusted)) => {
                println!("  {msg}");
                if let (Some(now), Change::Value { after, .. }) = (adjusted, &mut record.changes[i])
                {
                    // Rollback compares the live value with what apply left: the kernel's.
                    *after = now;
                    store.save(&record)?;
                }
            }
            Err(err) => return Err(undo_failed_apply(root, store, record, i, &state_dirs, &err)),
        }
        pause_hook(i + 1);
    }
    record.status = RecordStatus::Applied;
    record.finished_unix = Some(state::now());
    store.save(&record)?;
    Ok(record.id)
}

/// Apply's failure path: puts back changes `0..=failed` (the failed one may have half-happened),
/// and says truly how many steps that changed.
fn undo_failed_apply(
    root: &Root,
    store: &Store,
    mut record: Record,
    failed_at: usize,
    state_dirs: &[String],
    err: &str,
) -> anyhow::Error {
    let restored: Vec<Result<Restored, String>> = record.changes[..=failed_at]
        .iter()
        .rev()
        .map(|c| restore(root, c))
        .collect();
    let failed: Vec<&String> = restored.iter().filter_map(|r| r.as_ref().err()).collect();
    if failed.is_empty() {
        let _ = store.delete(record.id);
        store.remove_dirs(state_dirs);
        let done: Vec<String> = restored
            .into_iter()
            .filter_map(Result::ok)
            .filter(|r| r.changed)
            .map(|r| r.text)
            .collect();
        return anyhow::anyhow!(
            "apply failed: {err}\nEverything it had changed was put back ({} step(s)); the host is as it was:\n  {}",
            done.len(),
            done.join("\n  ")
        );
    }
    record.status = RecordStatus::RestoreFailed;
    record.finished_unix = Some(state::now());
    let _ = store.save(&record);
    anyhow::anyhow!(
        "apply failed: {err}\nPutting back what was changed also failed for:\n  {}\n\
         The record in {} keeps what was there before: fix the cause and run `tune rollback`",
        failed
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        store.path().display()
    )
}

/// What a change's target holds now, compared with the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Now {
    /// As the apply left it: rollback puts back what was there before.
    AsApplied,
    /// Already what was there before (never changed, or put back): nothing to do.
    AsBefore,
    /// Something else changed it since the apply (the text says to what): left alone unless forced.
    Changed(String),
    /// Its target is gone (a process that exited): nothing to put back.
    Gone(String),
}

/// One change of a record with what its target holds now.
#[derive(Debug, Clone)]
pub struct Step<'a> {
    pub change: &'a Change,
    pub now: Now,
}

impl Step<'_> {
    /// What the step is about: the knob, the process limit or the file, for people.
    pub fn what(&self, root: &Root) -> String {
        match self.change {
            Change::Value { knob, .. } => knob.clone(),
            Change::Rlimit { pid, .. } => format!("RLIMIT_NOFILE of process {pid}"),
            Change::File { path, .. } => root.path(path).display().to_string(),
            Change::Dir { path, .. } => format!("{}/", root.path(path).display()),
        }
    }
}

/// What each change of `record` finds now, in the order rollback acts (last change first).
pub fn survey<'a>(root: &Root, record: &'a Record) -> Vec<Step<'a>> {
    record
        .changes
        .iter()
        .rev()
        .map(|change| Step {
            change,
            now: now_of(root, change),
        })
        .collect()
}

fn now_of(root: &Root, c: &Change) -> Now {
    match c {
        Change::Value {
            path,
            before,
            after,
            ..
        } => match root.read(path) {
            Ok(now) if norm(&now) == norm(after) => Now::AsApplied,
            Ok(now) if norm(&now) == norm(before) => Now::AsBefore,
            Ok(now) => Now::Changed(format!(
                "is {}, not the {} tune set",
                norm(&now),
                norm(after)
            )),
            Err(e) => Now::Changed(format!("cannot be read: {e}")),
        },
        Change::Rlimit {
            pid,
            start_time: started,
            before,
            after,
        } => {
            if started.is_some() && start_time(root, *pid) != *started {
                return Now::Gone("the process has exited".into());
            }
            match embedded_server::sys::rlimit::get_nofile_of(*pid) {
                Ok((s, h)) if [s, h] == *after => Now::AsApplied,
                Ok((s, h)) if [s, h] == *before => Now::AsBefore,
                Ok((s, h)) => Now::Changed(format!(
                    "is {s}:{h}, not the {}:{} tune set",
                    after[0], after[1]
                )),
                Err(nix::errno::Errno::ESRCH) => Now::Gone("the process has exited".into()),
                Err(e) => Now::Changed(format!("cannot be read: {e}")),
            }
        }
        Change::File {
            path,
            before,
            after_hex,
            ..
        } => {
            let want = before.to_state().ok();
            match root.snapshot(path) {
                Ok(now) if Some(&now) == want.as_ref() => Now::AsBefore,
                Ok(FileState::Regular { bytes, .. }) if state::hex(&bytes) == *after_hex => {
                    Now::AsApplied
                }
                Ok(FileState::Absent) => Now::Changed("has been removed since".into()),
                Ok(_) => Now::Changed("has been edited since tune wrote it".into()),
                Err(e) => Now::Changed(format!("cannot be read: {e}")),
            }
        }
        // An empty directory tune made goes; one that holds other files now stays regardless.
        Change::Dir { path, .. } => {
            if root.exists(path) {
                Now::AsApplied
            } else {
                Now::AsBefore
            }
        }
    }
}

/// Why this record cannot be rolled back from here, if it cannot: a net.* value was written in
/// another network namespace, where rollback must run.
pub fn other_netns(root: &Root, record: &Record) -> Option<String> {
    state::OtherNetns::of(record, netns_inode(root)).map(|o| {
        format!(
            "{}: rolling back here would write this namespace's values instead; run `tune \
             rollback` {}",
            o.describe(),
            state::REACH_NETNS
        )
    })
}

/// A change put back: what was done, and whether anything had to change for it.
#[derive(Debug, Clone)]
pub struct Restored {
    pub text: String,
    pub changed: bool,
}

impl Restored {
    fn changed(text: String) -> Restored {
        Restored {
            text,
            changed: true,
        }
    }

    fn unchanged(text: String) -> Restored {
        Restored {
            text,
            changed: false,
        }
    }
}

/// Puts back one change, whatever its target holds now (callers decide whether to; see [`survey`]).
pub fn restore(root: &Root, c: &Change) -> Result<Restored, String> {
    match c {
        Change::Value {
            knob,
            path,
            before,
            after,
            ..
        } => {
            let now = root.read(path).map_err(|e| format!("{knob}: {e}"))?;
            if norm(&now) == norm(before) {
                return Ok(Restored::unchanged(format!(
                    "{knob}: already {}",
                    norm(before)
                )));
            }
            root.write_in_place(path, before)
                .map_err(|e| format!("{knob}: putting back {}: {e}", norm(before)))?;
            let note = if norm(&now) != norm(after) {
                format!(
                    " (it was {}, not the {} tune set: something else changed it since)",
                    norm(&now),
                    norm(after)
                )
            } else {
                String::new()
            };
            Ok(Restored::changed(format!(
                "{knob}: {} -> {}{note}",
                norm(&now),
                norm(before)
            )))
        }
        Change::Rlimit {
            pid,
            start_time: started,
            before,
            ..
        } => {
            let gone = || {
                Ok(Restored::unchanged(format!(
                    "RLIMIT_NOFILE of process {pid}: the process has exited; nothing to put back"
                )))
            };
            if started.is_some() && start_time(root, *pid) != *started {
                return gone();
            }
            match embedded_server::sys::rlimit::prlimit_nofile(*pid, before[0], before[1]) {
                Ok((s, h)) => Ok(Restored {
                    text: format!(
                        "RLIMIT_NOFILE of process {pid}: {s}:{h} -> {}:{}",
                        before[0], before[1]
                    ),
                    changed: [s, h] != *before,
                }),
                Err(nix::errno::Errno::ESRCH) => gone(),
                Err(e) => Err(format!(
                    "RLIMIT_NOFILE of process {pid}: prlimit {}:{}: {e}",
                    before[0], before[1]
                )),
            }
        }
        Change::File {
            path,
            before,
            after_hex,
            parent_mtime,
        } => restore_file(root, path, before, after_hex, *parent_mtime),
        Change::Dir { path, parent_mtime } => {
            let full = root.path(path).display().to_string();
            match root.remove_empty_dir(path) {
                Ok(true) => {
                    put_back_parent_time(root, path, *parent_mtime)?;
                    Ok(Restored::changed(format!(
                        "{full}/: removed (tune created it)"
                    )))
                }
                Ok(false) if root.exists(path) => Ok(Restored::unchanged(format!(
                    "{full}/: left in place (tune created it, but it now holds other files)"
                ))),
                Ok(false) => Ok(Restored::unchanged(format!("{full}/: already gone"))),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

fn restore_file(
    root: &Root,
    path: &str,
    before: &Before,
    after_hex: &str,
    parent_mtime: Option<state::Mtime>,
) -> Result<Restored, String> {
    let full = root.path(path).display().to_string();
    let want = before
        .to_state()
        .map_err(|e| format!("{full}: record: {e}"))?;
    let now = root.snapshot(path).map_err(|e| e.to_string())?;
    // The modification time goes back too (records from before it was kept have none).
    let put_back_time = |what: &str| -> Result<String, String> {
        let Some(t) = before.mtime() else {
            return Ok(String::new());
        };
        let current = root.mtime(path).map_err(|e| e.to_string())?;
        if current == Some((t.sec, t.nsec)) {
            return Ok(String::new());
        }
        root.set_mtime(path, (t.sec, t.nsec))
            .map_err(|e| format!("putting back the modification time of {e}"))?;
        Ok(what.to_string())
    };
    if now == want {
        let time = put_back_time("; put back its modification time")?;
        put_back_parent_time(root, path, parent_mtime)?;
        return Ok(Restored {
            changed: !time.is_empty(),
            text: format!("{full}: already as before{time}"),
        });
    }
    let edited = match &now {
        FileState::Regular { bytes, .. } => state::hex(bytes) != after_hex,
        FileState::Absent => false,
        _ => true,
    };
    root.restore(path, &want)
        .map_err(|e| format!("putting back {e}"))?;
    let time = match want {
        FileState::Regular { .. } => put_back_time(", modification time")?,
        _ => String::new(),
    };
    put_back_parent_time(root, path, parent_mtime)?;
    let note = if edited {
        " (it had been edited since tune wrote it; that version is replaced)"
    } else {
        ""
    };
    Ok(Restored::changed(match want {
        FileState::Absent => format!("{full}: removed (tune created it){note}"),
        FileState::Regular { mode, bytes, .. } => format!(
            "{full}: restored the previous file ({} bytes, mode {mode:o}{time}){note}",
            bytes.len()
        ),
        FileState::Symlink { target } => {
            format!("{full}: restored the symlink to {}{note}", target.display())
        }
        FileState::Other { .. } => full,
    }))
}

/// Sets the directory holding `rel` back to the modification time recorded before the apply
/// (writing, replacing or removing an entry moves it). Changes are put back last first, so a
/// directory touched by several changes ends at the time recorded before any of them.
fn put_back_parent_time(root: &Root, rel: &str, t: Option<state::Mtime>) -> Result<(), String> {
    let (Some(t), Some((parent, _))) = (t, rel.trim_end_matches('/').rsplit_once('/')) else {
        return Ok(());
    };
    if root.mtime(parent).map_err(|e| e.to_string())? == Some((t.sec, t.nsec)) {
        return Ok(());
    }
    root.set_mtime(parent, (t.sec, t.nsec))
        .map_err(|e| format!("putting back the modification time of directory {e}"))
}

/// What a rollback did, step by step (in the order it acted).
#[derive(Debug, Default)]
pub struct Undone {
    pub restored: Vec<Restored>,
    /// Steps left alone because something else changed them since (without `force`).
    pub left: Vec<String>,
    pub failed: Vec<String>,
}

/// Puts back the surveyed steps: those as the apply left them, and those changed since only
/// when `force` is given. Steps already as before are confirmed (their times put back).
pub fn undo(root: &Root, steps: &[Step], force: bool) -> Undone {
    let mut out = Undone::default();
    for s in steps {
        if let Now::Changed(why) = &s.now {
            if !force {
                out.left.push(format!("{} {why}", s.what(root)));
                continue;
            }
        }
        match restore(root, s.change) {
            Ok(r) => out.restored.push(r),
            Err(e) => out.failed.push(e),
        }
    }
    out
}
