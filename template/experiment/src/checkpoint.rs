//! Checkpoints: one safetensors file holding the model weights (named after the VarBuilder paths),
//! the optimiser state (under `optimizer/`), and in its metadata (JSON) the data's shape and
//! classes the model was built for and the trainer's counters.
//! Files are written to a temporary name, fsynced and renamed, so a crash at any moment leaves
//! every file under a final name complete.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use model::{DataSpec, ModelConfig};
use serde::{Deserialize, Serialize};

const OPTIMIZER_PREFIX: &str = "optimizer/";
const STATE_KEY: &str = "trainer_state";
const SPEC_KEY: &str = "data_spec";

/// Where training stands, saved with every checkpoint: with the weights and the optimiser state,
/// everything a resumed run needs to continue exactly where this one stopped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub global_step: u64,
    /// Batches of the current (incomplete) epoch already trained on; 0 at an epoch boundary.
    #[serde(default)]
    pub step_in_epoch: usize,
    /// The running training loss and accuracy counts of the incomplete epoch.
    #[serde(default)]
    pub partial: Partial,
    pub best_metric: Option<f64>,
    pub best_epoch: Option<usize>,
    pub epochs_without_improvement: usize,
    /// The epoch checkpoints kept on disk (see `retention`).
    #[serde(default)]
    pub kept: Vec<crate::retention::Kept>,
}

/// Running sums over the batches of an epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    pub loss_sum: f64,
    pub correct: f64,
    pub samples: usize,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("writing checkpoint {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("reading checkpoint {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("checkpoint {path} is not a valid safetensors file: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("checkpoint {path} has no parameter `{name}`, which the config's model builds: {cause}")]
    Missing { path: PathBuf, name: String, cause: String },
    #[error("checkpoint {path} has parameters the config's model does not build ({names}): {cause}")]
    Unexpected { path: PathBuf, names: String, cause: String },
    /// Boxed: its two shapes would make every `Result` carrying this error twice as large.
    #[error(transparent)]
    Shape(Box<ShapeMismatch>),
    #[error("checkpoint {path}: {source}")]
    Tensor { path: PathBuf, source: candle_core::Error },
    #[error(
        "checkpoint {path} does not say which data its model was built for (no `{SPEC_KEY}` in its \
         metadata): it was written by an older version of this project; train again to get one"
    )]
    NoSpec { path: PathBuf },
}

/// A parameter whose shape in the checkpoint is not the one the config's model builds.
#[derive(Debug, thiserror::Error)]
#[error(
    "checkpoint {path}: parameter `{name}` is {saved:?} in the checkpoint but {built:?} in the model the config builds; {cause}"
)]
pub struct ShapeMismatch {
    pub path: PathBuf,
    pub name: String,
    pub saved: Vec<usize>,
    pub built: Vec<usize>,
    /// Which model arg differs, when one does.
    pub cause: String,
}

/// A loaded checkpoint.
pub struct Checkpoint {
    pub weights: HashMap<String, Tensor>,
    pub optimizer: HashMap<String, Tensor>,
    pub state: Option<TrainerState>,
    /// The data's shape and classes the model was built for.
    pub spec: DataSpec,
}

/// Save the model's variables and the `spec` it was built for, and optionally optimiser state and
/// trainer state, to `path`.
pub fn save(
    path: &Path,
    varmap: &VarMap,
    spec: &DataSpec,
    optimizer: Option<&HashMap<String, Tensor>>,
    state: Option<&TrainerState>,
) -> Result<(), CheckpointError> {
    let mut tensors: Vec<(String, Tensor)> = {
        let vars = varmap.data().lock().expect("the VarMap lock is never poisoned");
        vars.iter().map(|(name, var)| (name.clone(), var.as_tensor().clone())).collect()
    };
    if let Some(optimizer) = optimizer {
        tensors.extend(optimizer.iter().map(|(name, t)| (format!("{OPTIMIZER_PREFIX}{name}"), t.clone())));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut metadata = HashMap::from([(SPEC_KEY.to_string(), serde_json::to_string(spec).expect("a spec serializes"))]);
    if let Some(state) = state {
        metadata.insert(STATE_KEY.to_string(), serde_json::to_string(state).expect("state serializes"));
    }
    let metadata = Some(metadata);
    let bytes = safetensors::tensor::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), metadata)
        .map_err(|e| CheckpointError::Corrupt { path: path.to_path_buf(), message: e.to_string() })?;
    write_atomically(path, &bytes).map_err(|source| CheckpointError::Write { path: path.to_path_buf(), source })
}

