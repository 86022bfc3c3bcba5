//! `report RUN_DIR`: charts of a run (`loss.png`, the headline metric's chart, `accuracy.png` for
//! a classification or e.g. `rmse.png`, `lr.png` from metrics.csv) and of its best checkpoint's
//! scores (a classification's `confusion.png`; a multi-label model's `label_f1.png`; per
//! regression target, predicted against true values and the residuals' histogram), and
//! `report.md` with the numbers (the per-class, per-label or per-target scores of that
//! checkpoint), written into the run folder. Works on a finished run and on one that was stopped
//! or is still going.

pub mod charts;
pub mod history;
pub mod scores;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use experiment::evaluate::Evaluation;

use crate::EvalSplit;
use charts::{BLUE_SERIES, ChartError, LineChart, ORANGE_SERIES, Series, Values};
use history::{History, RunSummary};

pub const LOSS_PNG: &str = "loss.png";
/// The headline metric chart of a classification run ([`metric_chart`]).
pub const ACCURACY_PNG: &str = "accuracy.png";
pub const LR_PNG: &str = "lr.png";
pub const CONFUSION_PNG: &str = "confusion.png";
/// A multi-label checkpoint's F1 per label.
pub const LABEL_F1_PNG: &str = "label_f1.png";
pub const REPORT_MD: &str = "report.md";

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path} is not a run folder (it has no config.json); pass saved/<name>/<timestamp>")]
    NotARun { path: PathBuf },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}, line {line}: {message}; fix or delete that line and run report again")]
    Metrics { path: PathBuf, line: usize, message: String },
    #[error("{path} is not a summary written by train: {source}; delete it to report from metrics.csv alone")]
    Summary { path: PathBuf, source: serde_json::Error },
    #[error("the run has no {split} samples to score its checkpoint on; pass --split {other}")]
    EmptySplit { split: &'static str, other: &'static str },
    #[error("writing {path}: {source}; check that the run folder is writable")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Chart(#[from] ChartError),
    #[error(transparent)]
    Checkpoint(#[from] experiment::resume::ResumeError),
    // `cause`, not `source`: the message already holds it, and `{:#}` would print it twice.
    #[error("evaluating {checkpoint} for the report's scores: {cause}")]
    Evaluate { checkpoint: PathBuf, cause: Box<crate::InferenceError> },
}

/// How to build a report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The split the confusion matrix is counted on.
    pub split: EvalSplit,
    /// The config to evaluate with; `None`: the run's config.json with `overrides` applied.
    pub config: Option<experiment::Config>,
    /// `--set` overrides for the run's config.json (for example `device=cpu`).
    pub overrides: Vec<String>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self { split: EvalSplit::Val, config: None, overrides: Vec::new() }
    }
}

/// What a report wrote and found.
#[derive(Debug, Clone)]
pub struct Report {
    /// `report.md`.
    pub markdown: PathBuf,
    /// The PNG files written, in the order report.md shows them.
    pub charts: Vec<PathBuf>,
    /// Whether the run ended on its own (all epochs, or early stopping).
    pub finished: bool,
    /// Epochs with a train row in metrics.csv.
    pub epochs: usize,
    /// The checkpoint behind the confusion matrix (or the other scores) and its evaluation;
    /// `None` before the first checkpoint exists.
    pub confusion: Option<(PathBuf, Evaluation)>,
    /// The charts of that checkpoint's scores, with their captions.
    pub scores: Vec<(PathBuf, String)>,
}

