//! The `glimpse` command line: argument parsing only; every command is a call into
//! the library (`glimpse::cli`).
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match glimpse::cli::Cli::parse_with_version() {
        Ok(args) => args,
        Err(err) => err.exit(),
    };
    match glimpse::cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
