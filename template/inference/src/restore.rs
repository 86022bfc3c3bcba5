//! Rebuilding a trained model: its config (saved in the run folder beside the checkpoint) and its
//! weights.

use std::path::{Path, PathBuf};

use candle_core::Device;
use experiment::checkpoint::{self, CheckpointError};
use model::Classifier;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("checkpoint {0} does not exist; runs are saved as saved/<name>/<timestamp>/model_best.safetensors")]
    NoCheckpoint(PathBuf),
    #[error("{checkpoint} has no config.json beside it; pass the config it was trained with: --config FILE")]
    NoConfig { checkpoint: PathBuf },
    #[error(transparent)]
    Config(#[from] experiment::ConfigError),
    #[error(transparent)]
    Device(#[from] experiment::device::DeviceError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("building the model: {0}")]
    Candle(#[from] candle_core::Error),
}

pub struct Restored {
    pub model: Box<dyn Classifier>,
    pub varmap: candle_nn::VarMap,
    pub device: Device,
    /// The data's shape and classes the model was trained for, from the checkpoint.
    pub spec: model::DataSpec,
}

/// The config a checkpoint was trained with: `config.json` in the checkpoint's run folder, with
/// `overrides` (`--set`) applied.
pub fn config_for_checkpoint(checkpoint: &Path, overrides: &[String]) -> Result<experiment::Config, RestoreError> {
    if !checkpoint.is_file() {
        return Err(RestoreError::NoCheckpoint(checkpoint.to_path_buf()));
    }
    let path = checkpoint.parent().unwrap_or(Path::new(".")).join("config.json");
    if !path.exists() {
        return Err(RestoreError::NoConfig { checkpoint: checkpoint.to_path_buf() });
    }
    Ok(experiment::Config::load(&path, overrides)?)
}

/// Build the model `config` describes for the data spec the checkpoint records, and load the
/// checkpoint's weights into it.
pub fn restore(checkpoint: &Path, config: &experiment::Config) -> Result<Restored, RestoreError> {
    let (device, _) = config.device.select()?;
    let loaded = checkpoint::load(checkpoint, &device)?;
    let built = experiment::build_model(config, &loaded.spec, &device)?;
    loaded.restore_weights(&built.varmap, checkpoint, &config.model)?;
    Ok(Restored { model: built.model, varmap: built.varmap, device, spec: loaded.spec })
}
