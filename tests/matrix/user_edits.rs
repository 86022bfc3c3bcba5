//! Two edits as the generated README describes them, made to a generated cnn project: a
//! BatchNorm after `conv1` (a change to `model/src/cnn.rs` alone) and a new model, a small ResNet
//! (`tests/fixtures/resnet.rs` copied to `model/src/resnet.rs`, plus one registry line). Neither
//! writes any export code; each then trains, exports (verified by the export itself) and scores
//! the same from the ONNX file as from the checkpoint.

use std::path::Path;
use std::process::Command;

use candlecutter_tests::edits::{BATCH_NORM_AFTER_CONV1, insert_after};
use candlecutter_tests::repo_root;

use super::{cargo, export_and_compare, only_run_dir};

const REGISTRY: &str = "registry! {\n";

/// `candlecutter update` to a test-made next release of the template (a kernel change, a change
/// at the end of `cnn.rs`, ...), after the BatchNorm edit and an edit of `config.json`: both edits
/// and the template's changes must be there, and the project must still build and train (below).
fn update_keeps_the_edits(name: &str, project: &Path) -> Result<(), String> {
    use candlecutter_tests::next_template;
    let config = project.join("config.json");
    let text = std::fs::read_to_string(&config).map_err(|e| e.to_string())?;
    std::fs::write(&config, text.replace("\"epochs\": 10,", "\"epochs\": 12,")).map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let next = next_template::write(dir.path());
    let project_arg = project.display().to_string();
    let next_arg = next.display().to_string();
    let out =
        candlecutter_tests::candlecutter(project, &["update", &project_arg, "--allow-dirty", "--template", &next_arg]);
    if !out.status.success() {
        return Err(format!("{name}: candlecutter update failed:\n{}", String::from_utf8_lossy(&out.stdout)));
    }
    let read = |path: &str| std::fs::read_to_string(project.join(path)).unwrap_or_default();
    let cnn = read("model/src/cnn.rs");
    let checks = [
        ("the BatchNorm edit", cnn.contains("bn1: batch_norm2d(")),
        ("the template's change to cnn.rs", cnn.ends_with(next_template::MODEL_CHANGE)),
        ("the kernel change", read("kernels/src/lib.rs").contains(next_template::KERNEL_CHANGE)),
        ("the config edit", read("config.json").contains("\"epochs\": 12,")),
        ("the ResNet registry line", read("model/src/lib.rs").contains("Resnet(resnet::ResnetConfig")),
    ];
    for (what, ok) in checks {
        if !ok {
            return Err(format!(
                "{name}: after the update, {what} is missing:\n{}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
    }
    Ok(())
}

pub(super) fn user_edits_check(name: &str, project: &Path, bin: &Path) -> Result<String, String> {
    let model_src = project.join("model").join("src");
    insert_after(&model_src.join("cnn.rs"), &BATCH_NORM_AFTER_CONV1)?;
    std::fs::copy(repo_root().join("tests/fixtures/resnet.rs"), model_src.join("resnet.rs"))
        .map_err(|e| e.to_string())?;
    insert_after(&model_src.join("lib.rs"), &[(REGISTRY, "    Resnet(resnet::ResnetConfig => Resnet),\n")])?;
    update_keeps_the_edits(name, project)?;
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
