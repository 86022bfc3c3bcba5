//! The project's command line; the work is done by the crates in this workspace.

mod cli;
mod logging;

use clap::Parser;

/// Keeps large freed buffers for the next training step instead of returning them to the OS.
#[global_allocator]
static ALLOCATOR: training::alloc::ReuseAllocator = training::alloc::ReuseAllocator::new();

fn main() -> std::process::ExitCode {
    // Thread count, allocator settings and the thread pool: see training::runtime.
    match training::runtime::run(|| cli::run(cli::Cli::parse())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
