//! The training loop: epochs of optimiser steps, validation after each epoch, the best and the
//! periodic checkpoints, early stopping, and the run's metrics and summary files.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::Tensor;
use candle_nn::VarMap;
use model::DataSpec;
use serde::Serialize;
use tracing::info;

use experiment::checkpoint::{self, CheckpointError, TrainerState};
use experiment::config::{Config, Monitor};
use experiment::evaluate::{Evaluation, Tally};
use experiment::retention::{self, Kept};
use experiment::run_dir::{EpochRecord, RunDir};
use experiment::task::Task;
use experiment::{Built, build_model};

use crate::optim::Optimizer;
use crate::progress::EpochProgress;
use crate::tensorboard::{TensorBoardError, TrainingLog};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Device(#[from] experiment::device::DeviceError),
    #[error(transparent)]
    Data(#[from] data_loader::DataError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("writing into the run folder {path}: {source}")]
    RunDir { path: std::path::PathBuf, source: std::io::Error },
    #[error(
        "the {what} became {value} at step {step} (epoch {epoch}); training stopped and the last \
         checkpoint is intact. Lower optimizer.args.lr, or set trainer.grad_clip_norm"
    )]
    Anomaly { what: &'static str, value: f64, step: u64, epoch: usize },
    #[error(
        "cannot resume from {checkpoint}: its model was built for samples {:?} with {}, but the data \
         now gives samples {:?} with {}; resume with the data it was trained on, or start a new run \
         (trainer.init_from-style transfer is a new run, not a resume)",
        saved.input_shape, saved.target.describe(), now.input_shape, now.target.describe()
    )]
    /// The specs boxed: inline, the two would make every `Result<_, TrainError>` as large as both.
    DataChanged { checkpoint: PathBuf, saved: Box<DataSpec>, now: Box<DataSpec> },
    #[error(transparent)]
    InitFrom(#[from] crate::init_from::InitError),
    #[error(transparent)]
    TensorBoard(#[from] TensorBoardError),
    #[error(
        "`data_loader.args.batch_size` is {batch_size}, but the global batch is shared by {world} \
         processes; make it at least {world}, or start fewer processes"
    )]
    BatchTooSmall { batch_size: usize, world: usize },
    #[error("data-parallel training: {0}")]
    Collective(#[from] crate::distributed::CollectiveError),
    #[error("model computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// What `summary.json` holds at the end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub model: String,
    pub parameters: usize,
    pub monitor: String,
    pub best_metric: Option<f64>,
    pub best_epoch: Option<usize>,
    pub epochs_run: usize,
    pub global_steps: u64,
    /// "completed", "early_stop", "max_steps" or "interrupted".
    pub stopped_by: &'static str,
    pub final_train: Option<Evaluation>,
    pub final_val: Option<Evaluation>,
    pub wall_seconds: f64,
}

/// How a training run is driven.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from this checkpoint; `run` must be its run folder.
    pub resume: Option<PathBuf>,
    /// Set (by Ctrl-C) to stop after the current step, with a checkpoint to resume from.
    pub interrupt: Arc<AtomicBool>,
    /// Show a progress bar when stderr is a terminal.
    pub progress: bool,
    /// The processes the run is spread over (one, unless launched data-parallel): each takes its
    /// part of every global batch and the gradients are summed over them.
    pub group: crate::distributed::Group,
}

