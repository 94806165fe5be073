//! `tune check`: what the host holds (no arguments), or whether it holds a profile's target: the verdict, the fixes ranked by gain, the knobs, in the chosen format.

use super::{Context, Outcome};
use crate::capacity;
use crate::cli::check::{CheckArgs, CheckFormat};
use crate::kernel::Host;
use crate::knobs;
use crate::knobs::Role;
use crate::persist::{self, boot::BootView};
use crate::profile::{self, Overrides, Profile};
use crate::report::{self, BootSetting, CheckReport, DriftReport, Ignore, Options};
use crate::state;

/// The profile the arguments name: `--profile` (with `--role` overriding its role), `--target`,
/// or none at all (what the host holds now: no requirements).
pub fn resolve_profile(ctx: &Context, args: &CheckArgs) -> anyhow::Result<Profile> {
    match (&args.profile, args.target) {
        (Some(spec), _) => profile::load_with(
            &ctx.root,
            spec,
            Overrides {
                target: None,
                role: args.role,
            },
        ),
        (None, Some(t)) => {
            profile::check_target(t).map_err(|e| anyhow::anyhow!("--target: {e}"))?;
            let params = profile::Params {
                source_addresses: source_count(args)?,
                ..Default::default()
            };
            Ok(profile::for_target_with(
                t,
                args.role.unwrap_or(Role::Server),
                params,
            ))
        }
        (None, None) => Ok(profile::host_only(1, args.role.unwrap_or(Role::Server))),
    }
}

/// The number of addresses `--source` names (the same syntax as `tune serve --source`).
fn source_count(args: &CheckArgs) -> anyhow::Result<Option<u64>> {
    args.source
        .as_deref()
        .map(|s| {
            embedded_server::loadgen::sources::parse(s)
                .map(|v| v.len() as u64)
                .map_err(|e| anyhow::anyhow!("--source {s:?}: {e}"))
        })
        .transpose()
}

pub fn run(ctx: &Context, args: &CheckArgs) -> anyhow::Result<Outcome> {
    let ignore = Ignore::parse(&args.ignore)?;
    if args.workers == Some(0) {
        anyhow::bail!("--workers 0: expected a number of server worker processes (1 or more)");
    }
    let mut profile = resolve_profile(ctx, args)?;
    if let Some(n) = source_count(args)? {
        profile.params.source_addresses = Some(n);
    }
    let host = Host::new(&ctx.root);
    if let Some(pid) = args.pid {
        if let Err(missing) = host.process(Some(pid)).exists() {
            anyhow::bail!("--pid {pid}: no such process ({missing} does not exist)");
        }
    }
    match host.missing_essentials() {
        None => anyhow::bail!(
            "--root {}: no proc/ under it, so there is nothing to check: point --root at a tree holding the host's /proc and /sys",
            ctx.root.base().display()
        ),
        Some(missing) if !missing.is_empty() => anyhow::bail!(
            "--root {}: {} missing, so this is not a readable /proc: point --root at a tree holding the host's /proc and /sys",
            ctx.root.base().display(),
            missing.join(", ")
        ),
        Some(_) => {}
    }
    let mut obs = knobs::observe(&ctx.root, args.pid);
    // Without --pid the service is not tune: host-wide limits are judged for one without
    // CAP_SYS_ADMIN (the first screen says when tune itself would be exempt).
    obs.facts.judge_as_unprivileged_service();
    let opts = Options {
        strict: args.strict,
        ignore,
        root: ctx.root.base().display().to_string(),
        server_workers: args.workers,
        measured: super::cost::measured(ctx, args, &profile)?,
    };
    let has_target = args.profile.is_some() || args.target.is_some();
    let profile = if has_target {
        profile
    } else {
        // Size the processes and addresses needed for what the host holds: its per-host figure.
        let mut inputs = capacity::Inputs::from_observation(&obs, profile.role);
        inputs.source_addresses = profile.params.source_addresses;
        inputs.measured = opts.measured.clone();
        let host = capacity::estimate(&inputs, 1).per_host.connections;
        profile::host_only(host.unwrap_or(1), profile.role)
    };
    let mut rep = report::evaluate(&obs, &profile, &opts);
    add_boot_and_drift(ctx, args, &obs, &mut rep)?;
    report::verdict::settle(
        &mut rep,
        &obs,
        &profile,
        has_target.then_some(profile.target),
        &opts,
    );
    let text = match args.format {
        CheckFormat::Table if args.verbose => {
            report::table::render(&rep, ctx.color, terminal_width())
        }
        CheckFormat::Table => match &rep.verdict {
            Some(v) => report::screen::render(&rep, v, terminal_width(), ctx.color),
            None => report::table::render(&rep, ctx.color, terminal_width()),
        },
        CheckFormat::Json => report::json::render(&rep),
        CheckFormat::Junit => report::junit::render(&rep)?,
        CheckFormat::Prometheus => report::prometheus::render(&rep),
    };
    print!("{text}");
    Ok(if rep.summary.exit_code == 0 {
        Outcome::Pass
    } else {
        Outcome::ShortFall
    })
}

/// The width of the terminal on stdout; COLUMNS when stdout is not one; `None`: no limit.
fn terminal_width() -> Option<usize> {
    terminal_size::terminal_size_of(std::io::stdout())
        .map(|(w, _)| usize::from(w.0))
        .or_else(|| std::env::var("COLUMNS").ok()?.parse().ok())
        .filter(|w| *w > 0)
}

/// The three-way view and drift: what the boot configuration sets for each knob, files that
/// override tune's own at boot, and whether the values of the last apply still hold.
fn add_boot_and_drift(
    ctx: &Context,
    args: &CheckArgs,
    obs: &knobs::Observation,
    rep: &mut CheckReport,
) -> anyhow::Result<()> {
    let boot = BootView::gather(&ctx.root, &[], None, None)?;
    for row in &mut rep.knobs {
        if let Some(knob) = knobs::find(row.knob) {
            row.boot = boot.value(knob).map(|b| BootSetting {
                value: b.value,
                file: ctx.root.path(&b.file).display().to_string(),
                line: b.line,
            });
        }
    }
    rep.boot_warnings = persist::installed_override_warnings(&ctx.root)?;
    rep.drift = match state::drift_view(&ctx.root, args.state_dir.as_deref(), obs)? {
        state::DriftView::Applied { record, values } => Some(DriftReport {
            apply_id: record.id,
            profile: record.profile.clone(),
            applied_unix: record.finished_unix.unwrap_or(record.created_unix),
            problems: state::render_drift(&ctx.root, &values),
            values,
        }),
        state::DriftView::Unreadable(note) => {
            eprintln!("note: {note}");
            rep.drift_note = Some(note);
            None
        }
        state::DriftView::Nothing => None,
    };
    Ok(())
}
