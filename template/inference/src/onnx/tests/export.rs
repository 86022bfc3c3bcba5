//! Exporting the shipped model end to end: the file and its report, the input/output contract
//! and metadata, the opset range, and the failure modes (verification mismatch, unwritable
//! output, checkpoint tensors the export does not match).

use std::time::Instant;

use candle_core::Device;

use super::fixture::{Run, read_model, signature};
use crate::onnx::graph::Weights;
use crate::onnx::{
    ExportOptions, OnnxError, OnnxModel, Reference, Samples, build_model_proto, export_checkpoint,
    save,
};

#[test]
fn the_file_has_the_documented_contract_and_metadata() {
    let run = Run::new(false);
    std::fs::write(
        run.run_dir().join("summary.json"),
        r#"{"best_metric": 0.25}"#,
    )
    .expect("summary");
    let options = ExportOptions {
        verify: false,
        ..Default::default()
    };
    let report = export_checkpoint(&run.checkpoint, &run.config, &options).expect("export");
    let model = read_model(&report.output);
    let graph = model.graph.as_ref().expect("graph");
    #[cfg(unix)]
    {
        // Readable by others, unlike the temporary file it was written as.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&report.output)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "{mode:o}");
    }

    assert_eq!(model.ir_version, 8);
    assert_eq!(model.opset_import.len(), 1);
    assert_eq!(
        (
            model.opset_import[0].domain.as_str(),
            model.opset_import[0].version
        ),
        ("", 17)
    );
    // elem_type 1 is FLOAT.
    let inputs: Vec<String> = graph.input.iter().map(signature).collect();
    assert_eq!(inputs, ["input: 1 [batch, 1, 20, 24]"]);
    let outputs: Vec<String> = graph.output.iter().map(signature).collect();
    assert_eq!(outputs, ["logits: 1 [batch, 7]"]);

    // Initializers: exactly the checkpoint keys, plus constants under their own prefix.
    let mut params: Vec<&str> = graph
        .initializer
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| !n.starts_with("const/"))
        .collect();
    params.sort_unstable();
    assert_eq!(params, model::parameter_names(&run.varmap));
    assert!(
        graph
            .initializer
            .iter()
            .all(|t| !t.raw_data.is_empty() && t.float_data.is_empty())
    );
    let constants: Vec<&str> = graph
        .initializer
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| n.starts_with("const/"))
        .collect();
    assert!(constants.contains(&"const/normalize/mean"), "{constants:?}");
    assert!(constants.contains(&"const/normalize/std"), "{constants:?}");

    // The standardisation is the graph's first computation.
    assert_eq!(graph.node[0].op_type, "Sub");
    assert_eq!(graph.node[0].input, ["input", "const/normalize/mean"]);
    assert_eq!(graph.node[1].op_type, "Div");

    let meta: std::collections::BTreeMap<&str, &str> = model
        .metadata_props
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(meta.len(), model.metadata_props.len(), "duplicate keys");
    assert_eq!(meta["model_type"], run.config.model.name());
    assert_eq!(
        meta["class_labels"],
        r#"["0","1","2","3","4","5","6"]"#
    );
    assert!(
        meta["input_spec"].contains("[batch, 1, 20, 24]"),
        "{}",
        meta["input_spec"]
    );
    assert!(
        meta["input_spec"].contains("[0, 1]"),
        "{}",
        meta["input_spec"]
    );
    assert_eq!(meta["training_metrics"], r#"{"best_metric":0.25}"#);
    assert!(meta.contains_key("producer_name") && meta.contains_key("producer_version"));
    let onnx = OnnxModel::load(&report.output).expect("loads");
    assert_eq!(
        onnx.config(&[]).expect("config in the metadata"),
        run.config
    );
}

