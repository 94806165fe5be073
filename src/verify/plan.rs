//! What a verify or load run is asked to do, resolved once from the command line (in `cmd/`):
//! [`VerifyPlan`] and [`LoadOptions`], and the resolution of the load options against this host
//! (`auto` processes from RLIMIT_NOFILE, default sources from the port range, sources that must
//! be bindable) into the load generator's [`LoadConfig`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use embedded_server::loadgen::{self, sources, LoadConfig, Target};
use embedded_server::server::ServerConfig;

use super::measure;
use crate::root::Root;
use crate::values::{Input, Processes, Refused, Suggest};

/// Floor of the default memory floor.
pub const MIN_MEMORY_FLOOR: u64 = 256 << 20;
/// Ports of the kernel's default ip_local_port_range (32768-60999), assumed when the range of
/// this namespace cannot be read.
const DEFAULT_PORTS: u64 = 28_232;
/// Shortest stall window: a window below the progress tick would end runs that are rising.
pub const MIN_STALL: Duration = Duration::from_millis(500);

/// The load generator's options as the command line gives them, shared by `serve --verify` and
/// `tune load`; [`load_config`] resolves them against the host and a target.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    pub processes: Processes,
    /// Connects in flight, all processes together (1 or more).
    pub concurrency: usize,
    /// New connections per second, all processes together (positive); `None`: as fast as
    /// they complete.
    pub rate: Option<f64>,
    /// Source addresses to bind (an open prefix gives as many as the run needs); `None`:
    /// enough loopback addresses for a loopback IPv4 target, else the kernel's choice.
    pub sources: Option<sources::Spec>,
    pub connect_timeout: Duration,
    /// Connections closed per second at teardown (`None`: as fast as the clients go).
    pub close_rate: Option<u64>,
    /// How each connection closes at teardown.
    pub close_mode: loadgen::CloseMode,
    /// Every connection sends one message this often (`tune load` only).
    pub message_interval: Option<Duration>,
    /// Give up when the count has not risen for this long.
    pub stall: Duration,
    /// Hold the connections this long once all are open.
    pub hold: Duration,
    /// How a wss:// server is trusted (--ca, --insecure; verify: the server's own certificate).
    pub tls: embedded_server::tls::ClientTls,
}

impl LoadOptions {
    /// Refuses values no run can use, before anything starts.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.concurrency == 0 {
            return Err(Refused::new(
                Input::Concurrency,
                0,
                "expected 1 or more connects in flight",
            )
            .into());
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                let why = "expected a positive number of connections per second";
                return Err(Refused::new(Input::Rate, r, why).into());
            }
        }
        if self.close_rate == Some(0) {
            let why = "expected 1 or more connections per second, or leave it out to close as fast as the host allows";
            return Err(Refused::new(Input::CloseRate, 0, why).into());
        }
        if self.message_interval.is_some_and(|d| d.is_zero()) {
            let why = "expected a positive number of seconds";
            return Err(Refused::new(Input::MessageInterval, 0, why).into());
        }
        Ok(())
    }

    /// The stall window actually used.
    pub fn stall_window(&self) -> Duration {
        self.stall.max(MIN_STALL)
    }
}

/// `tune serve --verify N`, resolved.
#[derive(Debug, Clone)]
pub struct VerifyPlan {
    pub target: u64,
    /// Wait for clients on other hosts instead of starting the load generator.
    pub external: bool,
    pub server: ServerConfig,
    pub load: LoadOptions,
    /// `--memory-floor`; `None`: a share of MemTotal (see [`memory_floor`]).
    pub memory_floor: Option<u64>,
    /// The reconnect storm to make once the target is held (`None`: none).
    pub storm: Option<super::storm::StormPlan>,
    /// The run shares the initial network namespace: its netstat counters are host-wide.
    pub netns_shared: bool,
}

/// The memory floor of a run: the one given, or 5% of MemTotal and at least
/// [`MIN_MEMORY_FLOOR`]. A floor at or above MemTotal would not let one connection open.
pub fn memory_floor(given: Option<u64>, mem_total: u64) -> anyhow::Result<u64> {
    let floor = given.unwrap_or_else(|| {
        (mem_total / 100 * crate::capacity::MEMORY_RESERVE_PERCENT).max(MIN_MEMORY_FLOOR)
    });
    if floor >= mem_total {
        let why = format!(
            "at or above MemTotal {}, so not one connection could be opened; give a floor below the host's memory",
            crate::units::bytes(mem_total)
        );
        return Err(Refused::new(Input::MemoryFloor, crate::units::bytes(floor), why).into());
    }
    Ok(floor)
}

