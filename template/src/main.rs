//! The project's command line; the work is done by the crates in this workspace.

mod cli;
mod logging;

use clap::Parser;

/// Keeps large freed buffers for the next training step instead of returning them to the OS.
#[global_allocator]
static ALLOCATOR: training::alloc::ReuseAllocator = training::alloc::ReuseAllocator::new();

/// The stack of rayon's threads, where the program runs: the size of a main thread's.
const MAIN_STACK_BYTES: usize = 8 << 20;

fn main() -> std::process::ExitCode {
    training::alloc::tune_system_allocator();
    // Run on a rayon worker thread: the CPU kernels (ours and candle's matmuls) split their work
    // with rayon, and from a worker that costs a queue push; from the main thread every op would be
    // handed to the pool and waited for, two context switches per op.
    let pool = rayon::ThreadPoolBuilder::new().stack_size(MAIN_STACK_BYTES).build_global();
    if let Err(err) = pool {
        eprintln!("warning: could not configure the thread pool: {err}");
    }
    match rayon::scope(|_| cli::run(cli::Cli::parse())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
