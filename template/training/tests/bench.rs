//! `bench` runs the shipped config's model and optimiser and reports every figure it promises.

use std::path::Path;

use experiment::Config;
use training::bench::{BenchMode, BenchOptions, bench};

fn shipped_config() -> Config {
    let set = ["device=cpu".to_string()];
    Config::from_json(include_str!("../../config.json"), Path::new("config.json"), &set).unwrap()
}

#[test]
fn training_bench_reports_throughput_percentiles_and_memory() {
    let options = BenchOptions { mode: BenchMode::Train, steps: 3, warmup: 1, batch_size: 4 };
    let report = bench(&shipped_config(), &options).unwrap();
    assert_eq!((report.mode, report.batch_size, report.steps, report.device.as_str()), ("train", 4, 3, "cpu"));
    assert!(report.samples_per_sec > 0.0 && report.step_ms_p50 > 0.0, "{report:?}");
    assert!(report.step_ms_p90 >= report.step_ms_p50, "{report:?}");
    assert!(report.threads >= 1);
    if cfg!(target_os = "linux") {
        assert!(report.peak_rss_mb.is_some_and(|mb| mb > 1.0), "{report:?}");
    }
    let json = serde_json::to_value(&report).unwrap();
    for key in ["model", "batch_size", "steps", "samples_per_sec", "step_ms_p50", "step_ms_p90", "peak_rss_mb"] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
}

#[test]
fn eval_bench_reports_eval_mode() {
    let options = BenchOptions { mode: BenchMode::Eval, steps: 2, warmup: 0, batch_size: 8 };
    let report = bench(&shipped_config(), &options).unwrap();
    assert_eq!((report.mode, report.steps, report.batch_size), ("eval", 2, 8));
    assert_eq!(report.model, shipped_config().model.name());
}

#[test]
fn data_bench_feeds_training_from_the_configured_data_and_reports_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    // Synthetic colour PNGs in two class folders, streamed and augmented as config.json says.
    for (c, class) in ["dark", "light"].iter().enumerate() {
        let folder = dir.path().join("train").join(class);
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..12u32 {
            let value = (c as u8) * 150 + (i as u8) * 3;
            image::RgbImage::from_pixel(18, 14, image::Rgb([value, 40, 255 - value]))
                .save(folder.join(format!("{i}.png")))
                .unwrap();
        }
    }
    let section = format!(
        r#"data_loader={{"type": "image_folder", "args": {{"data_dir": {:?}, "image_size": 16, "cache": "stream",
            "augment": {{"crop_padding": 2, "horizontal_flip": true}}}}}}"#,
        dir.path().display().to_string()
    );
    let config =
        Config::from_json(include_str!("../../config.json"), Path::new("config.json"), &[section, "device=cpu".into()])
            .unwrap();
    let options = BenchOptions { mode: BenchMode::Train, steps: 4, warmup: 1, batch_size: 8 };
    let report = training::bench::data::bench_data(&config, &options).unwrap();
    assert_eq!(
        (report.data, report.cache, report.augment, report.image_shape.clone()),
        ("image_folder", "stream", true, vec![3, 16, 16])
    );
    assert!(report.loader_images_per_sec > 0.0 && report.train_samples_per_sec > 0.0, "{report:?}");
    assert!((0.0..1.0).contains(&report.data_wait_share), "{report:?}");
    assert!(report.summary().contains("waiting for data"), "{}", report.summary());
}
