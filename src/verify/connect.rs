//! The connect phase: tell the clients to connect and follow the count until the target is
//! open, the count stalls, a process dies, a signal comes or the memory watchdog stops it.

use std::time::{Duration, Instant};

use embedded_server::loadgen::{Cmd, Died, LoadSnapshot};

use super::diagnose::MemoryStop;
use super::measure::{self, Mem, Rss};
use super::progress::Progress;
use super::reclaim::{PressureStop, ReclaimWatch, Record as ReclaimRecord};
use super::rig::{Rig, TICK};
use super::watchdog::{self, Decision};
use crate::root::Root;
use crate::units::{bytes, group};

/// How long external mode waits for the first connection from other hosts.
const EXTERNAL_WAIT: Duration = Duration::from_secs(600);
/// How often the rate on the progress line is measured.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// What the connect phase is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct ConnectSpec {
    pub target: u64,
    pub stall: Duration,
    /// How long a connect has from connect() to the 101 (the clients fail it as a
    /// connect_timeout then): a slow server's handshakes settle within it.
    pub connect_timeout: Duration,
    /// End the phase when a process dies (verify); `tune load` keeps going with the rest.
    pub stop_on_death: bool,
    /// Steps of the ramp (0: none): the clients open `target × k / steps` and stop there, the
    /// connects in flight settle, and the step sampler runs; then step k + 1.
    pub steps: u64,
}

/// How long a step waits for the connects in flight to complete before it samples anyway.
const STEP_SETTLE_MAX: Duration = Duration::from_secs(3);
/// Quiet time after the last connect of a step, so the server has handled its handshakes.
const STEP_QUIET: Duration = Duration::from_millis(300);

/// Called at each step of the ramp with the connections open then.
pub type StepSampler<'a> = &'a mut dyn FnMut(u64);

/// What the connect phase saw.
#[derive(Debug, Clone, Default)]
pub struct Connected {
    /// When the target was open, from the start (external mode: from the first connection).
    pub reached_at: Option<Duration>,
    /// How long the phase took to its end, on the same clock.
    pub connect_time: Duration,
    pub interrupted: bool,
    pub memory_stop: Option<MemoryStop>,
    pub dead_server: Vec<String>,
    pub dead_clients: Vec<Died>,
    /// Server RSS and its connection count at about half the target (for the marginal cost).
    pub server_half: Option<(Rss, u64)>,
    pub clients_half: Option<(Rss, u64)>,
    /// The most connections open at once during the phase.
    pub most_open: u64,
    /// Most held connections dropped at once: the server died (the phase ends there).
    pub collapse: Option<super::died::Collapse>,
    /// The counts the collapse watch has seen, for the hold to go on from.
    pub drops: super::died::CollapseWatch,
    /// The host stalled on memory (PSI full) past the stop: the phase ended there.
    pub pressure_stop: Option<PressureStop>,
    /// Page reclaim over the phase (with the memory watchdog only).
    pub reclaim: Option<ReclaimRecord>,
}

/// The headroom the watchdog guards: what the run may still take, in the host's terms (the
/// floor applies to it). A memory cgroup with a limit bounds it: then it is the floor plus what
/// the cgroup still allows.
pub fn headroom(now: &Mem, base: &Mem, floor: u64) -> u64 {
    super::cgroup_room::usable(now.usable_since(base), floor, now.cgroup_usable)
}

/// Whether the memory cgroup, not the host's memory, is what the headroom is bound by now.
pub fn cgroup_binds(now: &Mem, base: &Mem, floor: u64) -> bool {
    super::cgroup_room::cgroup_binds(now.usable_since(base), floor, now.cgroup_usable)
}

/// The memory watchdog's state over the connect phase (the decision itself is
/// [`watchdog::step`]).
#[derive(Debug, Clone)]
pub struct Watch {
    pub target: u64,
    pub floor: u64,
    pub base: Mem,
    pub usable_start: u64,
    /// Predicted bytes per connection, used until 1,000 connections are open.
    pub predicted: f64,
    pub in_flight_cap: u64,
    /// The rate a step is assumed to open at until one is measured.
    pub rate: f64,
    /// The fastest rate measured over a step.
    peak_rate: f64,
    /// The time and count (open + in flight) of the last look.
    last: (Instant, u64),
    /// Reclaim and PSI over the phase, from the baseline before the first connect.
    pub reclaim: Option<ReclaimWatch>,
}

