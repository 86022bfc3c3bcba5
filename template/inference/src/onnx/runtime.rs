//! Running an exported ONNX file with tract: [`OnnxModel`] takes pixels in [0, 1] (the graph
//! standardises them itself) and returns logits, for any batch size.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use model::DataSpec;
use onnx_protobuf::{Message, ModelProto};
use tract_onnx::prelude::{Framework, InferenceModelExt, IntoRunnable, IntoTValue, Tensor, TypedRunnableModel, tvec};

use super::OnnxError;

/// The tract release this project runs ONNX files with (the exact version in Cargo.toml), for
/// export reports.
pub const TRACT_VERSION: &str = "0.23.9";

/// An ONNX classifier loaded into tract and optimised for the CPU.
#[derive(Debug, Clone)]
pub struct OnnxModel {
    plan: Arc<TypedRunnableModel>,
    metadata: BTreeMap<String, String>,
    /// The input shape and classes, from the metadata.
    spec: DataSpec,
    origin: String,
}

impl OnnxModel {
    /// Loads an ONNX file written by `export` (or any graph with the same input and output).
    pub fn load(path: &Path) -> Result<Self, OnnxError> {
        let bytes = std::fs::read(path).map_err(|source| OnnxError::Read { path: path.to_path_buf(), source })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Loads a serialized model; `origin` names it in errors (a path, or "the exported graph").
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self, OnnxError> {
        let proto = ModelProto::parse_from_bytes(bytes)
            .map_err(|e| OnnxError::Parse { path: PathBuf::from(origin), message: e.to_string() })?;
        let metadata =
            proto.metadata_props.iter().map(|e| (e.key.clone(), e.value.clone())).collect::<BTreeMap<String, String>>();
        let spec = metadata
            .get(super::build::SPEC_KEY)
            .and_then(|json| serde_json::from_str(json).ok())
            .ok_or_else(|| OnnxError::NoSpec { path: PathBuf::from(origin) })?;
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .and_then(|model| model.into_optimized())
            .and_then(|model| model.into_runnable())
            .map_err(|e| OnnxError::tract("load", origin, &e))?;
        Ok(Self { plan, metadata, spec, origin: origin.to_owned() })
    }

    /// The input shape and class names the model was trained for.
    pub fn spec(&self) -> &DataSpec {
        &self.spec
    }

    /// Outputs `[batch, outputs]` row by row, from `pixels`: `batch` samples of the spec's shape
    /// row by row, not standardised (the graph does that): images' pixels in [0, 1], tables' encoded rows.
    pub fn run(&self, pixels: &[f32]) -> Result<Vec<f32>, OnnxError> {
        let per_image = self.spec.sample_len();
        if pixels.is_empty() || !pixels.len().is_multiple_of(per_image) {
            return Err(OnnxError::InputLength { expected: per_image, got: pixels.len() });
        }
        let batch = pixels.len() / per_image;
        let shape = self.spec.batch_dims(batch);
        let tract_error = |e| OnnxError::tract("run", &self.origin, &e);
        let input = Tensor::from_shape(&shape, pixels).map_err(tract_error)?;
        let outputs = self.plan.run(tvec![input.into_tvalue()]).map_err(tract_error)?;
        let logits = outputs[0].to_plain_array_view::<f32>().map_err(tract_error)?;
        let classes = self.spec.outputs();
        if logits.shape() != [batch, classes] {
            return Err(OnnxError::Tract {
                action: "use",
                origin: self.origin.clone(),
                message: format!("its output is {:?}, expected logits [{batch}, {classes}]", logits.shape()),
            });
        }
        Ok(logits.iter().copied().collect())
    }

    /// The file's `metadata_props` (the exporter writes the training config, class labels, the
    /// input specification and the training metrics).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The training config stored in the file's metadata, with `--set` overrides applied.
    pub fn config(&self, overrides: &[String]) -> Result<experiment::Config, OnnxError> {
        let path = PathBuf::from(&self.origin);
        let text =
            self.metadata.get(super::build::CONFIG_KEY).ok_or_else(|| OnnxError::NoConfig { path: path.clone() })?;
        Ok(experiment::Config::from_json(text, &path, overrides)?)
    }
}
