//! One refresh of `tune top`: every limit's use and size read through [`Host`] and the registry, as a [`Sample`].
//!
//! The limits come from the same places check reads them (the registry's sysctls, `file-nr`,
//! conntrack, sockstat, netstat, meminfo, the memory cgroup), with the same parsers; what
//! does not change between refreshes (kernel bytes per socket) is taken from check's
//! [`Observation`] once. Two costs are bounded here: open fds per process come from one
//! `stat` each ([`crate::kernel::fds`]), and the port tables, which grow with the sockets,
//! are scanned on a thread of their own, at most once every [`PORT_SCAN_COST_FACTOR`] times
//! their last scan's CPU.

use std::time::{Duration, Instant};

use super::model::{Key, Kind, Reading, Sample};
use crate::capacity::cgroup_bounds::CGROUP_BYTES_PER_SOCKET;
use crate::capacity::MEMORY_RESERVE_PERCENT;
use crate::kernel::cgroup::{self, MemoryCgroup};
use crate::kernel::fds::FdSource;
use crate::kernel::meminfo::Meminfo;
use crate::kernel::tcp_table::PortUse;
use crate::kernel::Host;
use crate::knobs::{KnobId, Observation, Value, LIMIT_COUNTERS};
use crate::units::group;
use crate::values::{Input, Suggest};

/// The counters `tune top` shows as rates: the four the issue names, by their kernel names
/// (TCPReqQFullDrop is the SYN dropped for a full request queue). Each is in the registry's
/// [`LIMIT_COUNTERS`], which says which knob it points at.
pub const COUNTERS: [&str; 4] = [
    "ListenOverflows",
    "ListenDrops",
    "TCPReqQFullDrop",
    "TCPMemoryPressures",
];

/// A port scan waits this many times its own last duration before the next one: the scan
/// then takes at most 1/40 of a core on average (25 ms a second), however many sockets the
/// tables hold; the port figure is as old as 40 scans' CPU (4 s at 40,000 sockets here).
pub const PORT_SCAN_COST_FACTOR: u32 = 40;

/// Processes shown with their fds when no `--pid` is given: the ones holding most.
pub const DEFAULT_PROCESSES: usize = 5;

/// What one scan of the port tables found, and its CPU (wall time where the clock fails).
type ScanResult = (Duration, Result<Option<PortUse>, String>);

/// The port tables' scans: they run on a thread of their own, so a slow one (seconds at a
/// million sockets, or on a busy machine) never holds up a refresh; a refresh shows the last
/// one that finished.
#[derive(Debug, Default)]
struct PortScan {
    /// When the last finished scan started, what it cost and found.
    last: Option<(Instant, Duration, Option<PortUse>)>,
    /// The scan under way: when it started, and its thread.
    running: Option<(Instant, std::thread::JoinHandle<ScanResult>)>,
}

impl PortScan {
    fn due(&self, now: Instant) -> bool {
        self.running.is_none()
            && self
                .last
                .as_ref()
                .is_none_or(|(at, cost, _)| now >= *at + *cost * PORT_SCAN_COST_FACTOR)
    }

    /// Starts a scan of `root`'s tables for ports of `range`; a thread that cannot start
    /// becomes a note.
    fn start(&mut self, root: &crate::root::Root, range: [u64; 2], notes: &mut Vec<String>) {
        let root = root.clone();
        let scan = move || {
            let (t, cpu) = (
                Instant::now(),
                embedded_server::sys::proc::thread_cpu_time(),
            );
            let found = Host::new(&root).port_use(range).map_err(|e| e.to_string());
            let cost = match (cpu, embedded_server::sys::proc::thread_cpu_time()) {
                (Some(a), Some(b)) => b.saturating_sub(a),
                _ => t.elapsed(),
            };
            (cost, found)
        };
        match std::thread::Builder::new()
            .name("tune-top-ports".into())
            .spawn(scan)
        {
            Ok(h) => self.running = Some((Instant::now(), h)),
            Err(e) => {
                self.last = Some((Instant::now(), Duration::ZERO, None));
                notes.push(format!("ports: cannot start the scan: {e}"));
            }
        }
    }