/// Write `bytes` to `path` through a temporary file in the same folder: fsync, rename, fsync the folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("checkpoint");
    let mut tmp = tempfile::Builder::new().prefix(&format!(".{file_name}.")).suffix(".tmp").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // The rename itself is durable once the folder is synced (not possible on every platform).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Only the trainer state of a checkpoint (None for weights-only files such as model_best).
pub fn read_state(path: &Path) -> Result<Option<TrainerState>, CheckpointError> {
    let header = read_header(path)?;
    let corrupt = |message: String| CheckpointError::Corrupt { path: path.to_path_buf(), message };
    match header.get("__metadata__").and_then(|m| m.get(STATE_KEY)).and_then(|s| s.as_str()) {
        Some(json) => Ok(Some(serde_json::from_str(json).map_err(|e| corrupt(format!("{STATE_KEY}: {e}")))?)),
        None => Ok(None),
    }
}

/// Only the data spec of a checkpoint, without reading its tensors.
pub fn read_spec(path: &Path) -> Result<DataSpec, CheckpointError> {
    let header = read_header(path)?;
    let json = header.get("__metadata__").and_then(|m| m.get(SPEC_KEY)).and_then(|s| s.as_str());
    parse_spec(path, json)
}

fn parse_spec(path: &Path, json: Option<&str>) -> Result<DataSpec, CheckpointError> {
    let json = json.ok_or_else(|| CheckpointError::NoSpec { path: path.to_path_buf() })?;
    serde_json::from_str(json)
        .map_err(|e| CheckpointError::Corrupt { path: path.to_path_buf(), message: format!("{SPEC_KEY}: {e}") })
}

/// The JSON header of a safetensors file.
fn read_header(path: &Path) -> Result<serde_json::Value, CheckpointError> {
    let mut file =
        std::fs::File::open(path).map_err(|source| CheckpointError::Read { path: path.to_path_buf(), source })?;
    let corrupt = |message: String| CheckpointError::Corrupt { path: path.to_path_buf(), message };
    // The header is an 8-byte little-endian length, then JSON; no need to read the tensors.
    let mut len = [0u8; 8];
    std::io::Read::read_exact(&mut file, &mut len).map_err(|e| corrupt(e.to_string()))?;
    let len = u64::from_le_bytes(len);
    if len > 100_000_000 {
        return Err(corrupt(format!("header of {len} bytes")));
    }
    let mut header = vec![0u8; len as usize];
    std::io::Read::read_exact(&mut file, &mut header).map_err(|e| corrupt(e.to_string()))?;
    serde_json::from_slice(&header).map_err(|e| corrupt(e.to_string()))
}

/// Load a checkpoint onto `device`.
pub fn load(path: &Path, device: &Device) -> Result<Checkpoint, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Read { path: path.to_path_buf(), source })?;
    let corrupt = |message: String| CheckpointError::Corrupt { path: path.to_path_buf(), message };
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let metadata = metadata.metadata().as_ref();
    let state = match metadata.and_then(|m| m.get(STATE_KEY)) {
        Some(json) => Some(serde_json::from_str(json).map_err(|e| corrupt(format!("{STATE_KEY}: {e}")))?),
        None => None,
    };
    let spec = parse_spec(path, metadata.and_then(|m| m.get(SPEC_KEY)).map(String::as_str))?;
    let all = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|source| CheckpointError::Tensor { path: path.to_path_buf(), source })?;
    let (mut weights, mut optimizer) = (HashMap::new(), HashMap::new());
    for (name, tensor) in all {
        match name.strip_prefix(OPTIMIZER_PREFIX) {
            Some(inner) => optimizer.insert(inner.to_string(), tensor),
            None => weights.insert(name, tensor),
        };
    }
    Ok(Checkpoint { weights, optimizer, state, spec })
}

impl Checkpoint {
    /// Copy the weights into the variables of the model `model` describes. Every variable must be
    /// in the checkpoint with its shape, and every tensor of the checkpoint must be a variable;
    /// otherwise the error names the first parameter that differs and the `model.args` that
    /// likely explain it.
    pub fn restore_weights(&self, varmap: &VarMap, path: &Path, model: &ModelConfig) -> Result<(), CheckpointError> {
        let vars = varmap.data().lock().expect("the VarMap lock is never poisoned");
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for name in &names {
            let var = &vars[*name];
            let Some(tensor) = self.weights.get(*name) else {
                let cause = different_model(model, &[]);
                return Err(CheckpointError::Missing { path: path.to_path_buf(), name: name.to_string(), cause });
            };
            if tensor.dims() != var.dims() {
                let cause = different_model(model, &differing_sizes(var.dims(), tensor.dims()));
                return Err(CheckpointError::Shape(Box::new(ShapeMismatch {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                    saved: tensor.dims().to_vec(),
                    built: var.dims().to_vec(),
                    cause,
                })));
            }
        }
        let mut unexpected: Vec<&String> = self.weights.keys().filter(|n| !vars.contains_key(*n)).collect();
        if !unexpected.is_empty() {
            unexpected.sort();
            let names = unexpected.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
            return Err(CheckpointError::Unexpected {
                path: path.to_path_buf(),
                names,
                cause: different_model(model, &[]),
            });
        }
        for name in names {
            vars[name]
                .set(&self.weights[name])
                .map_err(|source| CheckpointError::Tensor { path: path.to_path_buf(), source })?;
        }
        Ok(())
    }
}

