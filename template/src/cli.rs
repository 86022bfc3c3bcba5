//! Subcommands: `train` and `evaluate`. Each reads config.json (or --config) with --set overrides.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use inference::EvalSplit;
use training::{Config, RunDir};

#[derive(Debug, Parser)]
#[command(version, about = "Train and evaluate an MNIST classifier with Candle")]
pub struct Cli {
    /// The experiment configuration [default: config.json; for evaluate, the run's config.json].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override a config value, e.g. --set trainer.epochs=3 (the value is JSON, else a string).
    #[arg(long, global = true, value_name = "KEY.PATH=VALUE")]
    set: Vec<String>,
    /// The logging configuration.
    #[arg(long, global = true, value_name = "FILE", default_value = "logger_config.json")]
    logger_config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model; everything is saved under saved/<name>/<timestamp>/.
    Train,
    /// Evaluate a checkpoint; the model is rebuilt from the config.json saved beside it.
    Evaluate {
        #[arg(long, value_name = "PATH")]
        checkpoint: PathBuf,
        #[arg(long, value_enum, default_value_t = Split::Test)]
        split: Split,
        /// Print the result as one JSON object on the last line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Split {
    Val,
    Test,
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let logger = crate::logging::LoggerConfig::load(&cli.logger_config)?;
    match cli.command {
        Command::Train => {
            let config_path = cli.config.unwrap_or_else(|| PathBuf::from("config.json"));
            let config = Config::load(&config_path, &cli.set)?;
            let run = RunDir::create(&config)
                .with_context(|| format!("creating the run folder under {}", config.trainer.save_dir.display()))?;
            crate::logging::init(&logger, Some(&run.file("train.log")))?;
            tracing::info!("run folder: {}", run.path().display());
            let summary = training::train(&config, &run)?;
            tracing::info!(
                "done: {} epochs, best {} = {} at epoch {}; {}",
                summary.epochs_run,
                summary.monitor,
                summary.best_metric.map_or("n/a".into(), |m| format!("{m:.4}")),
                summary.best_epoch.map_or("n/a".into(), |e| e.to_string()),
                run.path().display()
            );
        }
        Command::Evaluate { checkpoint, split, json } => {
            crate::logging::init(&logger, None)?;
            let config = match &cli.config {
                Some(path) => Config::load(path, &cli.set)?,
                None => inference::config_for_checkpoint(&checkpoint, &cli.set)?,
            };
            let split = match split {
                Split::Val => EvalSplit::Val,
                Split::Test => EvalSplit::Test,
            };
            let result = inference::evaluate_checkpoint(&checkpoint, &config, split)?;
            if json {
                let mut object = serde_json::json!({"loss": result.loss, "samples": result.samples});
                for (name, value) in &result.metrics {
                    object[name] = serde_json::json!(value);
                }
                println!("{object}");
            } else {
                println!("{} images: loss {:.4}", result.samples, result.loss);
                for (name, value) in &result.metrics {
                    println!("{name}: {value:.4}");
                }
            }
        }
    }
    Ok(())
}