    /// Collects the running scan when it has finished (`wait`: however long it takes); an
    /// error becomes a note.
    fn collect(&mut self, wait: bool, notes: &mut Vec<String>) {
        let finished = self
            .running
            .as_ref()
            .is_some_and(|(_, h)| wait || h.is_finished());
        if !finished {
            return;
        }
        let Some((at, h)) = self.running.take() else {
            return;
        };
        let (cost, found) = h
            .join()
            .unwrap_or_else(|_| (Duration::ZERO, Err("the scan panicked".into())));
        let found = found.unwrap_or_else(|e| {
            notes.push(format!("ports: {e}"));
            None
        });
        self.last = Some((at, cost, found));
    }
}

/// Reads samples for one `tune top` run.
#[derive(Debug)]
pub struct Sampler<'r> {
    host: Host<'r>,
    pid: Option<u32>,
    processes: usize,
    fd_source: FdSource,
    started: Instant,
    bytes_per_socket: u64,
    /// Conntrack takes an entry per connection here (probed by check's observation, or seen
    /// from a count above 0 since).
    conntrack_tracks: bool,
    mem_base: Option<Meminfo>,
    ports: PortScan,
    /// Wait for each port scan to finish (`--once`: one frame, complete) instead of showing
    /// the last finished one.
    pub wait_for_ports: bool,
}

impl<'r> Sampler<'r> {
    /// `obs` is check's observation of the same root, read once at start.
    pub fn new(host: Host<'r>, obs: &Observation, pid: Option<u32>, processes: usize) -> Self {
        Sampler {
            host,
            pid,
            processes,
            fd_source: host.fd_source(),
            started: Instant::now(),
            bytes_per_socket: obs.facts.bytes_per_socket(),
            conntrack_tracks: obs.conntrack_tracking() == Some(true),
            mem_base: host.meminfo().ok(),
            ports: PortScan::default(),
            wait_for_ports: false,
        }
    }

    /// One refresh, phase by phase; what cannot be read becomes a note, not an error.
    pub fn sample(&mut self) -> Sample {
        let mut s = Sample {
            at: self.started.elapsed().as_secs_f64(),
            ..Sample::default()
        };
        self.processes(&mut s);
        self.files(&mut s);
        self.conntrack(&mut s);
        self.ports(&mut s);
        self.tcp(&mut s);
        self.memory(&mut s);
        self.counters(&mut s);
        s
    }

    /// The processes holding the most fds (or the `--pid` one) against their RLIMIT_NOFILE.
    fn processes(&self, s: &mut Sample) {
        let me = std::process::id();
        let pids = match self.pid {
            Some(p) => vec![p],
            None => match self.host.pids() {
                Ok(p) => p.into_iter().filter(|p| *p != me).collect(),
                Err(e) => return s.notes.push(format!("processes: {e}")),
            },
        };
        let mut counted: Vec<(u64, u32)> = pids
            .iter()
            .filter_map(|p| Some((self.host.fd_count(Some(*p), self.fd_source).ok()?, *p)))
            .collect();
        if counted.is_empty() && self.pid.is_some() {
            s.notes.push(format!(
                "{}: not readable (exited?)",
                Suggest::set(Input::Pid, pids[0])
            ));
        }
        if counted.is_empty() && self.pid.is_none() {
            s.notes.push(format!(
                "fds: no process under {}",
                self.host.root().path("proc").display()
            ));
        }
        counted.sort_by(|a, b| b.cmp(a));
        for (fds, pid) in counted.into_iter().take(self.processes) {
            let proc = self.host.process(Some(pid));
            let Ok(nofile) = proc.nofile() else { continue };
            let comm = self.host.comm(Some(pid)).unwrap_or_else(|_| "?".into());
            s.readings.push(Reading {
                key: Key {
                    kind: Kind::Fds,
                    pid: Some(pid),
                },
                name: format!("fd {pid} {comm}"),
                used: fds,
                limit: nofile.soft,
                per_connection: Some(1.0),
                detail: format!(
                    "RLIMIT_NOFILE soft {} hard {}",
                    group(nofile.soft),
                    group(nofile.hard)
                ),
            });
        }
    }

