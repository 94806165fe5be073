//! Arguments of `tune rollback`.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// List the recorded applies instead of rolling back.
    #[arg(long)]
    pub list: bool,
    /// Where the apply records are kept (as given to `tune apply --state-dir`); default <root>/var/lib/tune.
    #[arg(long, value_name = "DIR", env = "TUNE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}
