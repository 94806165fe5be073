//! `tune load`: the load generator alone (for a server on another host, or any websocket
//! server), and the hidden `__load-worker` process it starts.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use embedded_server::loadgen::{sources, Cmd, Died, LoadGen, Target};
use embedded_server::sys::signal::{Signal, Signals};
use serde::Serialize;

use super::{Context, Outcome};
use crate::capacity::group;
use crate::cli::load::{LoadArgs, WorkerArgs};
use crate::cli::Format;
use crate::verify::diagnose::{self, ClientSide, Diagnosis, Evidence};
use crate::verify::report::Latency;
use crate::verify::{self, measure, Progress};

/// What `tune load --format json` prints.
#[derive(Debug, Serialize)]
struct LoadReport {
    schema_version: u32,
    url: String,
    target: u64,
    reached: u64,
    all_open: bool,
    time_to_reach_seconds: Option<f64>,
    connections_per_second: f64,
    processes: u64,
    sources: String,
    held_seconds: f64,
    /// Websockets open at the end of the hold, before the teardown.
    open: u64,
    /// Open websockets lost before the teardown: closed by the server or the network, or gone
    /// with a client process that died.
    dropped: u64,
    /// Client processes that exited before they were told to.
    died_processes: Vec<DiedProcess>,
    /// Closed by the server with 1001 (going away) before our teardown.
    closed_by_server: u64,
    messages_sent: u64,
    messages_received: u64,
    handshake_latency: Option<Latency>,
    echo_latency: Option<Latency>,
    errors: BTreeMap<String, u64>,
    netstat_deltas: BTreeMap<String, u64>,
    diagnosis: Option<Diagnosis>,
    closed: u64,
    exit_code: u8,
}

/// A client process that died during the run.
#[derive(Debug, Serialize)]
struct DiedProcess {
    index: usize,
    status: String,
    connections_lost: u64,
}

