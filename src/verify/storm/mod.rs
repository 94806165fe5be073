//! The storm phase of `serve --verify --storm` and `load --storm`: with N held, every client
//! drops and reconnects at once, or the server's workers are killed and restarted (or, in
//! `tune load`, someone else's server restarts); the phase follows the count back to N and
//! records the recovery, the listen counters and the memory it took. [`diagnose`] (pure)
//! names what slowed the recovery and the reconnect policy this host absorbs; [`report`]
//! renders it.

pub mod diagnose;
pub mod report;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use embedded_server::loadgen::storm::GIVE_UP_AFTER;
use embedded_server::loadgen::{LoadSnapshot, ReconnectPolicy};
use serde::Serialize;

use super::measure::{self, Mem};
use super::progress::Progress;
use super::rig::Rig;
use crate::root::Root;
use crate::units::group;

/// How often the count is read during a storm: recovery times are reported to this.
const STORM_TICK: Duration = Duration::from_millis(20);
/// How often memory is read during a storm (the processes' RSS costs /proc reads).
const MEM_TICK: Duration = Duration::from_millis(100);
/// The phase ends when no client is waiting or connecting for this long short of the target.
const IDLE_END: Duration = Duration::from_secs(2);
/// The window the connect rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Which storm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StormKind {
    /// Every client drops and reconnects at once.
    Clients,
    /// The server restarts (here: its workers killed and started again) and every client
    /// reconnects.
    Restart,
    /// The server restarts gracefully: new workers listen first, then the old ones close
    /// their connections (1001) evenly over the drain window and every client reconnects.
    Graceful,
}

impl StormKind {
    /// Its name in reports (`clients`, `restart`, `graceful`).
    pub fn label(self) -> &'static str {
        match self {
            StormKind::Clients => "clients",
            StormKind::Restart => "restart",
            StormKind::Graceful => "graceful",
        }
    }
}

/// The storm a run makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StormPlan {
    pub kind: StormKind,
    pub policy: ReconnectPolicy,
    /// A graceful restart's drain window (the old workers' connections closed evenly over it).
    pub drain: Duration,
}

/// The drain window of a graceful restart when none is given: 30 s, the window the storm's
/// jitter advice gives a million clients on these hosts (1M over 30 s is 33k connects/s, about
/// what the C floor accepts here: host-facts.md), so even the largest run here reconnects no
/// faster than the host accepts; a smaller fleet comes back at a fraction of that rate.
pub const DRAIN_DEFAULT: Duration = Duration::from_secs(30);

/// What the storm phase saw.
#[derive(Debug, Clone, Default)]
pub struct Stormed {
    pub target: u64,
    /// Connections open when the storm began.
    pub open_before: u64,
    /// Connections dropped by the storm (the clients' or the server's side).
    pub dropped: u64,
    /// From the storm's start to all `target` open again (`None`: not recovered).
    pub recovered_in: Option<Duration>,
    /// Open at the end of the phase.
    pub open_after: u64,
    /// Length of the phase.
    pub seconds: f64,
    /// Connects completed per second: over the whole recovery, and the best 1 s window.
    pub mean_rate: f64,
    pub peak_rate: f64,
    /// Connects per second from 10% to 90% of the reconnects: the pace the host keeps up.
    /// The best second is no measure of it: after a restart it counts handshakes the kernel
    /// queued while no worker accepted (114k/s in one second at 1M here, against the C floor's
    /// 25k/s), and a policy sized on it lets clients come back far too fast.
    pub sustained_rate: f64,
    /// Reconnect attempts that failed, by class, during the storm.
    pub errors: BTreeMap<String, u64>,
    pub failed_attempts: u64,
    pub gave_up: u64,
    /// Growth of the watched kernel counters over the storm.
    pub counters: BTreeMap<String, u64>,
    /// Peak host memory in use (MemTotal - MemFree) over its value when the storm began, and
    /// the peak Slab, bytes.
    pub peak_memory_growth: u64,
    pub peak_slab: u64,
    /// Peak resident memory of the server and client processes together.
    pub peak_rss: u64,
    /// The server restart: time to stop the old workers and to start new ones (restart storm
    /// made here; graceful: the new ones start first, and the old ones are gone when their
    /// drain ends).
    pub restart: Option<(Duration, Duration)>,
    /// `tune load --storm restart`: the server's restart was seen (`None`: not waited for).
    pub restart_detected: Option<bool>,
    /// TIME_WAIT sockets after the storm (sockstat).
    pub time_wait_after: Option<u64>,
    pub interrupted: bool,
}

