//! A user's own tables, configured by editing `config.json` alone: a regression (with a
//! categorical column and an ID column to exclude), a multi-class table (`;`-delimited, class
//! names) and a multi-label table (two 0/1 columns), each with known answers, through `train`,
//! `evaluate`, `predict` on a CSV, `export` (verified) and `evaluate --onnx` (the same numbers).
//! Then a loss nobody shipped, a quantile (pinball) loss, added as the generated README says
//! (one file and one registry line), trains the regression to a quantile. And a cnn project
//! refuses a table, saying to use the mlp, but trains on a table naming images (an image
//! regression), through the same commands.

use std::path::Path;
use std::process::Command;

use candlecutter_tests::tables;

use super::{cargo, last_json, only_run_dir};

const TRAIN_ROWS: usize = 600;
const TEST_ROWS: usize = 200;

/// Runs the project's binary; its stdout, or an error with its stderr.
fn run(name: &str, bin: &Path, project: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(bin).current_dir(project).args(args).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{name}: `{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `config.json` with `edit` applied to it, for the duration of `body`; restored afterwards.
fn with_config<T>(
    project: &Path,
    edit: impl FnOnce(&mut serde_json::Value),
    body: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    let path = project.join("config.json");
    let original = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let mut config: serde_json::Value = serde_json::from_str(&original).map_err(|e| e.to_string())?;
    edit(&mut config);
    std::fs::write(&path, serde_json::to_string_pretty(&config).expect("JSON")).map_err(|e| e.to_string())?;
    let result = body();
    std::fs::write(&path, original).map_err(|e| e.to_string())?;
    result
}

/// 40 epochs of a linear model (an mlp without hidden layers, which the known answers are), no
/// early stopping, AdamW at 0.01 without weight decay.
fn linear_training(config: &mut serde_json::Value) {
    config["trainer"]["epochs"] = serde_json::json!(40);
    config["trainer"]["early_stop"] = serde_json::json!(0);
    config["optimizer"] = serde_json::json!({"type": "adamw", "args": {"lr": 0.01, "weight_decay": 0.0}});
    config["model"] = serde_json::json!({"type": "mlp", "args": {"hidden": [], "dropout": 0.0}});
}

/// One task from config.json alone: train (with `training`'s settings), evaluate on the test
/// table (of `rows` rows), predict its rows, export, report (the task's charts) and evaluate
/// the ONNX file; returns the checkpoint's test evaluation.
#[allow(clippy::too_many_arguments)]
fn one_task(
    name: &str,
    bin: &Path,
    project: &Path,
    run_name: &str,
    data: serde_json::Value,
    loss: serde_json::Value,
    metrics: &[&str],
    monitor: &str,
    (rows, training): (usize, fn(&mut serde_json::Value)),
) -> Result<serde_json::Value, String> {
    let test = data["args"]["test"].as_str().expect("a test table").to_owned();
    let edit = |config: &mut serde_json::Value| {
        config["name"] = serde_json::json!(run_name);
        config["data_loader"] = data;
        config["loss"] = loss;
        config["metrics"] = serde_json::json!(metrics);
        config["trainer"]["monitor"] = serde_json::json!(monitor);
        training(config);
    };
    with_config(project, edit, || {
        run(name, bin, project, &["train", "--set", "device=cpu"])?;
        let run = only_run_dir(project, run_name)?;
        let checkpoint = run.join("model_best.safetensors").display().to_string();
        let evaluated =
            last_json(name, bin, project, &["evaluate", "--split", "test", "--json", "--checkpoint", &checkpoint])?;
        if evaluated["samples"] != rows {
            return Err(format!(
                "{name}: {run_name}: evaluate scored {} rows, not {rows}: {evaluated}",
                evaluated["samples"]
            ));
        }
        let predictions = run.join("predictions.csv").display().to_string();
        self::run(name, bin, project, &["predict", "--checkpoint", &checkpoint, &test, "--output", &predictions])?;
        let written = std::fs::read_to_string(&predictions).map_err(|e| e.to_string())?;
        if written.lines().count() != rows + 1 || !written.starts_with("line,") {
            return Err(format!(
                "{name}: {run_name}: predict wrote {} lines: {}",
                written.lines().count(),
                &written[..written.len().min(200)]
            ));
        }
        self::run(name, bin, project, &["export", "--checkpoint", &checkpoint])?;
        let onnx = run.join("model.onnx").display().to_string();
        let from_onnx = last_json(name, bin, project, &["evaluate", "--split", "test", "--json", "--onnx", &onnx])?;
        for metric in metrics.iter().copied().chain(["loss"]) {
            let (a, b) = (evaluated[metric].as_f64(), from_onnx[metric].as_f64());
            let same = matches!((a, b), (Some(a), Some(b)) if (a - b).abs() <= 1e-5 * a.abs().max(1.0));
            if !same {
                return Err(format!(
                    "{name}: {run_name}: {metric} is {a:?} from the checkpoint but {b:?} from the ONNX file"
                ));
            }
        }
        self::run(name, bin, project, &["report", &run.display().to_string()])?;
        let charts: &[&str] = match evaluated["task"].as_str() {
            Some("regression") => &["predicted_vs_true.png", "residuals.png"],
            Some("multi_label") => &["label_f1.png"],
            _ => &["confusion.png"],
        };
        if let Some(missing) = charts.iter().find(|chart| !run.join(chart).is_file()) {
            return Err(format!("{name}: {run_name}: report drew no {missing}"));
        }
        let from_onnx_rows = self::run(name, bin, project, &["predict", "--onnx", &onnx, &test])?;
        if from_onnx_rows.lines().count() != rows + 1 {
            return Err(format!("{name}: {run_name}: predict --onnx gave {} lines", from_onnx_rows.lines().count()));
        }
        Ok(evaluated)
    })
}

pub(super) fn tables_check(name: &str, project: &Path, bin: &Path) -> Result<String, String> {
    let dir = project.join("tables");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| e.to_string();
    let train = tables::write_regression(&dir.join("houses.csv"), TRAIN_ROWS, 11).map_err(io)?;
    let test = tables::write_regression(&dir.join("houses-test.csv"), TEST_ROWS, 12).map_err(io)?;
    tables::write_classes(&dir.join("species.csv"), TRAIN_ROWS, 13).map_err(io)?;
    tables::write_classes(&dir.join("species-test.csv"), TEST_ROWS, 14).map_err(io)?;
    tables::write_labels(&dir.join("labels.csv"), TRAIN_ROWS, 15).map_err(io)?;
    tables::write_labels(&dir.join("labels-test.csv"), TEST_ROWS, 16).map_err(io)?;
    let reference = tables::least_squares_r2(&train, &test);

    let houses = serde_json::json!({"type": "csv", "args": {
        "train": "tables/houses.csv", "test": "tables/houses-test.csv", "task": "regression",
        "target": "price", "exclude": ["id"], "batch_size": 32}});
    let regression = one_task(
        name,
        bin,
        project,
        "houses",
        houses.clone(),
        serde_json::json!({"type": "mse"}),
        &["rmse", "mae", "r2"],
        "min val_rmse",
        (TEST_ROWS, linear_training),
    )?;
    let r2 = regression["r2"].as_f64().unwrap_or(f64::NAN);
    if r2.is_nan() || r2 < reference - 0.01 || regression["per_target"][0]["name"] != "price" {
        return Err(format!(
            "{name}: the regression's test R² is {r2:.4}, the least-squares fit's {reference:.4}: {regression}"
        ));
    }

    let snippet = onnx_snippet_check(name, project, bin)?;

    let species = serde_json::json!({"type": "csv", "args": {
        "train": "tables/species.csv", "test": "tables/species-test.csv", "task": "classification",
        "target": "species", "batch_size": 32}});
    let classes = one_task(
        name,
        bin,
        project,
        "species",
        species,
        serde_json::json!({"type": "cross_entropy"}),
        &["accuracy", "macro_f1"],
        "max val_accuracy",
        (TEST_ROWS, linear_training),
    )?;
    let accuracy = classes["accuracy"].as_f64().unwrap_or(0.0);
    if accuracy < 0.95 || classes["classes"] != serde_json::json!(tables::SPECIES) {
        return Err(format!("{name}: three separable classes scored {classes}"));
    }

    let labels = serde_json::json!({"type": "csv", "args": {
        "train": "tables/labels.csv", "test": "tables/labels-test.csv", "task": "multi_label",
        "target": ["label_a", "label_b"], "batch_size": 32}});
    let multi = one_task(
        name,
        bin,
        project,
        "labels",
        labels,
        serde_json::json!({"type": "binary_cross_entropy"}),
        &["micro_f1", "macro_f1", "subset_accuracy", "hamming_score"],
        "max val_micro_f1",
        (TEST_ROWS, linear_training),
    )?;
    let f1 = multi["micro_f1"].as_f64().unwrap_or(0.0);
    if f1 < 0.9 || multi["per_label"].as_array().map(Vec::len) != Some(2) {
        return Err(format!("{name}: two separable labels scored {multi}"));
    }

    let coverage = pinball_check(name, project, bin, houses)?;
    Ok(format!(
        "  tables: regression R² {r2:.4} (least squares {reference:.4}), classes {accuracy:.3}, labels micro-F1 {f1:.3}, \
         own pinball loss at q 0.9 covers {coverage:.2}{snippet}"
    ))
}

/// The generated README's onnxruntime snippet for a table, run as a user would on the first test
/// row (its `row = ...` line set to that row, its model path to the regression's export): it
/// must print the value `predict --onnx` gives. Needs onnxruntime and numpy in
/// $CANDLECUTTER_PYTHON (CI's virtualenv has them), else it is skipped with a printed line.
fn onnx_snippet_check(name: &str, project: &Path, bin: &Path) -> Result<String, String> {
    let python = std::env::var("CANDLECUTTER_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_runtime =
        Command::new(&python).args(["-c", "import onnxruntime, numpy"]).output().is_ok_and(|o| o.status.success());
    if !has_runtime {
        candlecutter_tests::progress(&format!(
            "{name}: the README's onnxruntime snippet is not run: {python} lacks onnxruntime or numpy"
        ));
        return Ok(String::new());
    }
    let readme = std::fs::read_to_string(project.join("README.md")).map_err(|e| e.to_string())?;
    let snippet = readme
        .split("```python\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .find(|code| code.contains("input_names"))
        .ok_or(format!("{name}: README.md has no Python block reading `input_names`"))?;
    let test = std::fs::read_to_string(project.join("tables/houses-test.csv")).map_err(|e| e.to_string())?;
    let mut lines = test.lines();
    let (header, first) = (lines.next().unwrap_or_default(), lines.next().unwrap_or_default());
    let row: serde_json::Map<String, serde_json::Value> = header
        .split(',')
        .zip(first.split(','))
        .map(|(k, v)| (k.to_owned(), v.parse::<f64>().map_or_else(|_| serde_json::json!(v), |x| serde_json::json!(x))))
        .collect();
    let onnx = only_run_dir(project, "houses")?.join("model.onnx");
    let code: String = snippet
        .lines()
        .map(|line| {
            if line.starts_with("row = ") {
                format!("row = {}", serde_json::Value::Object(row.clone()))
            } else {
                line.replace("\"model.onnx\"", &format!("{:?}", onnx.display().to_string()))
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let out = Command::new(&python).args(["-c", &code]).output().map_err(|e| e.to_string())?;
    let printed = String::from_utf8_lossy(&out.stdout);
    let values: serde_json::Value = serde_json::from_str(printed.trim()).map_err(|e| {
        format!(
            "{name}: the README's snippet printed {printed:?} ({e}); {}\n{code}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let one_row = project.join("tables/houses-first.csv");
    std::fs::write(&one_row, format!("{header}\n{first}\n")).map_err(|e| e.to_string())?;
    let predicted =
        run(name, bin, project, &["predict", "--onnx", &onnx.display().to_string(), &one_row.display().to_string()])?;
    let expected: f64 =
        predicted.lines().nth(1).and_then(|l| l.split(',').nth(1)).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
    let got = values["price"].as_f64().unwrap_or(f64::NAN);
    let close = (got - expected).abs() <= 1e-4 * expected.abs().max(1.0); // false for NaN
    if !close {
        return Err(format!("{name}: the README's onnxruntime snippet gives price {got}, predict --onnx {expected}"));
    }
    Ok(format!(", README's onnxruntime snippet agrees ({got:.4})"))
}

/// The user's own loss, as the generated README shows: `experiment/src/loss/pinball.rs` and one
/// registry line. Trained with q = 0.9, the predictions lie above about 90% of the test targets.
fn pinball_check(name: &str, project: &Path, bin: &Path, houses: serde_json::Value) -> Result<f64, String> {
    let loss_dir = project.join("experiment").join("src");
    std::fs::write(loss_dir.join("loss").join("pinball.rs"), PINBALL).map_err(|e| e.to_string())?;
    let registry = loss_dir.join("loss.rs");
    let text = std::fs::read_to_string(&registry).map_err(|e| e.to_string())?;
    let (module, line) = ("pub mod regression;\n", "registry! {\n");
    if !text.contains(module) || !text.contains(line) {
        return Err(format!("{name}: experiment/src/loss.rs no longer has {module:?} and {line:?}; update this test"));
    }
    let text = text.replacen(module, "pub mod pinball;\npub mod regression;\n", 1).replacen(
        line,
        "registry! {\n    Pinball(pinball::PinballArgs),\n",
        1,
    );
    std::fs::write(&registry, text).map_err(|e| e.to_string())?;
    let out = cargo(project, &["build"]).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{name}: the project with a pinball loss does not build:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let edit = |config: &mut serde_json::Value| {
        config["name"] = serde_json::json!("quantile");
        config["data_loader"] = houses;
        config["loss"] = serde_json::json!({"type": "pinball", "args": {"quantile": 0.9}});
        config["metrics"] = serde_json::json!(["rmse"]);
        config["trainer"]["monitor"] = serde_json::json!("min val_loss");
        linear_training(config);
    };
    with_config(project, edit, || {
        run(name, bin, project, &["train", "--set", "device=cpu"])?;
        let checkpoint = only_run_dir(project, "quantile")?.join("model_best.safetensors").display().to_string();
        let predicted = run(name, bin, project, &["predict", "--checkpoint", &checkpoint, "tables/houses-test.csv"])?;
        let truth = std::fs::read_to_string(project.join("tables/houses-test.csv")).map_err(|e| e.to_string())?;
        let above = predicted
            .lines()
            .skip(1)
            .zip(truth.lines().skip(1))
            .filter(|(p, t)| {
                let p: f64 = p.split(',').nth(1).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
                let t: f64 = t.split(',').nth(5).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
                p >= t
            })
            .count();
        let coverage = above as f64 / TEST_ROWS as f64;
        if !(0.8..=0.97).contains(&coverage) {
            return Err(format!("{name}: the 0.9-quantile predictions lie above {coverage:.2} of the test targets"));
        }
        Ok(coverage)
    })
}

/// A quantile regression loss, written as a user would after reading the generated README.
const PINBALL: &str = r#"//! The pinball (quantile) loss: trained with it, a model predicts the `quantile` of the target.

use candle_core::{Result, Tensor};
use model::TaskKind;

use super::Loss;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct PinballArgs {
    pub quantile: f64,
}

model::optional_args!(PinballArgs);

impl Default for PinballArgs {
    fn default() -> Self {
        Self { quantile: 0.5 }
    }
}

impl Loss for PinballArgs {
    const TASKS: &'static [TaskKind] = &[TaskKind::Regression];

    fn check(&self) -> std::result::Result<(), String> {
        if !(self.quantile > 0.0 && self.quantile < 1.0) {
            return Err(format!("`loss.args.quantile` must be in (0, 1), got {}", self.quantile));
        }
        Ok(())
    }

    /// mean(max(q e, (q - 1) e)) with e = target - output.
    fn compute(&self, outputs: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let e = (targets - outputs)?;
        let q = self.quantile;
        (e.affine(q, 0.0)?.maximum(&e.affine(q - 1.0, 0.0)?))?.mean_all()
    }
}
"#;

/// The cnn takes images: given a table, `train` stops before any work, saying to use the mlp;
/// given a table whose column names images, with a brightness to predict, it trains an image
/// regression by config alone, through every command, and explains most of the variance.
pub(super) fn cnn_tables_check(name: &str, project: &Path, bin: &Path) -> Result<String, String> {
    cnn_refuses_a_table(name, project, bin)?;
    let dir = project.join("tables");
    let io = |e: std::io::Error| e.to_string();
    tables::write_image_levels(&dir, "levels", IMAGE_TRAIN_ROWS, 21).map_err(io)?;
    tables::write_image_levels(&dir, "levels-test", IMAGE_TEST_ROWS, 22).map_err(io)?;
    let side = tables::LEVEL_IMAGE_SIDE;
    let levels = serde_json::json!({"type": "csv", "args": {
        "train": "tables/levels.csv", "test": "tables/levels-test.csv", "task": "regression", "target": "level",
        "images": {"column": "file", "image_size": side, "channels": 1}, "batch_size": 32}});
    let scored = one_task(
        name,
        bin,
        project,
        "levels",
        levels,
        serde_json::json!({"type": "huber", "args": {"delta": 1.0}}),
        &["rmse", "mae", "r2"],
        "min val_rmse",
        (IMAGE_TEST_ROWS, image_training),
    )?;
    let r2 = scored["r2"].as_f64().unwrap_or(f64::NAN);
    if r2.is_nan() || r2 < 0.8 {
        return Err(format!("{name}: the image regression's test R² is {r2:.4}: {scored}"));
    }
    Ok(format!("  cnn refuses a table, image-table regression R² {r2:.3} (train, evaluate, predict, export, --onnx)"))
}

const IMAGE_TRAIN_ROWS: usize = 400;
const IMAGE_TEST_ROWS: usize = 100;

/// The shipped model, 12 epochs of AdamW at 0.003, no early stopping.
fn image_training(config: &mut serde_json::Value) {
    config["trainer"]["epochs"] = serde_json::json!(12);
    config["trainer"]["early_stop"] = serde_json::json!(0);
    config["optimizer"] = serde_json::json!({"type": "adamw", "args": {"lr": 0.003, "weight_decay": 0.0}});
}

fn cnn_refuses_a_table(name: &str, project: &Path, bin: &Path) -> Result<(), String> {
    let dir = project.join("tables");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    tables::write_classes(&dir.join("species.csv"), 60, 1).map_err(|e| e.to_string())?;
    let edit = |config: &mut serde_json::Value| {
        config["data_loader"] =
            serde_json::json!({"type": "csv", "args": {"train": "tables/species.csv", "target": "species"}});
    };
    with_config(project, edit, || {
        let out = Command::new(bin)
            .current_dir(project)
            .args(["train", "--set", "name=table"])
            .output()
            .map_err(|e| e.to_string())?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !stderr.contains("takes images") || !stderr.contains("use the mlp") {
            return Err(format!("{name}: a cnn given a table should refuse it naming the mlp; got {stderr}"));
        }
        if project.join("saved").join("table").exists()
            && std::fs::read_dir(project.join("saved").join("table"))
                .map_err(|e| e.to_string())?
                .any(|e| e.is_ok_and(|e| e.path().join("model_best.safetensors").exists()))
        {
            return Err(format!("{name}: the refused run left a checkpoint"));
        }
        Ok(())
    })
}
