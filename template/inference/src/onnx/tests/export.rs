//! Exporting the shipped model end to end: the file and its report, the input/output contract
//! and metadata, the opset range, and the failure modes (verification mismatch, unwritable
//! output, checkpoint tensors the export does not match).

use std::time::Instant;

use candle_core::{Device, Tensor};
use model::DataSpec;

use super::fixture::{Run, read_model, signature};
use crate::onnx::{
    ExportOptions, OnnxError, OnnxModel, Reference, Samples, build_model_proto, export_checkpoint, save,
};

#[test]
fn the_file_has_the_documented_contract_and_metadata() {
    let run = Run::new(false);
    std::fs::write(run.run_dir().join("summary.json"), r#"{"best_metric": 0.25}"#).expect("summary");
    let options = ExportOptions { verify: false, ..Default::default() };
    let report = export_checkpoint(&run.checkpoint, &run.config, &options).expect("export");
    let model = read_model(&report.output);
    let graph = model.graph.as_ref().expect("graph");
    #[cfg(unix)]
    {
        // Readable by others, unlike the temporary file it was written as.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&report.output).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "{mode:o}");
    }

    assert_eq!(model.ir_version, 8);
    assert_eq!(model.opset_import.len(), 1);
    assert_eq!((model.opset_import[0].domain.as_str(), model.opset_import[0].version), ("", 17));
    // elem_type 1 is FLOAT.
    let inputs: Vec<String> = graph.input.iter().map(signature).collect();
    assert_eq!(inputs, ["input: 1 [batch, 1, 20, 24]"]);
    let outputs: Vec<String> = graph.output.iter().map(signature).collect();
    assert_eq!(outputs, ["logits: 1 [batch, 7]"]);

    // Initializers: exactly the checkpoint keys, plus constants under their own prefix.
    let mut params: Vec<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).filter(|n| !n.starts_with("const/")).collect();
    params.sort_unstable();
    assert_eq!(params, model::parameter_names(&run.varmap));
    assert!(graph.initializer.iter().all(|t| !t.raw_data.is_empty() && t.float_data.is_empty()));
    let constants: Vec<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).filter(|n| n.starts_with("const/")).collect();
    assert!(constants.contains(&"const/normalize/mean"), "{constants:?}");
    assert!(constants.contains(&"const/normalize/std"), "{constants:?}");

    // The standardisation is the graph's first computation.
    assert_eq!(graph.node[0].op_type, "Sub");
    assert_eq!(graph.node[0].input, ["input", "const/normalize/mean"]);
    assert_eq!(graph.node[1].op_type, "Div");

    let meta: std::collections::BTreeMap<&str, &str> =
        model.metadata_props.iter().map(|e| (e.key.as_str(), e.value.as_str())).collect();
    assert_eq!(meta.len(), model.metadata_props.len(), "duplicate keys");
    assert_eq!(meta["model_type"], run.config.model.name());
    assert_eq!(meta["class_labels"], r#"["0","1","2","3","4","5","6"]"#);
    assert!(meta["input_spec"].contains("[batch, 1, 20, 24]"), "{}", meta["input_spec"]);
    assert!(meta["input_spec"].contains("[0, 1]"), "{}", meta["input_spec"]);
    assert_eq!(meta["training_metrics"], r#"{"best_metric":0.25}"#);
    assert!(meta.contains_key("producer_name") && meta.contains_key("producer_version"));
    let onnx = OnnxModel::load(&report.output).expect("loads");
    assert_eq!(onnx.config(&[]).expect("config in the metadata"), run.config);
}

#[test]
fn a_perturbed_graph_fails_verification_and_leaves_no_file() {
    let run = Run::new(false);
    let names = model::parameter_names(&run.varmap);
    let mut proto =
        build_model_proto(&run.config, &run.spec, run.model.as_ref(), &names, 17, None).expect("the graph builds");
    // Shift the output layer's bias by one: every logit moves by exactly 1.
    let graph = proto.graph.as_mut().expect("graph");
    let last = graph.node.iter().find(|n| n.output[0] == "logits").expect("output node");
    let bias = last.input.get(2).expect("the output layer has a bias").clone();
    let tensor = graph.initializer.iter_mut().find(|t| t.name == bias).expect("bias");
    tensor.raw_data = tensor
        .raw_data
        .chunks(4)
        .flat_map(|b| (f32::from_le_bytes([b[0], b[1], b[2], b[3]]) + 1.0).to_le_bytes())
        .collect();

    let out = tempfile::tempdir().expect("temp dir");
    let output = out.path().join("model.onnx");
    let reference = Reference {
        model: run.model.as_ref(),
        device: &Device::Cpu,
        normalize: run.config.data_loader.channel_normalize(run.spec.channels()).expect("fixed numbers"),
        spec: &run.spec,
        layers: None,
    };
    let samples = Samples::for_verification(&run.config, &run.spec);
    let err = save(&proto, &output, Some((&reference, &samples)), Instant::now())
        .expect_err("the perturbed graph must not verify");
    assert!(matches!(err, OnnxError::Mismatch { batch: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("nothing was written"), "{err}");
    let left: Vec<_> = std::fs::read_dir(out.path()).expect("dir").collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn opsets_outside_the_valid_range_are_rejected_naming_it() {
    let run = Run::new(false);
    for opset in [12, 19] {
        let options = ExportOptions { opset, ..Default::default() };
        let err = export_checkpoint(&run.checkpoint, &run.config, &options).expect_err("out of range");
        assert!(matches!(err, OnnxError::Opset { max: 18, .. }), "{err:?}");
        assert!(err.to_string().contains("..=18"), "{err}");
    }
    assert_eq!(run.files(), ["config.json", "model_best.safetensors"]);
    // The newest opset IR 8 allows works for every model, verified through tract.
    let options = ExportOptions { opset: 18, ..Default::default() };
    let report = export_checkpoint(&run.checkpoint, &run.config, &options).expect("opset 18");
    assert_eq!(report.opset, 18);
    assert_eq!(read_model(&report.output).opset_import[0].version, 18);

    // The oldest depends on the ops: LayerNormalization needs 17, everything else 13.
    let uses_layer_norm = read_model(&report.output).graph.node.iter().any(|n| n.op_type == "LayerNormalization");
    let oldest = if uses_layer_norm { 17 } else { 13 };
    let options = ExportOptions { opset: oldest - 1, ..Default::default() };
    let err = export_checkpoint(&run.checkpoint, &run.config, &options).expect_err("too old");
    assert!(err.to_string().contains(&format!("use --opset {oldest}..=18")), "{err}");
    let options = ExportOptions { opset: oldest, ..Default::default() };
    let report = export_checkpoint(&run.checkpoint, &run.config, &options).expect("oldest");
    assert_eq!(report.opset, oldest);
}

#[test]
fn no_verify_writes_to_the_chosen_output_without_a_verification() {
    let run = Run::new(false);
    let output = run.dir.path().join("exported.onnx");
    let options = ExportOptions { output: Some(output.clone()), verify: false, ..Default::default() };
    let report = export_checkpoint(&run.checkpoint, &run.config, &options).expect("export");
    assert!(report.verification.is_none());
    assert!(output.is_file());
    assert!(run.dir.path().join("exported.onnx.json").is_file());
    assert!(report.summary().contains("not verified"), "{}", report.summary());
}

#[test]
fn an_output_folder_that_does_not_exist_is_named_in_the_error() {
    let run = Run::new(false);
    let output = run.dir.path().join("missing").join("model.onnx");
    let options = ExportOptions { output: Some(output), ..Default::default() };
    let err = export_checkpoint(&run.checkpoint, &run.config, &options).expect_err("no folder");
    assert!(matches!(err, OnnxError::Write { .. }), "{err:?}");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn a_checkpoint_tensor_the_export_does_not_read_is_an_error_naming_it() {
    let run = Run::new(false);
    run.varmap
        .get(3, "extra.weight", candle_nn::Init::Const(0.), candle_core::DType::F32, &Device::Cpu)
        .expect("extra variable");
    let names = model::parameter_names(&run.varmap);
    // Not expect_err: the Debug of a whole ModelProto would flood the output.
    let Err(err) = build_model_proto(&run.config, &run.spec, run.model.as_ref(), &names, 17, None) else {
        panic!("an unused tensor must be an error");
    };
    assert!(matches!(&err, OnnxError::UnusedWeights { names, .. } if names == &["extra.weight"]), "{err:?}");
}

/// A layer whose forward pass is a ReLU but whose emission doubles it: a deliberate mistake.
struct WrongRelu;

impl model::Layer for WrongRelu {
    fn kind(&self) -> &'static str {
        "wrong relu"
    }
    fn forward_t(&self, xs: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        xs.relu()
    }
    fn emit(&self, g: &mut model::graph::Graph, x: &model::graph::Value) -> candle_core::Result<model::graph::Value> {
        let y = g.node("Relu", 6, &[x], vec![], "Relu");
        let two = g.scalar("two", 2.0);
        Ok(g.node("Mul", 7, &[&y, &two], vec![], "Mul"))
    }
}

/// A layer with a forward pass and no emission.
struct NoEmit;

impl model::Layer for NoEmit {
    fn path(&self) -> &str {
        "blocks.1.dw"
    }
    fn kind(&self) -> &'static str {
        "custom"
    }
    fn forward_t(&self, xs: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        Ok(xs.clone())
    }
}

/// fc1 -> `middle` -> fc2 on `[1, 4, 4]` images in 3 classes.
struct Tiny<L> {
    fc1: model::linear::Linear,
    middle: L,
    fc2: model::linear::Linear,
}

impl<L: model::Layer> model::Module for Tiny<L> {
    fn run<F: model::Flow>(&self, f: &mut F, x: F::Value) -> candle_core::Result<F::Value> {
        let x = f.layer(&model::pool::Flatten, &x)?;
        let x = f.layer(&self.fc1, &x)?;
        let x = f.layer(&self.middle, &x)?;
        f.layer(&self.fc2, &x)
    }
}

fn tiny<L: model::Layer>(middle: L) -> (model::Network<Tiny<L>>, Vec<String>, DataSpec) {
    let (varmap, vb) = super::varmap();
    let spec = DataSpec::new([1, 4, 4], DataSpec::numbered_classes(3)).expect("spec");
    let fc1 = model::linear::linear(16, 8, vb.pp("fc1")).expect("fc1");
    let fc2 = model::linear::linear(8, 3, vb.pp("fc2")).expect("fc2");
    let names = model::parameter_names(&varmap);
    (model::Network::new(&spec, Tiny { fc1, middle, fc2 }), names, spec)
}

#[test]
fn a_layer_without_an_emission_fails_export_naming_its_path() {
    let run = Run::new(false);
    let (network, names, spec) = tiny(NoEmit);
    let Err(err) = build_model_proto(&run.config, &spec, &network, &names, 17, None) else {
        panic!("a layer without emit must fail the export");
    };
    let text = err.to_string();
    assert!(matches!(err, OnnxError::Emit { .. }), "{err:?}");
    assert!(text.contains("layer `blocks.1.dw`") && text.contains("has no ONNX emission"), "{text}");
    assert!(text.contains("nothing was written"), "{text}");
}

#[test]
fn a_wrong_emission_is_reported_at_its_layer() {
    let run = Run::new(false);
    let (network, names, spec) = tiny(WrongRelu);
    let proto = build_model_proto(&run.config, &spec, &network, &names, 17, None).expect("the graph builds");
    let out = tempfile::tempdir().expect("temp dir");
    let output = out.path().join("model.onnx");
    let reference = Reference {
        model: &network,
        device: &Device::Cpu,
        normalize: run.config.data_loader.channel_normalize(1).expect("fixed numbers"),
        spec: &spec,
        layers: Some(
            crate::onnx::Recording::of(&run.config, &spec, &network, &names)
                .and_then(|r| r.layer_outputs_proto(&run.config, &spec, 17))
                .expect("layers"),
        ),
    };
    let samples = Samples::random(&spec, 21, 7, "a test");
    let err = save(&proto, &output, Some((&reference, &samples)), Instant::now()).expect_err("must not verify");
    let text = err.to_string();
    assert!(text.contains("the first layer whose output differs is `wrong relu after fc1`"), "{text}");
    assert!(text.contains("at batch 1"), "{text}");
    assert!(std::fs::read_dir(out.path()).expect("dir").next().is_none(), "nothing is written");
}
