//! Assembling the ONNX model of a trained model: the `input` (pixels, or a table's encoded row),
//! the standardisation, the model's graph (with its output layer), the `logits` output (logits of
//! the classes or labels, or the values in their units), the versions, and the metadata a user of
//! the file needs (config, data spec, target names, input and output specification, training metrics).

use std::path::Path;

use data_loader::Channels;
use model::graph::{Graph, Value};
use model::{Classifier, DataSpec};
use onnx_protobuf::{GraphProto, ModelProto, OperatorSetIdProto};
use protobuf::MessageField;

use super::graph::{graph_proto, unused_variables};
use super::proto::{Dim, entry};
use super::{OnnxError, opset};

/// The graph input: float32 `[batch, ...input_shape]`: pixels in [0, 1], or a table's encoded row.
pub const INPUT_NAME: &str = "input";
/// The graph output: float32 `[batch, outputs]`; the name stays `logits` for every task (for a
/// regression it holds the values).
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
    pub fn of(
        config: &experiment::Config,
        spec: &DataSpec,
        model: &dyn Classifier,
        variables: &[String],
    ) -> Result<Self, OnnxError> {
        let name = config.model.name();
        let normalize = config.data_loader.input_normalize(spec)?;
        let mut g = Graph::new();
        let input_dims = std::iter::once(Dim::Symbolic(BATCH_DIM.to_owned()))
            .chain(spec.input_shape.iter().map(|&d| Dim::Fixed(d)))
            .collect();
        let pixels = g.input(INPUT_NAME, input_dims);
        let x = standardise(&mut g, &pixels, &normalize, spec.input_shape.len() + 1);
        let logits =
            model.emit(&mut g, &x).map_err(|e| OnnxError::Emit { model: name.to_owned(), reason: e.to_string() })?;
        let unused = unused_variables(&g, variables);
        if !unused.is_empty() {
            return Err(OnnxError::UnusedWeights { model: name.to_owned(), names: unused });
        }
        let logits = g.rename(&logits, OUTPUT_NAME);
        Ok(Self { graph: g, logits, normalize })
    }

    /// The file's model, at `opset`, with its metadata; `run_dir` is the checkpoint's run folder,
    /// whose summary.json (if any) goes into the metadata.
    pub fn model_proto(
        &self,
        config: &experiment::Config,
        spec: &DataSpec,
        opset: i64,
        run_dir: Option<&Path>,
    ) -> Result<ModelProto, OnnxError> {
        let dims = [Dim::Symbolic(BATCH_DIM.to_owned()), Dim::Fixed(spec.outputs())];
        let graph = graph_proto(&self.graph, config.model.name(), &self.logits, &dims, false);
        let mut proto = model_proto(config, spec, graph, opset, self.graph.required_opset())?;
        proto.metadata_props =
            metadata(config, spec, &self.normalize, run_dir).iter().map(|(k, v)| entry(k, v)).collect();
        Ok(proto)
    }

    /// The same graph with every layer's output as an extra graph output, and the layers' names
    /// with the output each has: for finding the first layer whose output differs.
    pub fn layer_outputs_proto(
        &self,
        config: &experiment::Config,
        spec: &DataSpec,
        opset: i64,
    ) -> Result<(ModelProto, Vec<(String, String)>), OnnxError> {
        let dims = [Dim::Symbolic(BATCH_DIM.to_owned()), Dim::Fixed(spec.outputs())];
        let graph = graph_proto(&self.graph, config.model.name(), &self.logits, &dims, true);
        let marks = self.graph.marks().iter().map(|(path, value)| (path.clone(), value.name().to_owned())).collect();
        Ok((model_proto(config, spec, graph, opset, self.graph.required_opset())?, marks))
    }
}

/// `(x - mean[c]) / std[c]` along dimension 1 (per channel of an image, per input of a table
/// row), as the data loader standardises (the graph takes pixels in [0, 1], or rows encoded but
/// not standardised); the constants are `[1, channels, 1, ...]` for inputs of rank `rank`.
pub(crate) fn standardise(g: &mut Graph, x: &Value, normalize: &Channels, rank: usize) -> Value {
    let dims = normalize.broadcast_dims(rank);
    let mean = g.constant("normalize/mean", &dims, &normalize.mean);
    let std = g.constant("normalize/std", &dims, &normalize.std);
    let centered = g.node("Sub", 7, &[x, &mean], vec![], "normalize/Sub");
    g.node("Div", 7, &[&centered, &std], vec![], "normalize/Div")
}

