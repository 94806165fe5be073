//! The command line as typed: clap definitions only, no I/O (the man page and completion generators read these).
//!
//! Each subcommand's arguments live in their own file. What the arguments
//! resolve to against the system (profiles, roots, pids) is worked out in
//! `cmd/`, never here.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub mod apply;
pub mod check;
pub mod explain;
pub mod flags;
pub mod generate;
pub mod hostile;
pub mod load;
pub mod profiles;
pub mod rollback;
pub mod serve;
pub mod storm;
pub mod top;

#[derive(Debug, Parser)]
#[command(
    name = "tune",
    version,
    about = "Check, raise and prove the limits that cap concurrent connections on a Linux host",
    long_about = "tune reads every knob that caps how many connections a Linux host can hold \
                  (file descriptor limits, fs.file-max, conntrack, TCP memory and queues, ports, memory), \
                  compares them with a profile, raises what falls short and proves the result with an \
                  embedded websocket server and load generator.",
    after_help = "Exit codes: 0 all requirements met, 1 a requirement falls short, 2 usage or internal error."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Read /proc and /sys and write /etc under DIR instead of / (a host's tree mounted into a container, or a captured tree).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/",
        env = "TUNE_ROOT"
    )]
    pub root: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// What this host holds and which limit binds (no arguments), or whether it holds a profile's target: the verdict first, then the fixes ranked by gain.
    Check(check::CheckArgs),
    /// Raise what falls short of a profile, at run time and optionally at boot; shows the plan first.
    Apply(apply::ApplyArgs),
    /// Undo the last apply exactly, plan first: what something else changed since is left alone unless --force.
    Rollback(rollback::RollbackArgs),
    /// Run the embedded epoll websocket server; with --verify N, prove the host holds N connections.
    Serve(Box<serve::ServeArgs>),
    /// Open websocket connections to a server (the load generator alone), for verifying from other hosts.
    Load(load::LoadArgs),
    /// Every limit's headroom, live: use against limit, rate and time to exhaustion, the binding limit first; or as Prometheus metrics (--listen).
    #[command(after_long_help = crate::top::metrics::doc())]
    Top(top::TopArgs),
    /// List the profiles or show one fully resolved.
    Profiles(profiles::ProfilesArgs),
    /// Explain a knob: what it is, what hitting it looks like, how to raise it.
    Explain(explain::ExplainArgs),
    /// Generate man pages or shell completions.
    Generate(generate::GenerateArgs),
    /// One server worker process (started by `tune serve`, not by hand).
    #[command(hide = true, name = "__serve-worker")]
    ServeWorker(serve::WorkerArgs),
    /// One load generator process (started by `tune load` and `tune serve --verify`, not by hand).
    #[command(hide = true, name = "__load-worker")]
    LoadWorker(load::WorkerArgs),
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Tables for people.
    #[default]
    Table,
    /// JSON with a documented schema (schema_version), for scripts and CI.
    Json,
    /// JUnit XML, one test case per knob, for CI dashboards.
    Junit,
}

impl Cli {
    /// The clap command, for the man page and completion generators.
    pub fn command() -> clap::Command {
        <Cli as clap::CommandFactory>::command()
    }
}

/// A size in bytes per connection (`--cost-per-conn`, `--tls-cost`): the one size parser
/// ([`crate::quantity::parse_size`], so `13.1KB` means what a tune report printed), and at least
/// one byte.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let v = crate::quantity::parse_size(s)?;
    if v == 0 {
        return Err(format!(
            "{:?}: expected a size of at least 1 byte per connection",
            s.trim()
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    /// The `--profile` help lists the shipped profiles by hand (clap takes a literal): every
    /// shipped one must be there, as `1m-loopback` once was not.
    #[test]
    fn check_profile_help_names_every_shipped_profile() {
        let cmd = super::Cli::command();
        let check = cmd.find_subcommand("check").expect("check subcommand");
        let arg = check
            .get_arguments()
            .find(|a| a.get_id() == "profile")
            .expect("--profile");
        let help = arg.get_help().expect("help").to_string();
        for (name, _) in crate::profile::SHIPPED {
            assert!(
                help.split([' ', '(', ',', ';']).any(|w| w == *name),
                "--profile help misses {name}: {help}"
            );
        }
    }

    #[test]
    fn sizes_parse_with_their_units() {
        assert_eq!(super::parse_size("13100"), Ok(13_100));
        assert_eq!(super::parse_size("13.1KB"), Ok(13_100));
        assert_eq!(super::parse_size("16 KiB"), Ok(16_384));
        assert!(super::parse_size("12 parsecs")
            .unwrap_err()
            .contains("64KiB"));
        assert!(super::parse_size("0").is_err());
    }
}
