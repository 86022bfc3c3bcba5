//! Training on an image folder, configured in config.json alone: colour images of several sizes in
//! named class folders. Streaming from disk computes exactly what the in-memory path computes,
//! augmentation included; `"normalize": "auto"` measures the training images and the run's
//! config.json records the numbers; the checkpoints record the folder names as the classes; bad
//! settings are config errors.

#[allow(dead_code)] // the IDX writer is for the other tests
mod support;

use std::path::Path;

use candle_core::Device;
use experiment::{RunDir, checkpoint};
use training::{TrainOptions, train};

const CLASSES: [&str; 3] = ["circle", "cross", "stripe"];

/// `per_class` RGB images per class in `root/split/<class>/`, of several sizes (none 28x28): the
/// class is a colour in one channel, so the set is learnable.
fn write_folder(root: &Path, split: &str, per_class: usize) {
    for (c, class) in CLASSES.iter().enumerate() {
        let dir = root.join(split).join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let (w, h) = (20 + (i % 3) as u32 * 7, 16 + (i % 2) as u32 * 9);
            let image = image::RgbImage::from_fn(w, h, |x, y| {
                let mut p = [((x + y + i as u32) % 40) as u8; 3];
                p[c] = 200;
                image::Rgb(p)
            });
            image.save(dir.join(format!("{i}.png"))).unwrap();
        }
        std::fs::write(dir.join("README.txt"), "not an image").unwrap();
    }
}

fn image_folder_config(dir: &Path, cache: &str, set: &[&str]) -> experiment::Config {
    let section = format!(
        r#"data_loader={{"type": "image_folder", "args": {{"data_dir": {:?}, "image_size": [16, 20], "channels": 3,
            "batch_size": 8, "cache": "{cache}", "workers": 2, "prefetch": 2}}}}"#,
        dir.join("images").display().to_string()
    );
    let mut all = vec![section.as_str()];
    all.extend_from_slice(set);
    support::config(dir, &all)
}

fn weights(path: &Path) -> Vec<(String, Vec<f32>)> {
    let ckpt = checkpoint::load(path, &Device::Cpu).unwrap();
    let mut weights: Vec<_> =
        ckpt.weights.iter().map(|(n, t)| (n.clone(), t.flatten_all().unwrap().to_vec1::<f32>().unwrap())).collect();
    weights.sort_by(|a, b| a.0.cmp(&b.0));
    weights
}

#[test]
fn streaming_trains_exactly_as_in_memory_and_records_the_class_names() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(&dir.path().join("images"), "train", 12);
    let mut finals = Vec::new();
    for cache in ["memory", "stream"] {
        let augment = r#"data_loader.args.augment={"crop_padding": 3, "horizontal_flip": true}"#;
        let config = image_folder_config(dir.path(), cache, &[&format!("name=\"{cache}\""), augment]);
        let run = RunDir::create(&config).unwrap();
        let summary = train(&config, &run, &TrainOptions::default()).unwrap();
        // 36 images, 10% (4) held out, batch 8: 4 steps per epoch.
        assert_eq!(summary.global_steps, 8, "{cache}");
        let last = run.file("checkpoint-epoch2.safetensors");
        let spec = checkpoint::read_spec(&last).unwrap();
        assert_eq!(spec.classes(), CLASSES);
        assert_eq!(spec.input_shape, [3, 16, 20]);
        finals.push(weights(&last));
    }
    assert!(finals[0] == finals[1], "streamed training must equal in-memory training");
}

/// Per-channel mean and std of `images` `[n, c, h, w]`.
fn channel_stats(images: &candle_core::Tensor) -> (Vec<f32>, Vec<f32>) {
    let per_channel = images.transpose(0, 1).unwrap().flatten_from(1).unwrap();
    let mean = per_channel.mean(1).unwrap();
    let var = per_channel.broadcast_sub(&mean.unsqueeze(1).unwrap()).unwrap().sqr().unwrap().mean(1).unwrap();
    (mean.to_vec1().unwrap(), var.sqrt().unwrap().to_vec1().unwrap())
}

