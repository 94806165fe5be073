//! The load generator behind `tune load` and `tune serve --verify`: configuration and its split
//! over client processes ([`plan`]), source addresses ([`sources`]), the per-process event loop
//! ([`worker`]), the shared counters ([`board`]), the parent side that starts and steers the
//! processes ([`launcher`]) and reconnect storms' policy and commands ([`storm`]).
//!
//! Each client process is one epoll loop with a 16-byte slot per connection; a connection owns
//! heap memory only while its handshake or a partial frame is in flight. The parent steers the
//! processes through a command word in shared memory (connect, hold, echo round, close, exit)
//! and reads their counters from it; latency histograms come back on each process's stdout
//! when it exits.

pub mod board;
pub mod launcher;
pub mod sources;
pub mod storm;
pub mod worker;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use serde::{Deserialize, Serialize};

pub use board::{Cmd, ErrorClass, LoadSnapshot};
pub use hdrhistogram::Histogram;
pub use launcher::{Died, LoadGen, LoadResults};
pub use storm::ReconnectPolicy;

/// Fds a client process keeps for itself (stdio, epoll, signalfd, memfd, /proc reads).
pub const FD_MARGIN: u64 = 32;
/// Share of a process's usable fds that `--processes auto` plans to fill (per mille): the rest
/// absorbs sockets still closing and the uneven finish of processes.
pub const FILL_PER_MILLE: u64 = 950;
/// Share of the ephemeral port range one (source, destination) pair is planned to use (per
/// mille). The kernel searches for a free port per connect; at half occupancy it finds one in
/// two tries on average, near full occupancy the search grows with the range.
pub const PORT_FILL_PER_MILLE: u64 = 500;
/// Default time a connection has from connect() to the server's 101 response.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Default connects in flight, all processes together: well under somaxconn (4096 here) and
/// tcp_max_syn_backlog (2048) so a fast client does not overflow the server's accept queues.
pub const CONCURRENCY: usize = 1024;
/// Connections a client process closes between two looks at its events and the pause word
/// ([`board::G_CLOSE_PAUSED`]) when no close rate is set: small enough that a pause takes
/// effect within a few milliseconds, large enough that the loop costs nothing beside close().
pub const CLOSE_BATCH: usize = 512;

/// How the load generator closes its connections at teardown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CloseMode {
    /// close() the socket: a FIN, and the server closes on end of file. What the C floor
    /// does; half the work of the close handshake, and no data left queued in the kernel.
    #[default]
    Tcp,
    /// The websocket close handshake: the client's close frame, the server's close frame, then
    /// the server closes the TCP connection (RFC 6455 7.1.1).
    Websocket,
}

impl CloseMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseMode::Tcp => "tcp",
            CloseMode::Websocket => "websocket",
        }
    }
}
/// Payload of the verify echo message: small, so an unread echo costs one page at most.
pub const ECHO_PAYLOAD: &[u8] = b"tune-verify-echo";

/// A `ws://` or `wss://HOST:PORT/PATH` URL resolved to an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub addr: SocketAddr,
    /// The Host header (HOST:PORT as given).
    pub host: String,
    pub path: String,
    /// `wss://`: TLS, with HOST as the SNI and the name the certificate must carry.
    #[serde(default)]
    pub tls: bool,
}

