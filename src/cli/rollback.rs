//! Arguments of `tune rollback`.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// List the recorded applies instead of rolling back.
    #[arg(long)]
    pub list: bool,
    /// Show what rollback would put back, and what it would leave alone, and change nothing.
    #[arg(long, conflicts_with = "list")]
    pub dry_run: bool,
    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(long, short)]
    pub yes: bool,
    /// Also put back values and files that something else changed since the apply (by default
    /// they are left alone, reported, and rollback exits 1).
    #[arg(long, conflicts_with = "list")]
    pub force: bool,
    /// Where the apply records are kept (as given to `tune apply --state-dir`); default <root>/var/lib/tune.
    #[arg(long, value_name = "DIR", env = "TUNE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}
