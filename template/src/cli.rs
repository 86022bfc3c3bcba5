//! Subcommands: `train`, `evaluate`, `predict`, `report`, `export` (ONNX), `download` and `bench`. Each
//! reads config.json (or --config) with --set overrides; `evaluate`, `predict`, `export` and
//! `train --resume` use the config saved in the run folder, `--onnx FILE` the one in the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use experiment::{Config, RunDir};
use inference::EvalSplit;
use training::TrainOptions;
use training::bench::{BenchMode, BenchOptions};

#[derive(Debug, Parser)]
#[command(version, about = "Train and evaluate a model with Candle: images or tables, classes, labels or values")]
pub struct Cli {
    /// The experiment configuration [default: config.json; for evaluate and train --resume, the run's config.json].
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
    /// Ctrl-C stops after the current step with a checkpoint; a second Ctrl-C exits at once.
    Train {
        /// Continue a run: a checkpoint-*.safetensors file, or a run folder (its newest checkpoint).
        #[arg(long, value_name = "PATH")]
        resume: Option<PathBuf>,
    },
    /// Evaluate a checkpoint; the model is rebuilt from the config.json saved beside it.
    Evaluate {
        #[command(flatten)]
        model: ModelSource,
        #[arg(long, value_enum, default_value_t = Split::Test)]
        split: Split,
        /// Print the result as one JSON object on the last line.
        #[arg(long)]
        json: bool,
    },
    /// Predict the class of PNG or JPEG files, or the targets of a CSV table's rows, with a checkpoint.
    Predict {
        #[command(flatten)]
        model: ModelSource,
        /// Image files (any size, colour or grey: converted to the model's channels and size, then
        /// standardised as in training; the mnist type's invert_light_background inverts dark-on-light
        /// images), or one CSV table (a model trained on `csv` data): its rows need the training's
        /// input columns, and a CSV of predictions is written, one row per input row.
        #[arg(required = true, value_name = "FILE")]
        images: Vec<PathBuf>,
        /// Where a table's predictions go (written whole, then renamed into place); default: stdout.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Show the K most likely classes of each image [default: 1].
        #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        top_k: u64,
        /// Print one JSON object per image.
        #[arg(long)]
        json: bool,
    },
    /// Charts and a Markdown summary of a run, written into its folder: loss.png, accuracy.png,
    /// lr.png, confusion.png (the best checkpoint, counted on --split) and report.md. Works on
    /// unfinished runs too.
    Report {
        /// The run folder: saved/<name>/<timestamp>.
        #[arg(value_name = "RUN_DIR")]
        run_dir: PathBuf,
        /// The split the confusion matrix is counted on.
        #[arg(long, value_enum, default_value_t = Split::Val)]
        split: Split,
    },
    /// Export a checkpoint to ONNX, checked and verified against candle with tract; writes
    /// model.onnx (and the report model.onnx.json) beside the checkpoint.
    #[cfg(feature = "onnx")]
    Export {
        #[arg(long, value_name = "PATH")]
        checkpoint: PathBuf,
        /// Where to write the model [default: model.onnx beside the checkpoint]; the report goes to FILE.json.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The ONNX opset (IR version 8: 13 to 18; 17 or 18 for a model with LayerNorm).
        #[arg(long, value_name = "N", default_value_t = inference::onnx::DEFAULT_OPSET)]
        opset: i64,
        /// Write the file without running it through tract against candle.
        #[arg(long)]
        no_verify: bool,
    },
    /// Download the four MNIST files into data_loader.args.data_dir, verifying their SHA-256.
    Download,
    /// Measure training (or, with --eval, inference) throughput of the configured model on random
    /// in-memory data: samples/s, step time p50/p90 and peak memory; with --data, on the configured
    /// data, and how much of the step waits for it. Build with --release.
    Bench {
        /// Timed steps.
        #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
        steps: u64,
        /// Untimed steps first.
        #[arg(long, value_name = "W", default_value_t = 5)]
        warmup: u64,
        /// Batch size [default: 64 for training, 256 with --eval].
        #[arg(long, value_name = "B", value_parser = clap::value_parser!(u64).range(1..))]
        batch_size: Option<u64>,
        /// Forward passes only (inference), without dropout or gradients.
        #[arg(long, conflicts_with = "data")]
        eval: bool,
        /// Train on the configured data instead of random data: the loader's images/s against the
        /// step's samples/s, and the share of step time spent waiting for data [batch: the config's].
        #[arg(long)]
        data: bool,
        /// Print the result as one JSON object on the last line.
        #[arg(long)]
        json: bool,
    },
}