impl Target {
    /// Parses `ws://HOST[:PORT][/PATH]` (port 80 by default) or `wss://...` (TLS, port 443)
    /// and resolves HOST.
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let (rest, tls) = if let Some(r) = url.strip_prefix("ws://") {
            (r, false)
        } else if let Some(r) = url.strip_prefix("wss://") {
            (r, true)
        } else {
            anyhow::bail!("{url}: expected a ws:// or wss://HOST:PORT/PATH URL");
        };
        let default_port = if tls { 443 } else { 80 };
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if hostport.is_empty() {
            anyhow::bail!("{url}: no host");
        }
        let with_port = if hostport.starts_with('[') {
            if hostport.contains("]:") {
                hostport.to_string()
            } else {
                format!("{hostport}:{default_port}")
            }
        } else if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:{default_port}")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| anyhow::anyhow!("{url}: cannot resolve {with_port}: {e}"))?
            .next()
            .ok_or_else(|| anyhow::anyhow!("{url}: {with_port} resolves to no address"))?;
        let t = Target {
            addr,
            host: hostport.to_string(),
            path: path.to_string(),
            tls,
        };
        if tls {
            crate::tls::server_name(t.tls_name())?;
        }
        Ok(t)
    }

    /// HOST without the port: the SNI and the name the server's certificate is checked for.
    pub fn tls_name(&self) -> &str {
        let h = self.host.as_str();
        match h.rfind(':') {
            Some(i) if !h[..i].contains(':') || h[..i].ends_with(']') => &h[..i],
            _ => h,
        }
    }
}

/// What the whole load run is asked to do.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub target: Target,
    pub conns: u64,
    pub processes: usize,
    /// Connects in flight over all processes.
    pub concurrency: usize,
    /// New connections per second over all processes (`None`: as fast as they complete).
    pub rate: Option<f64>,
    /// Source addresses to bind (empty: let the kernel choose).
    pub sources: Vec<IpAddr>,
    /// Send one message per connection every this many ms (`None`: only on echo rounds).
    pub message_interval_ms: Option<u64>,
    pub connect_timeout_ms: u64,
    /// Teardown: connections closed per second over all processes (`None`: as fast as the
    /// processes go, in [`CLOSE_BATCH`]es, while the parent does not pause them).
    pub close_rate: Option<u64>,
    /// Teardown: how each connection closes.
    pub close_mode: CloseMode,
    /// How a `wss://` target is trusted (unused for `ws://`).
    pub tls: crate::tls::ClientTls,
}

/// What one client process is told (JSON in [`WORKER_ENV`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerConfig {
    pub index: usize,
    pub workers: usize,
    pub target: Target,
    pub conns: u64,
    pub sources: Vec<IpAddr>,
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub message_interval_ms: Option<u64>,
    pub connect_timeout_ms: u64,
    pub close_per_sec: Option<u64>,
    pub close_mode: CloseMode,
    #[serde(default)]
    pub tls: crate::tls::ClientTls,
    pub shm_fd: i32,
    pub parent_pid: u32,
}

/// Environment variable carrying a client process's [`WorkerConfig`].
pub const WORKER_ENV: &str = "TUNE_LOAD_WORKER_CONFIG";

impl WorkerConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let raw = std::env::var(WORKER_ENV).map_err(|_| {
            anyhow::anyhow!(
                "{WORKER_ENV} is not set: load workers are started by `tune load` or `tune serve --verify`, not by hand"
            )
        })?;
        serde_json::from_str(&raw).map_err(|e| anyhow::anyhow!("{WORKER_ENV}: {e}"))
    }
}

/// Connections one client process may hold with fd cap `fd_cap`.
pub fn per_process_capacity(fd_cap: u64) -> u64 {
    fd_cap.saturating_sub(FD_MARGIN) * FILL_PER_MILLE / 1000
}

/// `--processes auto`: enough that each process stays under its fd cap, at least one per core,
/// never more than connections.
pub fn auto_processes(conns: u64, fd_cap: u64, cores: usize) -> usize {
    let per = per_process_capacity(fd_cap).max(1);
    let need = conns.div_ceil(per) as usize;
    need.max(cores).min(conns.max(1) as usize).max(1)
}

/// Source addresses one loopback client process needs for `conns` connections to one
/// destination with `ports` ephemeral ports.
pub fn sources_per_process(conns: u64, ports: u64) -> u64 {
    let per_source = (ports * PORT_FILL_PER_MILLE / 1000).max(1);
    conns.div_ceil(per_source).max(1)
}

