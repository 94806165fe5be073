//! Arguments of `tune rollback`.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// List the recorded applies instead of rolling back.
    #[arg(long)]
    pub list: bool,
}
