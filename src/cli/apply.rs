//! Arguments of `tune apply`.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// Profile to apply: a shipped name, a name in /etc/tune/profiles/, or a path.
    #[arg(long, short, value_name = "NAME|PATH")]
    pub profile: String,
    /// Print the plan (and with --persist the files) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also write the boot-time configuration (sysctl.d, limits.d, systemd drop-ins, modprobe.d).
    #[arg(long)]
    pub persist: bool,
    /// Raise RLIMIT_NOFILE of this running process (prlimit).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// With --persist, also write a drop-in for this systemd unit setting LimitNOFILE=.
    #[arg(long, value_name = "UNIT", requires = "persist")]
    pub service: Option<String>,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long, short)]
    pub yes: bool,
    /// Allow moving a knob against its direction: lowering a value higher than the profile asks
    /// (or lengthening tcp_fin_timeout, narrowing the port range).
    #[arg(long)]
    pub allow_lower: bool,
    /// Keep the apply records here instead of <root>/var/lib/tune.
    #[arg(long, value_name = "DIR", env = "TUNE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}