/// Starts the storm: the clients' drop, or the server's restart (a hard kill and start).
fn trigger(rig: &mut Rig, plan: &StormPlan, s: &mut Stormed) -> anyhow::Result<()> {
    let Some(cl) = &rig.clients else {
        anyhow::bail!("a storm needs the load generator here");
    };
    match plan.kind {
        StormKind::Clients => cl.gen.storm(&plan.policy, true),
        StormKind::Restart | StormKind::Graceful => {
            cl.gen.storm(&plan.policy, false);
            if let Some(sup) = rig.server.as_mut() {
                let spawn = &mut crate::launch::worker_command;
                let r = match plan.kind {
                    StormKind::Graceful => sup.restart_graceful(spawn, plan.drain)?,
                    _ => sup.restart_hard(spawn)?,
                };
                s.dropped = r.dropped;
                s.restart = Some((r.stopped, r.started));
            }
        }
    }
    Ok(())
}

/// Connections the old workers of a graceful restart still hold, plus those workers still
/// running (0 without one); the ones that exited are reaped, a death said.
fn draining(rig: &mut Rig, progress: &Progress) -> u64 {
    let Some(s) = rig.server.as_mut() else {
        return 0;
    };
    for w in s.reap_drained() {
        progress.say(&format!(
            "old server worker {} (pid {}) {} while draining; {} connections lost",
            w.index, w.pid, w.status, w.lost_connections
        ));
    }
    let (held, workers) = s.draining_connections();
    held + workers as u64
}

/// Memory peaks over the storm.
struct MemPeak {
    base_used: u64,
    growth: u64,
    slab: u64,
    rss: u64,
    last: Instant,
}

impl MemPeak {
    fn new(base: &Mem) -> Self {
        MemPeak {
            base_used: base.total.saturating_sub(base.free),
            growth: 0,
            slab: base.slab,
            rss: 0,
            last: Instant::now() - MEM_TICK,
        }
    }

    fn look(&mut self, root: &Root, rig: &Rig) {
        if self.last.elapsed() < MEM_TICK {
            return;
        }
        self.last = Instant::now();
        if let Ok(m) = measure::mem(root) {
            let used = m.total.saturating_sub(m.free);
            self.growth = self.growth.max(used.saturating_sub(self.base_used));
            self.slab = self.slab.max(m.slab);
        }
        let rss = super::sample::ProcessRss::take(root, rig);
        let total = rss.server.total + rss.clients.map_or(0, |c| c.total);
        self.rss = self.rss.max(total);
    }
}

/// Runs the storm on a rig holding `target` connections and follows the recovery until every
/// connection is back, every client gave up, or a signal comes.
pub fn storm(
    rig: &mut Rig,
    plan: &StormPlan,
    target: u64,
    root: &Root,
    progress: &mut Progress,
) -> anyhow::Result<Stormed> {
    let start = Start::take(rig, root, target)?;
    progress.say(&format!(
        "storm ({}): {} clients reconnect {}",
        match plan.kind {
            StormKind::Clients => "every client drops its connection",
            StormKind::Restart => "the server's workers are killed and restarted",
            StormKind::Graceful =>
                "the server restarts gracefully: new workers listen, the old ones drain",
        },
        group(start.before.open),
        plan.policy.describe()
    ));
    let t0 = Instant::now();
    let mut s = start.record();
    trigger(rig, plan, &mut s)?;
    follow(rig, start, s, t0, root, progress)
}

