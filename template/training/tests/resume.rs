//! Resuming: a run stopped part-way and resumed ends with the same weights, to the bit, as one
//! that never stopped; Ctrl-C (the interrupt flag) stops after a step with a checkpoint.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use experiment::{RunDir, checkpoint, resume};
use training::{TrainOptions, train};

fn final_weights(run: &Path) -> Vec<(String, Vec<u8>)> {
    let ckpt = checkpoint::load(&run.join("checkpoint-epoch2.safetensors"), &Device::Cpu).unwrap();
    let mut weights: Vec<(String, Vec<u8>)> = ckpt
        .weights
        .iter()
        .map(|(name, t)| {
            let values = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (name.clone(), values.iter().flat_map(|v| v.to_le_bytes()).collect())
        })
        .collect();
    weights.sort();
    weights
}

/// metrics.csv without the timing columns.
fn metrics(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').take(5).collect::<Vec<_>>().join(","))
        .collect()
}

#[test]
fn resume_equals_uninterrupted_to_the_bit() {
    resumes_exactly(&[]);
}

#[test]
fn resume_with_augmentation_equals_uninterrupted_to_the_bit() {
    // Crops and flips are drawn from (seed, epoch, sample), so the resumed half sees the same pixels.
    resumes_exactly(&[r#"data_loader.args.augment={"crop_padding": 3, "horizontal_flip": true}"#]);
}

fn resumes_exactly(set: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    support::write_data(&dir.path().join("data"), 160);
    let config = |extra: &[&str]| support::config(dir.path(), &[set, extra].concat());

    let straight_config = config(&["name=\"straight\""]);
    let straight = RunDir::create(&straight_config).unwrap();
    train(&straight_config, &straight, &TrainOptions::default()).unwrap();

    // 144 training images at batch 16 = 9 steps per epoch: stop in the middle of the first epoch.
    let stopped_config = config(&["name=\"resumed\"", "trainer.max_steps=5"]);
    let resumed = RunDir::create(&stopped_config).unwrap();
    let summary = train(&stopped_config, &resumed, &TrainOptions::default()).unwrap();
    assert_eq!((summary.stopped_by, summary.global_steps), ("max_steps", 5));
    let (checkpoint, state) = resume::find_checkpoint(resumed.path()).unwrap();
    assert_eq!((state.epoch, state.step_in_epoch), (0, 5), "{}", checkpoint.display());

    let continue_config = config(&["name=\"resumed\""]);
    let options = TrainOptions { resume: Some(checkpoint), ..Default::default() };
    let summary = train(&continue_config, &resumed, &options).unwrap();
    assert_eq!((summary.stopped_by, summary.global_steps), ("completed", 18));

    assert_eq!(final_weights(straight.path()), final_weights(resumed.path()));
    assert_eq!(metrics(straight.path()), metrics(resumed.path()));
    // The mid-epoch checkpoint is superseded by the epoch checkpoints and removed.
    assert!(!resumed.file("checkpoint-step5.safetensors").exists());
}

#[test]
fn the_same_seed_trains_the_same_weights_and_another_seed_does_not() {
    let dir = tempfile::tempdir().unwrap();
    support::write_data(&dir.path().join("data"), 96);
    let run = |name: &str, seed: u64| {
        let config = support::config(dir.path(), &[&format!("name=\"{name}\""), &format!("seed={seed}")]);
        let run = RunDir::create(&config).unwrap();
        train(&config, &run, &TrainOptions::default()).unwrap();
        final_weights(run.path())
    };
    let a = run("a", 1);
    assert_eq!(a, run("b", 1));
    assert_ne!(a, run("c", 2));
}

#[test]
fn an_interrupt_stops_after_the_step_with_a_checkpoint_to_resume_from() {
    let dir = tempfile::tempdir().unwrap();
    support::write_data(&dir.path().join("data"), 96);
    let config = support::config(dir.path(), &[]);
    let run = RunDir::create(&config).unwrap();
    let options = TrainOptions { interrupt: Arc::new(AtomicBool::new(true)), ..Default::default() };
    let summary = train(&config, &run, &options).unwrap();
    assert_eq!((summary.stopped_by, summary.global_steps), ("interrupted", 1));
    let (path, state) = resume::find_checkpoint(run.path()).unwrap();
    assert_eq!(path, run.file("checkpoint-step1.safetensors"));
    assert_eq!(state.global_step, 1);
    assert!(run.file("summary.json").exists());
}

#[test]
fn resuming_from_a_weights_only_file_says_what_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    support::write_data(&dir.path().join("data"), 96);
    let config = support::config(dir.path(), &["trainer.epochs=1"]);
    let run = RunDir::create(&config).unwrap();
    train(&config, &run, &TrainOptions::default()).unwrap();
    let err = resume::find_checkpoint(&run.file("model_best.safetensors")).unwrap_err().to_string();
    assert!(err.contains("run folder"), "{err}");
    let err = resume::find_checkpoint(&dir.path().join("nope")).unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
}
