//! Data-parallel training, with ranks as threads of this process (`training::distributed::local`):
//! two ranks sharing each global batch end with the weights one process gets from the same global
//! batch (within float summation order), uneven last batch and dropout included.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::Device;
use experiment::{RunDir, checkpoint};
use training::distributed::local;
use training::{TrainOptions, train};

fn weights(run: &std::path::Path) -> BTreeMap<String, Vec<f32>> {
    let ckpt = checkpoint::load(&run.join("checkpoint-epoch1.safetensors"), &Device::Cpu).unwrap();
    ckpt.weights.iter().map(|(name, t)| (name.clone(), t.flatten_all().unwrap().to_vec1::<f32>().unwrap())).collect()
}

/// The `split` rows of metrics.csv: (loss, accuracy) per epoch.
fn rows(run: &std::path::Path, split: &str) -> Vec<(f64, f64)> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .filter(|l| l.split(',').nth(1) == Some(split))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[2].parse().unwrap(), f[3].parse().unwrap())
        })
        .collect()
}

#[test]
fn two_ranks_end_with_the_weights_of_one_process() {
    let dir = tempfile::tempdir().unwrap();
    support::write_data(&dir.path().join("data"), 100);
    // 90 training images at batch 17: five full batches and a last one of 5 (ranks take 2 and 3).
    // SGD: its update is linear in the gradient, so the two runs differ by rounding only. AdamW
    // divides by sqrt(v), which turns the rounding of near-zero gradients into whole steps: the
    // same comparison with AdamW measured 5e-4 relative after 20 steps.
    let sgd = r#"optimizer={"type": "sgd", "args": {"lr": 0.01, "momentum": 0.9}}"#;
    let config = |name: &str| {
        support::config(
            dir.path(),
            &[&format!("name={name:?}"), "data_loader.args.batch_size=17", "trainer.epochs=1", sgd],
        )
    };

    let single_config = config("single");
    let single = RunDir::create(&single_config).unwrap();
    train(&single_config, &single, &TrainOptions::default()).unwrap();

    // As the CLI does: rank 0 creates the run folder and tells the others its name.
    let ranks: Vec<PathBuf> = local::run(2, |group| {
        let config = config("ranks");
        let created =
            if group.is_writer() { RunDir::create(&config).unwrap().path().to_path_buf() } else { PathBuf::new() };
        let run = RunDir::open(std::path::Path::new(&group.share_text(&created.to_string_lossy()).unwrap()));
        train(&config, &run, &TrainOptions { group, ..Default::default() }).unwrap();
        run.path().to_path_buf()
    });
    assert_eq!(ranks[0], ranks[1], "one run folder");
    assert_eq!(std::fs::read_dir(dir.path().join("saved/ranks")).unwrap().count(), 1, "rank 1 created nothing");

    let (one, zero) = (weights(single.path()), weights(&ranks[0]));
    assert_eq!(one.keys().collect::<Vec<_>>(), zero.keys().collect::<Vec<_>>());
    for (name, expected) in &one {
        let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
        let worst = expected.iter().zip(&zero[name]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-5 * scale, "{name}: the 2-rank weights differ by {worst} (scale {scale})");
    }
    // The training loss and accuracy each epoch are the global batch's, as one process reports them.
    for ((loss1, acc1), (loss2, acc2)) in rows(single.path(), "train").into_iter().zip(rows(&ranks[0], "train")) {
        assert!((loss1 - loss2).abs() <= 1e-4 * loss1.abs(), "train loss {loss1} vs {loss2}");
        assert_eq!(acc1, acc2, "train accuracy");
    }
    // Validation is sharded and its counts summed: the same numbers as one process's.
    let (val1, val2) = (rows(single.path(), "val"), rows(&ranks[0], "val"));
    assert_eq!(val1.len(), 1);
    for ((loss1, acc1), (loss2, acc2)) in val1.into_iter().zip(val2) {
        assert!((loss1 - loss2).abs() <= 1e-5 * loss1.abs(), "val loss {loss1} vs {loss2}");
        assert_eq!(acc1, acc2, "val accuracy");
    }
}

#[test]
fn a_batch_smaller_than_the_ranks_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    support::write_data(&dir.path().join("data"), 64);
    let errors = local::run(3, |group| {
        let config = support::config(dir.path(), &["data_loader.args.batch_size=2"]);
        let run = RunDir::open(&dir.path().join("unused"));
        train(&config, &run, &TrainOptions { group, ..Default::default() }).unwrap_err().to_string()
    });
    for err in errors {
        assert!(err.contains("data_loader.args.batch_size") && err.contains("at least 3"), "{err}");
    }
}