/// A target for a server at `addr`. A server on all addresses is reached over loopback:
/// `[::]` at ::1 when the sources given are IPv6, else (and for `0.0.0.0`) at 127.0.0.1, whose
/// /8 offers as many source addresses as a run needs (a dual-stack `[::]` takes both).
pub fn target_of(addr: SocketAddr, first_source: Option<IpAddr>) -> Target {
    let v6_sources = first_source.is_some_and(|s| s.is_ipv6());
    let addr = match addr.ip() {
        IpAddr::V6(a) if a.is_unspecified() && v6_sources => {
            SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        ip if ip.is_unspecified() => {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    Target {
        addr,
        host: addr.to_string(),
        path: "/".into(),
        tls: false,
    }
}

/// Ports of this namespace's ip_local_port_range (the kernel's default when unreadable). The
/// one range serves IPv4 and IPv6 clients alike.
pub fn ports(root: &Root) -> u64 {
    measure::port_range(root).map_or(DEFAULT_PORTS, |(lo, hi)| hi - lo + 1)
}

/// When a run to an IPv6 loopback target has only ::1 to connect from and the port range
/// cannot hold `conns` from it, the warning to print before starting: both ways to get more
/// IPv6 source addresses, with documentation prefixes (RFC 3849) as placeholders. tune never
/// adds them itself: the network namespace is not its own.
pub fn ipv6_loopback_shortfall(
    target: &Target,
    conns: u64,
    ports: u64,
    sources: &[IpAddr],
) -> Option<String> {
    let ip = target.addr.ip();
    if !(ip.is_ipv6() && ip.is_loopback() && sources.len() <= 1 && conns > ports) {
        return None;
    }
    let need = conns.div_ceil(ports * 9 / 10).max(2);
    Some(format!(
        "{} connections to {} from ::1 alone cannot fit: {} ephemeral ports per (source, destination) pair and IPv6 loopback has one address. More IPv6 source addresses, either way: (a) AnyIP, a whole prefix: ip -6 route add local {DOC} dev lo, then {} (tune binds them with IP_FREEBIND); (b) assigned addresses: ip -6 addr add 2001:db8:200::1/64 dev lo (one command per address), then {}. 2001:db8::/32 is the documentation prefix: use a prefix that is yours.",
        crate::units::group(conns),
        target.addr,
        crate::units::group(ports),
        Suggest::set(Input::Source, format!("{}:{need}", sources::DOC_PREFIX_V6)),
        Suggest::set(Input::Source, format!("2001:db8:200::1-2001:db8:200::{need:x}")),
        DOC = sources::DOC_PREFIX_V6,
    ))
}

/// Resolves the load options for `conns` connections to `target` against this host.
pub fn load_config(
    root: &Root,
    target: Target,
    conns: u64,
    o: &LoadOptions,
) -> anyhow::Result<LoadConfig> {
    o.validate()?;
    let (_, hard) = embedded_server::sys::rlimit::nofile().context("reading RLIMIT_NOFILE")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let processes = match o.processes {
        Processes::Auto => loadgen::auto_processes(conns, hard, cores),
        Processes::Fixed(n) => n,
    };
    // As many addresses as the run needs: enough per process for its share of the
    // connections within the port range, for an open --source prefix as for 127.0.0.0/8.
    let need = || {
        let per = conns.div_ceil(processes as u64);
        loadgen::sources_per_process(per, ports(root)) as usize * processes
    };
    let srcs: Vec<IpAddr> = match &o.sources {
        Some(s) if s.open.is_some() => s.take(need()),
        Some(s) => s.fixed.clone(),
        None if target.addr.ip().is_loopback() && target.addr.is_ipv4() => {
            sources::loopback(need())
        }
        None => Vec::new(),
    };
    check_sources(&srcs, &target)?;
    let ms = |d: Duration| d.as_millis().min(u64::MAX as u128) as u64;
    Ok(LoadConfig {
        target,
        conns,
        processes,
        concurrency: o.concurrency,
        rate: o.rate,
        sources: srcs,
        message_interval_ms: o.message_interval.map(|d| ms(d).max(1)),
        connect_timeout_ms: ms(o.connect_timeout).max(1),
        close_rate: o.close_rate,
        close_mode: o.close_mode,
        tls: o.tls.clone(),
    })
}

/// What a run took from a `--source` prefix given without a count, for the line that says so;
/// `None` when the addresses were given outright.
pub fn taken_from_open_prefix(o: &LoadOptions, cfg: &LoadConfig) -> Option<String> {
    let open = o.sources.as_ref()?.open.as_ref()?;
    let (first, last) = (cfg.sources.first()?, cfg.sources.last()?);
    let n = cfg.sources.len();
    Some(format!(
        "{}: took {} address{} ({first}{}), as many as {} connections from {} client \
         processes need",
        Suggest::set(Input::Source, &open.text),
        crate::units::group(n as u64),
        if n == 1 { "" } else { "es" },
        if n == 1 {
            String::new()
        } else {
            format!(" .. {last}")
        },
        crate::units::group(cfg.conns),
        cfg.processes
    ))
}

/// Refuses source addresses a client socket cannot bind (not addresses of this host) or of
/// another family than the target, before any load worker starts: otherwise every connect
/// fails with EADDRNOTAVAIL, which the diagnosis would read as running out of ports.
fn check_sources(srcs: &[IpAddr], target: &Target) -> anyhow::Result<()> {
    if let Some(ip) = srcs.iter().find(|ip| ip.is_ipv4() != target.addr.is_ipv4()) {
        let why = format!(
            "an IPv{} address, but the target {} is IPv{}; give source addresses of the target's family",
            if ip.is_ipv4() { 4 } else { 6 },
            target.addr,
            if target.addr.is_ipv4() { 4 } else { 6 }
        );
        return Err(Refused::new(Input::Source, ip, why).into());
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
    // The refused value: the one address, or how many of the list (the flag is cli's to add).
    let refused = |why: String| -> anyhow::Error {
        if bad.len() == 1 {
            Refused::new(Input::Source, &list, why).into()
        } else {
            let which = format!("{} of {} addresses ({list})", bad.len(), srcs.len());
            Refused::input(Input::Source, format!("{which}: {why}")).into()
        }
    };
    let (first, errno) = bad[0];
    if bad
        .iter()
        .all(|(_, e)| *e == embedded_server::sys::Errno::EADDRNOTAVAIL)
    {
        let how = if first.is_ipv6() {
            format!(
                "give addresses this host has (`ip -brief addr` lists them), or make them this host's first: one address with ip -6 addr add {first}/64 dev IFACE, or a whole prefix (AnyIP) with ip -6 route add local PREFIX/64 dev lo (tune binds AnyIP addresses with IP_FREEBIND), like {}",
                sources::DOC_PREFIX_V6
            )
        } else {
            format!("give addresses this host has (`ip -brief addr` lists them; for a loopback target any of 127.0.0.2-127.255.255.254), or add the address to an interface first: ip addr add {first}/32 dev IFACE")
        };
        return Err(refused(format!(
            "not an address of this host (binding a socket to it fails with EADDRNOTAVAIL), so no connection could start from it; {how}"
        )));
    }
    Err(refused(format!(
        "cannot bind a client socket to {first}: {errno} ({}); give addresses this host can bind",
        errno.desc()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_addresses_are_reached_over_the_sources_family() {
        let v6: Vec<IpAddr> = vec!["2001:db8:100::1".parse().unwrap()];
        let t = |a: &str, s: Option<&[IpAddr]>| {
            target_of(a.parse().unwrap(), s.and_then(|s| s.first().copied()))
                .addr
                .to_string()
        };
        assert_eq!(t("[::]:80", Some(&v6)), "[::1]:80");
        assert_eq!(t("[::]:80", None), "127.0.0.1:80");
        assert_eq!(t("0.0.0.0:80", None), "127.0.0.1:80");
        assert_eq!(t("[::1]:80", None), "[::1]:80");
    }

    #[test]
    fn ipv6_loopback_alone_is_named_before_the_run() {
        let target = target_of("[::1]:9000".parse().unwrap(), None);
        let w = ipv6_loopback_shortfall(&target, 40_000, 28_232, &[]).unwrap();
        assert!(w.contains("from ::1 alone cannot fit"), "{w}");
        assert!(
            w.contains("ip -6 route add local 2001:db8:100::/64 dev lo"),
            "{w}"
        );
        let source = Suggest::set(Input::Source, "2001:db8:100::/64:2").to_string();
        assert!(w.contains(&source), "{w}");
        assert!(
            w.contains("ip -6 addr add 2001:db8:200::1/64 dev lo"),
            "{w}"
        );
        assert!(!w.contains("127.0.0."), "{w}");
        // Enough ports, sources given, or an IPv4 target: nothing to say.
        assert_eq!(ipv6_loopback_shortfall(&target, 20_000, 28_232, &[]), None);
        let srcs: Vec<IpAddr> = sources::parse("2001:db8:100::/64:3").unwrap();
        assert_eq!(
            ipv6_loopback_shortfall(&target, 60_000, 28_232, &srcs),
            None
        );
        let v4 = target_of("127.0.0.1:9000".parse().unwrap(), None);
        assert_eq!(ipv6_loopback_shortfall(&v4, 60_000, 28_232, &[]), None);
    }

    #[test]
    fn sources_of_the_other_family_or_not_this_hosts_are_refused() {
        let target = target_of("[::1]:9000".parse().unwrap(), None);
        let e = check_sources(&["127.0.0.2".parse().unwrap()], &target)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("an IPv4 address, but the target [::1]:9000 is IPv6"),
            "{e}"
        );
        // 2001:db8:ffff::/48 is documentation space: neither assigned nor routed here.
        let e = check_sources(&["2001:db8:ffff::1".parse().unwrap()], &target)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an address of this host"), "{e}");
        assert!(e.contains("ip -6 route add local PREFIX/64 dev lo"), "{e}");
        assert!(!e.contains("127.0.0."), "{e}");
    }

    #[test]
    fn the_default_floor_is_a_share_of_memory_and_never_above_it() {
        assert_eq!(memory_floor(None, 1 << 30).unwrap(), MIN_MEMORY_FLOOR);
        assert_eq!(
            memory_floor(None, 100 << 30).unwrap(),
            (100u64 << 30) / 100 * crate::capacity::MEMORY_RESERVE_PERCENT
        );
        assert_eq!(memory_floor(Some(1 << 20), 1 << 30).unwrap(), 1 << 20);
        let e = memory_floor(Some(2 << 30), 1 << 30)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at or above MemTotal"), "{e}");
    }
}
