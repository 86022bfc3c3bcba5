//! Killing the process while it writes checkpoints never leaves a damaged file under a final name.
//! The test runs itself again as a child process (`writer_child`) that saves checkpoints in a loop,
//! kills it at varying moments, and checks every final-named file.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use experiment::checkpoint;

const DIR_VAR: &str = "CRASH_SAFETY_DIR";

/// Runs only as the child: overwrite two checkpoints forever, each save filled with one value.
#[test]
fn writer_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else { return };
    let varmap = VarMap::new();
    varmap.get((1024, 1024), "w", candle_nn::Init::Const(0.0), DType::F32, &Device::Cpu).unwrap();
    let spec = model::DataSpec::new([1, 4, 4], model::DataSpec::numbered_classes(2)).unwrap();
    for generation in 1u32.. {
        let value = Tensor::full(generation as f32, (1024, 1024), &Device::Cpu).unwrap();
        varmap.data().lock().unwrap()["w"].set(&value).unwrap();
        let name = if generation % 2 == 0 { "checkpoint-epoch1.safetensors" } else { "model_best.safetensors" };
        checkpoint::save(&Path::new(&dir).join(name), &varmap, &spec, None, None).unwrap();
    }
}

#[test]
fn a_kill_during_checkpoint_writing_leaves_every_final_file_valid() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut checked = 0;
    for round in 0..12u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "writer_child", "--nocapture", "--test-threads", "1"])
            .env(DIR_VAR, dir.path())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + 37 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue; // a temporary file the kill interrupted: never under a final name
            }
            let loaded = checkpoint::load(&path, &Device::Cpu).unwrap_or_else(|e| panic!("{name}: {e}"));
            let w = loaded.weights["w"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(w.iter().all(|v| *v == w[0]) && w[0] >= 1.0, "{name} mixes two saves");
            checked += 1;
        }
    }
    assert!(checked >= 12, "the child wrote too few checkpoints to check ({checked})");
}