fn model_proto(
    config: &experiment::Config,
    spec: &DataSpec,
    graph: GraphProto,
    opset: i64,
    required: i64,
) -> Result<ModelProto, OnnxError> {
    let name = config.model.name();
    let opset = opset::resolve(name, opset, required)?;
    Ok(ModelProto {
        ir_version: opset::IR_VERSION,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset, ..Default::default() }],
        producer_name: PRODUCER_NAME.to_owned(),
        producer_version: env!("CARGO_PKG_VERSION").to_owned(),
        model_version: 1,
        doc_string: format!(
            "{} model ({name}) of {} exported from a candle checkpoint",
            spec.task(),
            spec.target.describe()
        ),
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
    let mut entries = vec![
        ("producer_name", PRODUCER_NAME.to_owned()),
        ("producer_version", env!("CARGO_PKG_VERSION").to_owned()),
        ("model_type", config.model.name().to_owned()),
        ("task", spec.task().to_string()),
        (CONFIG_KEY, config.to_json()),
        (SPEC_KEY, serde_json::to_string(spec).expect("a spec serializes")),
        // The names of the outputs, in order: class names, label names or value names.
        ("class_labels", serde_json::to_string(spec.target.names()).expect("strings serialize")),
        ("input_spec", input_spec(config, spec, normalize)),
        ("normalize", serde_json::json!({ "mean": normalize.mean, "std": normalize.std }).to_string()),
        ("output_spec", output_spec(spec, config.threshold)),
    ];
    if let Some(names) = config.data_loader.input_names() {
        entries.push(("input_names", serde_json::to_string(&names).expect("strings serialize")));
    }
    if let Some(summary) = run_dir.and_then(training_summary) {
        entries.push(("training_metrics", summary));
    }
    entries
}

/// What the graph's input holds, in words: image pixels, or a table row's encoding.
fn input_spec(config: &experiment::Config, spec: &DataSpec, normalize: &Channels) -> String {
    let standardised = format!("(x - mean[i]) / std[i] with mean {:?} and std {:?}", normalize.mean, normalize.std);
    match spec.image_shape() {
        Some([channels, height, width]) => {
            let colours = if channels == 1 { "grey" } else { "RGB, channel-major" };
            format!(
                "{INPUT_NAME}: float32 [{BATCH_DIM}, {channels}, {height}, {width}] ({colours}), pixels scaled to \
                 [0, 1], row by row; the graph itself standardises channel i as {standardised}"
            )
        }
        None => {
            let names = config.data_loader.input_names().unwrap_or_default();
            format!(
                "{INPUT_NAME}: float32 [{BATCH_DIM}, {}], one row per sample, the inputs in the order of input_names: \
                 a numeric column's value as written, a categorical column one-hot (1 for its category \
                 `column=value`, 0 for the others; `column=<unknown>` for a category training did not see, \
                 where there is such an input); the graph itself standardises input i as {standardised} \
                 ({} inputs)",
                spec.sample_len(),
                names.len()
            )
        }
    }
}

/// What the graph's output holds for the spec's task.
fn output_spec(spec: &DataSpec, threshold: f64) -> String {
    let n = spec.outputs();
    match spec.task() {
        model::TaskKind::Classification => format!(
            "{OUTPUT_NAME}: float32 [{BATCH_DIM}, {n}], unnormalised scores for the class_labels (softmax gives probabilities)"
        ),
        model::TaskKind::MultiLabel => format!(
            "{OUTPUT_NAME}: float32 [{BATCH_DIM}, {n}], one logit per label of class_labels; sigmoid gives each label's \
             probability; training predicted a label at probability >= {threshold} (`threshold`)"
        ),
        model::TaskKind::Regression => format!(
            "{OUTPUT_NAME}: float32 [{BATCH_DIM}, {n}], the predicted values of class_labels, in the targets' own units"
        ),
    }
}

/// The run's summary.json (best metric, final train and validation metrics), compacted; `None`
/// when the run has none (an interrupted run) or it is not JSON.
fn training_summary(run_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(run_dir.join("summary.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(value.to_string())
}