/// Train as configured, writing everything into `run`.
pub fn train(config: &Config, run: &RunDir, options: &TrainOptions) -> Result<Summary, TrainError> {
    let wall = Instant::now();
    let trainer = &config.trainer;
    // Rank 0 alone writes the run folder; the other ranks compute and log to the console.
    let writer = options.group.is_writer();
    let (device, why) = config.device.select_for(options.group.local_rank())?;
    info!("device: {why}");
    // On GPUs (with the `nccl` feature) the gradients are summed by NCCL, on the devices.
    let group = &options.group.for_device(&device)?;
    if !group.is_single() && !device.is_cpu() && !group.reduces_on(&device) && writer {
        info!(
            "the gradients are summed through host memory over MPI: build with `--features nccl` to sum them on the GPUs"
        );
    }
    if !device.is_cpu() {
        // GPU dropout masks come from the device's generator, one per rank (so N GPU ranks match
        // one process only without dropout); on the CPU, from set_dropout_stream, per sample.
        device.set_seed(config.seed.wrapping_add(group.rank() as u64))?;
    }
    let splits = config.data_loader.load_train_val(config.seed, &device)?;
    let resolved;
    let config = if config.data_loader.needs_fitting() {
        // The run's config.json (and TensorBoard's copy) get what was measured on the training
        // split (the standardisation, a table's encoding): evaluate, predict, export and
        // --resume then prepare data exactly as this run does.
        resolved = Config { data_loader: config.data_loader.with_fitted(&splits.fitted), ..config.clone() };
        if writer {
            run.save_config(&resolved)
                .map_err(|source| TrainError::RunDir { path: run.file("config.json"), source })?;
            info!("what the training split measured is recorded in {}", run.file("config.json").display());
        }
        &resolved
    } else {
        config
    };
    let batch_size = config.data_loader.batch_size();
    if batch_size < group.world() {
        return Err(TrainError::BatchTooSmall { batch_size, world: group.world() });
    }
    let train_loader =
        config.data_loader.loader(&splits.train, true, config.seed)?.with_shard(group.rank(), group.world())?;
    // Validation is sharded too; its sums are added up over the ranks.
    let val_loader =
        config.data_loader.loader(&splits.val, false, config.seed)?.with_shard(group.rank(), group.world())?;
    info!(
        "data: {} training and {} validation images",
        train_loader.num_samples(),
        data_loader::Dataset::len(&splits.val)
    );
    if !group.is_single() {
        info!(
            "data parallel: rank {} of {}, {} of each global batch of {batch_size}",
            group.rank(),
            group.world(),
            data_loader::shard_range(batch_size, group.rank(), group.world()).len()
        );
    }

    let spec = &splits.spec;
    info!("data: samples {:?}, {} ({})", spec.input_shape, spec.target.describe(), spec.task());
    let task = Task::new(&spec.target, config);
    let headline = task.headline();
    let monitor = config.monitor();
    let Built { varmap, model } = build_model(config, spec, &device)?;
    let parameters = model::parameter_count(&varmap);
    info!("model: {} with {parameters} parameters", config.model.name());
    // A new run may start from trained weights; a resumed run has its own, but freezes the same set.
    let init = match &trainer.init_from {
        Some(path) => {
            let report = crate::init_from::apply(path, &varmap, &device, options.resume.is_none())?;
            info!("{}", report.summary());
            Some(report)
        }
        None => None,
    };
    // Layer state (batch-norm running statistics) is saved with the weights but never optimised.
    let mut trainable = model::trainable_vars(&varmap);
    if let (true, Some(report)) = (trainer.freeze_loaded, &init) {
        trainable.retain(|name, _| !report.loaded.contains(name));
        // As in PyTorch, freezing stops the optimiser, not a batch norm's running statistics.
        let frozen = report.loaded.iter().filter(|name| !model::is_state(name)).count();
        info!("freeze_loaded: {frozen} parameters frozen, {} trained", trainable.len());
    }
    // The gradients summed over the processes, in the same order on each.
    let mut reduced: Vec<(String, candle_core::Var)> = trainable.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    reduced.sort_by(|a, b| a.0.cmp(&b.0));
    // Layer state (batch-norm running statistics), which each rank updates from its own part.
    let mut layer_state: Vec<(String, candle_core::Var)> = {
        let data = varmap.data().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        data.iter().filter(|(name, _)| model::is_state(name)).map(|(n, v)| (n.clone(), v.clone())).collect()
    };
    layer_state.sort_by(|a, b| a.0.cmp(&b.0));
    let mut optimizer = Optimizer::new(&config.optimizer, trainable);
    let mut state = TrainerState::default();
    if let Some(path) = &options.resume {
        let checkpoint = checkpoint::load(path, &device)?;
        if checkpoint.spec != *spec {
            return Err(TrainError::DataChanged {
                checkpoint: path.clone(),
                saved: Box::new(checkpoint.spec),
                now: Box::new(spec.clone()),
            });
        }
        checkpoint.restore_weights(&varmap, path, &config.model)?;
        state = checkpoint.state.clone().unwrap_or_default();
        optimizer.load_state(&checkpoint.optimizer, state.global_step)?;
        info!("resumed from {} at epoch {} step {}", path.display(), state.epoch, state.global_step);
    }
    let base_lr = config.optimizer.lr();
    let total_steps = trainer.epochs * train_loader.num_batches();
    let io = |source| TrainError::RunDir { path: run.path().to_path_buf(), source };
    let mut tensorboard = if writer { TrainingLog::start(config, spec, run)? } else { TrainingLog::off() };

    let mut stopped_by = "completed";
    let (mut last_train, mut last_val) = (None, None);
    'epochs: while state.epoch < trainer.epochs {
        let epoch = state.epoch + 1;
        let progress = EpochProgress::new(
            options.progress && writer,
            epoch,
            trainer.epochs,
            train_loader.num_batches(),
            state.step_in_epoch,
            trainer.log_every_steps,
        );
        let start = Instant::now();
        let mut partial = state.partial;
        let mut lr = base_lr;
        for batch in train_loader.epoch_from(epoch as u64, state.step_in_epoch) {
            let (inputs, targets) = batch?;
            lr = config.lr_scheduler.lr(base_lr, state.global_step as usize, total_steps);
            // This process's part of the global batch: where it starts, and its share.
            let (global, offset) = train_loader.batch_len_and_offset(state.step_in_epoch);
            let n = targets.dim(0)?;
            model::set_dropout_stream(config.seed, state.global_step, offset as u64);
            let (mut grads, mut sums) = if n == 0 {
                (candle_core::backprop::GradStore::default(), [0.0, 0.0, 0.0])
            } else {
                let outputs = model.forward_t(&inputs, true)?;
                let mut loss = task.loss(&outputs, &targets)?;
                if !group.is_single() {
                    loss = (loss * (n as f64 / global as f64))?;
                }
                let correct = task.count_running(&outputs, &targets)?;
                (loss.backward()?, [f64::from(loss.to_scalar::<f32>()?), correct, 0.0])
            };
            // Ctrl-C reaches the ranks at different steps: they stop at the first step any saw it.
            sums[2] = f64::from(u8::from(options.interrupt.load(Ordering::SeqCst)));
            // The global batch's mean loss and its correct predictions, on every process.
            group.sum_f64(&mut sums)?;
            group.sum_gradients(&reduced, &mut grads)?;
            let [loss_value, correct, interrupts] = sums;
            let anomaly = |what, value| TrainError::Anomaly { what, value, step: state.global_step + 1, epoch };
            if trainer.detect_anomaly && !loss_value.is_finite() {
                return Err(anomaly("loss", loss_value));
            }
            if trainer.detect_anomaly || trainer.grad_clip_norm.is_some() {
                let norm = clip_gradients(&reduced, &mut grads, trainer.grad_clip_norm)?;
                if trainer.detect_anomaly && !norm.is_finite() {
                    return Err(anomaly("gradient norm", norm));
                }
            }
            optimizer.step(&grads, lr)?;
            state.global_step += 1;
            state.step_in_epoch += 1;
            tensorboard.step(state.global_step, loss_value, lr)?;
            partial.loss_sum += loss_value * global as f64;
            partial.correct += correct;
            partial.samples += global;
            let seconds = partial.seconds + start.elapsed().as_secs_f64();
            progress.step(
                state.global_step,
                partial.loss_sum / partial.samples as f64,
                task.running_metric().map(|_| partial.correct / partial.samples as f64),
                partial.samples as f64 / seconds,
                lr,
            );
            let interrupted = interrupts > 0.0;
            if interrupted || trainer.max_steps.is_some_and(|m| state.global_step as usize >= m) {
                progress.finish();
                stopped_by = if interrupted { "interrupted" } else { "max_steps" };
                // Mid-epoch: save where we are, so `--resume` continues with the next batch.
                if state.step_in_epoch < train_loader.num_batches() {
                    partial.seconds = seconds;
                    state.partial = partial;
                    let path = run.file(&format!("checkpoint-step{}.safetensors", state.global_step));
                    if writer {
                        checkpoint::save(&path, &varmap, spec, Some(&optimizer.state_tensors()), Some(&state))?;
                        info!("{stopped_by} at epoch {epoch} step {}: saved {}", state.global_step, path.display());
                    }
                    break 'epochs;
                }
            }
        }
        progress.finish();
        let seconds = partial.seconds + start.elapsed().as_secs_f64();
        let train_eval = Evaluation {
            task: spec.task(),
            loss: partial.loss_sum / partial.samples.max(1) as f64,
            metrics: task
                .running_metric()
                .map(|name| (name.to_string(), partial.correct / partial.samples.max(1) as f64))
                .into_iter()
                .collect(),
            samples: partial.samples,
            seconds,
            ..Default::default()
        };
        // Every rank validates (and rank 0 saves) with rank 0's running statistics, as PyTorch's
        // DDP does with `broadcast_buffers`; without this, each rank would score its part of the
        // validation set with statistics no checkpoint holds.
        group.copy_from_rank0(&layer_state)?;
        let val = evaluate_sharded(model.as_ref(), &val_loader, &task, group)?;
        state.epoch = epoch;
        state.step_in_epoch = 0;
        state.partial = Default::default();
        let train_running = match task.running_metric() {
            Some(name) => format!(" {name} {:.4}", train_eval.metrics.get(name).copied().unwrap_or(f64::NAN)),
            None => String::new(),
        };
        info!(
            "epoch {epoch}/{}: train loss {:.4}{train_running} | val loss {:.4} {} | {:.1}s, {:.0} samples/s",
            trainer.epochs,
            train_eval.loss,
            val.loss,
            val.metrics_line(),
            seconds,
            partial.samples as f64 / seconds
        );
        let record = |split, e: &Evaluation, secs: f64| EpochRecord {
            epoch,
            split,
            loss: e.loss,
            metric: e.metrics.get(&headline).copied().unwrap_or(f64::NAN),
            lr,
            seconds: secs,
            samples_per_sec: e.samples as f64 / secs.max(1e-9),
        };
        let rows = [record("train", &train_eval, seconds), record("val", &val, val.seconds)];
        if writer {
            run.append_metrics(&headline, &rows).map_err(io)?;
        }
        tensorboard.epoch(epoch, &headline, &rows)?;

        let monitored = monitored_value(&monitor, &train_eval, &val);
        if let Some(value) = monitored.filter(|v| is_improvement(&monitor, *v, state.best_metric)) {
            state.best_metric = Some(value);
            state.best_epoch = Some(epoch);
            state.epochs_without_improvement = 0;
            if writer {
                checkpoint::save(&run.file("model_best.safetensors"), &varmap, spec, None, Some(&state))?;
                info!("new best {monitor} = {value:.4}: saved model_best.safetensors");
            }
        } else if monitor != Monitor::Off {
            state.epochs_without_improvement += 1;
        }
        let early_stop = trainer.early_stop > 0 && state.epochs_without_improvement >= trainer.early_stop;
        let last = epoch == trainer.epochs || early_stop || stopped_by != "completed";
        if writer && ((trainer.save_period > 0 && epoch % trainer.save_period == 0) || last) {
            save_epoch_checkpoint(run, &varmap, spec, &optimizer, &mut state, epoch, monitored, config)?;
        }
        last_train = Some(train_eval);
        last_val = Some(val);
        if stopped_by != "completed" {
            break;
        }
        if early_stop {
            info!("early stop: {monitor} did not improve for {} epochs", trainer.early_stop);
            stopped_by = "early_stop";
            break;
        }
    }
    let summary = Summary {
        model: config.model.name().to_string(),
        parameters,
        monitor: monitor.to_string(),
        best_metric: state.best_metric,
        best_epoch: state.best_epoch,
        epochs_run: state.epoch,
        global_steps: state.global_step,
        stopped_by,
        final_train: last_train,
        final_val: last_val,
        wall_seconds: wall.elapsed().as_secs_f64(),
    };
    if writer {
        run.write_summary(&summary).map_err(io)?;
    }
    tensorboard.finish()?;
    Ok(summary)
}

