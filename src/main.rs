//! The `tune` binary: parse, run, map the outcome to an exit code (0 ok, 1 falls short, 2 error).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Printing into a closed pipe (`tune check | head`) ends the process quietly, like any filter.
    // Server and load worker processes ignore SIGPIPE again themselves.
    let _ = embedded_server::sys::signal::default_sigpipe();
    // Domain advice names tune's inputs (`values::Suggest`); the command line spells them.
    tune::cli::flags::install();
    let cli = match tune::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print and exit 0 as clap does; a usage error starts as every
        // other error of tune does.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            // (Without a subcommand clap prints the help, which is not an error message.)
            let text = e.render().to_string();
            match text.strip_prefix("error: ") {
                Some(rest) => eprint!("{}", tune::text::error(rest, tune::text::error_width())),
                None => eprint!("{text}"),
            }
            return ExitCode::from(2);
        }
    };
    match tune::cmd::run(cli) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            // Refused values are printed with their flag in front (`--rate 0: ...`), and every
            // error is wrapped to the terminal as every other screen is.
            let message = tune::cli::flags::render(&e);
            eprint!("{}", tune::text::error(&message, tune::text::error_width()));
            ExitCode::from(2)
        }
    }
}
