//! `tune load`: the load generator alone (for a server on another host, or any websocket
//! server), run as the verify phases connect → hold → teardown; and the hidden `__load-worker`
//! process it starts.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use embedded_server::loadgen::{CloseMode, LoadGen, Target};
use embedded_server::tls::ClientTls;

use super::{Context, Outcome};
use crate::cli::load::{LoadArgs, LoadFlags, WorkerArgs};
use crate::cli::storm::{ReconnectFlags, StormHow};
use crate::cli::Format;
use crate::launch;
use crate::units::group;
use crate::values::Secs;
use crate::verify::connect::{self, ConnectSpec};
use crate::verify::hold::{self, Held};
use crate::verify::load_report::{assemble_load, LoadRecords, ServerRecords};
use crate::verify::rig::{Clients, Rig};
use crate::verify::server_watch::ServerWatch;
use crate::verify::storm::{self, report::StormReport, StormKind, StormPlan, Stormed};
use crate::verify::{measure, plan, teardown, LoadOptions, Progress};

/// What each command takes when `--hold` or `--close` is not given.
pub struct Defaults {
    pub hold: Duration,
    pub close: CloseMode,
}

/// `serve --verify` holds briefly before its echo round, and closes with TCP's close: the
/// server is tune's own, and the teardown runs at the pace of a bare close.
pub const VERIFY: Defaults = Defaults {
    hold: Duration::from_secs(5),
    close: CloseMode::Tcp,
};

/// `tune load` holds long enough to watch from the server's side, and closes with the close
/// handshake: the server is someone's own, and should see normal closures (1000), not a
/// million abnormal ones in its logs.
pub const LOAD: Defaults = Defaults {
    hold: Duration::from_secs(30),
    close: CloseMode::Websocket,
};

/// The load options the shared flags resolve to, with the command's own defaults
/// (`message_interval` only for `tune load`).
pub fn options(
    f: &LoadFlags,
    defaults: &Defaults,
    message_interval: Option<Duration>,
) -> anyhow::Result<LoadOptions> {
    let o = LoadOptions {
        processes: f.processes,
        concurrency: f.concurrency,
        rate: f.rate,
        sources: f.source.clone().map(|s| s.0),
        connect_timeout: f.connect_timeout.0,
        close_rate: f.close_rate,
        close_mode: f.close.map_or(defaults.close, CloseMode::from),
        message_interval,
        stall: f.stall.0,
        hold: f.hold.map_or(defaults.hold, |h| h.0),
        tls: ClientTls {
            ca_pem: f
                .ca
                .as_ref()
                .map(|p| {
                    std::fs::read_to_string(p).with_context(|| format!("--ca {}", p.display()))
                })
                .transpose()?,
            insecure: f.insecure,
        },
    };
    o.validate()?;
    Ok(o)
}