impl Watch {
    /// A watch from the baseline; `rate` is `--rate` when given.
    pub fn new(
        target: u64,
        floor: u64,
        base: Mem,
        predicted: f64,
        in_flight_cap: u64,
        rate: Option<f64>,
    ) -> Watch {
        Watch {
            target,
            floor,
            usable_start: headroom(&base, &base, floor),
            base,
            predicted,
            in_flight_cap,
            rate: rate.map_or(watchdog::ASSUMED_RATE, |r| {
                (r * 1.5).min(watchdog::ASSUMED_RATE)
            }),
            peak_rate: 0.0,
            last: (Instant::now(), 0),
            reclaim: None,
        }
    }

    /// The verdict for the next step, and the bytes per connection it assumed.
    pub fn verdict(&mut self, usable: u64, open: u64, in_flight: u64, m: &Mem) -> (Decision, f64) {
        // Per connection: the fall of usable memory or the growth of Slab, whichever is
        // larger (other processes on the host move MemAvailable both ways; Slab growth is
        // what the sockets themselves take).
        // Under a memory cgroup's limit the fall of its headroom is exactly what the run was
        // charged; the host's Slab then also grows with everything else on the host.
        let slab = if cgroup_binds(m, &self.base, self.floor) {
            0
        } else {
            m.slab.saturating_sub(self.base.slab)
        };
        let used = self.usable_start.saturating_sub(usable).max(slab);
        let per_conn = if open >= 1000 {
            (used as f64 / open as f64).max(self.predicted / 4.0)
        } else {
            self.predicted
        };
        let now = (Instant::now(), open + in_flight);
        let dt = now.0.saturating_duration_since(self.last.0).as_secs_f64();
        if dt > 0.0 && self.last.1 > 0 {
            self.peak_rate = self
                .peak_rate
                .max(now.1.saturating_sub(self.last.1) as f64 / dt);
        }
        self.last = now;
        // The assumed rate, or the fastest step seen with room for a burst when that is faster.
        let rate = self.rate.max(self.peak_rate * 1.5);
        // Connects that may still complete: up to the concurrency, never beyond the target.
        let in_flight = self
            .in_flight_cap
            .min(self.target.saturating_sub(open))
            .max(in_flight);
        let v = watchdog::step(&watchdog::Step {
            usable,
            floor: self.floor,
            per_connection: per_conn,
            in_flight,
            rate,
        });
        (v, per_conn)
    }

    fn stop(&self, usable: u64, per_conn: f64, before_start: bool, cgroup: bool) -> MemoryStop {
        MemoryStop {
            floor: self.floor,
            usable_at_start: self.usable_start,
            usable_at_stop: usable,
            bytes_per_connection: per_conn,
            before_start,
            cgroup,
        }
    }
}

/// The errors so far in a few words.
pub fn short_errors(s: &LoadSnapshot) -> String {
    let v: Vec<String> = s
        .errors
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(c, n)| format!("{} {}", c.label(), group(*n)))
        .collect();
    if v.is_empty() {
        "no errors".into()
    } else {
        v.join(" ")
    }
}

