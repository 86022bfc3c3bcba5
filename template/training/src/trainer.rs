//! The training loop: epochs of optimiser steps, validation after each epoch, the best and the
//! periodic checkpoints, early stopping, and the run's metrics and summary files.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use model::Classifier;
use serde::Serialize;
use tracing::info;

use crate::checkpoint::{self, CheckpointError, TrainerState};
use crate::config::{Config, Monitor};
use crate::evaluate::{Evaluation, evaluate};
use crate::metrics::Metric;
use crate::optim::Optimizer;
use crate::run_dir::{EpochRecord, RunDir};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),
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
    /// "completed", "early_stop" or "max_steps".
    pub stopped_by: &'static str,
    pub final_train: Option<Evaluation>,
    pub final_val: Option<Evaluation>,
    pub wall_seconds: f64,
}

/// A model with its variables, built from the config.
pub struct Built {
    pub varmap: VarMap,
    pub model: Box<dyn Classifier>,
}

/// Build the configured model on `device`, with fresh weights.
pub fn build_model(config: &Config, device: &Device) -> candle_core::Result<Built> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let model = config.model.build(vb)?;
    Ok(Built { varmap, model })
}

/// Train as configured, writing everything into `run`.
pub fn train(config: &Config, run: &RunDir) -> Result<Summary, TrainError> {
    let wall = Instant::now();
    let trainer = &config.trainer;
    let (device, why) = config.device.select()?;
    info!("device: {why}");
    let splits = config.data_loader.load_train_val(config.seed, &device)?;
    let train_loader = config.data_loader.loader(&splits.train, true, config.seed)?;
    let val_loader = config.data_loader.loader(&splits.val, false, config.seed)?;
    info!("data: {} training and {} validation images", train_loader.num_samples(), val_loader.num_samples());

    let Built { varmap, model } = build_model(config, &device)?;
    let parameters = model::parameter_count(&varmap);
    info!("model: {} with {parameters} parameters", config.model.name());
    let mut optimizer = Optimizer::new(&config.optimizer, varmap.data().lock().expect("not poisoned").clone());
    let base_lr = config.optimizer.lr();
    let total_steps = trainer.epochs * train_loader.num_batches();
    let total_steps = trainer.max_steps.map_or(total_steps, |m| m.min(total_steps));
    let io = |source| TrainError::RunDir { path: run.path().to_path_buf(), source };

    let mut state = TrainerState::default();
    let mut stopped_by = "completed";
    let (mut last_train, mut last_val) = (None, None);
    while state.epoch < trainer.epochs {
        let epoch = state.epoch + 1;
        let start = Instant::now();
        let (mut loss_sum, mut correct, mut samples) = (0.0, 0.0, 0usize);
        let mut lr = base_lr;
        for batch in train_loader.epoch(epoch as u64) {
            let (images, labels) = batch?;
            lr = config.lr_scheduler.lr(base_lr, state.global_step as usize, total_steps);
            let logits = model.forward_t(&images, true)?;
            let loss = config.loss.compute(&logits, &labels)?;
            let loss_value = f64::from(loss.to_scalar::<f32>()?);
            let anomaly = |what, value| TrainError::Anomaly { what, value, step: state.global_step + 1, epoch };
            if trainer.detect_anomaly && !loss_value.is_finite() {
                return Err(anomaly("loss", loss_value));
            }
            let mut grads = loss.backward()?;
            if trainer.detect_anomaly || trainer.grad_clip_norm.is_some() {
                let norm = clip_gradients(&varmap, &mut grads, trainer.grad_clip_norm)?;
                if trainer.detect_anomaly && !norm.is_finite() {
                    return Err(anomaly("gradient norm", norm));
                }
            }
            optimizer.step(&grads, lr)?;
            state.global_step += 1;
            let n = labels.dims1()?;
            loss_sum += loss_value * n as f64;
            correct += Metric::Accuracy.correct(&logits, &labels)?;
            samples += n;
            if state.global_step % trainer.log_every_steps as u64 == 0 {
                info!("epoch {epoch} step {} loss {loss_value:.4} lr {lr:.2e}", state.global_step);
            }
            if trainer.max_steps.is_some_and(|m| state.global_step as usize >= m) {
                stopped_by = "max_steps";
                break;
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let train_eval = Evaluation {
            loss: loss_sum / samples.max(1) as f64,
            metrics: [("accuracy".to_string(), correct / samples.max(1) as f64)].into(),
            samples,
            seconds,
        };
        let val = evaluate(model.as_ref(), &val_loader, &config.loss, &config.metrics)?;
        state.epoch = epoch;
        info!(
            "epoch {epoch}/{}: train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} | {:.1}s, {:.0} samples/s",
            trainer.epochs, train_eval.loss, train_eval.accuracy(), val.loss, val.accuracy(), seconds,
            samples as f64 / seconds
        );
        let record = |split, e: &Evaluation, secs: f64| EpochRecord {
            epoch, split, loss: e.loss, accuracy: e.accuracy(), lr, seconds: secs,
            samples_per_sec: e.samples as f64 / secs.max(1e-9),
        };
        run.append_metrics(&[record("train", &train_eval, seconds), record("val", &val, val.seconds)]).map_err(io)?;

        if let Some(improved) = improvement(&trainer.monitor, &train_eval, &val, state.best_metric) {
            state.best_metric = Some(improved);
            state.best_epoch = Some(epoch);
            state.epochs_without_improvement = 0;
            checkpoint::save(&run.file("model_best.safetensors"), &varmap, None, Some(&state))?;
            info!("new best {} = {improved:.4}: saved model_best.safetensors", trainer.monitor);
        } else if trainer.monitor != Monitor::Off {
            state.epochs_without_improvement += 1;
        }
        let last_epoch = epoch == trainer.epochs || stopped_by != "completed";
        if (trainer.save_period > 0 && epoch % trainer.save_period == 0) || last_epoch {
            let path = run.file(&format!("checkpoint-epoch{epoch}.safetensors"));
            checkpoint::save(&path, &varmap, Some(&optimizer.state_tensors()), Some(&state))?;
        }
        last_train = Some(train_eval);
        last_val = Some(val);
        if stopped_by != "completed" {
            break;
        }
        if trainer.early_stop > 0 && state.epochs_without_improvement >= trainer.early_stop {
            info!("early stop: {} did not improve for {} epochs", trainer.monitor, trainer.early_stop);
            stopped_by = "early_stop";
            break;
        }
    }
    let summary = Summary {
        model: config.model.name().to_string(),
        parameters,
        monitor: trainer.monitor.to_string(),
        best_metric: state.best_metric,
        best_epoch: state.best_epoch,
        epochs_run: state.epoch,
        global_steps: state.global_step,
        stopped_by,
        final_train: last_train,
        final_val: last_val,
        wall_seconds: wall.elapsed().as_secs_f64(),
    };
    run.write_summary(&summary).map_err(io)?;
    Ok(summary)
}

/// The monitored value if it improved on `best`.
fn improvement(monitor: &Monitor, train: &Evaluation, val: &Evaluation, best: Option<f64>) -> Option<f64> {
    let value = |metric: &str| match metric {
        "val_loss" => val.loss,
        "val_accuracy" => val.accuracy(),
        "train_loss" => train.loss,
        _ => train.accuracy(),
    };
    let (current, better): (f64, fn(f64, f64) -> bool) = match monitor {
        Monitor::Off => return None,
        Monitor::Min(m) => (value(m), |a, b| a < b),
        Monitor::Max(m) => (value(m), |a, b| a > b),
    };
    match best {
        Some(b) if !better(current, b) => None,
        _ if current.is_nan() => None,
        _ => Some(current),
    }
}

/// The global L2 norm of all gradients; if it exceeds `max_norm`, scale them down to it.
fn clip_gradients(
    varmap: &VarMap,
    grads: &mut candle_core::backprop::GradStore,
    max_norm: Option<f64>,
) -> candle_core::Result<f64> {
    let vars = varmap.all_vars();
    let mut squares = Vec::new();
    for var in &vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            squares.push(g.sqr()?.sum_all()?);
        }
    }
    if squares.is_empty() {
        return Ok(0.0);
    }
    let norm = f64::from(Tensor::stack(&squares, 0)?.sum_all()?.sqrt()?.to_scalar::<f32>()?);
    if let Some(max) = max_norm {
        if norm > max {
            let scale = max / (norm + 1e-6);
            for var in &vars {
                if let Some(g) = grads.remove(var.as_tensor()) {
                    grads.insert(var.as_tensor(), (g * scale)?);
                }
            }
        }
    }
    Ok(norm)
}
