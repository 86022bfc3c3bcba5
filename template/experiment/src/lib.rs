//! What training and inference share: the typed experiment configuration (`config.json`) and the
//! sections it names (data, model, loss, metrics, optimiser, schedule, device), the data sets it
//! builds, the checkpoint format and run folder, and evaluation. `inference` depends on this crate
//! and not on `training`, so a program that only predicts links no trainer, optimiser or
//! TensorBoard writer.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
pub mod evaluate;
pub mod init;
pub mod loss;
pub mod metrics;
pub mod optimizer;
pub mod resume;
pub mod retention;
pub mod run_dir;
pub mod schedule;
pub mod task;

pub use config::{Config, ConfigError};
pub use run_dir::RunDir;

use candle_core::{DType, Device};
use candle_nn::VarMap;
use model::{Classifier, DataSpec};

/// A model with its variables, built from the config for the data's shape and classes.
pub struct Built {
    pub varmap: VarMap,
    pub model: Box<dyn Classifier>,
}

/// Build the configured model on `device`, with fresh weights drawn from `config.seed` (a
/// checkpoint's weights replace them when one is loaded).
pub fn build_model(config: &Config, spec: &DataSpec, device: &Device) -> candle_core::Result<Built> {
    let varmap = VarMap::new();
    let vb = init::seeded_var_builder(&varmap, config.seed, DType::F32, device);
    let model = config.model.build(spec, vb)?;
    Ok(Built { varmap, model })
}
