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
    /// Write the man pages (tune.1, one per subcommand, tune-profiles.5, tune-knobs.7) into DIR, replacing older ones.
    Man {
        /// Directory to write into; created if missing. Other files in it are left alone.
        #[arg(long, value_name = "DIR", default_value = "man", value_hint = clap::ValueHint::DirPath)]
        out: PathBuf,
    },
    /// Print the completion script for a shell, with knob and profile names (bash, zsh, fish, ...).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}
