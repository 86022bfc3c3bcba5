//! ONNX export of a trained checkpoint, and running ONNX files with tract.
//!
//! `export` rebuilds the model from the run's config and checkpoint and writes an ONNX graph
//! (IR 8, opset 17 by default) with input `input`, float32 `[batch, channels, height, width]`
//! pixels in [0, 1], and output `logits`, float32 `[batch, classes]` (the shape and the class
//! names, recorded in the checkpoint, go into the metadata); the standardisation is part of the graph.
//! Initializers carry the checkpoint keys as names. Before the file is kept, its structure is
//! checked (the rules of `onnx.checker`) and tract runs it against candle on validation images.
//!
//! There is no export code per model: the graph is what the model's own forward pass records
//! (`model::Module::run` over `model::Export`, each layer's `emit`). The pieces here: `graph`
//! (the recorded graph as protobuf), `build` (the whole ModelProto: input, standardisation, the
//! model, metadata), `check` (structural rules), `opset` (valid versions), `verify` (tract vs
//! candle, naming the first layer that differs), `export` (files), `runtime` ([`OnnxModel`]),
//! `evaluate` (predict and evaluate with a file).

mod build;
mod check;
mod error;
mod evaluate;
mod export;
mod graph;
mod opset;
mod proto;
mod runtime;
mod verify;

#[cfg(test)]
mod tests;

pub use build::{BATCH_DIM, CONFIG_KEY, INPUT_NAME, OUTPUT_NAME, Recording, build_model_proto};
pub use check::{StructureError, check_model};
pub use error::OnnxError;
pub use evaluate::{evaluate_onnx, predict_onnx, predict_onnx_table};
pub use export::{ExportOptions, ExportReport, default_output, export_checkpoint, report_path, save};
pub use opset::{DEFAULT_OPSET, IR_VERSION, MIN_OPSET, max_opset};
pub use proto::Dim;
pub use runtime::{OnnxModel, TRACT_VERSION};
pub use verify::{BATCH_SIZES, BatchCheck, Reference, Samples, TOLERANCE, Verification, verify};

/// The ONNX protobuf messages ([`build_model_proto`] returns a `ModelProto`).
pub use onnx_protobuf;
