//! Using a trained model: evaluating a checkpoint on the validation or test split, and predicting
//! the classes of image files.

// `rustfmt::skip`: the folder ships only with ONNX export on, and `cargo fmt`, which reads past
// `cfg`, would stop at the missing file in a project without it. Editors still format its files
// on save with rustfmt.toml, and candlecutter's own tests check them.
#[cfg(feature = "onnx")]
#[rustfmt::skip]
pub mod onnx;
pub mod predict;
pub mod report;
pub mod restore;

pub use restore::{Restored, config_for_checkpoint, restore};

use std::path::Path;

use experiment::evaluate::{Evaluation, Tally};

/// Which samples to evaluate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalSplit {
    /// The held-out part of the training files (same seed, same split as in training).
    Val,
    /// The test files (t10k, `test/`, the `test` table).
    Test,
}

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error(transparent)]
    Restore(#[from] restore::RestoreError),
    #[error(transparent)]
    Data(#[from] data_loader::DataError),
    #[error(
        "the model in {checkpoint} was trained on samples {:?} with {}, but the data now gives \
         samples {:?} with {}; evaluate with the data it was trained on",
        trained.input_shape, trained.target.describe(), now.input_shape, now.target.describe()
    )]
    /// The specs boxed, as in `training::TrainError::DataChanged`.
    DataChanged { checkpoint: std::path::PathBuf, trained: Box<model::DataSpec>, now: Box<model::DataSpec> },
    #[error("evaluation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Evaluate the checkpoint at `checkpoint` on `split`, rebuilding the model from `config`.
pub fn evaluate_checkpoint(
    checkpoint: &Path,
    config: &experiment::Config,
    split: EvalSplit,
) -> Result<Evaluation, InferenceError> {
    Ok(score_checkpoint(checkpoint, config, split, false)?.0)
}

/// Every sample's outputs and targets, each `[samples][outputs]` (a regression's values in the
/// targets' units).
pub type Outputs = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// [`evaluate_checkpoint`], keeping with `keep_outputs` every sample's outputs and targets from
/// the same pass (for the charts of a task whose targets are per-output numbers: regression).
pub fn score_checkpoint(
    checkpoint: &Path,
    config: &experiment::Config,
    split: EvalSplit,
    keep_outputs: bool,
) -> Result<(Evaluation, Option<Outputs>), InferenceError> {
    let (Restored { model, spec, .. }, dataset) = restore_with_split(checkpoint, config, split)?;
    let loader = config.data_loader.loader(&dataset, false, config.seed)?;
    let task = experiment::task::Task::new(&spec.target, config);
    let start = std::time::Instant::now();
    let (mut outputs, mut targets) = (Vec::new(), Vec::new());
    let tally = Tally::count_seeing(model.as_ref(), &loader, &task, |batch_outputs, batch_targets| {
        if keep_outputs {
            outputs.extend(batch_outputs.to_vec2::<f32>()?);
            targets.extend(batch_targets.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?);
        }
        Ok(())
    })?;
    let evaluation = tally.finish(&task, start.elapsed().as_secs_f64());
    Ok((evaluation, keep_outputs.then_some((outputs, targets))))
}

/// The model of `checkpoint` and the samples of `split`, checked to be what it was trained on.
fn restore_with_split(
    checkpoint: &Path,
    config: &experiment::Config,
    split: EvalSplit,
) -> Result<(Restored, data_loader::SplitData), InferenceError> {
    // What training measured, never measured again here: its absence is an error that says where it is.
    config.data_loader.check_fitted()?;
    let restored = restore(checkpoint, config)?;
    let dataset = match split {
        EvalSplit::Val => {
            let splits = config.data_loader.load_train_val(config.seed, &restored.device)?;
            if splits.spec != restored.spec {
                let (trained, now) = (Box::new(restored.spec.clone()), Box::new(splits.spec));
                return Err(InferenceError::DataChanged { checkpoint: checkpoint.to_path_buf(), trained, now });
            }
            splits.val
        }
        EvalSplit::Test => config.data_loader.load_test(&restored.spec, &restored.device)?,
    };
    Ok((restored, dataset))
}
