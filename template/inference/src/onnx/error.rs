//! What can go wrong exporting a checkpoint to ONNX or running an ONNX file, each error with the
//! file, tensor or node involved and what to do about it.

use std::path::PathBuf;

use super::check::StructureError;

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error(transparent)]
    Restore(Box<crate::restore::RestoreError>),
    #[error("opset {requested} is not available for the {model} export: use --opset {min}..={max} ({why})")]
    Opset { model: String, requested: i64, min: i64, max: i64, why: String },
    #[error("cannot export {model}: {reason}; nothing was written")]
    Emit { model: String, reason: String },
    #[error(
        "the ONNX export of {model} does not use the model's variables {names:?}: the model builds \
         these layers but its `run` (model/src/{model}.rs) never calls them; call them or remove them"
    )]
    UnusedWeights { model: String, names: Vec<String> },
    #[error("the exported ONNX graph is invalid (a bug in the exporter): {0}")]
    Structure(#[from] StructureError),
    #[error(
        "ONNX verification failed at batch size {batch}: {reason}; nothing was written. The ONNX \
         graph does not compute what the candle model does: {location} (or pass --no-verify to \
         write it anyway)"
    )]
    Mismatch { batch: usize, reason: String, location: String },
    #[error("serializing the ONNX model failed: {0} (a protobuf file holds at most 2 GiB)")]
    Serialize(String),
    #[error("tract cannot {action} {origin}: {message}")]
    Tract { action: &'static str, origin: String, message: String },
    #[error(
        "the ONNX model takes {expected} values per image (channels x height x width) but got {got} values, \
         which is not a whole number of images"
    )]
    InputLength { expected: usize, got: usize },
    #[error("{path} is not an ONNX model file: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "{path} has no `config` in its metadata (was it exported by this project?); pass the \
         training config with --config FILE"
    )]
    NoConfig { path: PathBuf },
    #[error(
        "{path} has no `data_spec` (input shape and class names) in its metadata; export it again with \
         this project's `export`"
    )]
    NoSpec { path: PathBuf },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("writing {path}: {source} (check that the folder exists and is writable)")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Config(Box<experiment::ConfigError>),
    #[error(transparent)]
    Data(Box<data_loader::DataError>),
    #[error(transparent)]
    Predict(Box<crate::predict::PredictError>),
    #[error("evaluating the ONNX model: {0}")]
    Evaluate(candle_core::Error),
    #[error("running the candle model: {0}")]
    Candle(#[from] candle_core::Error),
}

// The errors of the other crates are boxed: some are large, and every `Result` here carries them.
macro_rules! boxed_from {
    ($($variant:ident($error:ty)),+ $(,)?) => {
        $(impl From<$error> for OnnxError {
            fn from(error: $error) -> Self {
                Self::$variant(Box::new(error))
            }
        })+
    };
}

boxed_from!(
    Restore(crate::restore::RestoreError),
    Config(experiment::ConfigError),
    Data(data_loader::DataError),
    Predict(crate::predict::PredictError),
);

impl OnnxError {
    /// A tract failure, with the error chain flattened into one line.
    pub(crate) fn tract(action: &'static str, origin: &str, error: &tract_onnx::prelude::TractError) -> Self {
        Self::Tract { action, origin: origin.to_owned(), message: format!("{error:#}") }
    }
}
