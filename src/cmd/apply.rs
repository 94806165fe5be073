//! `tune apply`: observe, plan, show the plan, then make the changes as one recorded transaction that undoes itself on failure.

use std::fmt::Write as _;

use super::{Context, Outcome};
use crate::apply_plan::{self, Action, Here, Plan};
use crate::cli::apply::ApplyArgs;
use crate::cli::flags;
use crate::knobs::{self, Value, Write};
use crate::persist::{self, boot::BootView, Files};
use crate::probe::netns;
use crate::root::Root;
use crate::state::Store;
use crate::transaction::{self, write_path};
use crate::values::Input;

/// The facts about this place that the plan needs.
pub fn gather_here(root: &Root, persist: bool) -> anyhow::Result<Here> {
    let mut here = Here {
        child_netns: netns::detect_child_netns(root),
        ..Here::default()
    };
    for knob in knobs::REGISTRY {
        let Some(rel) = write_path(knob.write) else {
            continue;
        };
        if !root.exists(&rel) {
            here.read_only.insert(
                knob.name,
                format!(
                    "{} does not exist here (module not loaded?)",
                    root.path(&rel).display()
                ),
            );
        } else if let Some(why) = root.read_only_reason(&rel) {
            here.read_only.insert(knob.name, why);
        }
    }
    // With --persist tune replaces its own files, so they do not count as boot configuration.
    let exclude: Vec<&str> = if persist {
        persist::own_files().to_vec()
    } else {
        Vec::new()
    };
    here.boot = BootView::gather(root, &exclude, None, None)?.values();
    Ok(here)
}

pub fn run(ctx: &Context, args: &ApplyArgs) -> anyhow::Result<Outcome> {
    let root = &ctx.root;
    if args.pid.is_some() && !root.is_host() {
        anyhow::bail!(
            "--pid acts on a live process and cannot be combined with --root {}: run it against the host",
            root.base().display()
        );
    }
    let store = Store::new(root, args.state_dir.as_deref())?;
    let profile = crate::profile::load(root, &args.profile)?;
    if let Some(pid) = args.pid {
        if !root.exists(&format!("proc/{pid}")) {
            anyhow::bail!("--pid {pid}: no such process");
        }
    }
    let obs = knobs::observe(root, args.pid);
    let here = gather_here(root, args.persist)?;
    let opts = apply_plan::Options {
        allow_lower: args.allow_lower,
        pid: args.pid,
        persist: args.persist,
    };
    let plan = apply_plan::make(&obs, &profile, &here, &opts);
    if !plan.errors.is_empty() {
        anyhow::bail!(
            "profile {}: {} value(s) cannot be applied; nothing was changed:\n  {}",
            profile.name,
            plan.errors.len(),
            plan.errors.join("\n  ")
        );
    }
    let label = if profile.name == profile.source {
        format!("{:?}", profile.name)
    } else {
        format!("{:?} ({})", profile.name, profile.source)
    };
    let files = if args.persist {
        let mut files = persist::files(
            plan.items.iter().map(|i| (i.knob, &i.persist)),
            &label,
            args.service.as_deref(),
            persist::Dirs::gather(root),
        )?;
        if files.unit_dropin_skipped {
            files.notes.push(format!(
                "{}: the profile sets no RLIMIT_NOFILE, so no unit drop-in is written",
                flags::flag(Input::Service)
            ));
        }
        files
    } else {
        Files::default()
    };
    let warnings = persist::override_warnings(root, &files.writes)?;

    let mut out = String::new();
    render_plan(
        &mut out,
        root,
        &profile,
        &here,
        &plan,
        &files,
        &warnings,
        args.dry_run,
    );
    print!("{out}");

    let outcome = if plan.incomplete() {
        Outcome::ShortFall
    } else {
        Outcome::Pass
    };
    let count = plan.changes().count() + files.writes.len();
    if args.dry_run {
        let mut last = "Dry run: nothing was changed.".to_string();
        let blocked = cannot_change(&plan);
        if !blocked.is_empty() {
            last.push_str(&format!(
                " Exit 1: {} fall{} short and cannot change here (see \"why:\" above).",
                blocked.join(", "),
                if blocked.len() == 1 { "s" } else { "" }
            ));
        }
        println!(
            "\n{}",
            crate::text::wrap(&last, crate::text::width(), "", "  ").join("\n")
        );
        return Ok(outcome);
    }
    if count == 0 {
        println!("\nNothing to change.");
        return Ok(outcome);
    }
    if root.is_host() && !nix::unistd::geteuid().is_root() {
        anyhow::bail!(
            "tune apply needs root to {}; run it as root (sudo), or look at the plan with --dry-run",
            needs_root(&plan, &files, args.pid)
        );
    }
    if !args.yes
        && !super::confirm(
            &format!("Make these {count} changes?"),
            "apply the plan above",
        )?
    {
        println!("Nothing was changed.");
        return Ok(Outcome::ShortFall);
    }
    let id = transaction::apply(root, &store, &profile, &plan, &files, args.pid)?;
    let done = format!(
        "Applied {count} change(s) (record {}). Undo with `tune rollback`.",
        store.path().join(format!("tx-{id:06}.json")).display()
    );
    println!("\n{}", crate::text::fit(&done, crate::text::width()));
    if plan.incomplete() {
        let short = "Some knobs fall short and could not be changed here: see \"cannot change here\" above.";
        println!("{}", crate::text::fit(short, crate::text::width()));
    }
    Ok(outcome)
}