pub fn run(ctx: &Context, args: &LoadArgs) -> anyhow::Result<Outcome> {
    if args.conns == 0 {
        anyhow::bail!("--conns 0: expected a number of connections (1 or more)");
    }
    if args.format == Format::Junit {
        anyhow::bail!("tune load prints a table or JSON (--format table|json), not JUnit");
    }
    let target = Target::parse(&args.url)?;
    let root = &ctx.root;
    let o = options(&args.load, &LOAD, args.message_interval.map(|s| s.0))?;
    let cfg = plan::load_config(root, target, args.conns, &o)?;
    let target_ipv6 = cfg.target.addr.is_ipv6();
    let taken = plan::taken_from_open_prefix(&o, &cfg);
    let target_loopback = cfg.target.addr.ip().is_loopback();
    let shortfall =
        plan::ipv6_loopback_shortfall(&cfg.target, args.conns, plan::ports(root), &cfg.sources);

    let watch = match (args.server_pid, &args.server_cgroup) {
        (None, None) => None,
        (pid, cg) => Some(ServerWatch::new(root, pid, cg.as_deref())?),
    };
    let steps = ramp_steps(args, watch.is_some())?;
    if args.storm == Some(StormHow::Graceful) {
        anyhow::bail!(
            "--storm graceful is a restart tune serve --verify makes of its own server; against \
             another server use --storm restart, which follows whatever restart it makes"
        );
    }
    let storm = storm_plan(args.storm, &args.reconnect, None)?;
    let obs = crate::knobs::observe(root, None);
    let signals = Rig::signals()?;
    let net_before = measure::netstat(root);
    let gen = LoadGen::start(&cfg, &mut launch::load_worker_command)?;
    let mut rig = Rig {
        server: None,
        clients: Some(Clients { gen, cfg }),
        signals,
    };
    let mut progress = Progress::new(args.conns);
    if let Some(w) = shortfall {
        progress.say(&format!("warning: {w}"));
    }
    if let Some(line) = taken {
        progress.say(&line);
    }
    progress.say(&format!(
        "{} client processes to {}, sources: {}",
        rig.client_processes(),
        target_addr(&rig),
        rig.sources()
    ));
    let spec = ConnectSpec {
        target: args.conns,
        stall: o.stall_window(),
        connect_timeout: o.connect_timeout,
        stop_on_death: false,
        steps,
    };
    let mut samples = Vec::new();
    let mut sampler = |open: u64| {
        if let Some(w) = &watch {
            samples.push(w.sample(root, open));
        }
    };
    let connected = connect::connect(
        &mut rig,
        &spec,
        None,
        &mut progress,
        root,
        Some(&mut sampler),
    )?;
    let peak = rig.load_snapshot().unwrap_or_default();
    let netstat = measure::deltas(&net_before, &measure::netstat(root));
    let mut held = Held::default();
    let mut stormed = None;
    let reached = connected.reached_at.is_some() && !connected.interrupted;
    if reached && storm.is_none() {
        progress.say(&format!(
            "{} open in {:.2} s; holding {:.0} s",
            group(args.conns),
            connected.connect_time.as_secs_f64(),
            o.hold.as_secs_f64()
        ));
        held = hold::hold(&mut rig, o.hold, &mut progress, &connected.drops);
    }
    rig.reap(&progress);
    let after_hold = rig.load_snapshot().unwrap_or_default();
    if let (true, Some(sp)) = (reached, &storm) {
        progress.say(&format!(
            "{} open in {:.2} s",
            group(args.conns),
            connected.connect_time.as_secs_f64()
        ));
        stormed = Some(storm_phase(
            &mut rig,
            sp,
            args.conns,
            o.hold,
            root,
            &mut progress,
        )?);
    }
    let server = watch.as_ref().map(|w| ServerRecords {
        samples,
        end: w.end(root),
        limit: w.limit(root),
        sockets_per_connection_here: if target_loopback { 2 } else { 1 },
    });
    progress.finish();
    let records = LoadRecords {
        url: args.url.clone(),
        target: args.conns,
        processes: rig.client_processes(),
        sources: rig.sources(),
        source_count: rig.source_count(),
        torn_down: teardown::teardown(rig, after_hold.open, root, false),
        connected,
        peak,
        netstat,
        held,
        after_hold,
        port_range: measure::port_range(root),
        ipv6: target_ipv6,
        close_mode: o.close_mode,
        server,
        netns_shared: !crate::probe::netns::detect_child_netns(root),
    };
    let storm_report = stormed.zip(storm).map(|(s, sp)| {
        let facts = crate::verify::storm::facts(&obs, None, None, &sp);
        let hist = records
            .torn_down
            .latency
            .as_ref()
            .map(|l| &l.storm_handshake_us);
        StormReport::assemble(&s, sp.policy.describe(), sp.kind, hist, &facts)
    });
    let rep = assemble_load(records);
    print(&rep, storm_report.as_ref(), args.format)?;
    let recovered = storm_report.as_ref().is_none_or(|s| s.recovered);
    Ok(Outcome::of(rep.all_open && recovered))
}

/// The load report (and the storm's, when there was one) as the format asks.
fn print(
    rep: &crate::verify::load_report::LoadReport,
    storm: Option<&StormReport>,
    format: Format,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            write_json(&mut out, rep, storm)?;
            writeln!(out)?;
        }
        _ => {
            // The report and the storm's section are laid out at the width.
            let width = crate::text::width();
            let mut text = rep.render_table(width);
            if let Some(s) = storm {
                text.push_str(&s.render_table(width));
            }
            write!(out, "{text}")?
        }
    }
    out.flush()?;
    Ok(())
}