#[test]
fn a_perturbed_graph_fails_verification_and_leaves_no_file() {
    let run = Run::new(false);
    let weights = Weights::from_varmap(&run.varmap).expect("weights");
    let mut proto = build_model_proto(&run.config, &run.spec, &weights, 17, None).expect("the graph builds");
    // Shift the output layer's bias by one: every logit moves by exactly 1.
    let graph = proto.graph.as_mut().expect("graph");
    let last = graph
        .node
        .iter()
        .find(|n| n.output[0] == "logits")
        .expect("output node");
    let bias = last
        .input
        .get(2)
        .expect("the output layer has a bias")
        .clone();
    let tensor = graph
        .initializer
        .iter_mut()
        .find(|t| t.name == bias)
        .expect("bias");
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
    };
    let samples = Samples::for_verification(&run.config, &run.spec);
    let err = save(
        &proto,
        &output,
        Some((&reference, &samples)),
        Instant::now(),
    )
    .expect_err("the perturbed graph must not verify");
    assert!(
        matches!(err, OnnxError::Mismatch { batch: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("nothing was written"), "{err}");
    let left: Vec<_> = std::fs::read_dir(out.path()).expect("dir").collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn opsets_outside_the_valid_range_are_rejected_naming_it() {
    let run = Run::new(false);
    for opset in [12, 19] {
        let options = ExportOptions {
            opset,
            ..Default::default()
        };
        let err =
            export_checkpoint(&run.checkpoint, &run.config, &options).expect_err("out of range");
        assert!(matches!(err, OnnxError::Opset { max: 18, .. }), "{err:?}");
        assert!(err.to_string().contains("..=18"), "{err}");
    }
    assert_eq!(run.files(), ["config.json", "model_best.safetensors"]);
    // The newest opset IR 8 allows works for every model, verified through tract.
    let options = ExportOptions {
        opset: 18,
        ..Default::default()
    };
    let report = export_checkpoint(&run.checkpoint, &run.config, &options).expect("opset 18");
    assert_eq!(report.opset, 18);
    assert_eq!(read_model(&report.output).opset_import[0].version, 18);

    // The oldest depends on the ops: LayerNormalization needs 17, everything else 13.
    let uses_layer_norm = read_model(&report.output)
        .graph
        .node
        .iter()
        .any(|n| n.op_type == "LayerNormalization");
    let oldest = if uses_layer_norm { 17 } else { 13 };
    let options = ExportOptions {
        opset: oldest - 1,
        ..Default::default()
    };
    let err = export_checkpoint(&run.checkpoint, &run.config, &options).expect_err("too old");
    assert!(
        err.to_string()
            .contains(&format!("use --opset {oldest}..=18")),
        "{err}"
    );
    let options = ExportOptions {
        opset: oldest,
        ..Default::default()
    };
    let report = export_checkpoint(&run.checkpoint, &run.config, &options).expect("oldest");
    assert_eq!(report.opset, oldest);
}

#[test]
fn no_verify_writes_to_the_chosen_output_without_a_verification() {
    let run = Run::new(false);
    let output = run.dir.path().join("exported.onnx");
    let options = ExportOptions {
        output: Some(output.clone()),
        verify: false,
        ..Default::default()
    };
    let report = export_checkpoint(&run.checkpoint, &run.config, &options).expect("export");
    assert!(report.verification.is_none());
    assert!(output.is_file());
    assert!(run.dir.path().join("exported.onnx.json").is_file());
    assert!(
        report.summary().contains("not verified"),
        "{}",
        report.summary()
    );
}

#[test]
fn an_output_folder_that_does_not_exist_is_named_in_the_error() {
    let run = Run::new(false);
    let output = run.dir.path().join("missing").join("model.onnx");
    let options = ExportOptions {
        output: Some(output),
        ..Default::default()
    };
    let err = export_checkpoint(&run.checkpoint, &run.config, &options).expect_err("no folder");
    assert!(matches!(err, OnnxError::Write { .. }), "{err:?}");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn a_checkpoint_tensor_the_export_does_not_read_is_an_error_naming_it() {
    let run = Run::new(false);
    run.varmap
        .get(
            3,
            "extra.weight",
            candle_nn::Init::Const(0.),
            candle_core::DType::F32,
            &Device::Cpu,
        )
        .expect("extra variable");
    let weights = Weights::from_varmap(&run.varmap).expect("weights");
    // Not expect_err: the Debug of a whole ModelProto would flood the output.
    let Err(err) = build_model_proto(&run.config, &run.spec, &weights, 17, None) else {
        panic!("an unused tensor must be an error");
    };
    assert!(
        matches!(&err, OnnxError::UnusedWeights { names, .. } if names == &["extra.weight"]),
        "{err:?}"
    );
}

#[test]
fn a_missing_checkpoint_tensor_is_an_error_naming_it() {
    let run = Run::new(false);
    // A weight (a missing bias would read as a layer built without one).
    let names = model::parameter_names(&run.varmap);
    let first = names
        .iter()
        .find(|n| n.ends_with(".weight"))
        .expect("a weight")
        .clone();
    run.varmap
        .data()
        .lock()
        .expect("not poisoned")
        .remove(&first);
    let weights = Weights::from_varmap(&run.varmap).expect("weights");
    let Err(err) = build_model_proto(&run.config, &run.spec, &weights, 17, None) else {
        panic!("a missing tensor must be an error");
    };
    assert!(
        matches!(&err, OnnxError::MissingWeight { name, .. } if *name == first),
        "{err:?}"
    );
    assert!(err.to_string().contains(&first), "{err}");
}
