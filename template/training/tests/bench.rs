//! `bench` runs the shipped config's model and optimiser and reports every figure it promises.

use std::path::Path;

use training::Config;
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