/// The knobs that fall short and cannot be changed here (what makes the plan exit 1).
fn cannot_change(plan: &Plan) -> Vec<&'static str> {
    plan.items
        .iter()
        .filter(|i| matches!(i.action, Action::CannotChange(_)))
        .map(|i| i.knob.name)
        .collect()
}

fn needs_root(plan: &Plan, files: &Files, pid: Option<u32>) -> String {
    let mut what = Vec::new();
    let sysctls: Vec<&str> = plan
        .changes()
        .filter(|(i, _)| !matches!(i.knob.write, Write::Prlimit(_)))
        .map(|(i, _)| i.knob.name)
        .collect();
    if !sysctls.is_empty() {
        what.push(format!("write {} in /proc/sys or /sys", sysctls.join(", ")));
    }
    if let Some(pid) = pid {
        if plan
            .changes()
            .any(|(i, _)| matches!(i.knob.write, Write::Prlimit(_)))
        {
            what.push(format!("change RLIMIT_NOFILE of process {pid}"));
        }
    }
    if !files.writes.is_empty() {
        let f: Vec<String> = files.writes.iter().map(|w| format!("/{}", w.rel)).collect();
        what.push(format!("write {}", f.join(", ")));
    }
    what.join("; ")
}

/// The word for a change of `knob`: with its direction (`against` false) a minimum is raised, a
/// maximum lowered (a time shortened), a range widened; against it, the opposite.
pub fn verb(knob: &knobs::Knob, against: bool) -> &'static str {
    let time = knob.unit == "seconds";
    match (knob.compare, against) {
        (knobs::Compare::AtMost, false) if time => "shorten",
        (knobs::Compare::AtMost, true) if time => "lengthen",
        (knobs::Compare::AtMost, false) => "lower",
        (knobs::Compare::AtMost, true) => "raise",
        (knobs::Compare::PortCount, false) => "widen",
        (knobs::Compare::PortCount, true) => "narrow",
        (knobs::Compare::Equal | knobs::Compare::Info, _) => "set",
        (knobs::Compare::AtLeast, false) => "raise",
        (knobs::Compare::AtLeast, true) => "lower",
    }
}

/// A value for people: thousands separators (ports excepted), `-` when unknown.
fn show(v: Option<&Value>, unit: &str) -> String {
    crate::report::value_text(v, unit)
}

/// The decision the plan amounts to, first on the screen.
fn decision(plan: &Plan, files: &Files, dry_run: bool) -> String {
    let changes = plan.changes().count() + files.writes.len();
    let blocked = cannot_change(plan).len();
    let kept = plan.items.len() - plan.changes().count() - blocked;
    let mut s = format!(
        "{} {} change{}",
        if dry_run {
            "apply would make"
        } else {
            "apply will make"
        },
        changes,
        if changes == 1 { "" } else { "s" }
    );
    if blocked > 0 {
        s.push_str(&format!(
            "; {blocked} knob{} cannot change here (exit 1)",
            if blocked == 1 { "" } else { "s" }
        ));
    }
    s.push_str(&format!("; {kept} left as they are."));
    s
}