/// Write `checkpoint-epoch<N>`, then delete the checkpoints retention no longer keeps and any
/// mid-epoch checkpoint it supersedes.
#[allow(clippy::too_many_arguments)]
fn save_epoch_checkpoint(
    run: &RunDir,
    varmap: &VarMap,
    spec: &DataSpec,
    optimizer: &Optimizer,
    state: &mut TrainerState,
    epoch: usize,
    monitored: Option<f64>,
    config: &Config,
) -> Result<(), TrainError> {
    let file = format!("checkpoint-epoch{epoch}.safetensors");
    let higher_is_better = config.monitor().higher_is_better();
    let kept = Kept { file: file.clone(), epoch, metric: monitored };
    let obsolete = retention::admit(&mut state.kept, kept, config.trainer.save_top_k, higher_is_better);
    checkpoint::save(&run.file(&file), varmap, spec, Some(&optimizer.state_tensors()), Some(state))?;
    let mid_epoch = std::fs::read_dir(run.path())
        .map_err(|source| TrainError::RunDir { path: run.path().to_path_buf(), source })?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("checkpoint-step") && n.ends_with(".safetensors"));
    for name in obsolete.into_iter().chain(mid_epoch) {
        let _ = std::fs::remove_file(run.file(&name));
    }
    Ok(())
}

