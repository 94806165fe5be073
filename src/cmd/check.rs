//! `tune check`: what the host holds (no arguments), or whether it holds a profile's target: the verdict, the fixes ranked by gain, the knobs, in the chosen format.

use super::{Context, Outcome};
use crate::capacity;
use crate::cli::check::{CheckArgs, CheckFormat};
use crate::cli::flags;
use crate::kernel::Host;
use crate::knobs;
use crate::knobs::Role;
use crate::persist::{self, boot::BootView};
use crate::profile::storm::Storm;
use crate::profile::{self, Overrides, Profile};
use crate::report::{self, BootSetting, CheckReport, DriftReport, Ignore, Options};
use crate::state;
use crate::values::Input;

/// What `tune check` is asked, resolved once from its flags (as `VerifyPlan` is for verify):
/// every flag error surfaces in [`CheckPlan::resolve`], before anything is read.
#[derive(Debug)]
pub struct CheckPlan {
    /// `--profile` (with `--role` overriding its role), `--target`, or none at all (what the
    /// host holds now: no requirements yet), with `--source`'s address count in its params.
    pub profile: Profile,
    /// `--profile` or `--target` was given: the report has a target to compare with.
    pub has_target: bool,
    pub pid: Option<u32>,
    pub options: Options,
    pub format: CheckFormat,
    pub verbose: bool,
    pub state_dir: Option<std::path::PathBuf>,
}

impl CheckPlan {
    pub fn resolve(ctx: &Context, args: &CheckArgs) -> anyhow::Result<CheckPlan> {
        let ignore = Ignore::parse(&args.ignore)?;
        if args.workers == Some(0) {
            anyhow::bail!("--workers 0: expected a number of server worker processes (1 or more)");
        }
        let role = args.role.unwrap_or(Role::Server);
        let ktls = Host::new(&ctx.root).ktls();
        // The TLS cost the flags give sizes the profile's memory formula too.
        let tls_given = super::tls_cost::given(args, &ktls)?;
        let tls_bytes = tls_given.as_ref().map(|c| c.bytes_per_connection);
        // `--source` is parsed once, after what names the profile (so its errors come first).
        let sources = || source_count(args.source.as_deref());
        let (mut profile, sources) = match (&args.profile, args.target) {
            (Some(spec), _) => {
                let overrides = Overrides {
                    target: None,
                    role: args.role,
                    tls_bytes_per_connection: tls_bytes,
                };
                (profile::load_with(&ctx.root, spec, overrides)?, sources()?)
            }
            (None, Some(t)) => {
                profile::check_target(t).map_err(|e| anyhow::anyhow!("--target: {e}"))?;
                let n = sources()?;
                let params = profile::Params {
                    source_addresses: n,
                    tls_bytes_per_connection: tls_bytes,
                    ..Default::default()
                };
                (
                    profile::for_target_with(t, role, params, flags::flag(Input::Target)),
                    n,
                )
            }
            (None, None) => (profile::host_only(1, role), sources()?),
        };
        if let Some(n) = sources {
            profile.params.source_addresses = Some(n);
        }
        let measured = super::cost::measured(ctx, args, &profile)?;
        let tls = super::tls_cost::term(args, tls_given, &profile);
        Ok(CheckPlan {
            profile,
            has_target: args.profile.is_some() || args.target.is_some(),
            pid: args.pid,
            options: Options {
                strict: args.strict,
                ignore,
                root: ctx.root.base().display().to_string(),
                server_workers: args.workers,
                measured,
                tls,
                ktls: Some(ktls),
                service: None,
            },
            format: args.format,
            verbose: args.verbose,
            state_dir: args.state_dir.clone(),
        })
    }
}

/// `--storm`: the listen-queue requirements the storm adds, and the warning when the accept
/// rate a `serve --verify --storm` saved here is below what it needs.
fn size_storm(
    ctx: &Context,
    args: &CheckArgs,
    profile: &mut profile::Profile,
    storm: Storm,
) -> anyhow::Result<()> {
    let listeners = args.workers.unwrap_or(profile.params.processes);
    profile::storm::apply(profile, &storm, listeners);
    let file = crate::state::Store::new(&ctx.root, args.state_dir.as_deref())?
        .path()
        .join(profile::storm::RATE_FILE);
    match std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| profile::storm::parse_saved(&t))
    {
        Some((rate, clients)) => {
            if let Some(w) = profile::storm::rate_warning(&storm, rate, clients) {
                eprintln!("warning: {w} ({})", file.display());
            }
        }
        None => eprintln!(
            "note: no accept rate measured on this host yet ({} is absent): run tune serve --verify N --storm clients to measure it",
            file.display()
        ),
    }
    Ok(())
}

/// The number of addresses `--source` names (the same syntax as `tune serve --source`).
fn source_count(source: Option<&str>) -> anyhow::Result<Option<u64>> {
    source
        .map(|s| {
            embedded_server::loadgen::sources::parse(s)
                .map(|v| v.len() as u64)
                .map_err(|e| anyhow::anyhow!("--source {s:?}: {e}"))
        })
        .transpose()
}

