//! Arguments of `tune top`.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    /// Print one frame as plain text and exit (two refreshes --interval apart, so rates and
    /// times to exhaustion are filled in), for scripts.
    #[arg(long, conflicts_with = "listen")]
    pub once: bool,
    /// Serve the figures as Prometheus metrics on ADDR (host:port, port 0 picks a free one; the
    /// address is printed on stderr) at /metrics instead of drawing the screen.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Show only this process's fds, and its memory cgroup.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Seconds between refreshes.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = parse_interval)]
    pub interval: f64,
    /// Processes shown with their fds (those holding the most; without --pid).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=50))]
    pub processes: u16,
}

/// A refresh interval from 0.1 s to an hour.
fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.1..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "expected seconds between 0.1 and 3600 (1, 0.5), found {s:?}"
        )),
    }
}
