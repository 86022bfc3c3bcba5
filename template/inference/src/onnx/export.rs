//! Exporting a checkpoint: rebuild the model from the run's config, build and check the ONNX
//! graph, write it to a temporary file beside the destination, verify those bytes with tract
//! against candle, and only then move the model and its JSON report to their final names. A
//! failed export leaves no file behind.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use onnx_protobuf::{Message, ModelProto};
use serde::Serialize;

use super::build::{INPUT_NAME, OUTPUT_NAME, Recording};
use super::check::check_model;
use super::opset::DEFAULT_OPSET;
use super::runtime::TRACT_VERSION;
use super::verify::{Reference, Samples, Verification, verify};
use super::{OnnxError, OnnxModel};
use crate::restore::{Restored, restore};

/// How to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// Where to write the model; `None`: `model.onnx` beside the checkpoint.
    pub output: Option<PathBuf>,
    /// The default-domain opset (IR version 8 allows 13 to 18; models with LayerNorm need >= 17).
    pub opset: i64,
    /// Run the written bytes through tract and compare with candle before keeping them.
    pub verify: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self { output: None, opset: DEFAULT_OPSET, verify: true }
    }
}

/// What an export wrote, saved as JSON beside the model (`model.onnx.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportReport {
    pub output: PathBuf,
    pub report: PathBuf,
    pub model_type: String,
    pub bytes: usize,
    pub ir_version: i64,
    pub opset: i64,
    pub input: String,
    pub output_name: String,
    /// `None` when exported with `--no-verify`.
    pub verification: Option<Verification>,
    pub tract_version: String,
    /// Wall time of the whole export, verification included.
    pub seconds: f64,
}

impl ExportReport {
    /// One line for the console.
    pub fn summary(&self) -> String {
        let verified = match &self.verification {
            Some(v) => {
                let worst = v.batches.iter().map(|b| b.max_abs_error).fold(0f32, f32::max);
                let sizes: Vec<String> = v.batches.iter().map(|b| b.batch.to_string()).collect();
                format!(
                    "verified with tract {} at batch sizes {} (max abs error {worst:.2e})",
                    self.tract_version,
                    sizes.join(", ")
                )
            }
            None => "not verified".to_owned(),
        };
        format!(
            "wrote {} ({}, opset {}, {} bytes), {verified} in {:.2}s; report in {}",
            self.output.display(),
            self.model_type,
            self.opset,
            self.bytes,
            self.seconds,
            self.report.display()
        )
    }
}

/// `model.onnx` in the checkpoint's folder.
pub fn default_output(checkpoint: &Path) -> PathBuf {
    checkpoint.with_file_name("model.onnx")
}

/// `<output>.json`.
pub fn report_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// Exports the checkpoint at `checkpoint`, rebuilding the model from `config` (the run's
/// config.json), to ONNX as `options` say.
pub fn export_checkpoint(
    checkpoint: &Path,
    config: &experiment::Config,
    options: &ExportOptions,
) -> Result<ExportReport, OnnxError> {
    let started = Instant::now();
    let Restored { model, varmap, device, spec } = restore(checkpoint, config)?;
    let variables = model::parameter_names(&varmap);
    let recording = Recording::of(config, &spec, model.as_ref(), &variables)?;
    let proto = recording.model_proto(config, &spec, options.opset, checkpoint.parent())?;
    let output = options.output.clone().unwrap_or_else(|| default_output(checkpoint));
    let samples = options.verify.then(|| Samples::for_verification(config, &spec));
    let reference = Reference {
        model: model.as_ref(),
        device: &device,
        normalize: config.data_loader.channel_normalize(spec.channels())?,
        spec: &spec,
        layers: options.verify.then(|| recording.layer_outputs_proto(config, &spec, options.opset)).transpose()?,
    };
    let check = samples.as_ref().map(|samples| (&reference, samples));
    save(&proto, &output, check, started)
}

/// Checks `proto`, writes it to `output` and its report to `<output>.json`; with a reference,
/// only if tract's run of the written bytes agrees with it. `started` is when the export began,
/// for the report's timing.
pub fn save(
    proto: &ModelProto,
    output: &Path,
    check: Option<(&Reference, &Samples)>,
    started: Instant,
) -> Result<ExportReport, OnnxError> {
    check_model(proto)?;
    let bytes = proto.write_to_bytes().map_err(|e| OnnxError::Serialize(e.to_string()))?;
    let model_file = temp_file_with(output, &bytes)?;
    let verification = match check {
        Some((reference, samples)) => {
            let onnx = OnnxModel::load(model_file.path())?;
            Some(verify(&onnx, reference, samples)?)
        }
        None => None,
    };
    let graph = proto.graph.as_ref();
    let report = ExportReport {
        output: output.to_path_buf(),
        report: report_path(output),
        model_type: graph.map(|g| g.name.clone()).unwrap_or_default(),
        bytes: bytes.len(),
        ir_version: proto.ir_version,
        opset: proto.opset_import.iter().find(|o| o.domain.is_empty()).map_or(0, |o| o.version),
        input: INPUT_NAME.to_owned(),
        output_name: OUTPUT_NAME.to_owned(),
        verification,
        tract_version: TRACT_VERSION.to_owned(),
        seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_string_pretty(&report).expect("the report serializes");
    let report_file = temp_file_with(&report.report, json.as_bytes())?;
    persist(model_file, output)?;
    persist(report_file, &report.report)?;
    Ok(report)
}

/// A temporary file in `path`'s folder holding `bytes`, flushed to disk; deleted when dropped.
fn temp_file_with(path: &Path, bytes: &[u8]) -> Result<tempfile::NamedTempFile, OnnxError> {
    let write_error = |source| OnnxError::Write { path: path.to_path_buf(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("model.onnx");
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    // Temporary files are private (0600); the model is meant to be shared and deployed.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut file = builder.tempfile_in(dir).map_err(write_error)?;
    file.write_all(bytes).map_err(write_error)?;
    file.as_file().sync_all().map_err(write_error)?;
    Ok(file)
}

fn persist(file: tempfile::NamedTempFile, path: &Path) -> Result<(), OnnxError> {
    file.persist(path).map_err(|e| OnnxError::Write { path: path.to_path_buf(), source: e.error })?;
    Ok(())
}
