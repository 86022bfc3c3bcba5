//! The project's command line; the work is done by the crates in this workspace.

mod cli;
mod logging;

use clap::Parser;

/// Keeps large freed buffers for the next training step instead of returning them to the OS.
#[global_allocator]
static ALLOCATOR: kernels::alloc::ReuseAllocator = kernels::alloc::ReuseAllocator::new();

fn main() -> std::process::ExitCode {
    // Thread count, allocator settings and the thread pool: see kernels::runtime.
    match kernels::runtime::run(|| cli::run(cli::Cli::parse())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each once: a message that already quotes its cause (thiserror's
/// `{source}`) would otherwise print the cause's text twice, as `{err:#}` does.
pub(crate) fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_the_message_already_quotes_is_printed_once() {
        // As a thiserror message with `{source}` would: the context quotes the cause's text.
        let err = anyhow::Error::new(std::io::Error::other("disk on fire"))
            .context("reading checkpoint x.safetensors: disk on fire")
            .context("evaluating");
        assert_eq!(super::one_line(&err), "evaluating: reading checkpoint x.safetensors: disk on fire");
    }
}