pub fn run(ctx: &Context, args: &CheckArgs) -> anyhow::Result<Outcome> {
    let plan = CheckPlan::resolve(ctx, args)?;
    let host = Host::new(&ctx.root);
    super::require_proc(ctx, &host, plan.pid)?;
    // Memory bounds the host's answer: a meminfo that does not parse (a value past u64 bytes, a
    // damaged line) would plan with no memory figure or a wrong one, so it is an error.
    if let Err(e) = host.meminfo() {
        anyhow::bail!(
            "{e}: tune sizes the host's memory from this file and cannot answer without it"
        );
    }
    let mut obs = knobs::observe(&ctx.root, plan.pid);
    // Without --pid the service is not tune: host-wide limits are judged for one without
    // CAP_SYS_ADMIN (the first screen says when tune itself would be exempt).
    obs.facts.judge_as_unprivileged_service();
    let mut plan = plan;
    if let Some(svc) = describe_service(ctx, args, &host, &obs)? {
        obs.as_service(&knobs::Described {
            nofile_soft: svc.nofile_soft,
            nofile_hard: svc.nofile_hard,
            cap_sys_admin: svc.cap_sys_admin,
            cap_sys_resource: svc.cap_sys_resource,
            memory: svc
                .memory
                .as_ref()
                .map(|m| (m.cgroup.clone(), m.max, m.high)),
        });
        let mut lines = vec![
            format!("judged for {}", svc.who),
            format!("RLIMIT_NOFILE {}", svc.nofile_from),
        ];
        lines.extend(svc.memory.as_ref().map(|m| {
            format!(
                "memory cgroup {} as the unit limits it: {}",
                m.cgroup, m.from
            )
        }));
        plan.options.service = Some(lines);
    }
    let profile = if plan.has_target {
        plan.profile.clone()
    } else {
        // Size the processes and addresses needed for what the host holds: its per-host figure.
        let mut inputs = capacity::Inputs::from_observation(&obs, plan.profile.role);
        inputs.source_addresses = plan.profile.params.source_addresses;
        inputs.measured = plan.options.measured.clone();
        inputs.tls = plan.options.tls_cost();
        let host = capacity::estimate(&inputs, 1).per_host.connections;
        profile::host_only(host.unwrap_or(1), plan.profile.role)
    };
    let mut profile = profile;
    // `--storm` overrides the profile's `storm` key; both are sized here, the one path.
    if let Some(storm) = args.storm.or(plan.profile.storm) {
        size_storm(ctx, args, &mut profile, storm)?;
    }
    let mut rep = report::evaluate(&obs, &profile, &plan.options);
    add_boot_and_drift(ctx, plan.state_dir.as_deref(), &obs, &mut rep)?;
    report::verdict::settle(
        &mut rep,
        &obs,
        &profile,
        plan.has_target.then_some(profile.target),
        &plan.options,
    );
    mark_blocked_fixes(ctx, &obs, &mut rep)?;
    let text = match plan.format {
        CheckFormat::Table if plan.verbose => {
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

/// `--unit` or `--user`: the service as its configuration under the root describes it.
fn describe_service(
    ctx: &Context,
    args: &CheckArgs,
    host: &Host,
    obs: &knobs::Observation,
) -> anyhow::Result<Option<persist::service::Service>> {
    let figures = persist::service::HostFigures {
        nr_open: obs.int(knobs::KnobId::NrOpen).unwrap_or(1 << 20),
        mem_total: obs.int(knobs::KnobId::MemoryTotal).unwrap_or(0),
        inherited: host
            .process(Some(1))
            .nofile()
            .ok()
            .map(|n| (n.soft, n.hard)),
    };
    if let Some(spec) = &args.unit {
        // A path is a unit file on this disk (perhaps not installed yet); a name is looked up
        // under the root.
        let text = if spec.contains('/') {
            Some(
                std::fs::read_to_string(spec)
                    .map_err(|e| anyhow::anyhow!("{spec}: {e}; give a unit file or a unit name"))?,
            )
        } else {
            None
        };
        return Ok(Some(persist::service::for_unit(
            &ctx.root, spec, text, figures,
        )?));
    }
    args.user
        .as_deref()
        .map(|u| persist::service::for_user(&ctx.root, u, figures))
        .transpose()
}

/// Under each fix that cannot work from here, why (what `tune apply` would refuse it for):
/// the first screen says so instead of a command that fails when followed.
fn mark_blocked_fixes(
    ctx: &Context,
    obs: &knobs::Observation,
    rep: &mut CheckReport,
) -> anyhow::Result<()> {
    let Some(v) = rep.verdict.as_mut() else {
        return Ok(());
    };
    let here = super::apply::gather_here(&ctx.root, false)?;
    for f in &mut v.fixes {
        let Some(id) = knobs::KnobId::from_name(&f.knob) else {
            continue;
        };
        // A soft limit above the hard one raises both: what blocks the hard limit blocks it.
        let id = if id == knobs::KnobId::NofileSoft && f.action.contains("both must rise") {
            knobs::KnobId::NofileHard
        } else {
            id
        };
        f.blocked = crate::apply_plan::blocked_here(id.knob(), &here, obs);
    }
    Ok(())
}

/// The width every screen fits ([`crate::text::width`]: the terminal, COLUMNS, else 80).
pub(crate) fn terminal_width() -> Option<usize> {
    Some(crate::text::width())
}

/// The three-way view and drift: what the boot configuration sets for each knob, files that
/// override tune's own at boot, and whether the values of the last apply still hold.
fn add_boot_and_drift(
    ctx: &Context,
    state_dir: Option<&std::path::Path>,
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
    rep.drift = match state::drift_view(&ctx.root, state_dir, obs)? {
        state::DriftView::Applied {
            record,
            values,
            other_netns,
        } => Some(DriftReport {
            apply_id: record.id,
            profile: record.profile.clone(),
            applied_unix: record.finished_unix.unwrap_or(record.created_unix),
            problems: state::render_drift(&ctx.root, &values),
            values,
            other_netns: other_netns.map(|o| state::render_other_netns(&o)),
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
