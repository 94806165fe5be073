//! Arguments of `tune check`.

use clap::Args;

/// How `tune check` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum CheckFormat {
    /// Tables for people.
    #[default]
    Table,
    /// JSON with a documented schema (schema_version), for scripts and CI.
    Json,
    /// JUnit XML, one test case per knob, for CI dashboards.
    Junit,
    /// Prometheus text format for node_exporter's textfile collector (tune_* gauges).
    Prometheus,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Profile to compare with: a shipped name (10k, 100k, 1m, 1m-loopback, 10m; `tune profiles list`), a name in /etc/tune/profiles/, or a path to a TOML file.
    #[arg(long, short, value_name = "NAME|PATH", conflicts_with = "target")]
    pub profile: Option<String>,
    /// Compare with requirements computed for N concurrent connections, without a named profile
    /// (50000, 50k, 1m, 1.5m). Without --profile or --target, check says what the host holds now.
    #[arg(long, value_name = "N", value_parser = crate::quantity::parse_count)]
    pub target: Option<u64>,
    /// What this host does with the connections (with --target; a profile states its own).
    #[arg(long, value_enum)]
    pub role: Option<crate::cli::profiles::Role>,
    /// Client source addresses the layout uses (as `tune serve --verify --source`: a list,
    /// a range or a prefix, IPv4 or IPv6, like `2001:db8:100::/64:40`); with one address the
    /// port range binds at its port count.
    #[arg(long, value_name = "ADDRS")]
    pub source: Option<String>,
    /// Server worker processes the layout runs (as `tune serve --workers N`); each holds
    /// RLIMIT_NOFILE less the fds it keeps to drain its accept queue.
    #[arg(long, value_name = "N", value_parser = crate::quantity::parse_positive_count)]
    pub workers: Option<u64>,
    /// Read RLIMIT_NOFILE of this running process (a service) instead of tune's own.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Judge a service that is not running yet, as systemd would start it from this unit: a
    /// unit name (found under the root's /etc/systemd/system, /run/systemd/system,
    /// /usr/lib/systemd/system, drop-ins included) or a unit file's path. Its User= (and
    /// capabilities), LimitNOFILE= (else DefaultLimitNOFILE=) and MemoryMax= are used.
    #[arg(long, value_name = "FILE|NAME", conflicts_with_all = ["pid", "user"])]
    pub unit: Option<String>,
    /// Judge a login session of this user (a name or uid from the root's /etc/passwd): its
    /// nofile limits from pam_limits (limits.conf, limits.d) and, unless root, no capabilities,
    /// so fs.file-max binds it.
    #[arg(long, value_name = "NAME", conflicts_with = "pid")]
    pub user: Option<String>,
    /// The server's cost per connection from a `tune load --server-pid PID --format json`
    /// report saved to FILE (its server.cost): the capacity is then the server's, not the
    /// kernel socket's alone.
    #[arg(long, value_name = "FILE", conflicts_with = "cost_per_conn")]
    pub cost_from: Option<std::path::PathBuf>,
    /// The server's cost per connection, user and kernel memory together: bytes, or with a
    /// unit (13.1KB, 16KiB, 1.2MB).
    #[arg(long, value_name = "SIZE", value_parser = crate::cli::parse_size)]
    pub cost_per_conn: Option<u64>,
    /// Size for TLS connections (wss://): each connection also holds what TLS keeps (keys,
    /// sequence numbers, buffers), from --tls-cost, --tls-from or the profile's
    /// tls_bytes_per_connection; without a figure the first screen says so and how to measure.
    /// Also reports whether the kernel offers kTLS.
    #[arg(long)]
    pub tls: bool,
    /// What TLS adds to each connection's memory: bytes, or with a unit (5.2KB, 32KiB); implies
    /// --tls.
    #[arg(long, value_name = "SIZE", value_parser = crate::cli::parse_size, conflicts_with = "tls_from")]
    pub tls_cost: Option<u64>,
    /// What TLS adds to each connection, measured on this host: a saved `tune serve --verify
    /// --tls --format json` or `tune load wss://... --format json` report (its tls section);
    /// implies --tls.
    #[arg(long, value_name = "FILE")]
    pub tls_from: Option<std::path::PathBuf>,
    /// Output format: table for people, json for scripts, junit for CI, prometheus for monitoring
    /// (write it to node_exporter's --collector.textfile.directory as tune.prom).
    #[arg(long, value_enum, default_value_t = CheckFormat::Table)]
    pub format: CheckFormat,
    /// The whole report: every knob with its scope, boot value and fixes, the why of each value,
    /// the capacity arithmetic, usage and counters (the default is the verdict, the fixes and a
    /// compact table).
    #[arg(long, short)]
    pub verbose: bool,
    /// Treat warnings as failures (exit 1).
    #[arg(long)]
    pub strict: bool,
    /// Turn failures of these knobs into warnings (comma separated knob names, or `all`).
    #[arg(long, value_name = "KNOB[,KNOB]|all", value_delimiter = ',')]
    pub ignore: Vec<String>,
    /// Where `tune apply` keeps its records, for the drift view (default: <root>/var/lib/tune).
    #[arg(long, value_name = "DIR", env = "TUNE_STATE_DIR")]
    pub state_dir: Option<std::path::PathBuf>,
    /// The reconnect storm to survive: N clients reconnecting within SECS seconds (`1M/30`;
    /// `/0`: all at once). Raises net.core.somaxconn and net.ipv4.tcp_max_syn_backlog to the
    /// clients that arrive in one second over the server's processes (--workers, else the
    /// profile's), requires tcp_syncookies 1, and warns when the accept rate a
    /// `serve --verify --storm` measured here (saved in the state directory) is below N/SECS.
    /// Overrides the profile's `storm` key.
    #[arg(long, value_name = "N/SECS", value_parser = crate::profile::storm::parse)]
    pub storm: Option<crate::profile::storm::Storm>,
}
