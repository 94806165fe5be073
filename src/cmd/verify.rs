//! `tune serve --verify N`: resolve the flags into a [`VerifyPlan`] once, then run the phases
//! in order (prepare, connect, hold, echo, teardown), assemble the report and print it.

use std::io::Write as _;
use std::time::Duration;

use super::{Context, Outcome};
use crate::capacity;
use crate::cli::serve::ServeArgs;
use crate::cli::Format;
use crate::knobs::Observation;
use crate::knobs::Role;
use crate::units;
use crate::verify::clock::{Clock, Phase};
use crate::verify::connect::{self, ConnectSpec, Connected};
use crate::verify::hold::{self, Echoed, Held};
use crate::verify::report::{Prediction, Report};
use crate::verify::rig::Rig;
use crate::verify::sample::AfterHold;
use crate::verify::sample::Peak;
use crate::verify::storm::{self, report::StormReport, StormPlan, Stormed};
use crate::verify::{self, measure, plan, prepare, teardown, KnobFacts, Progress, VerifyPlan};

/// Time the load generator gets to stop connecting before the peak is read.
const PEAK_SETTLE: Duration = Duration::from_millis(150);

/// The plan of a verify run; every flag error surfaces here, before anything starts.
fn plan(ctx: &Context, args: &ServeArgs, n: u64) -> anyhow::Result<VerifyPlan> {
    if n == 0 {
        anyhow::bail!("--verify 0: expected a number of connections (1 or more)");
    }
    if args.format == Format::Junit {
        anyhow::bail!("--verify prints a table or JSON (--format table|json), not JUnit");
    }
    if !ctx.root.is_host() {
        anyhow::bail!(
            "--verify measures the live host; it cannot run under --root {}",
            ctx.root.base().display()
        );
    }
    let server = super::server_config::server_config(args)?;
    let mut load = super::load::options(&args.load, &super::load::VERIFY, None)?;
    if let (Some(t), None, false) = (&server.tls, &load.tls.ca_pem, load.tls.insecure) {
        // The clients trust the server's certificate, and only them.
        load.tls.ca_pem = Some(t.cert_pem.clone());
    }
    let plan = VerifyPlan {
        target: n,
        external: args.external,
        server,
        load,
        memory_floor: args.memory_floor.map(|b| b.0),
        storm: storm_plan(args)?,
        netns_shared: !crate::probe::netns::detect_child_netns(&ctx.root),
    };
    // Resolved once against a probe address, so that bad load flags (and unbindable sources)
    // fail before any server worker starts.
    if !plan.external {
        plan::load_config(&ctx.root, probe_target(&plan), n, &plan.load)?;
    }
    Ok(plan)
}

/// `--storm` and its reconnect policy; a storm needs the load generator here.
fn storm_plan(args: &ServeArgs) -> anyhow::Result<Option<StormPlan>> {
    if args.storm.is_some() && args.external {
        anyhow::bail!("--storm needs the load generator here; it cannot run with --external");
    }
    super::load::storm_plan(args.storm, &args.reconnect, args.drain_seconds)
}

/// The storm phase, when asked for and every connection is held; `None` otherwise.
fn storm_phase(
    rig: &mut Rig,
    plan: &VerifyPlan,
    held: &Held,
    echoed: &Echoed,
    root: &crate::root::Root,
    progress: &mut Progress,
) -> anyhow::Result<Option<Stormed>> {
    let Some(sp) = &plan.storm else {
        return Ok(None);
    };
    if held.seconds <= 0.0 || held.interrupted || echoed.interrupted {
        progress.say("storm skipped: not every connection was held");
        return Ok(None);
    }
    Ok(Some(storm::storm(rig, sp, plan.target, root, progress)?))
}

/// The target the load generator will have, on a stand-in port (the server's is not chosen
/// yet): of the listen address's family, so sources of the wrong family fail here.
fn probe_target(plan: &VerifyPlan) -> embedded_server::loadgen::Target {
    let probe = std::net::SocketAddr::new(plan.server.listen.ip(), 1);
    let mut t = plan::target_of(probe, plan.load.sources.as_ref().and_then(|s| s.first()));
    t.tls = plan.server.tls.is_some();
    t
}

/// Before anything starts: ::1 alone cannot hold N (the run goes on, and stops at the port
/// range with the same fixes).
fn warn_ipv6_loopback_alone(ctx: &Context, plan: &VerifyPlan, progress: &Progress) {
    if plan.external {
        return;
    }
    let srcs = match &plan.load.sources {
        // A prefix without a count gives as many addresses as the run needs.
        Some(s) if s.open.is_some() => return,
        Some(s) => s.fixed.as_slice(),
        None => &[],
    };
    let ports = plan::ports(&ctx.root);
    if let Some(w) = plan::ipv6_loopback_shortfall(&probe_target(plan), plan.target, ports, srcs) {
        progress.say(&format!("warning: {w}"));
    }
}

/// The capacity model's prediction for this run's layout (loopback, or the server side alone).
fn predict(plan: &VerifyPlan, obs: &Observation, progress: &Progress) -> Prediction {
    let role = if plan.external {
        Role::Server
    } else {
        Role::Loopback
    };
    let mut inputs = capacity::Inputs::from_observation(obs, role);
    if let Some(s) = &plan.load.sources {
        inputs.source_addresses = Some(s.most() as u64);
    }
    inputs.ipv6_loopback = !plan.external && {
        let ip = probe_target(plan).addr.ip();
        ip.is_ipv6() && ip.is_loopback()
    };
    let cap = capacity::estimate(&inputs, plan.target);
    prepare::predict(&cap, obs.facts.bytes_per_socket(), plan, progress)
}

