//! `tune rollback`: show what undoing the last apply would do, ask, then put back what the apply left (leaving alone what changed since, unless --force); `--list` shows the records.

use super::{Context, Outcome};
use crate::cli::rollback::RollbackArgs;
use crate::root::Root;
use crate::state::{self, Record, RecordStatus, Store};
use crate::transaction::{self, Now, Step};

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
        list(&store, &records);
        return Ok(Outcome::Pass);
    }
    let _lock = if store.exists() && !args.dry_run {
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
    refuse_elsewhere(root, &record)?;
    let steps = transaction::survey(root, &record);
    let to_do = steps
        .iter()
        .filter(|s| match s.now {
            Now::AsApplied => true,
            Now::Changed(_) => args.force,
            _ => false,
        })
        .count();
    let left_alone = steps
        .iter()
        .filter(|s| matches!(s.now, Now::Changed(_)) && !args.force)
        .count();
    let w = crate::text::width();
    // The decision first, then the steps.
    let mut decision = format!(
        "rollback {} put back {to_do} step{}",
        if args.dry_run { "would" } else { "will" },
        if to_do == 1 { "" } else { "s" }
    );
    if left_alone > 0 {
        decision.push_str(&format!(
            "; {left_alone} changed since the apply and left alone (exit 1; --force puts them back)"
        ));
    }
    println!(
        "{}",
        crate::text::wrap(&format!("{decision}."), w, "", "  ").join("\n")
    );
    print_plan(root, &record, &steps, args.force);
    if args.dry_run {
        let mut last = "Dry run: nothing was changed.".to_string();
        if left_alone > 0 {
            last.push_str(&format!(
                " Exit 1: {left_alone} step{} changed since the apply would be left alone.",
                if left_alone == 1 { "" } else { "s" }
            ));
        }
        println!("\n{}", crate::text::wrap(&last, w, "", "  ").join("\n"));
        return Ok(if left_alone > 0 {
            Outcome::ShortFall
        } else {
            Outcome::Pass
        });
    }
    if root.is_host() && !nix::unistd::geteuid().is_root() {
        anyhow::bail!(
            "tune rollback needs root to put back /proc/sys values, process limits and files under /etc; run it as root"
        );
    }
    if to_do > 0
        && !args.yes
        && !super::confirm(
            &format!("Put back these {to_do} step(s)?"),
            "roll back as shown above",
        )?
    {
        println!("Nothing was changed.");
        return Ok(Outcome::ShortFall);
    }
    let undone = transaction::undo(root, &steps, args.force);
    finish(&store, &mut record, &undone)
}

/// `tune rollback --list`.
fn list(store: &Store, records: &[Record]) {
    if records.is_empty() {
        println!("No applies recorded in {}.", store.path().display());
        return;
    }
    println!(
        "{:<6} {:<24} {:<15} {:>7}  PROFILE",
        "ID", "WHEN", "STATUS", "CHANGES"
    );
    for r in records {
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
}

/// Refuses a record made against another root, or with net.* values of another namespace.
fn refuse_elsewhere(root: &Root, record: &Record) -> anyhow::Result<()> {
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
    if let Some(why) = transaction::other_netns(root, record) {
        anyhow::bail!("{why}; nothing was changed");
    }
    Ok(())
}

/// The plan: one line per step, last change first, saying what rollback will do with it.
fn print_plan(root: &Root, record: &Record, steps: &[Step], force: bool) {
    let w = crate::text::width();
    let head = format!(
        "Rollback of apply #{} (profile {}, {}, {}):",
        record.id,
        record.profile,
        when(record.created_unix),
        record.status.as_str()
    );
    println!("{}", crate::text::wrap(&head, w, "", "  ").join("\n"));
    for s in steps {
        let action = match &s.now {
            Now::AsApplied => "put back what was there before".to_string(),
            Now::AsBefore => "already as before: nothing to do".to_string(),
            Now::Gone(why) => format!("{why}: nothing to do"),
            Now::Changed(why) if force => format!("{why}: put back anyway (--force)"),
            Now::Changed(why) => {
                format!("{why}: changed since the apply, left alone (--force puts it back)")
            }
        };
        let line = format!("{}: {action}", s.what(root));
        println!("{}", crate::text::wrap(&line, w, "  ", "    ").join("\n"));
    }
}

/// Prints what was done, updates the record and chooses the exit: 2 when a step failed (the
/// record stays open), 1 when steps changed since the apply were left alone (the record stays
/// open for `--force`), 0 when everything is back.
fn finish(
    store: &Store,
    record: &mut Record,
    undone: &transaction::Undone,
) -> anyhow::Result<Outcome> {
    println!();
    for r in undone.restored.iter().filter(|r| r.changed) {
        println!("  {}", r.text);
    }
    for e in &undone.failed {
        println!("  FAILED: {e}");
    }
    let changed = undone.restored.iter().filter(|r| r.changed).count();
    if !undone.failed.is_empty() {
        record.status = RecordStatus::RestoreFailed;
        record.finished_unix = Some(state::now());
        store.save(record)?;
        anyhow::bail!(
            "{} step(s) could not be put back (see FAILED above; {changed} were); the record stays open: \
             fix the cause and run `tune rollback` again",
            undone.failed.len()
        );
    }
    if !undone.left.is_empty() {
        println!(
            "Put back {changed} step(s). Left alone, because something else changed them since the apply:\n  {}\n\
             The record stays open: `tune rollback --force` puts these back too.",
            undone.left.join("\n  ")
        );
        return Ok(Outcome::ShortFall);
    }
    record.status = RecordStatus::RolledBack;
    record.finished_unix = Some(state::now());
    store.save(record)?;
    println!("Rolled back: put back {changed} step(s).");
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