/// `tune load --storm restart`: the clients reconnect by `policy` whenever they lose their
/// connection, and the phase waits up to `wait` for the server to drop them all (at least
/// half at once: a restart), then follows the recovery from the first drop. `None`: no
/// restart came.
pub fn await_restart(
    rig: &mut Rig,
    policy: &ReconnectPolicy,
    target: u64,
    wait: Duration,
    root: &Root,
    progress: &mut Progress,
) -> anyhow::Result<Option<Stormed>> {
    let start = Start::take(rig, root, target)?;
    let Some(cl) = &rig.clients else {
        anyhow::bail!("a storm needs the load generator here");
    };
    cl.gen.storm(policy, false);
    progress.say(&format!(
        "waiting up to {:.0} s for the server to restart; clients reconnect {}",
        wait.as_secs_f64(),
        policy.describe()
    ));
    let end = Instant::now() + wait;
    let mut first_drop: Option<Instant> = None;
    while Instant::now() < end {
        if rig.sleep_or_signal(STORM_TICK) {
            return Ok(None);
        }
        let now = rig.load_snapshot().unwrap_or_default();
        if now.open < start.before.open && first_drop.is_none() {
            first_drop = Some(Instant::now() - STORM_TICK / 2);
        }
        if now.open >= start.before.open {
            first_drop = None;
        }
        if let Some(t0) = first_drop.filter(|_| now.open * 2 <= start.before.open) {
            progress.say(&format!(
                "the server dropped {} of {} connections at once: a restart; following the recovery",
                group(start.before.open - now.open),
                group(start.before.open)
            ));
            let s = Stormed {
                restart_detected: Some(true),
                ..start.record()
            };
            return follow(rig, start, s, t0, root, progress).map(Some);
        }
        progress.update(
            now.open,
            format!(
                "waiting for a restart, {:.0} s left",
                end.saturating_duration_since(Instant::now()).as_secs_f64()
            ),
        );
    }
    Ok(None)
}

/// What a storm starts from.
struct Start {
    before: LoadSnapshot,
    net_before: crate::kernel::netstat::Netstat,
    mem: MemPeak,
    target: u64,
}

impl Start {
    fn take(rig: &Rig, root: &Root, target: u64) -> anyhow::Result<Start> {
        Ok(Start {
            net_before: measure::netstat(root),
            before: rig.load_snapshot().unwrap_or_default(),
            mem: MemPeak::new(&measure::mem(root)?),
            target,
        })
    }

    fn record(&self) -> Stormed {
        Stormed {
            target: self.target,
            open_before: self.before.open,
            ..Stormed::default()
        }
    }
}

/// Follows the recovery from `t0` until every connection is back, nobody is left to
/// reconnect, the clients' give-up time passed, or a signal comes.
fn follow(
    rig: &mut Rig,
    mut start: Start,
    mut s: Stormed,
    t0: Instant,
    root: &Root,
    progress: &mut Progress,
) -> anyhow::Result<Stormed> {
    let (before, target) = (start.before.clone(), start.target);
    let deadline = GIVE_UP_AFTER + Duration::from_secs(15);
    let mut window = (Instant::now(), before.reconnected);
    let mut now = before.clone();
    let mut idle_since: Option<Instant> = None;
    let mut decile = Deciles::new(target);
    loop {
        if rig.sleep_or_signal(STORM_TICK) {
            s.interrupted = true;
            break;
        }
        now = rig.load_snapshot().unwrap_or_default();
        start.mem.look(root, rig);
        if window.0.elapsed() >= RATE_WINDOW {
            let r =
                now.reconnected.saturating_sub(window.1) as f64 / window.0.elapsed().as_secs_f64();
            s.peak_rate = s.peak_rate.max(r);
            window = (Instant::now(), now.reconnected);
        }
        decile.look(now.reconnected.saturating_sub(before.reconnected));
        progress.update(
            now.open,
            format!(
                "storm {:.1} s | reconnected {} | waiting {} | in flight {} | failed {}",
                t0.elapsed().as_secs_f64(),
                group(now.reconnected - before.reconnected),
                group(now.reconnect_due),
                group(now.in_flight),
                group(now.reconnect_failed - before.reconnect_failed)
            ),
        );
        // Every client dropped first: a count still at N before the drop is not a recovery.
        let dropped_seen = now.reconnected > before.reconnected
            || now.reconnect_due > 0
            || now.in_flight > 0
            || now.open < before.open;
        // A graceful restart is over once the old workers are gone (reaped): until then
        // clients are still to be moved.
        let old = draining(rig, progress);
        if let (0, Some(r)) = (old, s.restart.as_mut()) {
            if r.0.is_zero() && rig.server.is_some() {
                r.0 = t0.elapsed();
            }
        }
        if dropped_seen && now.open >= target && old == 0 {
            s.recovered_in = Some(t0.elapsed());
            break;
        }
        // Nobody left to reconnect (every client back or given up) for a while: done.
        let idle = now.reconnect_due == 0 && now.in_flight == 0 && dropped_seen;
        match (idle, idle_since) {
            (true, None) => idle_since = Some(Instant::now()),
            (false, _) => idle_since = None,
            _ => {}
        }
        if idle_since.is_some_and(|t| t.elapsed() > IDLE_END) || t0.elapsed() > deadline {
            break;
        }
    }
    s.seconds = t0.elapsed().as_secs_f64();
    s.sustained_rate = decile.rate().unwrap_or(0.0);
    if let Some(cl) = &rig.clients {
        cl.gen.command(embedded_server::loadgen::Cmd::Hold);
    }
    std::thread::sleep(STORM_TICK * 3);
    let end = rig.load_snapshot().unwrap_or(now);
    finish(&mut s, &before, &end, &start.net_before, root, &start.mem);
    Ok(s)
}

