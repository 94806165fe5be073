//! `tune serve --verify N`: prove this host holds N websocket connections, or name what stops
//! it. Orchestration only: the server ([`embedded_server::server`]) and the load generator
//! ([`embedded_server::loadgen`]) run as processes of this binary; [`measure`] reads the host,
//! [`diagnose`] (pure) names the limit, [`report`] renders the result.

pub mod cgroup;
pub mod diagnose;
pub mod measure;
pub mod report;
pub mod watchdog;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write as _};
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use embedded_server::loadgen::{self, sources, Cmd, LoadConfig, LoadGen, LoadSnapshot, Target};
use embedded_server::server::Supervisor;
use embedded_server::sys::signal::{Signal, Signals};
use indicatif::{ProgressBar, ProgressStyle};

use crate::capacity::{self, bytes, group};
use crate::cli::serve::ServeArgs;
use crate::cli::Format;
use crate::cmd::{Context, Outcome};
use crate::knobs::Role;
use crate::root::Root;
use diagnose::{ClientSide, Evidence, MemoryStop};
use measure::{Mem, Rss};
use report::{Comparison, KernelMemory, Latency, Prediction, Report, Teardown, UserMemory};

/// Floor of the default memory floor.
pub const MIN_MEMORY_FLOOR: u64 = 256 << 20;
/// Sampling period of the run loop.
const TICK: Duration = Duration::from_millis(100);

/// Parses `512M`, `2G`, `1048576` (binary units).
pub fn parse_bytes(flag: &str, s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        Some('t' | 'T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{flag} {s:?}: expected bytes, like 512M, 2G or 1048576"))?;
    if !(n.is_finite() && n >= 0.0) {
        anyhow::bail!("{flag} {s:?}: expected a non-negative size");
    }
    Ok((n * mult as f64) as u64)
}

pub fn secs(flag: &str, v: f64) -> anyhow::Result<Duration> {
    if !(v.is_finite() && v >= 0.0) {
        anyhow::bail!("{flag} {v}: expected a non-negative number of seconds");
    }
    Ok(Duration::from_secs_f64(v))
}

/// The command that starts load worker `i`: this same binary, hidden subcommand.
pub fn load_worker_command(i: usize) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| "tune".into());
    let mut c = Command::new(exe);
    c.arg("__load-worker").arg("--index").arg(i.to_string());
    c
}

/// Resolves `--processes` and `--source` into the load generator's configuration.
#[allow(clippy::too_many_arguments)]
pub fn load_config(
    root: &Root,
    target: Target,
    conns: u64,
    processes: &str,
    concurrency: usize,
    rate: Option<f64>,
    source: Option<&str>,
    connect_timeout: f64,
    close_rate: u64,
    message_interval: Option<f64>,
) -> anyhow::Result<LoadConfig> {
    let (_, hard) = embedded_server::sys::rlimit::nofile().context("reading RLIMIT_NOFILE")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let processes = match processes {
        "auto" => loadgen::auto_processes(conns, hard, cores),
        p => match p.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => anyhow::bail!("--processes {p:?}: expected a number (1 or more) or `auto`"),
        },
    };
    if concurrency == 0 {
        anyhow::bail!("--concurrency 0: expected 1 or more connects in flight");
    }
    if let Some(r) = rate {
        if !(r.is_finite() && r > 0.0) {
            anyhow::bail!("--rate {r}: expected a positive number of connections per second");
        }
    }
    let srcs: Vec<IpAddr> = match source {
        Some(s) => sources::parse(s).map_err(anyhow::Error::msg)?,
        None if target.addr.ip().is_loopback() && target.addr.is_ipv4() => {
            let ports = measure::port_range(root).map_or(28_232, |(lo, hi)| hi - lo + 1);
            let per = conns.div_ceil(processes as u64);
            let k = loadgen::sources_per_process(per, ports) as usize;
            sources::loopback(k * processes)
        }
        None => Vec::new(),
    };
    check_sources(&srcs, &target)?;
    let ms = |v: f64| (v * 1000.0).round() as u64;
    Ok(LoadConfig {
        target,
        conns,
        processes,
        concurrency,
        rate,
        sources: srcs,
        message_interval_ms: match message_interval {
            Some(v) if v.is_finite() && v > 0.0 => Some(ms(v).max(1)),
            Some(v) => {
                anyhow::bail!("--message-interval {v}: expected a positive number of seconds")
            }
            None => None,
        },
        connect_timeout_ms: ms(secs("--connect-timeout", connect_timeout)?.as_secs_f64()).max(1),
        close_rate: close_rate.max(1),
    })
}