/// A report as JSON with the storm's under `storm` (for `load` and `serve --verify`); without
/// a storm the report prints in its fields' order, as before.
pub fn write_json(
    out: &mut impl std::io::Write,
    rep: &impl serde::Serialize,
    storm: Option<&StormReport>,
) -> anyhow::Result<()> {
    match storm {
        None => serde_json::to_writer_pretty(&mut *out, rep)?,
        Some(s) => {
            let mut v = serde_json::to_value(rep)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("storm".into(), serde_json::to_value(s)?);
            }
            serde_json::to_writer_pretty(&mut *out, &v)?
        }
    }
    Ok(())
}

/// `--storm` and the reconnect flags, resolved (for `load` and `serve --verify`).
pub fn storm_plan(
    how: Option<StormHow>,
    flags: &ReconnectFlags,
    drain: Option<Secs>,
) -> anyhow::Result<Option<StormPlan>> {
    let policy = flags.policy().map_err(anyhow::Error::msg)?;
    if drain.is_some() && how != Some(StormHow::Graceful) {
        anyhow::bail!("--drain-seconds is the drain of --storm graceful; add --storm graceful");
    }
    if drain.is_some_and(|d| d.0.is_zero()) {
        anyhow::bail!("--drain-seconds 0: expected a positive number of seconds (a drain of 0 is --storm restart)");
    }
    match how {
        None if flags.any() => {
            anyhow::bail!("--reconnect-jitter and --reconnect-backoff need --storm")
        }
        None => Ok(None),
        Some(how) => Ok(Some(StormPlan {
            kind: match how {
                StormHow::Clients => StormKind::Clients,
                StormHow::Restart => StormKind::Restart,
                StormHow::Graceful => StormKind::Graceful,
            },
            policy,
            drain: drain.map_or(storm::DRAIN_DEFAULT, |d| d.0),
        })),
    }
}

/// The storm with the connections open: the clients' own, or a wait of up to `wait` for the
/// server's restart (a record saying none came when it did not).
fn storm_phase(
    rig: &mut Rig,
    sp: &StormPlan,
    target: u64,
    wait: Duration,
    root: &crate::root::Root,
    progress: &mut Progress,
) -> anyhow::Result<Stormed> {
    match sp.kind {
        StormKind::Clients => storm::storm(rig, sp, target, root, progress),
        // Refused when the flags were read: a graceful restart is tune serve's own.
        StormKind::Graceful => anyhow::bail!("--storm graceful is a restart tune serve makes"),
        StormKind::Restart => {
            let seen = storm::await_restart(rig, &sp.policy, target, wait, root, progress)?;
            Ok(seen.unwrap_or_else(|| {
                progress.say(&format!(
                    "no server restart within {:.0} s",
                    wait.as_secs_f64()
                ));
                let open = rig.load_snapshot().map_or(0, |l| l.open);
                Stormed {
                    target,
                    open_before: open,
                    open_after: open,
                    restart_detected: Some(false),
                    ..Stormed::default()
                }
            }))
        }
    }
}

/// Most steps a ramp may have: each pauses the clients for up to a few seconds.
const MAX_STEPS: u64 = 100;

/// `--steps`, or 10 when a server is watched (enough points for a line and its two halves).
fn ramp_steps(args: &LoadArgs, watched: bool) -> anyhow::Result<u64> {
    let steps = args.steps.unwrap_or(if watched { 10 } else { 0 });
    if steps > MAX_STEPS || steps > args.conns {
        anyhow::bail!(
            "--steps {steps}: at most {MAX_STEPS} and at most --conns ({}); each step pauses the ramp",
            args.conns
        );
    }
    if steps > 0 && !watched {
        anyhow::bail!(
            "--steps {steps}: steps sample a server: give --server-pid PID or --server-cgroup DIR"
        );
    }
    Ok(steps)
}

fn target_addr(rig: &Rig) -> String {
    rig.clients
        .as_ref()
        .map_or(String::new(), |c| c.cfg.target.addr.to_string())
}

pub fn worker(_ctx: &Context, args: &WorkerArgs) -> anyhow::Result<Outcome> {
    let cfg = embedded_server::loadgen::WorkerConfig::from_env()?;
    if cfg.index != args.index as usize {
        anyhow::bail!(
            "load worker index mismatch: --index {} but the configuration is for process {}",
            args.index,
            cfg.index
        );
    }
    embedded_server::loadgen::worker::run_worker(cfg)?;
    Ok(Outcome::Pass)
}
