//! Running exported files: tract against candle at several batch sizes, evaluation and
//! prediction with the file against the checkpoint, and the input checks.

use std::path::Path;

use candle_core::Device;

use super::fixture::{Run, random_pixels};
use super::max_abs_diff;
use crate::onnx::{ExportOptions, OnnxModel, evaluate_onnx, export_checkpoint, predict_onnx};
use crate::{EvalSplit, evaluate_checkpoint};

#[test]
fn the_exported_model_matches_candle_at_several_batch_sizes() {
    let run = Run::new(false);
    let summary = r#"{"best_metric": 0.5, "final_val": {"accuracy": 0.5}}"#;
    std::fs::write(run.run_dir().join("summary.json"), summary).expect("summary.json");
    let report = export_checkpoint(&run.checkpoint, &run.config, &ExportOptions::default()).expect("export succeeds");

    // The files, under their final names and nothing else (no temporary files left).
    let output = run.run_dir().join("model.onnx");
    assert_eq!(report.output, output);
    assert_eq!(run.files(), ["config.json", "model.onnx", "model.onnx.json", "model_best.safetensors", "summary.json"]);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.run_dir().join("model.onnx.json")).expect("report"))
            .expect("the report is JSON");
    assert_eq!(saved["opset"], 17);
    assert_eq!(saved["ir_version"], 8);
    assert_eq!(saved["input"], "input");
    assert_eq!(saved["output_name"], "logits");
    assert_eq!(saved["tract_version"], crate::onnx::TRACT_VERSION);
    let verification = report.verification.as_ref().expect("verified by default");
    let sizes: Vec<usize> = verification.batches.iter().map(|b| b.batch).collect();
    assert_eq!(sizes, [1, 3, 17]);
    assert!(verification.inputs.starts_with("random pixels"), "{}", verification.inputs);
    for check in &verification.batches {
        assert!(check.max_abs_error <= 1e-4 && check.same_argmax, "{check:?}");
    }
    assert!(report.summary().contains("model.onnx"), "{}", report.summary());

    // Independently of the exporter's own check: other batch sizes, through the public API.
    let onnx = OnnxModel::load(&output).expect("tract loads the file");
    for batch in [1, 2, 5, 64] {
        let pixels = random_pixels(batch, batch as u64);
        let got = onnx.run(&pixels).expect("runs");
        let want = run.candle_logits(&pixels, batch);
        let diff = max_abs_diff(&got, &want);
        assert!(diff <= 1e-4, "batch {batch}: max |onnx - candle| = {diff}");
    }
}

#[test]
fn verification_uses_validation_images_and_evaluate_matches_the_checkpoint() {
    let run = Run::new(true);
    let report = export_checkpoint(&run.checkpoint, &run.config, &ExportOptions::default()).expect("export succeeds");
    let verification = report.verification.expect("verified");
    assert!(verification.inputs.starts_with("validation samples"), "{}", verification.inputs);

    let onnx = OnnxModel::load(&report.output).expect("loads");
    let config = onnx.config(&[]).expect("config from the metadata");
    for split in [EvalSplit::Test, EvalSplit::Val] {
        let from_checkpoint = evaluate_checkpoint(&run.checkpoint, &run.config, split).expect("evaluate");
        let from_onnx = evaluate_onnx(&onnx, &config, split).expect("evaluate onnx");
        assert_eq!(from_onnx.samples, from_checkpoint.samples, "{split:?}");
        assert_eq!(from_onnx.accuracy(), from_checkpoint.accuracy(), "{split:?}");
        assert!((from_onnx.loss - from_checkpoint.loss).abs() < 1e-4, "{split:?}");
    }
}

#[test]
fn predict_with_the_onnx_file_matches_predict_with_the_checkpoint() {
    let run = Run::new(false);
    let options = ExportOptions { verify: false, ..Default::default() };
    let report = export_checkpoint(&run.checkpoint, &run.config, &options).expect("export");
    let image = run.dir.path().join("digit.png");
    image::GrayImage::from_fn(31, 17, |x, y| image::Luma([((x * 9 + y * 5) % 256) as u8])).save(&image).expect("png");
    let onnx = OnnxModel::load(&report.output).expect("loads");
    let got = predict_onnx(&onnx, std::slice::from_ref(&image)).expect("predict onnx");
    let want = crate::predict::predict(run.model.as_ref(), &run.spec, &[image], &run.config.data_loader, &Device::Cpu)
        .expect("predict");
    assert_eq!(got[0].class, want[0].class);
    assert_eq!(got[0].name, want[0].name);
    assert_eq!(got[0].inverted, want[0].inverted);
    let diff = max_abs_diff(&got[0].probabilities, &want[0].probabilities);
    assert!(diff < 1e-5, "{diff}");
}

#[test]
fn input_that_is_not_whole_images_is_rejected() {
    let run = Run::new(false);
    let options = ExportOptions { verify: false, ..Default::default() };
    let report = export_checkpoint(&run.checkpoint, &run.config, &options).expect("export");
    let onnx = OnnxModel::load(&report.output).expect("loads");
    let err = onnx.run(&[0.5; 100]).expect_err("100 values");
    assert!(err.to_string().contains("not a whole number of images"), "{err}");
}

/// The version written into reports is the one the lock file resolved (when there is one).
#[test]
fn the_reported_tract_version_is_the_locked_one() {
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    let Ok(text) = std::fs::read_to_string(lock) else {
        return;
    };
    let locked = format!("name = \"tract-onnx\"\nversion = \"{}\"", crate::onnx::TRACT_VERSION);
    assert!(text.contains(&locked), "update TRACT_VERSION in src/onnx/runtime.rs");
}
