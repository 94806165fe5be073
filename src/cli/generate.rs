//! Arguments of `tune generate`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: Generate,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Generate {
    /// Write the man pages (tune.1, one per subcommand, tune-profiles.5, tune-knobs.7).
    Man {
        #[arg(long, value_name = "DIR", default_value = "man")]
        out: PathBuf,
    },
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}
