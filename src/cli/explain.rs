//! Arguments of `tune explain`.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// Knob name as `check` prints it (net.core.somaxconn, rlimit.nofile.hard, ...) or a unique end of it (somaxconn); `all` explains every knob.
    #[arg(value_name = "KNOB")]
    pub knob: String,
}