/// Splits the run over processes: connections (even split), concurrency, rate, sources.
pub fn plan(cfg: &LoadConfig) -> Vec<WorkerConfig> {
    let n = cfg.processes.max(1);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let conns = cfg.conns / n as u64 + u64::from((i as u64) < cfg.conns % n as u64);
        let sources = sources::assign(&cfg.sources, i, n);
        out.push(WorkerConfig {
            index: i,
            workers: n,
            target: cfg.target.clone(),
            conns,
            sources,
            concurrency: (cfg.concurrency / n).max(1),
            rate: cfg.rate.map(|r| r / n as f64),
            message_interval_ms: cfg.message_interval_ms,
            connect_timeout_ms: cfg.connect_timeout_ms,
            close_per_sec: cfg.close_rate.map(|r| (r / n as u64).max(1)),
            close_mode: cfg.close_mode,
            tls: cfg.tls.clone(),
            shm_fd: -1,
            parent_pid: std::process::id(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_urls() {
        let t = Target::parse("ws://127.0.0.1:9000/chat").unwrap();
        assert_eq!(t.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(t.host, "127.0.0.1:9000");
        assert_eq!(t.path, "/chat");
        let t = Target::parse("ws://127.0.0.1:9000").unwrap();
        assert_eq!(t.path, "/");
        let t = Target::parse("ws://[::1]:9000/x").unwrap();
        assert_eq!(t.addr, "[::1]:9000".parse().unwrap());
        let t = Target::parse("wss://127.0.0.1/").unwrap();
        assert!(t.tls);
        assert_eq!(t.addr, "127.0.0.1:443".parse().unwrap());
        assert_eq!(t.tls_name(), "127.0.0.1");
        let t = Target::parse("wss://[::1]:9443/x").unwrap();
        assert_eq!(t.tls_name(), "[::1]");
        assert_eq!(
            Target::parse("wss://localhost:1/").unwrap().tls_name(),
            "localhost"
        );
        assert!(Target::parse("http://x/").is_err());
        assert!(Target::parse("ws:///x").is_err());
    }

    #[test]
    fn auto_processes_on_this_host() {
        // fd cap 20000: (20000 - 32) * 0.95 = 18969 per process.
        assert_eq!(per_process_capacity(20000), 18969);
        assert_eq!(auto_processes(1_000_000, 20000, 2), 53);
        assert_eq!(auto_processes(20_000, 20000, 2), 2);
        assert_eq!(auto_processes(40_000, 20000, 2), 3);
        assert_eq!(auto_processes(1, 20000, 2), 1);
        assert_eq!(auto_processes(3000, 1500, 2), 3);
    }

    #[test]
    fn sources_needed_keep_ports_half_free() {
        // 28,232 ports: 14,116 per source at half occupancy.
        assert_eq!(sources_per_process(18_868, 28_232), 2);
        assert_eq!(sources_per_process(10_000, 28_232), 1);
        assert_eq!(sources_per_process(0, 28_232), 1);
        assert_eq!(sources_per_process(1000, 500), 4);
    }

    #[test]
    fn plan_splits_evenly() {
        let cfg = LoadConfig {
            target: Target::parse("ws://127.0.0.1:1/").unwrap(),
            conns: 10,
            processes: 3,
            concurrency: 10,
            rate: Some(300.0),
            sources: vec!["127.0.0.2".parse().unwrap()],
            message_interval_ms: None,
            connect_timeout_ms: 1000,
            close_rate: Some(1000),
            close_mode: CloseMode::Tcp,
            tls: Default::default(),
        };
        let p = plan(&cfg);
        assert_eq!(p.iter().map(|w| w.conns).collect::<Vec<_>>(), [4, 3, 3]);
        assert_eq!(p[0].concurrency, 3);
        assert_eq!(p[2].rate, Some(100.0));
        // One source shared by all three.
        assert!(p.iter().all(|w| w.sources.len() == 1));
    }
}
