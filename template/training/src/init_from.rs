//! Starting a new run from trained weights (`trainer.init_from`): the parameters of a checkpoint
//! whose names and shapes match the new model are copied in, the others keep their fresh
//! initialisation, and the report says which and why (typically the classifier head, when the
//! new data has another number of classes). Unlike `--resume`, the run starts at epoch 0 with a
//! fresh optimiser. With `trainer.freeze_loaded`, the copied parameters are not trained.

use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_nn::VarMap;

use experiment::checkpoint::{self, CheckpointError};

/// What [`apply`] did, parameter by parameter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InitReport {
    pub checkpoint: PathBuf,
    /// Parameters copied from the checkpoint, sorted.
    pub loaded: Vec<String>,
    /// Parameters left as initialised, with the reason, sorted.
    pub skipped: Vec<(String, String)>,
}

impl InitReport {
    /// One log line: what was loaded and what was skipped and why.
    pub fn summary(&self) -> String {
        let skipped: Vec<String> = self.skipped.iter().map(|(n, why)| format!("{n} ({why})")).collect();
        format!(
            "init_from {}: loaded {} parameters, skipped {}{}",
            self.checkpoint.display(),
            self.loaded.len(),
            self.skipped.len(),
            if skipped.is_empty() { String::new() } else { format!(": {}", skipped.join(", ")) }
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(
        "`trainer.init_from`: no parameter of {path} has a name and shape of this model's ({skipped}); \
         is it a checkpoint of another model type?"
    )]
    NothingMatches { path: PathBuf, skipped: String },
    #[error("`trainer.init_from`: copying {name} from {path}: {source}")]
    /// The source boxed: candle's error, beside a path and a name, would make every `Result`
    /// carrying this error (and `TrainError`) larger than clippy's `result_large_err` allows.
    Copy { path: PathBuf, name: String, source: Box<candle_core::Error> },
}

/// Copy into `varmap` every parameter of the checkpoint at `path` whose name and shape match;
/// with `copy` false, only work out which would be (for a resumed run's frozen set).
pub fn apply(path: &Path, varmap: &VarMap, device: &Device, copy: bool) -> Result<InitReport, InitError> {
    let loaded_checkpoint = checkpoint::load(path, device)?;
    let vars = varmap.data().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let mut report = InitReport { checkpoint: path.to_path_buf(), ..Default::default() };
    for name in names {
        let var = &vars[name];
        match loaded_checkpoint.weights.get(name) {
            None => report.skipped.push((name.clone(), "not in the checkpoint".into())),
            Some(t) if t.dims() != var.dims() => {
                report.skipped.push((name.clone(), format!("{:?} in the checkpoint, {:?} here", t.dims(), var.dims())))
            }
            Some(t) => {
                if copy {
                    var.set(t).map_err(|source| InitError::Copy {
                        path: path.to_path_buf(),
                        name: name.clone(),
                        source: Box::new(source),
                    })?;
                }
                report.loaded.push(name.clone());
            }
        }
    }
    if report.loaded.is_empty() {
        let skipped = report.skipped.iter().map(|(n, why)| format!("{n}: {why}")).collect::<Vec<_>>().join(", ");
        return Err(InitError::NothingMatches { path: path.to_path_buf(), skipped });
    }
    Ok(report)
}