/// When the reconnects passed 10% and 90% of the target, for [`Stormed::sustained_rate`].
struct Deciles {
    target: u64,
    t10: Option<Instant>,
    rate: Option<f64>,
}

impl Deciles {
    fn new(target: u64) -> Deciles {
        Deciles {
            target,
            t10: None,
            rate: None,
        }
    }

    /// `back` reconnects so far, looked at now.
    fn look(&mut self, back: u64) {
        let (lo, hi) = (self.target / 10, self.target * 9 / 10);
        match self.t10 {
            None if back >= lo && lo > 0 => self.t10 = Some(Instant::now()),
            Some(t) if back >= hi && self.rate.is_none() => {
                let secs = t.elapsed().as_secs_f64();
                if secs > 0.0 {
                    self.rate = Some((hi - lo) as f64 / secs);
                }
            }
            _ => {}
        }
    }

    /// Connects per second between the two, once both were passed.
    fn rate(&self) -> Option<f64> {
        self.rate
    }
}

/// The phase's figures from the counts before and after it.
fn finish(
    s: &mut Stormed,
    before: &LoadSnapshot,
    end: &LoadSnapshot,
    net_before: &crate::kernel::netstat::Netstat,
    root: &Root,
    mem: &MemPeak,
) {
    s.open_after = end.open;
    let reopened = end.reconnected.saturating_sub(before.reconnected);
    if s.dropped == 0 {
        s.dropped = reopened.max(s.open_before.saturating_sub(end.open));
    }
    let secs = s.recovered_in.map_or(s.seconds, |d| d.as_secs_f64());
    s.mean_rate = if secs > 0.0 {
        reopened as f64 / secs
    } else {
        0.0
    };
    s.peak_rate = s.peak_rate.max(s.mean_rate);
    if s.sustained_rate <= 0.0 {
        s.sustained_rate = s.mean_rate;
    }
    // 80% back within one rate window: the 1 s windows average it down.
    s.peak_rate = s.peak_rate.max(s.sustained_rate);
    s.failed_attempts = end.reconnect_failed.saturating_sub(before.reconnect_failed);
    s.gave_up = end.gave_up.saturating_sub(before.gave_up);
    for ((c, n), (_, b)) in end.errors.iter().zip(before.errors.iter()) {
        if n > b {
            s.errors.insert(c.label().to_string(), n - b);
        }
    }
    s.counters = measure::deltas(net_before, &measure::netstat(root));
    s.peak_memory_growth = mem.growth;
    s.peak_slab = mem.slab;
    s.peak_rss = mem.rss;
    s.time_wait_after = measure::sockstat(root).map(|k| k.tcp_tw);
}

/// The host's facts the storm's diagnosis quotes, from check's observation (typed knobs) and
/// the run's own: the server's listeners and backlog (`None` when the server is not ours),
/// conntrack's count in this namespace.
pub fn facts(
    obs: &crate::knobs::Observation,
    server: Option<(u64, u64)>,
    conntrack_count: Option<u64>,
    plan: &StormPlan,
) -> diagnose::StormFacts {
    let policy = &plan.policy;
    use crate::knobs::KnobId;
    diagnose::StormFacts {
        listeners: server.map(|s| s.0),
        backlog: server.map(|s| s.1),
        somaxconn: obs.int(KnobId::Somaxconn),
        tcp_max_syn_backlog: obs.int(KnobId::TcpMaxSynBacklog),
        syncookies: obs.int(KnobId::TcpSyncookies),
        tw_reuse: obs.int(KnobId::TcpTwReuse),
        conntrack_tracking: conntrack_count.is_some_and(|c| c > 0),
        conntrack_max: obs.int(KnobId::ConntrackMax),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        jitter_secs: policy.jitter.map_or(0.0, |d| d.as_secs_f64()),
        drain_secs: match plan.kind {
            StormKind::Graceful => plan.drain.as_secs_f64(),
            _ => 0.0,
        },
    }
}