/// Which trained model `evaluate` and `predict` use.
#[derive(Debug, Args)]
struct ModelSource {
    /// A checkpoint; the model is rebuilt from the config.json saved beside it.
    #[cfg_attr(
        feature = "onnx",
        arg(long, value_name = "PATH", required_unless_present = "onnx", conflicts_with = "onnx")
    )]
    #[cfg_attr(not(feature = "onnx"), arg(long, value_name = "PATH", required = true))]
    checkpoint: Option<PathBuf>,
    /// An exported ONNX file instead, run by tract; its config comes from the file.
    #[cfg(feature = "onnx")]
    #[arg(long, value_name = "FILE")]
    onnx: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Split {
    Val,
    Test,
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let logger = crate::logging::LoggerConfig::load(&cli.logger_config)?;
    match cli.command {
        Command::Train { resume } => train(&cli.config, &cli.set, &logger, resume.as_deref()),
        Command::Evaluate { model, split, json } => {
            crate::logging::init(&logger, None)?;
            #[cfg(feature = "onnx")]
            if let Some(file) = &model.onnx {
                let onnx = inference::onnx::OnnxModel::load(file)?;
                let config = match &cli.config {
                    Some(path) => Config::load(path, &cli.set)?,
                    None => onnx.config(&cli.set)?,
                };
                let result = inference::onnx::evaluate_onnx(&onnx, &config, eval_split(split))?;
                print_evaluation(&result, json);
                return Ok(());
            }
            let checkpoint = model.checkpoint.context("pass --checkpoint PATH")?;
            let config = checkpoint_config(&cli.config, &cli.set, &checkpoint)?;
            let result = inference::evaluate_checkpoint(&checkpoint, &config, eval_split(split))?;
            print_evaluation(&result, json);
            Ok(())
        }
        Command::Predict { model, images, output, top_k, json } => {
            crate::logging::init(&logger, None)?;
            if let [table] = images.as_slice()
                && table.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv") || e.eq_ignore_ascii_case("tsv"))
            {
                return predict_table(&cli.config, &cli.set, &model, table, output.as_deref());
            }
            if output.is_some() {
                anyhow::bail!("--output is for the predictions of a CSV table; image predictions print to stdout");
            }
            #[cfg(feature = "onnx")]
            let from_onnx = match &model.onnx {
                Some(file) => {
                    let onnx = inference::onnx::OnnxModel::load(file)?;
                    Some(inference::onnx::predict_onnx(&onnx, &images)?)
                }
                None => None,
            };
            #[cfg(not(feature = "onnx"))]
            let from_onnx = None;
            let predictions = match from_onnx {
                Some(predictions) => predictions,
                None => {
                    let checkpoint = model.checkpoint.context("pass --checkpoint PATH")?;
                    let config = checkpoint_config(&cli.config, &cli.set, &checkpoint)?;
                    let restored = inference::restore(&checkpoint, &config)?;
                    let model = restored.model.as_ref();
                    inference::predict::predict(model, &restored.spec, &images, &config.data_loader, &restored.device)?
                }
            };
            for mut p in predictions {
                p.top.truncate(top_k as usize);
                if json {
                    println!("{}", serde_json::to_string(&p)?);
                } else {
                    let note = if p.inverted { " (inverted: dark on a light background)" } else { "" };
                    println!("{}: {} ({:.1}%){note}", p.file.display(), p.name, 100.0 * p.probability);
                    for (rank, r) in p.top.iter().enumerate().skip(1) {
                        println!("  {}. {} ({:.1}%)", rank + 1, r.name, 100.0 * r.probability);
                    }
                }
            }
            Ok(())
        }
        Command::Report { run_dir, split } => {
            crate::logging::init(&logger, None)?;
            let options = inference::report::ReportOptions {
                split: eval_split(split),
                // --config replaces the run's config.json; --set applies to either.
                config: cli.config.as_deref().map(|path| Config::load(path, &cli.set)).transpose()?,
                overrides: cli.set.clone(),
            };
            let report = inference::report::report(&run_dir, &options)?;
            for chart in &report.charts {
                println!("wrote {}", chart.display());
            }
            println!("wrote {}", report.markdown.display());
            if !report.finished {
                println!("the run is unfinished: the report covers the {} epochs in its metrics.csv", report.epochs);
            }
            Ok(())
        }
        #[cfg(feature = "onnx")]
        Command::Export { checkpoint, output, opset, no_verify } => {
            crate::logging::init(&logger, None)?;
            let config = checkpoint_config(&cli.config, &cli.set, &checkpoint)?;
            let options = inference::onnx::ExportOptions { output, opset, verify: !no_verify };
            let report = inference::onnx::export_checkpoint(&checkpoint, &config, &options)?;
            println!("{}", report.summary());
            Ok(())
        }
        Command::Download => {
            crate::logging::init(&logger, None)?;
            let config = Config::load(cli.config.as_deref().unwrap_or(Path::new("config.json")), &cli.set)?;
            let experiment::data::DataLoaderConfig::Mnist(args) = &config.data_loader else {
                anyhow::bail!(
                    "`download` fetches the MNIST files; data_loader.type is {:?}, whose files you provide",
                    config.data_loader.name()
                );
            };
            let reports = data_loader::download::download(
                &args.data_dir,
                &args.mirrors,
                &data_loader::download::MNIST_FILES,
                &mut |line| tracing::info!("{line}"),
            )?;
            for report in reports {
                println!("{}: {:?}", report.name, report.outcome);
            }
            Ok(())
        }
        Command::Bench { steps, warmup, batch_size, eval, data, json } => {
            crate::logging::init(&logger, None)?;
            if cfg!(debug_assertions) {
                tracing::warn!("this is a debug build: for representative numbers run `cargo run --release -- bench`");
            }
            let config = Config::load(cli.config.as_deref().unwrap_or(Path::new("config.json")), &cli.set)?;
            if data {
                let batch_size = batch_size.map_or(config.data_loader.batch_size(), |b| b as usize);
                let options =
                    BenchOptions { mode: BenchMode::Train, steps: steps as usize, warmup: warmup as usize, batch_size };
                let report = training::bench::data::bench_data(&config, &options)?;
                println!("{}", report.summary());
                if json {
                    println!("{}", serde_json::to_string(&report)?);
                }
                return Ok(());
            }
            let (mode, default_batch) = if eval { (BenchMode::Eval, 256) } else { (BenchMode::Train, 64) };
            let options = BenchOptions {
                mode,
                steps: steps as usize,
                warmup: warmup as usize,
                batch_size: batch_size.map_or(default_batch, |b| b as usize),
            };
            let report = training::bench::bench(&config, &options)?;
            println!("{}", report.summary());
            if json {
                println!("{}", serde_json::to_string(&report)?);
            }
            Ok(())
        }
    }
}