/// Runs the connect phase. With a watch, the memory watchdog paces it (and may stop it before
/// the first connection); without, it looks every [`TICK`].
pub fn connect(
    rig: &mut Rig,
    spec: &ConnectSpec,
    mut watch: Option<&mut Watch>,
    progress: &mut Progress,
    root: &Root,
    mut at_step: Option<StepSampler>,
) -> anyhow::Result<Connected> {
    let mut c = Connected::default();
    let mut step = 1u64;
    if let (Some(f), true) = (at_step.as_deref_mut(), spec.steps > 0) {
        f(0);
    }
    let t0 = Instant::now();
    // Before the first connection: not even one step may cross the floor.
    let mut next_step = TICK;
    if let Some(w) = watch.as_deref_mut() {
        let (usable, base) = (w.usable_start, w.base);
        w.reclaim = Some(ReclaimWatch::new(measure::pressure(root, 0.0, 0, &base)));
        match w.verdict(usable, 0, 0, &base) {
            (Decision::Go(d), _) => {
                progress.say(&format!(
                    "baseline taken; opening {} connections",
                    group(spec.target)
                ));
                next_step = d;
            }
            (Decision::Stop, per_conn) => {
                let cgroup = cgroup_binds(&base, &base, w.floor);
                c.memory_stop = Some(w.stop(usable, per_conn, true, cgroup));
            }
        }
    }
    if let (Some(cl), None) = (&rig.clients, &c.memory_stop) {
        set_step(rig, step, spec.steps);
        cl.gen.command(Cmd::Connect);
    }
    let (mut best, mut last_best) = (0u64, 0u64);
    let mut last_progress = Instant::now();
    let mut failed_at_progress = 0u64;
    let mut first_seen: Option<Instant> = None;
    let mut rate_prev = (Instant::now(), 0u64);
    let mut rate_now = 0.0f64;
    let mut rate_measured = false;
    while c.memory_stop.is_none() {
        if rig.sleep_or_signal(next_step) {
            c.interrupted = true;
            break;
        }
        let deaths = rig.reap(progress);
        c.dead_server.extend(deaths.server.iter().cloned());
        c.dead_clients.extend(deaths.clients.iter().cloned());
        if spec.stop_on_death && !deaths.is_empty() {
            break;
        }
        let ls = rig.load_snapshot();
        let open = rig.open(ls.as_ref());
        if let Some(l) = &ls {
            c.drops.feed(Instant::now(), l.open, l.dropped + l.lost);
            if let Some(col) = c.drops.found {
                progress.say(&format!(
                    "{} of {} connections dropped at once: the server died or restarted",
                    group(col.dropped),
                    group(col.open_before)
                ));
                c.collapse = Some(col);
                break;
            }
        }
        if let Some((class, n)) = ls.as_ref().and_then(LoadSnapshot::certificate_error) {
            progress.say(&format!(
                "stopped at the first certificate error: {} ({} connection{} refused it); every attempt would be refused alike",
                class.label(),
                group(n),
                if n == 1 { "" } else { "s" }
            ));
            break;
        }
        if spec.steps > 0 && step <= spec.steps && open >= spec.target * step / spec.steps {
            if let Some(f) = at_step.as_deref_mut() {
                let settled = settle_step(rig, &mut c.drops);
                f(settled);
                progress.say(&format!(
                    "step {step} of {}: {} open, server sampled",
                    spec.steps,
                    group(settled)
                ));
            }
            step += 1;
            set_step(rig, step, spec.steps);
        }
        if open > 0 && first_seen.is_none() {
            first_seen = Some(Instant::now());
        }
        if rate_prev.0.elapsed() >= RATE_WINDOW {
            rate_now =
                (open.saturating_sub(rate_prev.1)) as f64 / rate_prev.0.elapsed().as_secs_f64();
            rate_prev = (Instant::now(), open);
            rate_measured = true;
        } else if !rate_measured {
            // Before the first full window: the rate since the start, not a 0/s that is no rate.
            rate_now = open as f64 / t0.elapsed().as_secs_f64().max(1e-3);
        }
        let m = match watch {
            Some(_) => Some(measure::mem(root)?),
            None => None,
        };
        let usable = m
            .as_ref()
            .zip(watch.as_deref())
            .map(|(m, w)| headroom(m, &w.base, w.floor));
        progress.update(open, progress_line(rate_now, ls.as_ref(), usable));
        sample_half(rig, root, spec.target, open, &mut c);
        best = best.max(open);
        if open >= spec.target {
            c.reached_at = Some(t0.elapsed());
            break;
        }
        // Memory watchdog: hold before the next step could take usable memory under the floor.
        if let (Some(w), Some(m), Some(usable)) = (watch.as_deref_mut(), &m, usable) {
            let in_flight = ls.as_ref().map_or(0, |l| l.in_flight);
            let (v, per_conn) = w.verdict(usable, open, in_flight, m);
            let secs = t0.elapsed().as_secs_f64();
            let pressure = w
                .reclaim
                .as_mut()
                .and_then(|r| r.feed(measure::pressure(root, secs, open, m)));
            match (v, pressure) {
                (Decision::Go(d), None) => next_step = d,
                (_, p) => {
                    let cgroup = p.is_none() && cgroup_binds(m, &w.base, w.floor);
                    c.memory_stop = Some(w.stop(usable, per_conn, false, cgroup));
                    c.pressure_stop = p;
                    break;
                }
            }
        }
        let failed = ls.as_ref().map_or(0, LoadSnapshot::errors_total);
        if open > last_best {
            last_best = open;
            last_progress = Instant::now();
            failed_at_progress = failed;
        }
        let in_flight = ls.as_ref().map_or(0, |l| l.in_flight);
        let waited = match first_seen {
            None if rig.clients.is_none() => t0.elapsed() > EXTERNAL_WAIT,
            _ => {
                last_progress.elapsed() > stall_window(spec, in_flight, failed > failed_at_progress)
            }
        };
        if waited {
            break;
        }
    }
    c.most_open = best;
    c.reclaim = watch
        .as_deref()
        .and_then(|w| w.reclaim.as_ref().map(|r| r.record()));
    if let Some(cl) = &rig.clients {
        cl.gen.command(Cmd::Hold);
    }
    // External mode: the clock starts with the first connection, not with the server.
    let start_shift = match (rig.clients.is_none(), first_seen) {
        (true, Some(f)) => f.saturating_duration_since(t0).saturating_sub(TICK),
        _ => Duration::ZERO,
    };
    c.reached_at = c.reached_at.map(|d| d.saturating_sub(start_shift));
    c.connect_time = c
        .reached_at
        .unwrap_or_else(|| t0.elapsed().saturating_sub(start_shift));
    Ok(c)
}