/// The sizes the model builds where its shape and the checkpoint's differ (all of them when the
/// ranks differ).
fn differing_sizes(built: &[usize], saved: &[usize]) -> Vec<usize> {
    if built.len() != saved.len() {
        return built.to_vec();
    }
    built.iter().zip(saved).filter(|(b, s)| b != s).map(|(b, _)| *b).collect()
}

/// Why a checkpoint does not fit the model the config builds: the `model.args` whose values are
/// among `sizes` (the sizes the config produced where the checkpoint has others), else a hint
/// that the model or its code differs.
fn different_model(model: &ModelConfig, sizes: &[usize]) -> String {
    let args = serde_json::to_value(model).ok().and_then(|v| v.get("args").cloned()).unwrap_or_default();
    let mut suspects = Vec::new();
    find_sizes(&args, "model.args", sizes, &mut suspects);
    let advice = "the config.json saved beside the checkpoint describes the model it was trained with, and \
                  evaluate, predict, export and train --resume use it unless --config or --set model... say otherwise";
    if suspects.is_empty() {
        format!(
            "the checkpoint was trained with a different model than the config's {} with args {args}, or the \
             model's code (model/src/{}.rs) changed since; {advice}",
            model.name(),
            model.name()
        )
    } else {
        format!("{} in the config; the checkpoint was trained with a different model; {advice}", suspects.join(", "))
    }
}

