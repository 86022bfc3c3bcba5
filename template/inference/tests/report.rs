//! `report`: on a finished run, a stopped one and one killed before its first epoch ended, the
//! PNGs decode at their sizes and show their series, report.md names them, and the confusion
//! matrix adds up to the evaluated images.

#[path = "../../training/tests/support/mod.rs"]
mod support;

use std::path::Path;

use experiment::RunDir;
use inference::EvalSplit;
use inference::report::charts::{BLUE_SERIES, CONFUSION_SIZE, LINE_CHART_SIZE, ORANGE_SERIES};
use inference::report::{ACCURACY_PNG, CONFUSION_PNG, LOSS_PNG, LR_PNG, REPORT_MD, ReportOptions, report};
use training::{TrainOptions, train};

/// Train a run named `name` with `set` overrides on 160 synthetic images (16 held out).
fn trained_run(dir: &Path, name: &str, set: &[&str]) -> RunDir {
    support::write_data(&dir.join("data"), 160);
    let mut overrides = vec![format!("name=\"{name}\"")];
    overrides.extend(set.iter().map(|s| s.to_string()));
    let overrides: Vec<&str> = overrides.iter().map(String::as_str).collect();
    let config = support::config(dir, &overrides);
    let run = RunDir::create(&config).unwrap();
    train(&config, &run, &TrainOptions::default()).unwrap();
    run
}

/// Decode a PNG, check its size, and count its pixels close to `color`.
fn pixels_near(path: &Path, size: (u32, u32), color: plotters::style::RGBColor) -> usize {
    let image = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    assert_eq!(image.dimensions(), size, "{}", path.display());
    let near = |a: u8, b: u8| a.abs_diff(b) < 30;
    image.pixels().filter(|p| near(p[0], color.0) && near(p[1], color.1) && near(p[2], color.2)).count()
}

fn non_white(path: &Path) -> f64 {
    let image = image::open(path).unwrap().to_rgb8();
    let dark = image.pixels().filter(|p| p.0.iter().any(|c| *c < 200)).count();
    dark as f64 / (image.width() * image.height()) as f64
}

#[test]
fn a_finished_run_gets_four_charts_and_a_report_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained_run(dir.path(), "finished", &["trainer.epochs=3"]);
    let report =
        report(run.path(), &ReportOptions { overrides: vec!["device=cpu".into()], ..Default::default() }).unwrap();
    assert!(report.finished);
    assert_eq!(report.epochs, 3);

    let files: Vec<_> = report.charts.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(files, [LOSS_PNG, ACCURACY_PNG, LR_PNG, CONFUSION_PNG]);
    for file in [LOSS_PNG, ACCURACY_PNG] {
        // Both series are drawn: train in blue, validation in orange (lines, dots and legend).
        assert!(pixels_near(&run.file(file), LINE_CHART_SIZE, BLUE_SERIES) > 300, "{file}: train series");
        assert!(pixels_near(&run.file(file), LINE_CHART_SIZE, ORANGE_SERIES) > 300, "{file}: validation series");
    }
    assert!(pixels_near(&run.file(LR_PNG), LINE_CHART_SIZE, BLUE_SERIES) > 300);
    assert_eq!(pixels_near(&run.file(LR_PNG), LINE_CHART_SIZE, ORANGE_SERIES), 0, "one series, no validation");
    pixels_near(&run.file(CONFUSION_PNG), CONFUSION_SIZE, BLUE_SERIES);
    assert!(non_white(&run.file(CONFUSION_PNG)) > 0.03, "the heatmap has dark cells");
    // Text is drawn: a title and axis labels leave dark pixels above the plot area.
    for file in [LOSS_PNG, CONFUSION_PNG] {
        assert!(non_white(&run.file(file)) > 0.005, "{file} looks blank");
    }

    let (checkpoint, evaluation) = report.confusion.as_ref().expect("a confusion matrix");
    assert!(checkpoint.ends_with("model_best.safetensors"));
    assert_eq!(evaluation.confusion.len(), 10);
    let counted: u64 = evaluation.confusion.iter().flatten().sum();
    assert_eq!(counted as usize, evaluation.samples);
    assert_eq!(evaluation.samples, 16, "10% of 160 held out");
    let diagonal: u64 = (0..10).map(|c| evaluation.confusion[c][c]).sum();
    assert!((diagonal as f64 / counted as f64 - evaluation.accuracy()).abs() < 1e-9);

    let md = std::fs::read_to_string(run.file(REPORT_MD)).unwrap();
    for file in &files {
        assert!(md.contains(&format!("]({file})")), "report.md embeds {file}:\n{md}");
    }
    assert!(md.contains("**finished** (completed)") && md.contains("epochs run | 3"), "{md}");
    assert!(md.contains("`model_best.safetensors` on the val split: 16 images"), "{md}");
}

#[test]
fn an_interrupted_run_is_reported_from_metrics_csv_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained_run(dir.path(), "cut", &["trainer.epochs=3"]);
    // As if killed while writing the last row, before summary.json.
    std::fs::remove_file(run.file("summary.json")).unwrap();
    let csv = std::fs::read_to_string(run.file("metrics.csv")).unwrap();
    std::fs::write(run.file("metrics.csv"), &csv[..csv.len() - 10]).unwrap();

    let options = ReportOptions { split: EvalSplit::Test, overrides: vec!["device=cpu".into()], ..Default::default() };
    let report = report(run.path(), &options).unwrap();
    assert!(!report.finished);
    assert_eq!(report.charts.len(), 4);
    let (_, evaluation) = report.confusion.as_ref().unwrap();
    assert_eq!(evaluation.samples, 32, "the test split");
    let md = std::fs::read_to_string(run.file(REPORT_MD)).unwrap();
    assert!(md.contains("**unfinished**") && md.contains("no summary.json"), "{md}");
    assert!(md.contains("cut off"), "{md}");
    // Epoch 3's validation row was the cut line: the last validation numbers are epoch 2's.
    assert!(md.contains("epoch 3, train loss") && md.contains("epoch 2, validation loss"), "{md}");
    for file in [LOSS_PNG, ACCURACY_PNG, LR_PNG, CONFUSION_PNG] {
        assert!(md.contains(file), "{md}");
    }
    assert!(md.contains("on the test split: 32 images"), "{md}");
}

#[test]
fn a_run_stopped_in_its_first_epoch_gets_the_confusion_matrix_of_its_step_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained_run(dir.path(), "early", &["trainer.max_steps=3"]);
    assert!(!run.file("metrics.csv").exists());
    let report =
        report(run.path(), &ReportOptions { overrides: vec!["device=cpu".into()], ..Default::default() }).unwrap();
    let names: Vec<_> = report.charts.iter().map(|p| p.file_name().unwrap().to_owned()).collect();
    assert_eq!(names, [CONFUSION_PNG]);
    assert!(report.confusion.as_ref().unwrap().0.ends_with("checkpoint-step3.safetensors"));
    let md = std::fs::read_to_string(run.file(REPORT_MD)).unwrap();
    assert!(md.contains("No epoch has finished yet") && md.contains("stopped by max steps after 3 steps"), "{md}");
    assert!(!md.contains(LOSS_PNG), "{md}");
}

#[test]
fn a_folder_that_is_not_a_run_is_refused_with_what_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    let err = report(dir.path(), &ReportOptions::default()).unwrap_err().to_string();
    assert!(err.contains("no config.json") && err.contains("saved/<name>/<timestamp>"), "{err}");
}
