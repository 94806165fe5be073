//! The `tune` binary: parse, run, map the outcome to an exit code (0 ok, 1 falls short, 2 error).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tune::cli::Cli::parse();
    match tune::cmd::run(cli) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            eprintln!("tune: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