/// Write the charts and report.md into `run_dir`.
pub fn report(run_dir: &Path, options: &ReportOptions) -> Result<Report, ReportError> {
    let config_path = run_dir.join("config.json");
    if !config_path.is_file() {
        return Err(ReportError::NotARun { path: run_dir.to_path_buf() });
    }
    let history = History::read(&run_dir.join("metrics.csv"))?;
    let summary = RunSummary::read(&run_dir.join("summary.json"))?;
    let mut charts = Vec::new();
    if !history.rows.is_empty() {
        let loss = |r: &history::EpochRow| r.loss;
        let metric = |r: &history::EpochRow| r.metric;
        let (metric_png, metric_title) = (metric_chart(&history.metric), format!("{} per epoch", history.metric));
        let curves = [
            (
                LOSS_PNG,
                "Loss per epoch",
                "loss",
                Values::FromZero,
                history.series("train", loss),
                history.series("val", loss),
            ),
            (
                metric_png.as_str(),
                metric_title.as_str(),
                history.metric.as_str(),
                metric_values(&history.metric),
                history.series("train", metric),
                history.series("val", metric),
            ),
        ];
        for (file, title, y_label, values, train, val) in curves {
            let series = [
                Series { label: "train", color: BLUE_SERIES, points: train },
                Series { label: "validation", color: ORANGE_SERIES, points: val },
            ];
            let series: Vec<Series<'_>> = series.into_iter().filter(|s| !s.points.is_empty()).collect();
            let path = run_dir.join(file);
            charts::line_chart(&path, &LineChart { title, x_label: "epoch", y_label, values }, &series)?;
            charts.push(path);
        }
        let lr = [Series { label: "learning rate", color: BLUE_SERIES, points: history.series("train", |r| r.lr) }];
        let path = run_dir.join(LR_PNG);
        let labels = LineChart {
            title: "Learning rate (at the last step of each epoch)",
            x_label: "epoch",
            y_label: "learning rate",
            values: Values::FromZero,
        };
        charts::line_chart(&path, &labels, &lr)?;
        charts.push(path);
    }
    let best = best_evaluation(run_dir, options)?;
    let scores = match &best {
        Some((_, evaluation, outputs)) => score_charts(run_dir, evaluation, outputs.as_ref(), options.split)?,
        None => Vec::new(),
    };
    charts.extend(scores.iter().map(|(path, _)| path.clone()));
    let confusion = best.map(|(checkpoint, evaluation, _)| (checkpoint, evaluation));
    let report = Report {
        markdown: run_dir.join(REPORT_MD),
        charts,
        finished: summary.as_ref().is_some_and(RunSummary::finished),
        epochs: history.rows.iter().filter(|r| r.split == "train").count(),
        confusion,
        scores,
    };
    let text = markdown(run_dir, &history, summary.as_ref(), &report, options.split);
    std::fs::write(&report.markdown, text)
        .map_err(|source| ReportError::Write { path: report.markdown.clone(), source })?;
    Ok(report)
}

/// The charts of a checkpoint's scores, by task: the confusion matrix of a classification, the
/// F1 per label of a multi-label model, and per regression target predicted against true values
/// and the residuals' histogram (from every sample's output and target, which the evaluation
/// kept for a regression).
fn score_charts(
    run_dir: &Path,
    evaluation: &Evaluation,
    outputs: Option<&crate::Outputs>,
    split: EvalSplit,
) -> Result<Vec<(PathBuf, String)>, ReportError> {
    let split_label = split_name(split);
    let mut written = Vec::new();
    match evaluation.task {
        model::TaskKind::Classification => {
            let path = run_dir.join(CONFUSION_PNG);
            let title = format!(
                "Confusion matrix: {split_label} split, {} images, accuracy {:.2}%",
                evaluation.samples,
                100.0 * evaluation.accuracy()
            );
            charts::confusion_chart(&path, &title, &evaluation.confusion, &evaluation.classes)?;
            written.push((path, "Confusion matrix".to_owned()));
        }
        model::TaskKind::MultiLabel => {
            let path = run_dir.join(LABEL_F1_PNG);
            let f1: Vec<f64> = evaluation.per_class.iter().map(|s| s.f1).collect();
            let title = format!("F1 per label: {split_label} split, {} samples", evaluation.samples);
            scores::bar_chart(&path, &title, "F1", &evaluation.classes, &f1)?;
            written.push((path, "F1 per label".to_owned()));
        }
        model::TaskKind::Regression => {
            let (outputs, targets) = outputs.map(|(o, t)| (o.as_slice(), t.as_slice())).unwrap_or_default();
            for (k, target) in evaluation.per_target.iter().enumerate() {
                let points: Vec<(f64, f64)> =
                    targets.iter().zip(outputs).map(|(t, o)| (f64::from(t[k]), f64::from(o[k]))).collect();
                let residuals: Vec<f64> = points.iter().map(|(t, p)| p - t).collect();
                let (scatter, histogram) = regression_charts(&target.name, k, evaluation.per_target.len());
                let title = format!("{}: {split_label} split, R² {}", target.name, number(Some(target.r2)));
                let path = run_dir.join(&scatter);
                scores::scatter_chart(&path, &title, &target.name, &points)?;
                written.push((path, format!("Predicted against true {}", target.name)));
                let title =
                    format!("Residuals of {}: {split_label} split, RMSE {}", target.name, number(Some(target.rmse)));
                let path = run_dir.join(&histogram);
                scores::histogram_chart(&path, &title, &target.name, &residuals)?;
                written.push((path, format!("Residuals of {}", target.name)));
            }
        }
    }
    Ok(written)
}