#[test]
fn normalize_auto_is_measured_on_the_training_split_and_recorded_in_the_run() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(&dir.path().join("images"), "train", 12);
    let config =
        image_folder_config(dir.path(), "memory", &[r#"data_loader.args.normalize="auto""#, "trainer.epochs=1"]);
    // Nothing to evaluate or export with before training has measured the numbers.
    let err = config.data_loader.channel_normalize(3).unwrap_err().to_string();
    assert!(err.contains("data_loader.args.normalize") && err.contains("\"auto\""), "{err}");

    let run = RunDir::create(&config).unwrap();
    train(&config, &run, &TrainOptions::default()).unwrap();
    let recorded = experiment::Config::load(&run.file("config.json"), &[]).unwrap();
    let normalize = recorded.data_loader.channel_normalize(3).expect("the run's config has the numbers");

    // They are the training images' own statistics (unstandardised, scaled to [0, 1]).
    let raw = recorded.data_loader.with_normalize(data_loader::Normalize::identity());
    let splits = raw.load_train_val(config.seed, &Device::Cpu).unwrap();
    let data_loader::SplitData::InMemory(train_set) = &splits.train else { panic!("cache: memory") };
    let (mean, std) = channel_stats(train_set.images());
    for c in 0..3 {
        assert!((normalize.mean[c] - mean[c]).abs() < 1e-4, "channel {c}: {normalize:?} vs {mean:?}");
        assert!((normalize.std[c] - std[c]).abs() < 1e-4, "channel {c}: {normalize:?} vs {std:?}");
    }
    // Standardised with them, the training images are zero-mean and unit-variance per channel.
    let standardised = recorded.data_loader.load_train_val(config.seed, &Device::Cpu).unwrap();
    let data_loader::SplitData::InMemory(train_set) = &standardised.train else { panic!("cache: memory") };
    let (mean, std) = channel_stats(train_set.images());
    assert!(mean.iter().all(|m| m.abs() < 1e-3) && std.iter().all(|s| (s - 1.0).abs() < 1e-3), "{mean:?} {std:?}");
}

#[test]
fn per_channel_numbers_must_match_the_channels() {
    let dir = tempfile::tempdir().unwrap();
    let section = r#"data_loader={"type": "image_folder", "args": {"data_dir": "x", "channels": 1,
        "normalize": {"mean": [0.5, 0.5, 0.5], "std": 0.25}}}"#;
    let err = experiment::Config::from_json(
        include_str!("../../config.json"),
        Path::new("config.json"),
        &[section.to_string(), "device=cpu".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("data_loader.args.normalize")
            && err.contains("`mean` has 3 values but the images have 1 channels"),
        "{err}"
    );
    drop(dir);
}

#[test]
fn a_val_folder_replaces_the_validation_split() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(&dir.path().join("images"), "train", 6);
    write_folder(&dir.path().join("images"), "val", 2);
    let config = image_folder_config(dir.path(), "auto", &["data_loader.args.validation_split=0"]);
    let splits = config.data_loader.load_train_val(config.seed, &Device::Cpu).unwrap();
    use data_loader::Dataset;
    assert_eq!((splits.train.len(), splits.val.len()), (18, 6));
}

#[test]
fn bad_image_folder_settings_are_config_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (set, key) in [
        ("data_loader.args.image_size=0", "image_size"),
        ("data_loader.args.image_size=[8, 0]", "image_size"),
        ("data_loader.args.channels=2", "channels"),
        ("data_loader.args.workers=0", "workers"),
    ] {
        let section = r#"data_loader={"type": "image_folder", "args": {"data_dir": "x"}}"#.to_string();
        let err = experiment::Config::from_json(
            include_str!("../../config.json"),
            Path::new("config.json"),
            &[section, set.to_string(), "device=cpu".into()],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(&format!("data_loader.args.{key}")), "{set}: {err}");
    }
    // No train/ folder: the error names it and the expected layout, and nothing is written.
    let config = image_folder_config(dir.path(), "auto", &[]);
    let err = config.data_loader.load_train_val(config.seed, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("train") && err.contains("train/<class>/<image>"), "{err}");
}

#[test]
fn a_crop_padding_beyond_half_the_image_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(&dir.path().join("images"), "train", 4);
    let ok = image_folder_config(dir.path(), "memory", &["data_loader.args.augment.crop_padding=8"]);
    assert!(ok.data_loader.load_train_val(ok.seed, &Device::Cpu).is_ok(), "8 is half of 16");
    let config = image_folder_config(dir.path(), "memory", &["data_loader.args.augment.crop_padding=100000"]);
    let err = config.data_loader.load_train_val(config.seed, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("`data_loader.args.augment.crop_padding` is 100000") && err.contains("16x20"), "{err}");
    let run = RunDir::create(&config).unwrap();
    assert!(train(&config, &run, &TrainOptions::default()).is_err());
    assert!(!run.file("model_best.safetensors").exists());
}

#[test]
fn a_resume_with_an_auto_config_keeps_the_numbers_the_run_measured() {
    let dir = tempfile::tempdir().unwrap();
    write_folder(&dir.path().join("images"), "train", 12);
    let config =
        image_folder_config(dir.path(), "memory", &[r#"data_loader.args.normalize="auto""#, "trainer.epochs=1"]);
    let run = RunDir::create(&config).unwrap();
    train(&config, &run, &TrainOptions::default()).unwrap();
    let measured = experiment::Config::load(&run.file("config.json"), &[]).unwrap().data_loader.normalize().cloned();
    assert!(matches!(measured, Some(data_loader::NormalizeSetting::Fixed(_))));
    // The images change; resuming with the "auto" config still uses the recorded numbers.
    write_folder(&dir.path().join("images"), "train", 20);
    let resumed = experiment::resume::with_recorded_normalize(config.clone(), run.path());
    assert_eq!(resumed.data_loader.normalize(), measured.as_ref());
    // Evaluating with the "auto" config is refused, naming the key, instead of measuring again.
    let err = config.data_loader.channel_normalize(3).unwrap_err().to_string();
    assert!(err.contains("data_loader.args.normalize"), "{err}");
}