/// Refuses source addresses a client socket cannot bind (not addresses of this host) or of
/// another family than the target, before any load worker starts: otherwise every connect
/// fails with EADDRNOTAVAIL, which the diagnosis would read as running out of ports.
fn check_sources(srcs: &[IpAddr], target: &Target) -> anyhow::Result<()> {
    if let Some(ip) = srcs.iter().find(|ip| ip.is_ipv4() != target.addr.is_ipv4()) {
        anyhow::bail!(
            "--source {ip}: an IPv{} address, but the target {} is IPv{}; give source addresses of the target's family",
            if ip.is_ipv4() { 4 } else { 6 },
            target.addr,
            if target.addr.is_ipv4() { 4 } else { 6 }
        );
    }
    let bad = sources::unbindable(srcs);
    if bad.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = bad.iter().take(5).map(|(ip, _)| ip.to_string()).collect();
    let list = if bad.len() > shown.len() {
        format!("{} and {} more", shown.join(", "), bad.len() - shown.len())
    } else {
        shown.join(", ")
    };
    let which = if bad.len() == 1 {
        format!("--source {list}")
    } else {
        format!(
            "--source: {} of {} addresses ({list})",
            bad.len(),
            srcs.len()
        )
    };
    let (first, errno) = bad[0];
    if bad
        .iter()
        .all(|(_, e)| *e == embedded_server::sys::Errno::EADDRNOTAVAIL)
    {
        anyhow::bail!(
            "{which}: not an address of this host (binding a socket to it fails with EADDRNOTAVAIL), so no connection could start from it; give addresses this host has (`ip -brief addr` lists them; for a loopback target any of 127.0.0.2-127.255.255.254), or add the address to an interface first: ip addr add {first}/32 dev IFACE"
        );
    }
    anyhow::bail!(
        "{which}: cannot bind a client socket to {first}: {errno} ({}); give addresses this host can bind",
        errno.desc()
    )
}

/// A progress display: an indicatif bar on a terminal, a plain line every few seconds otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    last_line: Instant,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").finish()
    }
}

impl Progress {
    pub fn new(target: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(target);
            b.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        Progress {
            bar,
            last_line: Instant::now(),
        }
    }

    pub fn update(&mut self, pos: u64, msg: String) {
        match &self.bar {
            Some(b) => {
                b.set_position(pos);
                b.set_message(msg);
            }
            None => {
                if self.last_line.elapsed() >= Duration::from_secs(5) {
                    self.last_line = Instant::now();
                    eprintln!("{} {msg}", group(pos));
                }
            }
        }
    }

