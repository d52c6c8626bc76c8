//! The `glimpse` command line: argument parsing only; every command is a call into
//! the library (`glimpse::cli`).
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = glimpse::cli::Cli::parse();
    match glimpse::cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