/// Why connections were dropped, in words: `worker 3 died`, `300 closed by the server or the
/// network`, or both with their counts.
fn drop_reasons(died: &[Died], by_peer: u64) -> String {
    let lost: u64 = died.iter().map(|d| d.lost).sum();
    let died_words = match died {
        [] => String::new(),
        [one] => format!("worker {} died", one.index),
        more => format!(
            "workers {} died",
            more.iter()
                .map(|d| d.index.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let peer = format!("{} closed by the server or the network", group(by_peer));
    match (died.is_empty(), by_peer > 0) {
        (false, false) => died_words,
        (true, _) => peer,
        (false, true) => format!("{} when {died_words}, {peer}", group(lost)),
    }
}

/// The first line of the table: OK, or SHORT with what is open now against the target and
/// what was lost on the way.
fn summary_line(rep: &LoadReport, peak: u64, died: &[Died], by_peer: u64) -> String {
    let whom = format!(
        "to {} ({} processes, sources: {})",
        rep.url, rep.processes, rep.sources
    );
    if rep.all_open {
        return format!(
            "OK: {} of {} connections open {whom}",
            group(rep.reached),
            group(rep.target)
        );
    }
    let mut why = Vec::new();
    if peak < rep.target {
        why.push(format!("at most {} opened", group(peak)));
    }
    if rep.dropped > 0 || !died.is_empty() {
        why.push(format!(
            "{} dropped: {}",
            group(rep.dropped),
            drop_reasons(died, by_peer)
        ));
    }
    format!(
        "SHORT: {} open of {}{} {whom}",
        group(rep.open),
        group(rep.target),
        if why.is_empty() {
            String::new()
        } else {
            format!(" ({})", why.join("; "))
        }
    )
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
    let lc = verify::load_config(
        root,
        target,
        args.conns,
        &args.processes,
        args.concurrency,
        args.rate,
        args.source.as_deref(),
        args.connect_timeout,
        args.close_rate,
        args.message_interval,
    )?;
    let hold = verify::secs("--hold", args.hold)?;
    let stall = verify::secs("--stall", args.stall)?.max(Duration::from_millis(500));
    let signals = Signals::new(&[Signal::SIGINT, Signal::SIGTERM])?;
    let net_before = measure::netstat(root);
    let mut g = LoadGen::start(&lc, &mut verify::load_worker_command)?;
    let mut progress = Progress::new(args.conns);
    progress.say(&format!(
        "{} client processes to {}, sources: {}",
        g.processes(),
        lc.target.addr,
        sources::describe(&lc.sources)
    ));
    let t0 = Instant::now();
    g.command(Cmd::Connect);
    let mut best = 0;
    let mut last_progress = Instant::now();
    let mut reached_at = None;
    let mut interrupted = false;
    loop {
        if let Ok(Some(_)) = signals.next() {
            interrupted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        say_deaths(&progress, g.reap());
        let s = g.snapshot();
        progress.update(
            s.open,
            format!(
                "{:.0}/s | in flight {} | {} errors",
                s.established as f64 / t0.elapsed().as_secs_f64(),
                s.in_flight,
                group(s.errors_total())
            ),
        );
        if s.open >= args.conns {
            reached_at = Some(t0.elapsed());
            break;
        }
        if s.open > best {
            best = s.open;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > stall {
            break;
        }
    }
    let connect_secs = reached_at.unwrap_or_else(|| t0.elapsed());
    g.command(Cmd::Hold);
    let peak = g.snapshot();
    let net_peak = measure::netstat(root);
    let t_hold = Instant::now();
    if reached_at.is_some() && !interrupted {
        progress.say(&format!(
            "{} open in {:.2} s; holding {:.0} s",
            group(args.conns),
            connect_secs.as_secs_f64(),
            hold.as_secs_f64()
        ));
        let end = Instant::now() + hold;
        while Instant::now() < end {
            if let Ok(Some(_)) = signals.next() {
                interrupted = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            say_deaths(&progress, g.reap());
            let s = g.snapshot();
            if s.open == 0 && s.in_flight == 0 {
                break; // the server closed every connection
            }
            progress.update(
                s.open,
                format!(
                    "holding | messages {} sent {} echoed | dropped {}",
                    group(s.messages_sent),
                    group(s.messages_received),
                    group(s.dropped)
                ),
            );
        }
    }
    let held = t_hold.elapsed().as_secs_f64();
    g.reap();
    let after_hold = g.snapshot();
    progress.finish();
    g.command(Cmd::Close);
    let end = Instant::now()
        + Duration::from_secs_f64(after_hold.open as f64 / lc.close_rate as f64 * 3.0 + 15.0);
    loop {
        g.reap();
        let s = g.snapshot();
        if Instant::now() >= end
            || (s.processes_closed + s.processes_died) as usize >= g.processes()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every process that died, also during the teardown (its latency report is missing too).
    let died: Vec<Died> = g.died.clone();
    let closed = g.snapshot().closed;
    let processes = g.processes() as u64;
    let hist = g.finish(Duration::from_secs(5));
    let ev = Evidence {
        target: args.conns,
        established: peak.open.max(best),
        client: Some(ClientSide {
            processes,
            fd_cap: peak.fd_cap,
            errors: peak
                .errors
                .iter()
                .map(|(c, n)| (c.label().to_string(), *n))
                .collect(),
            sources: lc.sources.len() as u64,
            last_errno: peak.last_errno,
            in_flight: peak.in_flight,
        }),
        server: None,
        netstat: measure::deltas(&net_before, &net_peak),
        port_range: measure::port_range(root),
        ..Evidence::default()
    };
    let mut diagnosis = if interrupted {
        None
    } else {
        diagnose::diagnose(&ev)
    };
    // A dead process explains the shortfall before anything its death caused.
    if !died.is_empty() && !interrupted {
        diagnosis = Some(diagnose::load_worker_died(&died));
    }
    let dropped = after_hold.dropped + after_hold.lost;
    let all_open = reached_at.is_some() && dropped == 0 && died.is_empty() && !interrupted;
    let outcome = if all_open {
        Outcome::Pass
    } else {
        Outcome::ShortFall
    };
    let rep = LoadReport {
        schema_version: 1,
        url: args.url.clone(),
        target: args.conns,
        // The most open at once: a server that gave up first may have closed them by now.
        reached: peak.open.max(best),
        all_open,
        time_to_reach_seconds: reached_at.map(|d| d.as_secs_f64()),
        connections_per_second: peak.open.max(best) as f64 / connect_secs.as_secs_f64().max(1e-6),
        processes,
        sources: sources::describe(&lc.sources),
        held_seconds: held,
        open: after_hold.open,
        dropped,
        died_processes: died
            .iter()
            .map(|d| DiedProcess {
                index: d.index,
                status: d.status.clone(),
                connections_lost: d.lost,
            })
            .collect(),
        closed_by_server: after_hold.server_closed,
        messages_sent: after_hold.messages_sent,
        messages_received: after_hold.messages_received,
        handshake_latency: Latency::of(&hist.handshake_us),
        echo_latency: Latency::of(&hist.echo_us),
        errors: ev
            .client
            .as_ref()
            .map(|c| c.errors.clone())
            .unwrap_or_default(),
        netstat_deltas: ev.netstat.clone(),
        diagnosis,
        closed,
        exit_code: outcome.exit_code(),
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &rep)?;
            writeln!(out)?;
        }
        _ => {
            writeln!(
                out,
                "{}",
                summary_line(&rep, peak.open, &died, after_hold.dropped)
            )?;
            writeln!(
                out,
                "rate {:.0} connections/s; held {:.1} s; dropped {}; closed by the server (going away) {}; closed {}",
                rep.connections_per_second,
                rep.held_seconds,
                group(rep.dropped),
                group(rep.closed_by_server),
                group(rep.closed)
            )?;
            for (name, l) in [
                ("handshake", &rep.handshake_latency),
                ("echo", &rep.echo_latency),
            ] {
                if let Some(l) = l {
                    writeln!(
                        out,
                        "{name} latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
                        l.p50_us as f64 / 1000.0,
                        l.p99_us as f64 / 1000.0,
                        l.max_us as f64 / 1000.0,
                        group(l.count)
                    )?;
                }
            }
            if rep.messages_sent > 0 {
                writeln!(
                    out,
                    "messages: {} sent, {} echoed",
                    group(rep.messages_sent),
                    group(rep.messages_received)
                )?;
            }
            let errs: Vec<String> = rep
                .errors
                .iter()
                .filter(|(_, v)| **v > 0)
                .map(|(k, v)| format!("{k} {}", group(*v)))
                .collect();
            if !errs.is_empty() {
                writeln!(out, "errors: {}", errs.join(", "))?;
            }
            if let Some(d) = &rep.diagnosis {
                writeln!(out, "LIMIT: {} ({} side): {}", d.limit, d.side, d.value)?;
                writeln!(out, "  seen: {}", d.evidence)?;
                for f in &d.fix {
                    writeln!(out, "  fix: {f}")?;
                }
            }
            if interrupted {
                writeln!(out, "interrupted by a signal")?;
            }
        }
    }
    out.flush()?;
    Ok(outcome)
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

/// Says on the progress stream which load workers died and what they held.
fn say_deaths(progress: &Progress, died: Vec<Died>) {
    for d in died {
        progress.say(&format!(
            "load worker {} died ({}): {} connections lost",
            d.index,
            d.status,
            group(d.lost)
        ));
    }
}