/// The value `monitor` watches, after an epoch (`Config::check` has made sure the run computes it).
fn monitored_value(monitor: &Monitor, train: &Evaluation, val: &Evaluation) -> Option<f64> {
    let value = |name: &str| {
        let (split, metric) = name.split_once('_')?;
        let evaluation = if split == "val" { val } else { train };
        if metric == "loss" { Some(evaluation.loss) } else { evaluation.metrics.get(metric).copied() }
    };
    match monitor {
        Monitor::Off => None,
        Monitor::Min(m) | Monitor::Max(m) => value(m).filter(|v| !v.is_nan()),
    }
}

fn is_improvement(monitor: &Monitor, value: f64, best: Option<f64>) -> bool {
    match (monitor, best) {
        (Monitor::Off, _) => false,
        (_, None) => true,
        (Monitor::Min(_), Some(b)) => value < b,
        (Monitor::Max(_), Some(b)) => value > b,
    }
}

/// The global L2 norm of the trained variables' gradients, summed in the same order on every rank;
/// if it exceeds `max_norm`, scale them down to it.
fn clip_gradients(
    vars: &[(String, candle_core::Var)],
    grads: &mut candle_core::backprop::GradStore,
    max_norm: Option<f64>,
) -> candle_core::Result<f64> {
    let mut squares = Vec::new();
    for (_, var) in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            squares.push(g.sqr()?.sum_all()?);
        }
    }
    if squares.is_empty() {
        return Ok(0.0);
    }
    let norm = f64::from(Tensor::stack(&squares, 0)?.sum_all()?.sqrt()?.to_scalar::<f32>()?);
    if let Some(max) = max_norm.filter(|max| norm > *max) {
        let scale = max / (norm + 1e-6);
        for (_, var) in vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), (g * scale)?);
            }
        }
    }
    Ok(norm)
}

/// The validation metrics of the whole split: each rank evaluates its shard of every batch and
/// the counts are added up, so N ranks report exactly what one process would.
fn evaluate_sharded<D: data_loader::Dataset>(
    model: &dyn model::Classifier,
    loader: &data_loader::DataLoader<'_, D>,
    task: &Task,
    group: &crate::distributed::Group,
) -> Result<Evaluation, TrainError> {
    let start = Instant::now();
    let mut tally = Tally::count(model, loader, task)?;
    let mut sums = tally.to_sums();
    group.sum_f64(&mut sums)?;
    tally.set_sums(&sums);
    Ok(tally.finish(task, start.elapsed().as_secs_f64()))
}