/// The loss and metrics with the task's tables (per-class accuracy and the confusion matrix,
/// per-label scores, or per-target errors), as text or (`--json`) as one JSON object on one line.
fn print_evaluation(result: &experiment::evaluate::Evaluation, json: bool) {
    use model::TaskKind;
    if json {
        let mut object = serde_json::json!({
            "task": result.task,
            "loss": result.loss,
            "samples": result.samples,
            "classes": result.classes,
        });
        match result.task {
            TaskKind::Classification => {
                object["per_class_accuracy"] = serde_json::json!(result.per_class_accuracy);
                object["confusion"] = serde_json::json!(result.confusion);
                object["per_class"] = serde_json::json!(result.per_class);
            }
            TaskKind::MultiLabel => object["per_label"] = serde_json::json!(result.per_class),
            TaskKind::Regression => object["per_target"] = serde_json::json!(result.per_target),
        }
        for (name, value) in &result.metrics {
            object[name] = serde_json::json!(value);
        }
        println!("{object}");
        return;
    }
    let what = if result.task == TaskKind::Classification { "images" } else { "samples" };
    println!("{} {what}: loss {:.4}", result.samples, result.loss);
    for (name, value) in &result.metrics {
        println!("{name}: {value:.4}");
    }
    match result.task {
        TaskKind::Classification => {
            println!("{}", result.per_class_line());
            println!("{}", result.per_class_table());
            println!("confusion matrix (rows: true class, columns: predicted class):");
            println!("{}", result.confusion_table());
        }
        TaskKind::MultiLabel => println!("{}", result.per_class_table()),
        TaskKind::Regression => println!("{}", result.per_target_table()),
    }
}

/// `predict` on a CSV table: one row of predictions per row, to `output` (atomically) or stdout.
fn predict_table(
    config: &Option<PathBuf>,
    set: &[String],
    model: &ModelSource,
    table: &Path,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    #[cfg(feature = "onnx")]
    let from_onnx = model.onnx.as_ref().map(|file| -> anyhow::Result<_> {
        let onnx = inference::onnx::OnnxModel::load(file)?;
        Ok(inference::onnx::predict_onnx_table(&onnx, table)?)
    });
    #[cfg(not(feature = "onnx"))]
    let from_onnx: Option<anyhow::Result<inference::predict::TablePredictions>> = None;
    let predictions = match from_onnx {
        Some(predictions) => predictions?,
        None => {
            let checkpoint = model.checkpoint.as_ref().context("pass --checkpoint PATH")?;
            let config = checkpoint_config(config, set, checkpoint)?;
            let restored = inference::restore(checkpoint, &config)?;
            let task = experiment::task::Task::new(&restored.spec.target, &config);
            inference::predict::predict_table(
                restored.model.as_ref(),
                &restored.spec,
                &task,
                table,
                &config.data_loader,
                &restored.device,
            )?
        }
    };
    let csv = predictions.to_csv();
    match output {
        None => print!("{csv}"),
        Some(path) => {
            experiment::checkpoint::write_atomically(path, csv.as_bytes())
                .with_context(|| format!("writing the predictions to {}", path.display()))?;
            println!("wrote {} predictions to {}", predictions.rows.len(), path.display());
        }
    }
    Ok(())
}