/// How long the count may stay flat before the phase calls it stopped. A slow server is not
/// a stopped one: while connects are in flight and none has failed since the count last rose,
/// each of them still ends within the connect timeout (open, or failed as a connect_timeout
/// that the diagnosis names), so the window is at least that long. Once one fails (timed out,
/// refused, out of ports ...), or nothing is in flight, the count is as stopped as it looks:
/// the plain window.
fn stall_window(spec: &ConnectSpec, in_flight: u64, failed_since_rise: bool) -> Duration {
    if in_flight > 0 && !failed_since_rise {
        spec.stall.max(spec.connect_timeout)
    } else {
        spec.stall
    }
}

/// Limits the clients to step `step` of `steps` (none when `steps` is 0 or the ramp is done).
fn set_step(rig: &Rig, step: u64, steps: u64) {
    if let Some(cl) = &rig.clients {
        let f = (steps > 0 && step <= steps).then(|| step as f64 / steps as f64);
        cl.gen.set_step(f);
    }
}

/// At a step the clients open no more (their share of the step is open): waits until the
/// connects in flight complete and the server has had a quiet moment. Returns the connections
/// open then.
fn settle_step(rig: &Rig, drops: &mut super::died::CollapseWatch) -> u64 {
    let Some(cl) = &rig.clients else {
        return rig.open(None);
    };
    let t = Instant::now();
    loop {
        // The collapse watch keeps looking: a server that dies while the step settles drops
        // its connections between two of these looks, not seconds apart.
        let s = cl.gen.snapshot();
        drops.feed(Instant::now(), s.open, s.dropped + s.lost);
        if s.in_flight == 0 || t.elapsed() >= STEP_SETTLE_MAX || drops.found.is_some() {
            break;
        }
        std::thread::sleep(TICK / 2);
    }
    std::thread::sleep(STEP_QUIET);
    let s = cl.gen.snapshot();
    drops.feed(Instant::now(), s.open, s.dropped + s.lost);
    s.open
}

/// The progress line of the connect phase.
fn progress_line(rate: f64, load: Option<&LoadSnapshot>, usable: Option<u64>) -> String {
    let mut line = format!(
        "{rate:.0}/s | {}",
        load.map_or("external clients".into(), |l| format!(
            "in flight {} | {}",
            group(l.in_flight),
            short_errors(l)
        ))
    );
    if let Some(u) = usable {
        line.push_str(&format!(" | usable memory {}", bytes(u)));
    }
    line
}

/// Reads the processes' RSS once, when about half the target is open.
fn sample_half(rig: &Rig, root: &Root, target: u64, open: u64, c: &mut Connected) {
    let Some(server) = &rig.server else { return };
    if c.server_half.is_some() || open < target / 2 || target < 2 {
        return;
    }
    c.server_half = Some((
        measure::rss(root, &server.pids()),
        server.snapshot().connections,
    ));
    c.clients_half = rig
        .clients
        .as_ref()
        .map(|cl| (measure::rss(root, &cl.gen.pids()), open));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(stall: u64, connect_timeout: u64) -> ConnectSpec {
        ConnectSpec {
            target: 2500,
            stall: Duration::from_secs(stall),
            connect_timeout: Duration::from_secs(connect_timeout),
            stop_on_death: false,
            steps: 0,
        }
    }

    #[test]
    fn a_slow_server_gets_the_connect_timeout_a_stopped_one_the_stall() {
        // 1,024 handshakes in flight, none failed: each ends within the 10 s connect timeout.
        assert_eq!(
            stall_window(&spec(2, 10), 1024, false),
            Duration::from_secs(10)
        );
        // One failed since the count last rose, or nothing in flight: stopped as it looks.
        assert_eq!(
            stall_window(&spec(2, 10), 1024, true),
            Duration::from_secs(2)
        );
        assert_eq!(stall_window(&spec(2, 10), 0, false), Duration::from_secs(2));
        // A stall longer than the connect timeout stays as given.
        assert_eq!(
            stall_window(&spec(30, 10), 1024, false),
            Duration::from_secs(30)
        );
    }
}