    /// fs.file-nr against fs.file-max (file-nr's third number is file-max).
    fn files(&self, s: &mut Sample) {
        match self.host.file_nr() {
            Ok(f) => s.readings.push(host_reading(
                Kind::FileNr,
                f.in_use(),
                f.max,
                Some(1.0),
                format!("{} {}", KnobId::FileMax, group(f.max)),
            )),
            Err(e) => s.notes.push(format!("file-nr: {e}")),
        }
    }

    /// nf_conntrack_count against nf_conntrack_max, when conntrack is loaded.
    fn conntrack(&self, s: &mut Sample) {
        let c = self.host.conntrack();
        if let (Some(count), Some(max)) = (c.count, c.max) {
            // Untracked connections take no entry: then conntrack cannot bind.
            let tracks = self.conntrack_tracks || count > 0;
            s.readings.push(host_reading(
                Kind::Conntrack,
                count,
                max,
                tracks.then_some(1.0),
                format!(
                    "{} {}; drop {} insert_failed {}",
                    KnobId::ConntrackMax,
                    group(max),
                    group(c.drop),
                    group(c.insert_failed)
                ),
            ));
        } else if c.loaded {
            s.notes.push("conntrack: count or max unreadable".into());
        }
    }

    /// The busiest (source, destination) pair's ports against the range, scanned when due.
    fn ports(&mut self, s: &mut Sample) {
        let range = match read_knob(&self.host, KnobId::IpLocalPortRange) {
            Ok(Value::Range(r)) => r,
            Ok(_) => return,
            Err(e) => return s.notes.push(e),
        };
        let now = Instant::now();
        self.ports.collect(self.wait_for_ports, &mut s.notes);
        if self.ports.due(now) {
            self.ports.start(self.host.root(), range, &mut s.notes);
            self.ports.collect(self.wait_for_ports, &mut s.notes);
        }
        let Some((at, cost, found)) = &self.ports.last else {
            return;
        };
        s.port_scan_cpu_seconds = Some(cost.as_secs_f64());
        let Some(u) = found else { return };
        let pair = u.busiest_pair.as_deref().unwrap_or("no client sockets");
        s.readings.push(host_reading(
            Kind::Ports,
            u.busiest,
            crate::ports::count(range, 0),
            Some(1.0),
            format!(
                "{pair}; {} TIME_WAIT; scanned {:.0} s ago in {} ms",
                group(u.time_wait),
                now.duration_since(*at).as_secs_f64(),
                cost.as_millis()
            ),
        ));
    }

    /// sockstat's TCP line: buffer pages against tcp_mem's pressure threshold, orphans against
    /// tcp_max_orphans (both host-wide knobs, absent inside a child network namespace).
    fn tcp(&self, s: &mut Sample) {
        let tcp = match self.host.sockstat() {
            Ok(st) => st.tcp(),
            Err(e) => return s.notes.push(format!("sockstat: {e}")),
        };
        s.tcp = tcp;
        let Some(tcp) = tcp else { return };
        match read_knob(&self.host, KnobId::TcpMem) {
            Ok(Value::Triple([_, pressure, high])) => s.readings.push(host_reading(
                Kind::TcpMem,
                tcp.mem_pages,
                pressure,
                None,
                format!(
                    "{} pressure {} pages, high {}",
                    KnobId::TcpMem,
                    group(pressure),
                    group(high)
                ),
            )),
            Ok(_) => {}
            Err(e) => s.notes.push(e),
        }
        match read_knob(&self.host, KnobId::TcpMaxOrphans) {
            Ok(Value::Int(max)) => s.readings.push(host_reading(
                Kind::Orphans,
                tcp.orphan,
                max,
                None,
                format!("{} {}", KnobId::TcpMaxOrphans, group(max)),
            )),
            Ok(_) => {}
            Err(e) => s.notes.push(e),
        }
    }

