use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match candlecutter::cli::run(candlecutter::cli::Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
