//! Two edits as the generated README describes them, made to a generated cnn project: a
//! BatchNorm after `conv1` (a change to `model/src/cnn.rs` alone) and a new model, a small ResNet
//! (`tests/fixtures/resnet.rs` copied to `model/src/resnet.rs`, plus one registry line). Neither
//! writes any export code; each then trains, exports (verified by the export itself) and scores
//! the same from the ONNX file as from the checkpoint.

use std::path::Path;
use std::process::Command;

use candlecutter_tests::repo_root;

use super::{cargo, export_and_compare, only_run_dir};

/// `(text to find, text to put after it)` in the generated `model/src/cnn.rs`.
const BATCH_NORM_AFTER_CONV1: [(&str, &str); 4] = [
    ("use crate::pool::{Flatten, MaxPool2d};\n", "use crate::batch_norm::{BatchNorm2d, batch_norm2d};\n"),
    ("    conv1: Conv2d,\n", "    bn1: BatchNorm2d,\n"),
    ("vb.pp(\"conv1\"))?.with_relu(),\n", "            bn1: batch_norm2d(CONV1_CHANNELS, vb.pp(\"bn1\"))?,\n"),
    ("let x = f.layer(&self.conv1, &x)?; // [batch, 32, h - 2, w - 2]\n", "        let x = f.layer(&self.bn1, &x)?;\n"),
];

const REGISTRY: &str = "registry! {\n";

fn insert_after(path: &Path, edits: &[(&str, &str)]) -> Result<(), String> {
    let mut text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for (anchor, addition) in edits {
        let at = text.find(anchor).ok_or(format!("{} no longer has {anchor:?}; update this test", path.display()))?;
        text.insert_str(at + anchor.len(), addition);
    }
    std::fs::write(path, text).map_err(|e| e.to_string())
}

pub(super) fn user_edits_check(name: &str, project: &Path, bin: &Path) -> Result<String, String> {
    let model_src = project.join("model").join("src");
    insert_after(&model_src.join("cnn.rs"), &BATCH_NORM_AFTER_CONV1)?;
    std::fs::copy(repo_root().join("tests/fixtures/resnet.rs"), model_src.join("resnet.rs"))
        .map_err(|e| e.to_string())?;
    insert_after(&model_src.join("lib.rs"), &[(REGISTRY, "    Resnet(resnet::ResnetConfig => Resnet),\n")])?;
    let out = cargo(project, &["build"]).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{name}: the project with a BatchNorm and a ResNet does not build:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut report = String::new();
    for (run, model) in [("cnn-bn", r#"{"type": "cnn"}"#), ("resnet", r#"{"type": "resnet", "args": {"width": 4}}"#)] {
        let out = Command::new(bin)
            .current_dir(project)
            .args([
                "train",
                "--set",
                &format!("name={run}"),
                "--set",
                &format!("model={model}"),
                "--set",
                "trainer.epochs=1",
            ])
            .args(["--set", "device=cpu"])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("{name}: training the edited {run} failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let run_dir = only_run_dir(project, run)?;
        let checkpoint = run_dir.join("model_best.safetensors");
        let names = training_names(&checkpoint)?;
        if !names.iter().any(|n| n.ends_with(".running_var")) {
            return Err(format!("{name}: the {run} checkpoint has no batch-norm statistics: {names:?}"));
        }
        let accuracy = export_and_compare(name, bin, project, &checkpoint)?;
        report.push_str(&format!("  {run}: exported, verified, ONNX accuracy {accuracy:.3}"));
    }
    resume_with_batch_norm_is_exact(name, project, bin)?;
    report.push_str("  cnn-bn: resumed run bit-identical");
    Ok(report)
}

/// Two epochs straight, and the same stopped after 3 steps and resumed: the final checkpoints
/// hold the same bytes (weights, batch-norm statistics, optimiser state).
fn resume_with_batch_norm_is_exact(name: &str, project: &Path, bin: &Path) -> Result<(), String> {
    let train = |run: &str, extra: &[&str]| -> Result<std::path::PathBuf, String> {
        let out = Command::new(bin)
            .current_dir(project)
            .args(["train", "--set", &format!("name={run}"), "--set", "trainer.epochs=2", "--set", "device=cpu"])
            .args(extra)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("{name}: {run}: {}", String::from_utf8_lossy(&out.stderr)));
        }
        only_run_dir(project, run)
    };
    let straight = train("bn-straight", &[])?;
    let stopped = train("bn-resumed", &["--set", "trainer.max_steps=3"])?;
    train("bn-resumed", &["--resume", &stopped.display().to_string(), "--set", "trainer.max_steps=null"])?;
    let tensors = |run: &Path| -> Result<Vec<u8>, String> {
        let bytes = std::fs::read(run.join("checkpoint-epoch2.safetensors")).map_err(|e| format!("{name}: {e}"))?;
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        Ok(bytes[8 + len..].to_vec())
    };
    if tensors(&straight)? != tensors(&stopped)? {
        return Err(format!("{name}: the cnn with a BatchNorm resumed to other weights than it trained straight"));
    }
    Ok(())
}

/// The tensor names in a safetensors file (its JSON header).
fn training_names(path: &Path) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = u64::from_le_bytes(bytes.get(..8).ok_or("short file")?.try_into().unwrap()) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(bytes.get(8..8 + len).ok_or("short header")?).map_err(|e| e.to_string())?;
    Ok(header.as_object().map(|o| o.keys().filter(|k| *k != "__metadata__").cloned().collect()).unwrap_or_default())
}
