//! Assembling the ONNX model of a trained classifier: the `input` pixels, the standardisation,
//! the model's graph, the `logits` output, the versions, and the metadata a user of the file
//! needs (config, class labels, input specification, training metrics).

use std::path::Path;

use data_loader::Channels;
use model::graph::{Graph, Value};
use model::{Classifier, DataSpec};
use onnx_protobuf::{GraphProto, ModelProto, OperatorSetIdProto};
use protobuf::MessageField;

use super::graph::{graph_proto, unused_variables};
use super::proto::{Dim, entry};
use super::{OnnxError, opset};

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

/// The ONNX model of `model` (built from `config.model` for `spec`), at `opset` (checked against
/// what the graph needs): [`Recording::of`] and then [`Recording::model_proto`].
pub fn build_model_proto(
    config: &experiment::Config,
    spec: &DataSpec,
    model: &dyn Classifier,
    variables: &[String],
    opset: i64,
    run_dir: Option<&Path>,
) -> Result<ModelProto, OnnxError> {
    Recording::of(config, spec, model, variables)?.model_proto(config, spec, opset, run_dir)
}

/// A model's graph as its own `run` records it, layer by layer: `input` -> the standardisation ->
/// the model's layers -> `logits`. Recorded once per export; the file and the verification's
/// layer-by-layer graph are both made from it.
pub struct Recording {
    graph: Graph,
    logits: Value,
    normalize: Channels,
}

impl Recording {
    /// Records `model` (built from `config.model` for `spec`); `variables` are the model's VarMap
    /// names, each of which must appear in the graph.
    pub fn of(config: &experiment::Config, spec: &DataSpec, model: &dyn Classifier, variables: &[String]) -> Result<Self, OnnxError> {
        let name = config.model.name();
        let normalize = config.data_loader.channel_normalize(spec.channels())?;
        let mut g = Graph::new();
        let [channels, height, width] = spec.input_shape;
        let input_dims = vec![Dim::Symbolic(BATCH_DIM.to_owned()), Dim::Fixed(channels), Dim::Fixed(height), Dim::Fixed(width)];
        let pixels = g.input(INPUT_NAME, input_dims);
        let x = standardise(&mut g, &pixels, &normalize);
        let logits = model.emit(&mut g, &x).map_err(|e| OnnxError::Emit { model: name.to_owned(), reason: e.to_string() })?;
        let unused = unused_variables(&g, variables);
        if !unused.is_empty() {
            return Err(OnnxError::UnusedWeights { model: name.to_owned(), names: unused });
        }
        let logits = g.rename(&logits, OUTPUT_NAME);
        Ok(Self { graph: g, logits, normalize })
    }

    /// The file's model, at `opset`, with its metadata; `run_dir` is the checkpoint's run folder,
    /// whose summary.json (if any) goes into the metadata.
    pub fn model_proto(&self, config: &experiment::Config, spec: &DataSpec, opset: i64, run_dir: Option<&Path>) -> Result<ModelProto, OnnxError> {
        let dims = [Dim::Symbolic(BATCH_DIM.to_owned()), Dim::Fixed(spec.num_classes())];
        let graph = graph_proto(&self.graph, config.model.name(), &self.logits, &dims, false);
        let mut proto = model_proto(config, spec, graph, opset, self.graph.required_opset())?;
        proto.metadata_props = metadata(config, spec, &self.normalize, run_dir).iter().map(|(k, v)| entry(k, v)).collect();
        Ok(proto)
    }

    /// The same graph with every layer's output as an extra graph output, and the layers' names
    /// with the output each has: for finding the first layer whose output differs.
    pub fn layer_outputs_proto(&self, config: &experiment::Config, spec: &DataSpec, opset: i64) -> Result<(ModelProto, Vec<(String, String)>), OnnxError> {
        let dims = [Dim::Symbolic(BATCH_DIM.to_owned()), Dim::Fixed(spec.num_classes())];
        let graph = graph_proto(&self.graph, config.model.name(), &self.logits, &dims, true);
        let marks = self.graph.marks().iter().map(|(path, value)| (path.clone(), value.name().to_owned())).collect();
        Ok((model_proto(config, spec, graph, opset, self.graph.required_opset())?, marks))
    }
}

/// `(x - mean[c]) / std[c]` per channel, as the data loader standardises pixels (the graph takes
/// pixels in [0, 1]); the constants are `[1, channels, 1, 1]`.
pub(crate) fn standardise(g: &mut Graph, x: &Value, normalize: &Channels) -> Value {
    let dims = [1, normalize.channels(), 1, 1];
    let mean = g.constant("normalize/mean", &dims, &normalize.mean);
    let std = g.constant("normalize/std", &dims, &normalize.std);
    let centered = g.node("Sub", 7, &[x, &mean], vec![], "normalize/Sub");
    g.node("Div", 7, &[&centered, &std], vec![], "normalize/Div")
}

fn model_proto(config: &experiment::Config, spec: &DataSpec, graph: GraphProto, opset: i64, required: i64) -> Result<ModelProto, OnnxError> {
    let name = config.model.name();
    let opset = opset::resolve(name, opset, required)?;
    Ok(ModelProto {
        ir_version: opset::IR_VERSION,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset, ..Default::default() }],
        producer_name: PRODUCER_NAME.to_owned(),
        producer_version: env!("CARGO_PKG_VERSION").to_owned(),
        model_version: 1,
        doc_string: format!("image classifier ({name}) of {} classes exported from a candle checkpoint", spec.num_classes()),
        graph: MessageField::some(graph),
        ..Default::default()
    })
}

/// The metadata entries, in a fixed order, each key once.
fn metadata(
    config: &experiment::Config,
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