/// The hold and the echo round, when every connection opened and nothing died.
fn hold_and_echo(
    rig: &mut Rig,
    plan: &VerifyPlan,
    connected: &Connected,
    peak: &Peak,
    progress: &mut Progress,
) -> (Held, Echoed) {
    let reached_all = peak.reached >= plan.target
        && connected.dead_server.is_empty()
        && connected.dead_clients.is_empty()
        && !connected.interrupted;
    if !reached_all {
        return (Held::default(), Echoed::default());
    }
    progress.say(&format!(
        "reached {} in {:.2} s; holding {} s",
        units::group(plan.target),
        connected.connect_time.as_secs_f64(),
        plan.load.hold.as_secs_f64()
    ));
    let held = hold::hold(rig, plan.load.hold, progress, &Default::default());
    let echoed = if held.interrupted {
        Echoed::default()
    } else {
        hold::echo(rig, peak.reached, &held, plan.load.stall_window(), progress)
    };
    (held, echoed)
}

/// `tune serve --verify N`.
pub fn run(ctx: &Context, args: &ServeArgs, n: u64) -> anyhow::Result<Outcome> {
    let mut clock = Clock::start();
    let plan = plan(ctx, args, n)?;
    let root = &ctx.root;
    let obs = crate::knobs::observe(root, None);
    let mut progress = Progress::new(n);
    warn_ipv6_loopback_alone(ctx, &plan, &progress);

    let prediction = predict(&plan, &obs, &progress);
    let (mut rig, prepared) = prepare::prepare(root, &plan, &progress)?;
    let mut watch = prepare::watch(&plan, &prediction, &prepared, &rig);
    clock.lap(Phase::Prepare);
    let spec = ConnectSpec {
        target: n,
        stall: plan.load.stall_window(),
        connect_timeout: plan.load.connect_timeout,
        stop_on_death: true,
        steps: 0,
    };
    let connected = connect::connect(&mut rig, &spec, Some(&mut watch), &mut progress, root, None)?;
    clock.lap(Phase::Connect);
    std::thread::sleep(PEAK_SETTLE);
    let peak = Peak::take(root, &rig, plan.server.limits.backlog)?;
    clock.lap(Phase::Peak);
    let (held, echoed) = hold_and_echo(&mut rig, &plan, &connected, &peak, &mut progress);
    // The hold's counts are taken before the storm: what the storm drops is the storm's.
    let after_hold = AfterHold::take(&rig);
    let stormed = storm_phase(&mut rig, &plan, &held, &echoed, root, &mut progress)?;
    let listeners = rig.server.as_ref().map(|s| s.workers() as u64);
    progress.finish();
    let torn_down = teardown::teardown(rig, peak.reached, root, true);
    clock.set(Phase::Hold, (held.seconds > 0.0).then_some(held.seconds));
    clock.set(Phase::Echo, echoed.seconds);
    clock.set(Phase::Close, torn_down.close_seconds);
    clock.set(Phase::Stop, torn_down.stop_seconds);

    let storm_report = stormed.zip(plan.storm).map(|(s, sp)| {
        let facts = storm::facts(
            &obs,
            listeners.map(|l| (l, plan.server.limits.backlog.max(0) as u64)),
            peak.host.ct.count,
            &sp,
        );
        let hist = torn_down.latency.as_ref().map(|l| &l.storm_handshake_us);
        StormReport::assemble(&s, sp.policy.describe(), sp.kind, hist, &facts)
    });
    let report = verify::assemble(
        &plan,
        verify::Records {
            prediction,
            prepared,
            connected,
            held,
            echoed,
            after_hold,
            torn_down,
            knobs: KnobFacts::from_observation(&obs),
            port_range: measure::port_range(root),
            peak,
            phases: clock.finish(),
        },
    );
    let recovered = storm_report.as_ref().is_none_or(|s| s.recovered);
    // A graceful restart's rate is the drain's pace, not what the host accepts: not saved.
    let paced = plan
        .storm
        .is_some_and(|sp| sp.kind == storm::StormKind::Graceful);
    if let Some(s) = storm_report.as_ref().filter(|s| s.recovered && !paced) {
        save_rate(ctx, args, s, &progress);
    }
    print(&report, storm_report.as_ref(), args.format)?;
    Ok(Outcome::of(report.verified && recovered))
}

/// Saves the storm's best accept rate for `tune check --storm` (a failure is said, not fatal).
fn save_rate(ctx: &Context, args: &ServeArgs, s: &StormReport, progress: &Progress) {
    let saved = crate::state::Store::new(&ctx.root, args.state_dir.as_deref()).and_then(|st| {
        let dir = st.path();
        std::fs::create_dir_all(&dir)?;
        let file = dir.join(crate::profile::storm::RATE_FILE);
        let line = format!("{:.0} {}\n", s.sustained_connects_per_second, s.target);
        std::fs::write(&file, line)?;
        Ok(file)
    });
    match saved {
        Ok(f) => progress.say(&format!(
            "accept rate saved in {} for tune check --storm",
            f.display()
        )),
        Err(e) => progress.say(&format!("warning: the accept rate was not saved: {e:#}")),
    }
}

fn print(report: &Report, storm: Option<&StormReport>, format: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            super::load::write_json(&mut out, report, storm)?;
            writeln!(out)?;
        }
        _ => {
            // The report and the storm's section are laid out at the width.
            let width = crate::text::width();
            let mut text = report.render_table(width);
            if let Some(s) = storm {
                text.push_str(&s.render_table(width));
            }
            write!(out, "{text}")?
        }
    }
    out.flush()?;
    Ok(())
}
