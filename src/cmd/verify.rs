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
    };
    // Resolved once against a probe address, so that bad load flags (and unbindable sources)
    // fail before any server worker starts.
    if !plan.external {
        plan::load_config(&ctx.root, probe_target(&plan), n, &plan.load)?;
    }
    Ok(plan)
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
        stop_on_death: true,
        steps: 0,
    };
    let connected = connect::connect(&mut rig, &spec, Some(&mut watch), &mut progress, root, None)?;
    clock.lap(Phase::Connect);
    std::thread::sleep(PEAK_SETTLE);
    let peak = Peak::take(root, &rig, plan.server.limits.backlog)?;
    clock.lap(Phase::Peak);
    let (held, echoed) = hold_and_echo(&mut rig, &plan, &connected, &peak, &mut progress);
    let after_hold = AfterHold::take(&rig);
    progress.finish();
    let torn_down = teardown::teardown(rig, peak.reached, root, true);
    clock.set(Phase::Hold, (held.seconds > 0.0).then_some(held.seconds));
    clock.set(Phase::Echo, echoed.seconds);
    clock.set(Phase::Close, torn_down.close_seconds);
    clock.set(Phase::Stop, torn_down.stop_seconds);

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
    print(&report, args.format)?;
    Ok(Outcome::of(report.verified))
}

fn print(report: &Report, format: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, report)?;
            writeln!(out)?;
        }
        _ => write!(
            out,
            "{}",
            crate::text::fit(&report.render_table(), crate::text::width())
        )?,
    }
    out.flush()?;
    Ok(())
}