    pub fn say(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn error_map(s: &LoadSnapshot) -> BTreeMap<String, u64> {
    s.errors
        .iter()
        .map(|(c, n)| (c.label().to_string(), *n))
        .collect()
}

fn short_errors(s: &LoadSnapshot) -> String {
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

fn prediction(c: &capacity::Capacity, kernel_per_socket: u64) -> Prediction {
    Prediction {
        per_process: c.per_process.connections,
        per_host: c.per_host.connections,
        binding_limit: c.per_host.limit.to_string(),
        meets_target: c.meets_target,
        processes_needed: c.processes_needed,
        source_addresses_needed: c.source_addresses_needed,
        kernel_bytes_per_connection: kernel_per_socket * c.sockets_per_connection,
        per_server_worker: None,
        summary: c.summary(),
    }
}

fn per(delta: i64, n: u64) -> Option<f64> {
    (n > 0).then(|| delta as f64 / n as f64)
}

fn user_memory(base: Rss, half: Option<(Rss, u64)>, peak: Rss, peak_n: u64) -> UserMemory {
    let growth = per(peak.anon as i64 - base.anon as i64, peak_n);
    let marginal = half.and_then(|(h, hn)| {
        (peak_n > hn).then(|| (peak.anon as f64 - h.anon as f64) / (peak_n - hn) as f64)
    });
    UserMemory {
        processes: peak.processes.max(base.processes),
        baseline: base,
        half: half.map(|h| h.0),
        half_connections: half.map_or(0, |h| h.1),
        peak,
        peak_connections: peak_n,
        growth_bytes_per_connection: growth,
        marginal_bytes_per_connection: marginal,
    }
}

fn kernel_memory(
    base: &Mem,
    peak: &Mem,
    slab_before: &Option<Vec<crate::kernel::slabinfo::SlabCache>>,
    slab_peak: &Option<Vec<crate::kernel::slabinfo::SlabCache>>,
    n: u64,
) -> KernelMemory {
    let slab_delta = peak.slab as i64 - base.slab as i64;
    let free_delta = base.free as i64 - peak.free as i64;
    KernelMemory {
        slab_delta_bytes: slab_delta,
        memfree_delta_bytes: free_delta,
        slab_bytes_per_connection: per(slab_delta, n),
        memfree_bytes_per_connection: per(free_delta, n),
        slab_breakdown: match (slab_before, slab_peak) {
            (Some(a), Some(b)) => measure::slab_growth(a, b, n),
            _ => Vec::new(),
        },
        tcp_sockets_allocated_delta: None,
        tcp_sockets_expected: 0,
    }
}

fn knob_int(obs: &crate::knobs::Observation, name: &str) -> Option<u64> {
    obs.int(name)
}

fn tcp_mem(obs: &crate::knobs::Observation) -> Option<[u64; 3]> {
    match obs.get("net.ipv4.tcp_mem") {
        Some(crate::knobs::Value::Triple(t)) => Some(*t),
        _ => None,
    }
}

/// Waits `d`, returning early (true) on SIGINT/SIGTERM.
fn sleep_or_signal(signals: &Signals, d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if let Ok(Some(_)) = signals.next() {
            return true;
        }
        std::thread::sleep(TICK.min(end.saturating_duration_since(Instant::now())));
    }
    false
}

/// The memory watchdog's state over the connect phase (the decision itself is
/// [`watchdog::step`]).
struct Watch {
    target: u64,
    floor: u64,
    usable_start: u64,
    /// Predicted bytes per connection, used until 1,000 connections are open.
    predicted: f64,
    in_flight_cap: u64,
    /// The rate a step is assumed to open at until one is measured.
    rate: f64,
    /// The fastest rate measured over a step.
    peak_rate: f64,
    /// The time and count (open + in flight) of the last look.
    last: (Instant, u64),
}

impl Watch {
    /// The verdict for the next step, and the bytes per connection it assumed.
    fn verdict(
        &mut self,
        usable: u64,
        open: u64,
        in_flight: u64,
        m: &Mem,
        base: &Mem,
    ) -> (watchdog::Verdict, f64) {
        // Per connection: the fall of usable memory or the growth of Slab, whichever is
        // larger (other processes on the host move MemAvailable both ways; Slab growth is
        // what the sockets themselves take).
        let used = self
            .usable_start
            .saturating_sub(usable)
            .max(m.slab.saturating_sub(base.slab));
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
}

/// `tune serve --verify N`.
pub fn run(ctx: &Context, args: &ServeArgs, n: u64) -> anyhow::Result<Outcome> {
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
    let root = &ctx.root;
    // The load generator's configuration for a server at `addr`; called once with a probe
    // address so that bad --processes/--concurrency/--rate fail before any server worker starts.
    let load_cfg = |addr: std::net::SocketAddr| {
        load_config(
            root,
            Target {
                addr,
                host: addr.to_string(),
                path: "/".into(),
            },
            n,
            &args.processes,
            args.concurrency,
            args.rate,
            args.source.as_deref(),
            args.connect_timeout,
            args.close_rate,
            None,
        )
    };
    if !args.external {
        load_cfg(std::net::SocketAddr::new(
            std::net::Ipv4Addr::LOCALHOST.into(),
            1,
        ))?;
    }
    let obs = crate::knobs::observe(root, None);
    let role = if args.external {
        Role::Server
    } else {
        Role::Loopback
    };
    let mut inputs = capacity::Inputs::from_observation(&obs, role);
    if let Some(s) = &args.source {
        inputs.source_addresses = Some(sources::parse(s).map_err(anyhow::Error::msg)?.len() as u64);
    }
    let cap = capacity::estimate(&inputs, n);
    let pred = prediction(&cap, obs.facts.bytes_per_socket());
    let mut progress = Progress::new(n);
    for line in &pred.summary {
        progress.say(&format!("predicted {line}"));
    }
    // The server side's own cap per process: a worker keeps its backlog's worth of fds free
    // so that it can drain its accept queue when it stops listening at its cap.
    let cfg = crate::cmd::serve::server_config(args)?;
    let mut pred = pred;
    if let Ok((_, hard)) = embedded_server::sys::rlimit::nofile() {
        let per_worker = embedded_server::server::per_worker_capacity(hard, cfg.limits.backlog);
        pred.per_server_worker = Some(per_worker);
        progress.say(&format!(
            "predicted per server worker: {} (RLIMIT_NOFILE {} less {} fds kept to drain the accept queue and the worker's own fds)",
            crate::capacity::group(per_worker),
            crate::capacity::group(hard),
            crate::capacity::group(hard - per_worker)
        ));
    }
    let base_mem0 = measure::mem(root)?;
    let floor = match &args.memory_floor {
        Some(s) => parse_bytes("--memory-floor", s)?,
        None => (base_mem0.total / 100 * capacity::MEMORY_RESERVE_PERCENT).max(MIN_MEMORY_FLOOR),
    };
    if floor >= base_mem0.total {
        anyhow::bail!(
            "--memory-floor {}: at or above MemTotal {}, so not one connection could be opened; give a floor below the host's memory",
            capacity::bytes(floor),
            capacity::bytes(base_mem0.total)
        );
    }
    let stall = secs("--stall", args.stall)?.max(Duration::from_millis(500));

    // Block the signals before any child exists; children set up their own.
    let signals = Signals::new(&[Signal::SIGINT, Signal::SIGTERM])?;
    let mut sup = Supervisor::start(&cfg, &mut crate::cmd::serve::worker_command)?;
    let addr = sup.local_addr();
    progress.say(&format!(
        "listening on {addr} with {} server workers",
        sup.workers()
    ));
    let mut lg = if args.external {
        None
    } else {
        let lc = load_cfg(if addr.ip().is_unspecified() {
            std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        } else {
            addr
        })?;
        Some((LoadGen::start(&lc, &mut load_worker_command)?, lc))
    };
    let src_desc = lg.as_ref().map_or("other hosts".into(), |(_, lc)| {
        sources::describe(&lc.sources)
    });
    let src_count = lg.as_ref().map_or(0, |(_, lc)| lc.sources.len() as u64);
    let client_processes = lg.as_ref().map_or(0, |(g, _)| g.processes() as u64);
    if let Some((_, lc)) = &lg {
        progress.say(&format!(
            "{} client processes, sources: {}",
            lc.processes, src_desc
        ));
    } else {
        progress.say(&format!(
            "waiting for {} connections from other hosts: tune load ws://{addr}/ --conns N (per host)",
            group(n)
        ));
    }

    // Baseline.
    std::thread::sleep(Duration::from_millis(200));
    let base_mem = measure::mem(root)?;
    let slab_before = measure::slab(root);
    let sock_before = measure::sockstat(root);
    let net_before = measure::netstat(root);
    let ct_before = measure::conntrack(root);
    let srv_base = measure::rss(root, &sup.pids());
    let cli_base = lg.as_ref().map(|(g, _)| measure::rss(root, &g.pids()));
    let usable_start = base_mem.usable_since(&base_mem);
    let predicted_per_conn = pred.kernel_bytes_per_connection.max(1) as f64;
    // The watchdog's bounds: connects that may be in flight at once, and the rate a step may
    // open at (--rate with room for bursts, else one well above what this kind of host does).
    let in_flight_cap = lg
        .as_ref()
        .map_or(0, |(_, lc)| (lc.concurrency as u64).min(n));
    let assumed_rate = args.rate.map_or(watchdog::ASSUMED_RATE, |r| {
        (r * 1.5).min(watchdog::ASSUMED_RATE)
    });
    let mut watch = Watch {
        target: n,
        floor,
        usable_start,
        predicted: predicted_per_conn,
        in_flight_cap,
        rate: assumed_rate,
        peak_rate: 0.0,
        last: (Instant::now(), 0),
    };

    let t0 = Instant::now();
    let mut memory_stop: Option<MemoryStop> = None;
    // Before the first connection: not even one step may cross the floor.
    let mut next_step = match watch.verdict(usable_start, 0, 0, &base_mem, &base_mem) {
        (watchdog::Verdict::Go(d), _) => {
            progress.say(&format!("baseline taken; opening {} connections", group(n)));
            if let Some((g, _)) = &lg {
                g.command(Cmd::Connect);
            }
            d
        }
        (watchdog::Verdict::Stop, per_conn) => {
            memory_stop = Some(MemoryStop {
                floor,
                usable_at_start: usable_start,
                usable_at_stop: usable_start,
                bytes_per_connection: per_conn,
                before_start: true,
            });
            Duration::ZERO
        }
    };
    let mut interrupted = false;
    let mut reached_at: Option<Duration> = None;
    let mut best = 0u64;
    let mut last_progress = Instant::now();
    let mut first_seen: Option<Instant> = None;
    let mut half: Option<(Rss, u64)> = None;
    let mut cli_half: Option<(Rss, u64)> = None;
    let mut dead = Vec::new();
    let mut dead_load: Vec<loadgen::Died> = Vec::new();
    let mut rate_prev = (Instant::now(), 0u64);
    let mut rate_now = 0.0f64;
    let external_wait = Duration::from_secs(600);
    while memory_stop.is_none() {
        if sleep_or_signal(&signals, next_step) {
            interrupted = true;
            break;
        }
        for d in sup.reap() {
            dead.push(format!(
                "worker {} (pid {}) {}; {} connections lost",
                d.index, d.pid, d.status, d.lost_connections
            ));
        }
        if let Some((g, _)) = lg.as_mut() {
            dead_load.extend(g.reap());
        }
        if !dead.is_empty() || !dead_load.is_empty() {
            break;
        }
        let ss = sup.snapshot();
        let ls = lg.as_ref().map(|(g, _)| g.snapshot());
        let open = match &ls {
            Some(l) => l.open,
            None => ss.websockets_open,
        };
        if open > 0 && first_seen.is_none() {
            first_seen = Some(Instant::now());
        }
        if rate_prev.0.elapsed() >= Duration::from_secs(1) {
            rate_now =
                (open.saturating_sub(rate_prev.1)) as f64 / rate_prev.0.elapsed().as_secs_f64();
            rate_prev = (Instant::now(), open);
        }
        let m = measure::mem(root)?;
        let usable = m.usable_since(&base_mem);
        progress.update(
            open,
            format!(
                "{:.0}/s | {} | usable memory {}",
                rate_now,
                ls.as_ref().map_or("external clients".into(), short_errors),
                bytes(usable)
            ),
        );
        if half.is_none() && open >= n / 2 && n >= 2 {
            half = Some((measure::rss(root, &sup.pids()), ss.connections));
            cli_half = lg
                .as_ref()
                .map(|(g, _)| (measure::rss(root, &g.pids()), open));
        }
        if open >= n {
            reached_at = Some(t0.elapsed());
            break;
        }
        // Memory watchdog: hold before the next step could take usable memory under the floor.
        let in_flight = ls.as_ref().map_or(0, |l| l.in_flight);
        match watch.verdict(usable, open, in_flight, &m, &base_mem) {
            (watchdog::Verdict::Go(d), _) => next_step = d,
            (watchdog::Verdict::Stop, per_conn) => {
                if let Some((g, _)) = &lg {
                    g.command(Cmd::Hold);
                }
                memory_stop = Some(MemoryStop {
                    floor,
                    usable_at_start: usable_start,
                    usable_at_stop: usable,
                    bytes_per_connection: per_conn,
                    before_start: false,
                });
                break;
            }
        }
        if open > best {
            best = open;
            last_progress = Instant::now();
        }
        let waited = match first_seen {
            Some(_) => last_progress.elapsed() > stall,
            None if lg.is_some() => last_progress.elapsed() > stall,
            None => t0.elapsed() > external_wait,
        };
        if waited {
            break;
        }
    }
    // External mode: the clock starts with the first connection, not with the server.
    let start_shift = match (lg.is_none(), first_seen) {
        (true, Some(f)) => f.saturating_duration_since(t0).saturating_sub(TICK),
        _ => Duration::ZERO,
    };
    let reached_at = reached_at.map(|d| d.saturating_sub(start_shift));
    let connect_secs = reached_at.unwrap_or_else(|| t0.elapsed().saturating_sub(start_shift));
    if let Some((g, _)) = &lg {
        g.command(Cmd::Hold);
    }
    std::thread::sleep(Duration::from_millis(150));

    // Peak measurements.
    let peak_mem = measure::mem(root)?;
    let slab_peak = measure::slab(root);
    let sock_peak = measure::sockstat(root);
    let net_peak = measure::netstat(root);
    let ct_peak = measure::conntrack(root);
    let srv_peak = measure::rss(root, &sup.pids());
    let cli_peak = lg.as_ref().map(|(g, _)| measure::rss(root, &g.pids()));
    let ss_peak = sup.snapshot();
    let ls_peak = lg.as_ref().map(|(g, _)| g.snapshot());
    let reached = match &ls_peak {
        Some(l) => l.open,
        None => ss_peak.websockets_open,
    };
    let server_side = diagnose::server_side(&sup.prometheus(), cfg.limits.backlog.max(0) as u64);
    let netstat_connect = measure::deltas(&net_before, &net_peak);

    // Hold, then the echo round.
    let mut echoes = None;
    let mut notes = Vec::new();
    let reached_all = reached >= n && dead.is_empty() && dead_load.is_empty() && !interrupted;
    if reached_all {
        progress.say(&format!(
            "reached {} in {:.2} s; holding {} s",
            group(n),
            connect_secs.as_secs_f64(),
            args.hold
        ));
        let msgs_before = sup.snapshot().messages_in;
        interrupted = sleep_or_signal(&signals, Duration::from_secs(args.hold));
        if !interrupted {
            match &lg {
                Some((g, _)) => {
                    let before = g.snapshot().echo_recv;
                    g.echo_round();
                    let mut last = before;
                    let mut last_t = Instant::now();
                    loop {
                        if sleep_or_signal(&signals, TICK) {
                            interrupted = true;
                            break;
                        }
                        let s = g.snapshot();
                        let got = s.echo_recv - before;
                        progress.update(got, format!("echoes | {}", short_errors(&s)));
                        if got >= reached {
                            break;
                        }
                        if s.echo_recv > last {
                            last = s.echo_recv;
                            last_t = Instant::now();
                        } else if last_t.elapsed() > stall.max(Duration::from_secs(5)) {
                            notes.push(format!(
                                "the echo round stopped at {} of {} echoes",
                                group(got),
                                group(reached)
                            ));
                            break;
                        }
                    }
                    echoes = Some(g.snapshot().echo_recv - before);
                    g.command(Cmd::Hold);
                }
                None => {
                    let m = sup.snapshot().messages_in - msgs_before;
                    notes.push(format!(
                        "external mode: the clients' messages during the hold: {} (send them with tune load --message-interval)",
                        group(m)
                    ));
                }
            }
        }
    }
    let ls_after_hold = lg.as_ref().map(|(g, _)| g.snapshot());
    let ss_after_hold = sup.snapshot();
    let dropped = match &ls_after_hold {
        Some(l) => l.dropped + l.lost,
        None => reached.saturating_sub(ss_after_hold.websockets_open),
    };
    progress.finish();

    // Teardown in batches: the clients close (websocket close handshake) at --close-rate, then
    // the server stops with nothing left to close.
    let net_before_teardown = measure::netstat(root);
    let t_down = Instant::now();
    let mut closed = 0;
    let mut hist = None;
    if let Some((mut g, lc)) = lg.take() {
        g.command(Cmd::Close);
        let budget = Duration::from_secs_f64(reached as f64 / lc.close_rate as f64 * 3.0 + 15.0);
        let end = Instant::now() + budget;
        while Instant::now() < end {
            dead_load.extend(g.reap());
            let s = g.snapshot();
            if (s.processes_closed + s.processes_died) as usize >= g.processes() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        closed = g.snapshot().closed;
        hist = Some(g.finish(Duration::from_secs(5)));
    }
    let summary = sup.shutdown();
    if lg.is_none() && client_processes == 0 {
        closed = summary.open_at_shutdown;
    }
    let teardown_secs = t_down.elapsed().as_secs_f64();
    // TIME_WAIT and FIN states finish in the kernel after close; give the counters a moment.
    std::thread::sleep(Duration::from_millis(300));
    let net_after = measure::netstat(root);
    let sock_after = measure::sockstat(root);
    let teardown_deltas = measure::deltas(&net_before_teardown, &net_after);

    // Diagnosis.
    let ls_final = ls_after_hold.clone().or(ls_peak.clone());
    let client = ls_final.as_ref().map(|l| ClientSide {
        processes: client_processes,
        fd_cap: l.fd_cap,
        errors: error_map(l),
        sources: src_count,
        last_errno: l.last_errno,
        in_flight: l.in_flight,
    });
    let ev = Evidence {
        target: n,
        established: reached,
        client,
        server: Some(server_side),
        netstat: netstat_connect.clone(),
        conntrack_count: ct_peak.count,
        conntrack_max: ct_peak.max,
        conntrack_drops: (ct_peak.drop + ct_peak.insert_failed)
            .saturating_sub(ct_before.drop + ct_before.insert_failed),
        port_range: measure::port_range(root),
        file_max: knob_int(&obs, "fs.file-max"),
        somaxconn: knob_int(&obs, "net.core.somaxconn"),
        tcp_mem: tcp_mem(&obs),
        memory: memory_stop,
    };
    let mut diagnosis = if interrupted {
        None
    } else {
        diagnose::diagnose(&ev)
    };
    if !dead_load.is_empty() && !interrupted {
        diagnosis = Some(diagnose::load_worker_died(&dead_load));
    }
    if !dead.is_empty() {
        diagnosis = Some(diagnose::Diagnosis {
            limit: "server_worker_died".into(),
            knob: None,
            side: "server".into(),
            value: dead.join("; "),
            evidence: "a server worker exited during the run (not restarted)".into(),
            fix: vec!["see the worker's error above; dmesg shows OOM kills".into()],
            projected_connections: None,
        });
    }
    if interrupted {
        notes.push("interrupted by a signal before the run finished".into());
    }
    let echoes_ok = match (&lg_is_loopback(client_processes), echoes) {
        (true, Some(e)) => e >= n,
        (true, None) => false,
        (false, _) => true,
    };
    let verified = reached_all
        && !interrupted
        && echoes_ok
        && dropped == 0
        && dead.is_empty()
        && dead_load.is_empty();
    if reached_all && !verified && !interrupted && diagnosis.is_none() {
        diagnosis = Some(diagnose::Diagnosis {
            limit: if dropped > 0 { "dropped" } else { "echo" }.into(),
            knob: None,
            side: "server".into(),
            value: format!(
                "{} dropped, {} echoes of {}",
                group(dropped),
                group(echoes.unwrap_or(0)),
                group(n)
            ),
            evidence: "every connection was open, but not every one answered its echo".into(),
            fix: vec!["look at the server's /metrics (closed by reason) and dmesg".into()],
            projected_connections: None,
        });
    }

    let handshake_latency = hist.as_ref().and_then(|h| Latency::of(&h.handshake_us));
    let echo_latency = hist.as_ref().and_then(|h| Latency::of(&h.echo_us));
    if let Some(h) = &hist {
        if h.missing_reports > 0 {
            notes.push(format!(
                "{} client processes did not report latency",
                h.missing_reports
            ));
        }
    }
    let server_memory = user_memory(srv_base, half, srv_peak, ss_peak.connections);
    let client_memory = match (cli_base, cli_peak) {
        (Some(b), Some(p)) => Some(user_memory(b, cli_half, p, reached)),
        _ => None,
    };
    let mut kernel = kernel_memory(&base_mem, &peak_mem, &slab_before, &slab_peak, reached);
    // Slab and MemFree are host-wide: other processes opening or closing sockets meanwhile
    // move them too. The host's allocated TCP sockets tell how much.
    let sockets_per_connection = if args.external { 1 } else { 2 };
    kernel.tcp_sockets_expected = reached * sockets_per_connection;
    kernel.tcp_sockets_allocated_delta = match (&sock_before, &sock_peak) {
        (Some(a), Some(b)) => Some(b.tcp_alloc as i64 - a.tcp_alloc as i64),
        _ => None,
    };
    if let Some(note) = report::other_activity_note(
        kernel.tcp_sockets_allocated_delta,
        reached,
        sockets_per_connection,
    ) {
        notes.push(note);
    }
    let rate = reached as f64 / connect_secs.as_secs_f64().max(1e-6);
    let mut cmp = vec![Comparison {
        what: "connections the host holds".into(),
        predicted: pred.per_host.map_or("unknown".into(), |v| {
            format!("~{} (bound by {})", capacity::approx(v), pred.binding_limit)
        }),
        measured: if verified {
            format!("{} held (not the limit)", group(n))
        } else {
            format!("{} reached", group(reached))
        },
    }];
    cmp.push(Comparison {
        what: "kernel memory per connection".into(),
        predicted: bytes(pred.kernel_bytes_per_connection),
        measured: kernel.slab_bytes_per_connection.map_or("n/a".into(), |v| {
            let proc_inodes = kernel
                .slab_breakdown
                .iter()
                .find(|g| g.cache == report::PROC_INODE_CACHE)
                .map_or(0.0, |g| g.bytes_per_connection);
            if proc_inodes >= 100.0 {
                format!(
                    "{} (Slab), {} of it /proc inodes (see proc_inode_cache above)",
                    bytes(v.max(0.0) as u64),
                    bytes(proc_inodes as u64)
                )
            } else {
                format!("{} (Slab)", bytes(v.max(0.0) as u64))
            }
        }),
    });
    // The server workers' own cap (fd cap less the accept-queue reserve), not the host's
    // per-process figure: that is what a worker can really hold.
    if let Some(pw) = pred.per_server_worker {
        cmp.push(Comparison {
            what: "connections per server worker".into(),
            predicted: format!(
                "{} (RLIMIT_NOFILE less the accept-queue reserve)",
                group(pw)
            ),
            measured: format!(
                "{} server workers held at most {}",
                sup_workers(&ev),
                group(ev.server.as_ref().map_or(0, |s| {
                    s.workers.iter().map(|w| w.connections).max().unwrap_or(0)
                }))
            ),
        });
    }
    let outcome = if verified {
        Outcome::Pass
    } else {
        Outcome::ShortFall
    };
    let report = Report {
        schema_version: report::SCHEMA_VERSION,
        mode: if args.external {
            "external"
        } else {
            "loopback"
        }
        .into(),
        target: n,
        verified,
        exit_code: outcome.exit_code(),
        listen: addr.to_string(),
        reached,
        server_websockets_at_peak: ss_peak.websockets_open,
        time_to_reach_seconds: reached_at.map(|d| d.as_secs_f64()),
        connect_seconds: connect_secs.as_secs_f64(),
        connections_per_second: rate,
        echoes_expected: (client_processes > 0 && reached_all).then_some(n),
        echoes,
        dropped,
        handshake_latency,
        echo_latency,
        server_processes: summary.workers as u64,
        client_processes,
        sources: src_desc,
        server_memory,
        client_memory,
        kernel_memory: kernel,
        sockstat_before: sock_before,
        sockstat_peak: sock_peak,
        sockstat_after: sock_after,
        netstat_deltas: netstat_connect,
        conntrack_before: ct_before,
        conntrack_peak: ct_peak,
        errors: ls_final.as_ref().map(error_map).unwrap_or_default(),
        dead_server_workers: dead,
        memory_watchdog: report::MemoryWatchdog {
            floor_bytes: floor,
            usable_at_start_bytes: usable_start,
            stopped: memory_stop.is_some(),
            stopped_before_start: memory_stop.is_some_and(|m| m.before_start),
            usable_at_stop_bytes: memory_stop.map(|m| m.usable_at_stop),
            bytes_per_connection: memory_stop.map(|m| m.bytes_per_connection),
        },
        dead_client_processes: dead_load
            .iter()
            .map(|d| {
                format!(
                    "load worker {} {}; {} connections lost",
                    d.index,
                    d.status,
                    group(d.lost)
                )
            })
            .collect(),
        prediction: pred,
        predicted_vs_measured: cmp,
        diagnosis,
        teardown: Some(Teardown {
            seconds: teardown_secs,
            closed,
            tcp_memory_pressures_delta: teardown_deltas.get("TCPMemoryPressures").copied(),
            netstat_deltas: teardown_deltas,
        }),
        notes,
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        _ => write!(out, "{}", report.render_table())?,
    }
    out.flush()?;
    Ok(outcome)
}

fn lg_is_loopback(client_processes: u64) -> bool {
    client_processes > 0
}

fn sup_workers(e: &Evidence) -> usize {
    e.server.as_ref().map_or(0, |s| s.workers.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("--x", "512M").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("--x", "2G").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("--x", "1.5k").unwrap(), 1536);
        assert_eq!(parse_bytes("--x", "100").unwrap(), 100);
        assert!(parse_bytes("--x", "lots")
            .unwrap_err()
            .to_string()
            .contains("--x"));
        assert!(parse_bytes("--x", "-1G").is_err());
    }
}