/// Collects "`path` is VALUE" for each number in `value` (or array holding one) that is in `sizes`.
fn find_sizes(value: &serde_json::Value, path: &str, sizes: &[usize], out: &mut Vec<String>) {
    use serde_json::Value;
    let is_size = |v: &Value| v.as_u64().is_some_and(|n| sizes.iter().any(|s| *s as u64 == n));
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| find_sizes(v, &format!("{path}.{k}"), sizes, out)),
        Value::Array(items) if items.iter().any(is_size) => out.push(format!("`{path}` is {value}")),
        v if is_size(v) => out.push(format!("`{path}` is {v}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_nn::Init;

    #[test]
    fn round_trip_keeps_weights_optimizer_state_and_counters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint-epoch1.safetensors");
        let varmap = VarMap::new();
        varmap.get((2, 3), "fc.weight", Init::Randn { mean: 0.0, stdev: 1.0 }, DType::F32, &Device::Cpu).unwrap();
        let optimizer =
            HashMap::from([("fc.weight.0".to_string(), Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap())]);
        let state = TrainerState {
            epoch: 1,
            global_step: 17,
            best_metric: Some(0.5),
            best_epoch: Some(1),
            ..Default::default()
        };
        save(&path, &varmap, &spec(), Some(&optimizer), Some(&state)).unwrap();

        let loaded = load(&path, &Device::Cpu).unwrap();
        assert_eq!(loaded.state.as_ref(), Some(&state));
        assert_eq!(loaded.spec, spec());
        assert_eq!(read_spec(&path).unwrap(), spec());
        assert_eq!(read_state(&path).unwrap(), Some(state));
        let original = varmap.data().lock().unwrap()["fc.weight"].as_tensor().to_vec2::<f32>().unwrap();
        assert_eq!(loaded.weights["fc.weight"].to_vec2::<f32>().unwrap(), original);
        assert_eq!(loaded.optimizer["fc.weight.0"].to_vec2::<f32>().unwrap(), vec![vec![1.0; 3]; 2]);
        // Nothing but the checkpoint is left in the folder (no temporary files).
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Colour 16x16 images in three classes: a shape every shipped model takes.
    fn spec() -> DataSpec {
        DataSpec::new([3, 16, 16], DataSpec::numbered_classes(3)).unwrap()
    }

    #[test]
    fn a_checkpoint_without_a_spec_says_to_train_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.safetensors");
        let tensors = HashMap::from([("fc.weight".to_string(), Tensor::ones(3, DType::F32, &Device::Cpu).unwrap())]);
        candle_core::safetensors::save(&tensors, &path).unwrap();
        let err = load(&path, &Device::Cpu).err().expect("no spec").to_string();
        assert!(err.contains("data_spec") && err.contains("train again"), "{err}");
    }

    /// A checkpoint of the shipped model with `edit` applied to its tensors, and the model's VarMap.
    fn edited_checkpoint(edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> (tempfile::TempDir, PathBuf, VarMap) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model_best.safetensors");
        let varmap = VarMap::new();
        ModelConfig::default()
            .build(&spec(), candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))
            .unwrap();
        let mut tensors: HashMap<String, Tensor> =
            varmap.data().lock().unwrap().iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
        edit(&mut tensors);
        let metadata = HashMap::from([(SPEC_KEY.to_string(), serde_json::to_string(&spec()).unwrap())]);
        let bytes =
            safetensors::tensor::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata)).unwrap();
        std::fs::write(&path, bytes).unwrap();
        (dir, path, varmap)
    }

    fn first_name(tensors: &HashMap<String, Tensor>) -> String {
        let mut names: Vec<_> = tensors.keys().cloned().collect();
        names.sort();
        names.remove(0)
    }

    #[test]
    fn a_parameter_of_another_shape_is_named_with_both_shapes_and_nothing_is_loaded() {
        let mut edited = (String::new(), Vec::new(), Vec::new());
        let (_dir, path, varmap) = edited_checkpoint(|tensors| {
            let name = first_name(tensors);
            let built = tensors[&name].dims().to_vec();
            let mut saved = built.clone();
            saved[0] += 3;
            tensors.insert(name.clone(), Tensor::zeros(saved.as_slice(), DType::F32, &Device::Cpu).unwrap());
            edited = (name, built, saved);
        });
        let before: Vec<f32> = varmap.all_vars()[0].flatten_all().unwrap().to_vec1().unwrap();
        let err =
            load(&path, &Device::Cpu).unwrap().restore_weights(&varmap, &path, &ModelConfig::default()).unwrap_err();
        let (name, built, saved) = edited;
        let message = err.to_string();
        assert!(matches!(&err, CheckpointError::Shape(m) if m.name == name), "{message}");
        for needle in [
            format!("`{name}`"),
            format!("{saved:?} in the checkpoint"),
            format!("{built:?} in the model"),
            "different model".into(),
        ] {
            assert!(message.contains(&needle), "{needle:?} not in: {message}");
        }
        // Nothing was half-loaded.
        assert_eq!(varmap.all_vars()[0].flatten_all().unwrap().to_vec1::<f32>().unwrap(), before);
    }

    #[test]
    fn missing_and_unexpected_parameters_are_named() {
        let mut dropped = String::new();
        let (_dir, path, varmap) = edited_checkpoint(|tensors| {
            dropped = first_name(tensors);
            tensors.remove(&dropped);
        });
        let err =
            load(&path, &Device::Cpu).unwrap().restore_weights(&varmap, &path, &ModelConfig::default()).unwrap_err();
        assert!(err.to_string().contains(&format!("no parameter `{dropped}`")), "{err}");

        let (_dir, path, varmap) = edited_checkpoint(|tensors| {
            tensors.insert("head.extra".into(), Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap());
        });
        let err =
            load(&path, &Device::Cpu).unwrap().restore_weights(&varmap, &path, &ModelConfig::default()).unwrap_err();
        assert!(err.to_string().contains("does not build (`head.extra`)"), "{err}");
    }

    #[test]
    fn the_args_that_produce_a_differing_size_are_named() {
        let args = serde_json::json!({"hidden": [64, 32], "dropout": 0.2, "stem": {"width": 32}, "depth": 3});
        let mut found = Vec::new();
        find_sizes(&args, "model.args", &differing_sizes(&[64, 784], &[256, 784]), &mut found);
        assert_eq!(found, ["`model.args.hidden` is [64,32]"]);
        found.clear();
        find_sizes(&args, "model.args", &[32], &mut found);
        assert_eq!(found, ["`model.args.hidden` is [64,32]", "`model.args.stem.width` is 32"]);
        assert_eq!(differing_sizes(&[8, 3, 3], &[8, 9]), [8, 3, 3]);
    }

    #[test]
    fn truncated_file_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.safetensors");
        std::fs::write(&path, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
        let err = load(&path, &Device::Cpu).err().unwrap().to_string();
        assert!(err.contains("bad.safetensors") && err.contains("not a valid safetensors"), "{err}");
    }
}
