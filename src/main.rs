//! The `tune` binary: parse, run, map the outcome to an exit code (0 ok, 1 falls short, 2 error).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Printing into a closed pipe (`tune check | head`) ends the process quietly, like any filter.
    // Server and load worker processes ignore SIGPIPE again themselves.
    let _ = embedded_server::sys::signal::default_sigpipe();
    let cli = tune::cli::Cli::parse();
    match tune::cmd::run(cli) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            // Refused values are printed with their flag in front (`--rate 0: ...`).
            eprintln!("tune: error: {}", tune::cli::flags::render(&e));
            ExitCode::from(2)
        }
    }
}