#[allow(clippy::too_many_arguments)]
fn render_plan(
    out: &mut String,
    root: &Root,
    profile: &crate::profile::Profile,
    here: &Here,
    plan: &Plan,
    files: &Files,
    warnings: &[String],
    dry_run: bool,
) {
    let w = crate::text::width();
    let wrapped =
        |text: &str, first: &str, rest: &str| crate::text::wrap(text, w, first, rest).join("\n");
    let _ = writeln!(
        out,
        "{}",
        wrapped(&decision(plan, files, dry_run), "", "  ")
    );
    let head = format!(
        "Plan for profile {}{}, root {}{}:",
        profile.name,
        if profile.source == profile.name {
            String::new()
        } else {
            format!(" ({})", profile.source)
        },
        root.base().display(),
        if here.child_netns {
            ", inside a child network namespace"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "{}", wrapped(&head, "", "  "));
    // One knob per block: the decision on the knob's line, the three values under it.
    for item in &plan.items {
        let unit = item.knob.unit;
        let boot = item.boot.as_ref().map_or("(not set)".to_string(), |b| {
            let file = b.file.rsplit('/').next().unwrap_or(&b.file);
            format!("{} @{file}", show(Some(&b.value), unit))
        });
        let to = |v: &Value| show(Some(v), unit);
        let action = match &item.action {
            Action::Set {
                to: v,
                lowers: false,
            } => {
                format!("{} -> {}", verb(item.knob, false), to(v))
            }
            Action::Set {
                to: v,
                lowers: true,
            } => {
                format!("{} -> {} (--allow-lower)", verb(item.knob, true), to(v))
            }
            Action::AtProfile => "ok (at profile)".into(),
            Action::Kept(why) => why.clone(),
            Action::CannotChange(_) => "cannot change here".into(),
        };
        let _ = writeln!(
            out,
            "{}",
            wrapped(&format!("{}: {action}", item.knob.name), "", "    ")
        );
        let values = format!(
            "live {}; boot {boot}; profile {}",
            show(item.live.as_ref(), unit),
            show(Some(&item.profile), unit)
        );
        let _ = writeln!(out, "{}", wrapped(&values, "  ", "    "));
        if let Action::CannotChange(why) = &item.action {
            let _ = writeln!(out, "{}", wrapped(&format!("why: {why}"), "  ", "    "));
        }
    }
    if plan.items.is_empty() {
        let _ = writeln!(out, "(the profile names no knobs)");
    }
    let boot_files: std::collections::BTreeSet<String> = plan
        .items
        .iter()
        .filter_map(|i| {
            i.boot
                .as_ref()
                .map(|b| root.path(&b.file).display().to_string())
        })
        .collect();
    if !boot_files.is_empty() {
        let legend = format!(
            "boot: the value the winning boot file sets (from {}); (not set) = kernel default.",
            boot_files.into_iter().collect::<Vec<_>>().join(", ")
        );
        let _ = writeln!(out, "{}", wrapped(&legend, "", "  "));
    }
    if files.writes.is_empty() && files.notes.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nBoot-time files (--persist):");
    for w in &files.writes {
        let _ = writeln!(
            out,
            "  {} ({}, mode {:o})",
            root.path(&w.rel).display(),
            w.what,
            w.mode
        );
        if dry_run {
            let _ = writeln!(out, "  ---8<---");
            for line in w.contents.lines() {
                let _ = writeln!(out, "  {line}");
            }
            let _ = writeln!(out, "  --->8---");
        }
    }
    for n in &files.notes {
        let _ = writeln!(out, "{}", wrapped(&format!("note: {n}"), "  ", "    "));
    }
    for warning in warnings {
        let _ = writeln!(
            out,
            "{}",
            wrapped(&format!("warning: {warning}"), "  ", "    ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_says_shorten_or_lower_where_the_requirement_is_a_maximum() {
        use crate::knobs::KnobId;
        let k = |id: KnobId| knobs::REGISTRY.iter().find(|k| k.id == id).unwrap();
        assert_eq!(verb(k(KnobId::TcpFinTimeout), false), "shorten");
        assert_eq!(verb(k(KnobId::TcpFinTimeout), true), "lengthen");
        assert_eq!(verb(k(KnobId::Somaxconn), false), "raise");
        assert_eq!(verb(k(KnobId::IpLocalPortRange), false), "widen");
        assert_eq!(verb(k(KnobId::TcpTwReuse), false), "set");
    }
}