/// The file names of a regression target's scatter and residual charts: `predicted_vs_true.png`
/// and `residuals.png` for one target; for several, with the target's number and name (letters,
/// digits, `-` and `_` kept), so two names that differ only in other characters do not collide.
pub fn regression_charts(target: &str, index: usize, targets: usize) -> (String, String) {
    if targets == 1 {
        return ("predicted_vs_true.png".into(), "residuals.png".into());
    }
    let safe: String =
        target.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    (format!("predicted_vs_true_{index}_{safe}.png"), format!("residuals_{index}_{safe}.png"))
}

/// Evaluate `model_best.safetensors`, else the newest checkpoint, on the chosen split, keeping
/// a regression's outputs and targets for its charts.
fn best_evaluation(
    run_dir: &Path,
    options: &ReportOptions,
) -> Result<Option<(PathBuf, Evaluation, Option<crate::Outputs>)>, ReportError> {
    let best = run_dir.join("model_best.safetensors");
    let checkpoint = if best.is_file() {
        best
    } else {
        match experiment::resume::find_checkpoint(run_dir) {
            Ok((path, _)) => path,
            Err(experiment::resume::ResumeError::NoCheckpoint { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    };
    let failed =
        |e: crate::InferenceError| ReportError::Evaluate { checkpoint: checkpoint.clone(), cause: Box::new(e) };
    let config = match &options.config {
        Some(config) => config.clone(),
        None => crate::config_for_checkpoint(&checkpoint, &options.overrides).map_err(|e| failed(e.into()))?,
    };
    let keep_outputs = config.data_loader.task() == model::TaskKind::Regression;
    let (evaluation, outputs) =
        crate::score_checkpoint(&checkpoint, &config, options.split, keep_outputs).map_err(failed)?;
    if evaluation.samples == 0 {
        let other = if options.split == EvalSplit::Val { "test" } else { "val" };
        return Err(ReportError::EmptySplit { split: split_name(options.split), other });
    }
    Ok(Some((checkpoint, evaluation, outputs)))
}

/// The headline metric's chart: `accuracy.png`, `rmse.png`, ...
pub fn metric_chart(metric: &str) -> String {
    format!("{metric}.png")
}

/// Fractions in [0, 1] get an axis that stops at 1; errors (rmse, mae, mse) one from 0.
fn metric_values(metric: &str) -> Values {
    match metric.parse::<experiment::metrics::Metric>() {
        Ok(m) if m.higher_is_better() && m != experiment::metrics::Metric::R2 => Values::Fraction,
        _ => Values::FromZero,
    }
}

fn split_name(split: EvalSplit) -> &'static str {
    match split {
        EvalSplit::Val => "val",
        EvalSplit::Test => "test",
    }
}

fn number(value: Option<f64>) -> String {
    value.filter(|v| v.is_finite()).map_or("n/a".into(), |v| format!("{v:.4}"))
}

/// The scores of a multi-label or regression checkpoint: its metrics, then per label precision,
/// recall and F1, or per target MSE, RMSE, MAE and R².
fn scores_markdown(md: &mut String, checkpoint: &str, split: &str, e: &Evaluation) {
    let _ = writeln!(
        md,
        "## Scores\n\n`{checkpoint}` on the {split} split: {} samples, loss {}.\n",
        e.samples,
        number(Some(e.loss))
    );
    md.push_str("| metric | value |\n|---|---|\n");
    for (metric, value) in &e.metrics {
        let _ = writeln!(md, "| {metric} | {} |", number(Some(*value)));
    }
    md.push('\n');
    if !e.per_target.is_empty() {
        md.push_str("| target | MSE | RMSE | MAE | R² |\n|---|---|---|---|---|\n");
        for t in &e.per_target {
            let row = [t.mse, t.rmse, t.mae, t.r2].map(|v| number(Some(v)));
            let _ = writeln!(md, "| {} | {} |", t.name, row.join(" | "));
        }
    } else {
        md.push_str("| label | samples | precision | recall | F1 |\n|---|---|---|---|---|\n");
        for (label, s) in e.per_class.iter().enumerate() {
            let row = [s.precision, s.recall, s.f1].map(|v| number(Some(v)));
            let _ = writeln!(md, "| {} | {} | {} |", e.class_name(label), s.support, row.join(" | "));
        }
    }
}

/// report.md: status, the numbers, the charts.
fn markdown(
    run_dir: &Path,
    history: &History,
    summary: Option<&RunSummary>,
    report: &Report,
    split: EvalSplit,
) -> String {
    let name = |p: &Path| p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned());
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Training report: {}\n\nRun folder: `{}`\n",
        name(run_dir.parent().unwrap_or(run_dir)),
        run_dir.display()
    );
    match summary {
        Some(s) if s.finished() => {
            let _ = writeln!(md, "Status: **finished** ({}).\n", s.stopped_by.replace('_', " "));
        }
        Some(s) => {
            let _ = writeln!(
                md,
                "Status: **unfinished**: stopped by {} after {} steps; continue with `train --resume {}`.\n",
                s.stopped_by.replace('_', " "),
                s.global_steps,
                run_dir.display()
            );
        }
        None => {
            let _ = writeln!(
                md,
                "Status: **unfinished**: there is no summary.json (the run is still going, or was killed \
                 before it could write one). The numbers below come from metrics.csv.\n"
            );
        }
    }
    if history.truncated {
        md.push_str("The last line of metrics.csv was cut off and is left out.\n\n");
    }
    md.push_str("| | |\n|---|---|\n");
    let mut row = |key: &str, value: String| {
        let _ = writeln!(md, "| {key} | {value} |");
    };
    if let Some(s) = summary {
        row("model", format!("{} ({} parameters)", s.model, s.parameters.map_or("n/a".into(), |p| p.to_string())));
        row("epochs run", s.epochs_run.to_string());
        row("optimiser steps", s.global_steps.to_string());
        let best = s.best_epoch.map_or(String::new(), |e| format!(" at epoch {e}"));
        row(&format!("best {}", s.monitor), format!("{}{best}", number(s.best_metric)));
        for (split, numbers) in [("train", &s.final_train), ("validation", &s.final_val)] {
            if let Some(n) = numbers {
                let metric = &history.metric;
                row(
                    &format!("last epoch, {split} loss / {metric}"),
                    format!("{} / {}", number(n.loss), number(n.metric(metric))),
                );
            }
        }
        row("wall time", s.wall_seconds.map_or("n/a".into(), |w| format!("{w:.1} s")));
    } else {
        row("epochs finished (metrics.csv)", report.epochs.to_string());
        for (split, label) in [("train", "train"), ("val", "validation")] {
            if let Some(r) = history.last(split) {
                let metric = &history.metric;
                row(
                    &format!("epoch {}, {label} loss / {metric}", r.epoch),
                    format!("{} / {}", number(Some(r.loss)), number(Some(r.metric))),
                );
            }
        }
        if let Some(r) = history.best_metric("val") {
            row(
                &format!("best validation {}", history.metric),
                format!("{} at epoch {}", number(Some(r.metric)), r.epoch),
            );
        }
    }
    md.push('\n');
    if history.rows.is_empty() {
        md.push_str("No epoch has finished yet, so there are no loss, metric or learning-rate charts.\n\n");
    } else {
        md.push_str("## Training curves\n\n");
        let (metric_png, metric_alt) = (metric_chart(&history.metric), format!("{} per epoch", history.metric));
        for (file, alt) in [
            (LOSS_PNG, "Loss per epoch"),
            (metric_png.as_str(), metric_alt.as_str()),
            (LR_PNG, "Learning rate per epoch"),
        ] {
            let _ = writeln!(md, "![{alt}]({file})\n");
        }
    }
    if let Some((checkpoint, e)) = report.confusion.as_ref().filter(|(_, e)| e.confusion.is_empty()) {
        scores_markdown(&mut md, &name(checkpoint), split_name(split), e);
        for (chart, alt) in &report.scores {
            let _ = writeln!(md, "\n![{alt}]({})", name(chart));
        }
        return md;
    }
    md.push_str("## Confusion matrix\n\n");
    match &report.confusion {
        None => md.push_str("There is no checkpoint yet, so there is no confusion matrix.\n"),
        Some((checkpoint, e)) => {
            let _ = writeln!(
                md,
                "`{}` on the {} split: {} images, loss {}, accuracy {}. Rows are the true class, columns \
                 the predicted one.\n\n![Confusion matrix]({CONFUSION_PNG})\n",
                name(checkpoint),
                split_name(split),
                e.samples,
                number(Some(e.loss)),
                number(Some(e.accuracy()))
            );
            md.push_str("| class | images | precision | recall | F1 |\n|---|---|---|---|---|\n");
            for (class, s) in e.per_class.iter().enumerate() {
                let row = [s.precision, s.recall, s.f1].map(|v| number(Some(v)));
                let _ = writeln!(md, "| {} | {} | {} |", e.class_name(class), s.support, row.join(" | "));
            }
        }
    }
    md
}
