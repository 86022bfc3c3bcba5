//! Assembling the ONNX model of a trained classifier: the `input` pixels, the standardisation,
//! the model's graph, the `logits` output, the versions, and the metadata a user of the file
//! needs (config, class labels, input specification, training metrics).

use std::path::Path;

use data_loader::Channels;
use model::DataSpec;
use onnx_protobuf::{ModelProto, OperatorSetIdProto};
use protobuf::MessageField;

use super::graph::{GraphBuilder, Weights};
use super::proto::{Dim, entry};
use super::{OnnxError, models, opset};

/// The graph input: float32 `[batch, channels, height, width]`, pixels in [0, 1].
pub const INPUT_NAME: &str = "input";
/// The graph output: float32 `[batch, classes]`.
pub const OUTPUT_NAME: &str = "logits";
/// The symbolic batch dimension of the input and the output.
pub const BATCH_DIM: &str = "batch";
/// The metadata key of the resolved training config (JSON).
pub const CONFIG_KEY: &str = "config";
/// The metadata key of the data spec (JSON: input shape and class names) the model was trained for.
pub const SPEC_KEY: &str = "data_spec";
/// Written as the model's `producer_name`.
pub const PRODUCER_NAME: &str = "candle-onnx-export";

/// The ONNX model of `config.model`, built for `spec`, with `weights`, at `opset` (checked against
/// what the graph needs). `run_dir` is the checkpoint's run folder, whose summary.json (if any)
/// goes into the metadata.
pub fn build_model_proto(
    config: &training::Config,
    spec: &DataSpec,
    weights: &Weights,
    opset: i64,
    run_dir: Option<&Path>,
) -> Result<ModelProto, OnnxError> {
    let name = config.model.name();
    let normalize = config.data_loader.channel_normalize(spec.channels())?;
    let mut g = GraphBuilder::new(name, weights);
    let batch = Dim::Symbolic(BATCH_DIM.to_owned());
    let [channels, height, width] = spec.input_shape;
    let input_dims = [batch.clone(), Dim::Fixed(channels), Dim::Fixed(height), Dim::Fixed(width)];
    let pixels = g.input(INPUT_NAME, &input_dims);
    let x = g.normalize(&pixels, &normalize);
    let logits = models::emit(&mut g, &config.model, &x)?;
    let opset = opset::resolve(name, opset, g.required_opset())?;
    let graph = g.finish(
        name,
        &logits,
        OUTPUT_NAME,
        &[batch, Dim::Fixed(spec.num_classes())],
    )?;
    Ok(ModelProto {
        ir_version: opset::IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
            ..Default::default()
        }],
        producer_name: PRODUCER_NAME.to_owned(),
        producer_version: env!("CARGO_PKG_VERSION").to_owned(),
        model_version: 1,
        doc_string: format!(
            "image classifier ({name}) of {} classes exported from a candle checkpoint",
            spec.num_classes()
        ),
        graph: MessageField::some(graph),
        metadata_props: metadata(config, spec, &normalize, run_dir)
            .iter()
            .map(|(k, v)| entry(k, v))
            .collect(),
        ..Default::default()
    })
}

/// The metadata entries, in a fixed order, each key once.
fn metadata(
    config: &training::Config,
    spec: &DataSpec,
    normalize: &Channels,
    run_dir: Option<&Path>,
) -> Vec<(&'static str, String)> {
    let [channels, height, width] = spec.input_shape;
    let colours = if channels == 1 { "grey" } else { "RGB, channel-major" };
    let classes = spec.num_classes();
    let mut entries = vec![
        ("producer_name", PRODUCER_NAME.to_owned()),
        ("producer_version", env!("CARGO_PKG_VERSION").to_owned()),
        ("model_type", config.model.name().to_owned()),
        (CONFIG_KEY, config.to_json()),
        (SPEC_KEY, serde_json::to_string(spec).expect("a spec serializes")),
        (
            "class_labels",
            serde_json::to_string(&spec.classes).expect("strings serialize"),
        ),
        (
            "input_spec",
            format!(
                "{INPUT_NAME}: float32 [{BATCH_DIM}, {channels}, {height}, {width}] ({colours}), pixels \
                 scaled to [0, 1], row by row; the graph itself standardises channel c as \
                 (x - mean[c]) / std[c] with mean {:?} and std {:?}",
                normalize.mean, normalize.std
            ),
        ),
        (
            "normalize",
            serde_json::json!({ "mean": normalize.mean, "std": normalize.std }).to_string(),
        ),
        (
            "output_spec",
            format!(
                "{OUTPUT_NAME}: float32 [{BATCH_DIM}, {classes}], unnormalised scores for the \
                 class_labels (softmax gives probabilities)"
            ),
        ),
    ];
    if let Some(summary) = run_dir.and_then(training_summary) {
        entries.push(("training_metrics", summary));
    }
    entries
}

/// The run's summary.json (best metric, final train and validation metrics), compacted; `None`
/// when the run has none (an interrupted run) or it is not JSON.
fn training_summary(run_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(run_dir.join("summary.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(value.to_string())
}
