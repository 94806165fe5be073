//! `tune rollback`: undo the last apply from its record, bit for bit, and say what was put back; `--list` shows the records.

use super::{Context, Outcome};
use crate::cli::rollback::RollbackArgs;
use crate::root::{FileState, Root};
use crate::state::{self, Change, Status, Store};

/// Puts back one change; the text says what was done.
pub fn restore_change(root: &Root, c: &Change) -> Result<String, String> {
    match c {
        Change::Value {
            knob,
            path,
            before,
            after,
            ..
        } => {
            let now = root.read(path).map_err(|e| format!("{knob}: {e}"))?;
            let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            if norm(&now) == norm(before) {
                return Ok(format!("{knob}: already {}", norm(before)));
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
            Ok(format!("{knob}: {} -> {}{note}", norm(&now), norm(before)))
        }
        Change::Rlimit {
            pid,
            start_time,
            before,
            ..
        } => {
            if start_time.is_some() && super::apply::start_time(root, *pid) != *start_time {
                return Ok(format!(
                    "RLIMIT_NOFILE of process {pid}: the process has exited; nothing to put back"
                ));
            }
            match embedded_server::sys::rlimit::prlimit_nofile(*pid, before[0], before[1]) {
                Ok((s, h)) => Ok(format!(
                    "RLIMIT_NOFILE of process {pid}: {s}:{h} -> {}:{}",
                    before[0], before[1]
                )),
                Err(nix::errno::Errno::ESRCH) => Ok(format!(
                    "RLIMIT_NOFILE of process {pid}: the process has exited; nothing to put back"
                )),
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
        } => {
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
                put_back_parent_time(root, path, *parent_mtime)?;
                return Ok(format!("{full}: already as before{time}"));
            }
            let edited = match &now {
                FileState::Regular { bytes, .. } => state::hex(bytes) != *after_hex,
                FileState::Absent => false,
                _ => true,
            };
            root.restore(path, &want)
                .map_err(|e| format!("putting back {e}"))?;
            let time = match want {
                FileState::Regular { .. } => put_back_time(", modification time")?,
                _ => String::new(),
            };
            put_back_parent_time(root, path, *parent_mtime)?;
            let note = if edited {
                " (it had been edited since tune wrote it; that version is replaced)"
            } else {
                ""
            };
            Ok(match want {
                FileState::Absent => format!("{full}: removed (tune created it){note}"),
                FileState::Regular { mode, bytes, .. } => format!(
                    "{full}: restored the previous file ({} bytes, mode {mode:o}{time}){note}",
                    bytes.len()
                ),
                FileState::Symlink { target } => {
                    format!("{full}: restored the symlink to {}{note}", target.display())
                }
                FileState::Other { .. } => full,
            })
        }
        Change::Dir { path, parent_mtime } => {
            let full = root.path(path).display().to_string();
            match root.remove_empty_dir(path) {
                Ok(true) => {
                    put_back_parent_time(root, path, *parent_mtime)?;
                    Ok(format!("{full}/: removed (tune created it)"))
                }
                Ok(false) if root.exists(path) => Ok(format!(
                    "{full}/: left in place (tune created it, but it now holds other files)"
                )),
                Ok(false) => Ok(format!("{full}/: already gone")),
                Err(e) => Err(e.to_string()),
            }
        }
    }
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

/// Puts back a list of changes, last first; one result per change.
pub fn restore_all(root: &Root, changes: &[Change]) -> Vec<Result<String, String>> {
    changes
        .iter()
        .rev()
        .map(|c| restore_change(root, c))
        .collect()
}

fn when(unix: u64) -> String {
    // UTC without a date crate: days since the epoch to a civil date (Howard Hinnant's algorithm).
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

pub fn run(ctx: &Context, args: &RollbackArgs) -> anyhow::Result<Outcome> {
    let root = &ctx.root;
    let store = Store::new(root, args.state_dir.as_deref())?;
    let records = store.list()?;
    if args.list {
        if records.is_empty() {
            println!("No applies recorded in {}.", store.path().display());
            return Ok(Outcome::Pass);
        }
        println!(
            "{:<6} {:<24} {:<15} {:>7}  PROFILE",
            "ID", "WHEN", "STATUS", "CHANGES"
        );
        for r in &records {
            println!(
                "{:<6} {:<24} {:<15} {:>7}  {} ({})",
                r.id,
                when(r.created_unix),
                r.status.as_str(),
                r.changes.len(),
                r.profile,
                r.profile_source
            );
        }
        return Ok(Outcome::Pass);
    }
    let _lock = if store.exists() {
        Some(store.lock()?.0)
    } else {
        None
    };
    let Some(mut record) = store.last_open()? else {
        match records.last() {
            Some(r) => println!(
                "Nothing to roll back: the last apply (#{}, profile {}) was already rolled back.",
                r.id, r.profile
            ),
            None => println!(
                "Nothing to roll back: no apply is recorded in {}.",
                store.path().display()
            ),
        }
        return Ok(Outcome::Pass);
    };
    let base = root.base().display().to_string();
    if record.root != base {
        anyhow::bail!(
            "the last apply (#{}) was made against root {}, but this run uses root {base}; \
             pass --root {} to roll it back",
            record.id,
            record.root,
            record.root
        );
    }
    if root.is_host() && !nix::unistd::geteuid().is_root() {
        anyhow::bail!(
            "tune rollback needs root to put back /proc/sys values, process limits and files under /etc; run it as root"
        );
    }
    println!(
        "Rolling back apply #{} (profile {}, {}, {}):",
        record.id,
        record.profile,
        when(record.created_unix),
        record.status.as_str()
    );
    let results = restore_all(root, &record.changes);
    let mut failed = 0;
    for r in &results {
        match r {
            Ok(msg) => println!("  {msg}"),
            Err(e) => {
                failed += 1;
                println!("  FAILED: {e}");
            }
        }
    }
    record.finished_unix = Some(state::now());
    if failed > 0 {
        record.status = Status::RestoreFailed;
        store.save(&record)?;
        anyhow::bail!(
            "{failed} of {} step(s) could not be put back (see FAILED above); the record stays open: \
             fix the cause and run `tune rollback` again",
            results.len()
        );
    }
    record.status = Status::RolledBack;
    store.save(&record)?;
    println!("Rolled back {} step(s).", results.len());
    Ok(Outcome::Pass)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::when(0), "1970-01-01 00:00:00 UTC");
        // `date -u -d @1795750682` on this machine: Fri Nov 27 03:38:02 UTC 2026
        assert_eq!(super::when(1_795_750_682), "2026-11-27 03:38:02 UTC");
    }
}