/// --config if given, else the config saved in the checkpoint's run folder; --set applies to both.
fn checkpoint_config(config: &Option<PathBuf>, set: &[String], checkpoint: &Path) -> anyhow::Result<Config> {
    Ok(match config {
        Some(path) => Config::load(path, set)?,
        None => inference::config_for_checkpoint(checkpoint, set)?,
    })
}

fn eval_split(split: Split) -> EvalSplit {
    match split {
        Split::Val => EvalSplit::Val,
        Split::Test => EvalSplit::Test,
    }
}

fn train(
    config: &Option<PathBuf>,
    set: &[String],
    logger: &crate::logging::LoggerConfig,
    resume: Option<&Path>,
) -> anyhow::Result<()> {
    // One process, or one rank of a job `mpirun`/`srun` started (the `distributed` feature).
    let group = training::distributed::launch::from_environment()?;
    let result = train_as(&group, config, set, logger, resume);
    if let Err(err) = &result
        && !group.is_single()
    {
        // The other ranks would wait for this one at their next all-reduce: end the job.
        eprintln!("error: rank {} of {}: {}", group.rank(), group.world(), crate::one_line(err));
        group.abort_all(1);
    }
    result
}

fn train_as(
    group: &training::distributed::Group,
    config: &Option<PathBuf>,
    set: &[String],
    logger: &crate::logging::LoggerConfig,
    resume: Option<&Path>,
) -> anyhow::Result<()> {
    let (config, run, checkpoint) = match resume {
        None => {
            let config = Config::load(config.as_deref().unwrap_or(Path::new("config.json")), set)?;
            // Rank 0 creates the run folder; the others learn its name and never write into it.
            let run = if group.is_writer() {
                RunDir::create(&config)
                    .with_context(|| format!("creating the run folder under {}", config.trainer.save_dir.display()))?
            } else {
                RunDir::open(Path::new(""))
            };
            let path = group.share_text(&run.path().to_string_lossy())?;
            (config, RunDir::open(Path::new(&path)), None)
        }
        Some(path) => {
            let (checkpoint, _) = experiment::resume::find_checkpoint(path)?;
            let run_path = checkpoint.parent().unwrap_or(Path::new(".")).to_path_buf();
            let config_path = config.clone().unwrap_or_else(|| run_path.join("config.json"));
            let config = experiment::resume::with_recorded_normalize(Config::load(&config_path, set)?, &run_path);
            let run = RunDir::open(&run_path);
            // Every rank has read the config before rank 0 rewrites it.
            group.share_text("")?;
            if group.is_writer() {
                run.save_config(&config).with_context(|| format!("updating {}", run.file("config.json").display()))?;
            }
            (config, run, Some(checkpoint))
        }
    };
    let log_file = run.file("train.log");
    crate::logging::init(logger, group.is_writer().then_some(log_file.as_path()))?;
    // Every line a rank logs starts with `rank{rank=R}` when there is more than one.
    let _rank = (!group.is_single()).then(|| tracing::info_span!("rank", rank = group.rank()).entered());
    tracing::info!("run folder: {}", run.path().display());

    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    // Under mpirun every rank gets the signal (as SIGTERM); rank 0 speaks for them.
    let announce = group.is_writer();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: exiting now");
            std::process::exit(130);
        }
        if announce {
            eprintln!("\nCtrl-C: stopping after this step and saving a checkpoint (Ctrl-C again to exit at once)");
        }
    })
    .context("installing the Ctrl-C handler")?;

    let options = TrainOptions { resume: checkpoint, interrupt, progress: true, group: group.clone() };
    let summary = training::train(&config, &run, &options)?;
    if !group.is_writer() {
        return Ok(());
    }
    match summary.stopped_by {
        "interrupted" | "max_steps" => tracing::info!(
            "stopped ({}) after {} steps; continue with: train --resume {}",
            summary.stopped_by,
            summary.global_steps,
            run.path().display()
        ),
        _ => tracing::info!(
            "done: {} epochs, best {} = {} at epoch {}; {}",
            summary.epochs_run,
            summary.monitor,
            summary.best_metric.map_or("n/a".into(), |m| format!("{m:.4}")),
            summary.best_epoch.map_or("n/a".into(), |e| e.to_string()),
            run.path().display()
        ),
    }
    Ok(())
}