    /// The memory cgroup's charge when one of its levels has a limit, else the host's memory,
    /// both at what one connection costs there.
    fn memory(&self, s: &mut Sample) {
        if let Some(m) = self.memory_cgroup() {
            if let (Some(b), Some(limit)) =
                (m.binding(), m.binding().and_then(|b| b.effective_limit()))
            {
                return s.readings.push(host_reading(
                    Kind::MemoryCgroup,
                    b.usage.unwrap_or(0),
                    limit,
                    Some(CGROUP_BYTES_PER_SOCKET as f64),
                    format!(
                        "cgroup {} at {} B charged per socket",
                        b.path,
                        group(CGROUP_BYTES_PER_SOCKET)
                    ),
                ));
            }
        }
        match self.host.meminfo() {
            Ok(m) => {
                let usable = match &self.mem_base {
                    Some(base) => m.usable_since(base),
                    None => m.usable(),
                };
                let limit = m.total - m.total / 100 * MEMORY_RESERVE_PERCENT;
                s.readings.push(host_reading(
                    Kind::Memory,
                    m.total.saturating_sub(usable),
                    limit,
                    Some(self.bytes_per_socket as f64),
                    format!(
                        "MemTotal less {MEMORY_RESERVE_PERCENT}% at {} B per socket",
                        group(self.bytes_per_socket)
                    ),
                ));
            }
            Err(e) => s.notes.push(format!("memory: {e}")),
        }
    }

    fn memory_cgroup(&self) -> Option<MemoryCgroup> {
        let root = self.host.root();
        let text = root
            .read(&self.host.process(self.pid).file("cgroup"))
            .ok()?;
        let files = |p: &str| root.read(p).ok();
        cgroup::for_process(&files, &text).ok()?.memory
    }

    /// The drop counters, cumulative (netstat and snmp).
    fn counters(&self, s: &mut Sample) {
        let n = self.host.net_counters();
        for c in LIMIT_COUNTERS.iter().filter(|c| COUNTERS.contains(&c.name)) {
            if let Some(v) = n.get(c.group, c.name) {
                s.counters.push((c.name, v));
            }
        }
    }
}

fn host_reading(kind: Kind, used: u64, limit: u64, per: Option<f64>, detail: String) -> Reading {
    Reading {
        key: Key { kind, pid: None },
        name: kind.label().replace('_', "-"),
        used,
        limit,
        per_connection: per,
        detail,
    }
}

/// A sysctl knob's live value through the registry (its name and shape), or why not.
fn read_knob(host: &Host, id: KnobId) -> Result<Value, String> {
    let knob = id.knob();
    let text = host.sysctl_text(knob.name).map_err(|e| {
        if e.is_absent() {
            format!("{}: absent (host-wide, hidden in a child netns)", knob.name)
        } else {
            e.to_string()
        }
    })?;
    Value::parse(knob.shape, &text).map_err(|e| format!("{}: {e}", knob.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::Root;

    #[test]
    fn the_counters_are_registry_limit_counters() {
        for name in COUNTERS {
            assert!(
                LIMIT_COUNTERS.iter().any(|c| c.name == name),
                "{name} is not in knobs::LIMIT_COUNTERS"
            );
        }
    }

    #[test]
    fn samples_the_live_host() {
        let root = Root::host();
        let obs = crate::knobs::observe(&root, None);
        let mut sampler = Sampler::new(Host::new(&root), &obs, None, 3);
        sampler.wait_for_ports = true;
        let s = sampler.sample();
        let kinds: Vec<Kind> = s.readings.iter().map(|r| r.key.kind).collect();
        for k in [Kind::FileNr, Kind::Ports] {
            assert!(kinds.contains(&k), "{k:?} missing: {s:#?}");
        }
        assert!(kinds.contains(&Kind::Memory) || kinds.contains(&Kind::MemoryCgroup));
        let fds = kinds.iter().filter(|k| **k == Kind::Fds).count();
        assert!((1..=3).contains(&fds), "{s:#?}");
        assert_eq!(s.counters.len(), COUNTERS.len(), "{s:#?}");
        assert!(sampler.ports.last.is_some());
    }
}
