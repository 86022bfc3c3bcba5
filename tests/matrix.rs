//! The variant matrix: every combination of backend x model x onnx is generated, built, tested
//! and trained for a few steps on a small MNIST-format data set, and every preset is shown to
//! generate the same tree as the matrix variant with its values. All generated workspaces share
//! one target folder (target/generated), so the dependencies are compiled once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[path = "matrix/tables.rs"]
mod tables;
#[path = "matrix/user_edits.rs"]
mod user_edits;

use candlecutter_tests::{Variant, assert_success, candlecutter, nvcc_available, progress, repo_root, tree, tree_diff};

const TRAIN_IMAGES: usize = 320;
/// The crates ONNX export brings; a project generated with onnx = false has none of them.
const ONNX_CRATES: [&str; 3] = ["onnx-protobuf", "protobuf", "tract-onnx"];
/// Held-out accuracy each model must reach after 5 epochs on 8,000 real digits.
const REAL_DATA_TARGETS: [(&str, f64); 3] = [("mlp", 0.93), ("cnn", 0.97), ("convnext", 0.92)];
const TEST_IMAGES: usize = 64;
const EPOCHS: usize = 2;

fn target_dir() -> PathBuf {
    repo_root().join("target").join("generated")
}

fn cargo(project: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(args).current_dir(project).env("CARGO_TARGET_DIR", target_dir()).env("CARGO_TERM_COLOR", "never");
    cmd
}

/// Generate `variant` as `name` into `dest` with candlecutter.
fn generate(dest: &Path, name: &str, extra: &[String]) -> PathBuf {
    let mut args = vec!["new".to_string(), name.to_string(), "--destination".into(), dest.display().to_string()];
    args.extend_from_slice(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_success("candlecutter new", &candlecutter(dest, &args));
    dest.join(name)
}

/// Build, test and train one generated workspace; returns the seconds each stage took.
fn check_variant(variant: &Variant, project: &Path, cuda_compiled: bool) -> Result<String, String> {
    let name = variant.project_name();
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).map_err(|e| e.to_string())?;
    let manifest: toml::Table = toml::from_str(&manifest).map_err(|e| format!("{name}: Cargo.toml: {e}"))?;
    let features = manifest.get("features").and_then(|f| f.as_table()).ok_or(format!("{name}: no [features]"))?;
    let default: Vec<&str> = features
        .get("default")
        .and_then(|d| d.as_array())
        .map(|d| d.iter().filter_map(|f| f.as_str()).collect())
        .unwrap_or_default();
    let expected_default: Vec<&str> = [("cuda", variant.backend == "cuda"), ("onnx", variant.onnx)]
        .into_iter()
        .filter_map(|(f, on)| on.then_some(f))
        .collect();
    if default != expected_default || !features.contains_key("cuda") || !features.contains_key("cudnn") {
        return Err(format!(
            "{name}: the manifest's features should have default = {expected_default:?} and cuda and cudnn: {features:?}"
        ));
    }
    // Without nvcc a CUDA variant is built without its default features, which would also drop
    // `onnx`: keep that one.
    let features: &[&str] = match (variant.backend == "cuda" && !cuda_compiled, variant.onnx) {
        (true, true) => &["--no-default-features", "--features", "onnx"],
        (true, false) => &["--no-default-features"],
        (false, _) => &[],
    };
    let run = |stage: &str, mut cmd: Command| -> Result<f64, String> {
        let start = Instant::now();
        let out = cmd.output().map_err(|e| format!("{name}: {stage}: {e}"))?;
        if !out.status.success() {
            let tail = |b: &[u8]| {
                let s = String::from_utf8_lossy(b);
                s.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
            };
            return Err(format!("{name}: {stage} failed:\n{}\n{}", tail(&out.stdout), tail(&out.stderr)));
        }
        Ok(start.elapsed().as_secs_f64())
    };
    // The shipped Cargo.lock pins every version: building must not add, drop or change any.
    let locked_before = locked_packages(project, &name)?;
    let mut args = vec!["build"];
    args.extend_from_slice(features);
    let build = run("cargo build", cargo(project, &args))?;
    let locked_after = locked_packages(project, &name)?;
    let onnx_crates: Vec<_> = locked_after.iter().filter(|(n, _)| ONNX_CRATES.contains(&n.as_str())).collect();
    if variant.onnx == onnx_crates.is_empty() {
        return Err(format!("{name}: ONNX crates in Cargo.lock with onnx = {}: {onnx_crates:?}", variant.onnx));
    }
    if locked_before != locked_after {
        let added: Vec<_> = locked_after.difference(&locked_before).collect();
        let removed: Vec<_> = locked_before.difference(&locked_after).collect();
        return Err(format!("{name}: building changed Cargo.lock: added {added:?}, removed {removed:?}"));
    }
    // What a deployment links: `inference` shares `experiment` with the trainer, never `training`.
    let tree = cargo(project, &["tree", "-p", "inference", "-e", "normal", "--prefix", "none"])
        .output()
        .map_err(|e| format!("{name}: cargo tree: {e}"))?;
    let tree = String::from_utf8_lossy(&tree.stdout);
    if !tree.lines().any(|l| l.starts_with("experiment ")) || tree.lines().any(|l| l.starts_with("training ")) {
        return Err(format!("{name}: inference should depend on experiment and not on training:\n{tree}"));
    }
    // The default build needs no MPI library: `mpi` comes with the `distributed` feature alone.
    let tree = cargo(project, &["tree", "-e", "normal,build", "--prefix", "none"])
        .output()
        .map_err(|e| format!("{name}: cargo tree: {e}"))?;
    let tree = String::from_utf8_lossy(&tree.stdout);
    if let Some(line) = tree.lines().find(|l| l.starts_with("mpi ") || l.starts_with("mpi-sys ")) {
        return Err(format!(
            "{name}: the default build depends on MPI ({line}); it should only with --features distributed"
        ));
    }
    args[0] = "test";
    let test = run("cargo test", cargo(project, &args))?;
    // What the user's own tools say of the project as generated: formatted as its rustfmt.toml
    // says, and clippy-clean with every target.
    let fmt = run("cargo fmt --check", cargo(project, &["fmt", "--all", "--check"]))?;
    let lint = [&["clippy", "--workspace", "--all-targets"], features, &["--", "-D", "warnings"]].concat();
    let lint = fmt + run("cargo clippy -D warnings", cargo(project, &lint))?;

    // A few training steps on small synthetic data, then evaluate the best checkpoint.
    let data = project.join("data");
    candlecutter_tests::idx::write_synthetic(&data, "train", TRAIN_IMAGES, 1).map_err(|e| e.to_string())?;
    candlecutter_tests::idx::write_synthetic(&data, "t10k", TEST_IMAGES, 2).map_err(|e| e.to_string())?;
    let bin = target_dir().join("debug").join(&name);
    let mut train_cmd = Command::new(&bin);
    train_cmd.current_dir(project).args(["train", "--set", &format!("trainer.epochs={EPOCHS}"), "--set", "device=cpu"]);
    let train = run("train", train_cmd)?;
    let run_dir = only_run_dir(project, &name).map_err(|e| format!("{name}: {e}"))?;
    check_run_dir(&name, &run_dir)?;
    if variant.backend == "cpu" && variant.model == "mlp" {
        tensorboard_check(&name, &run_dir)?;
    }
    let out =
        Command::new(&bin).current_dir(project).arg("report").arg(&run_dir).output().map_err(|e| e.to_string())?;
    let charts = ["loss.png", "accuracy.png", "lr.png", "confusion.png", "report.md"];
    if !out.status.success() || !charts.iter().all(|f| run_dir.join(f).is_file()) {
        return Err(format!("{name}: report did not write {charts:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }

    let checkpoint = run_dir.join("model_best.safetensors");
    let out = Command::new(&bin)
        .current_dir(project)
        .args(["evaluate", "--split", "test", "--json", "--checkpoint"])
        .arg(&checkpoint)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(last).map_err(|e| {
        format!("{name}: evaluate --json printed {last:?} ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr))
    })?;
    let accuracy = json["accuracy"].as_f64().unwrap_or(-1.0);
    if json["samples"] != TEST_IMAGES
        || !(0.0..=1.0).contains(&accuracy)
        || !json["loss"].as_f64().is_some_and(f64::is_finite)
    {
        return Err(format!("{name}: unexpected evaluation {json}"));
    }
    printed_errors_name_the_key(variant, &bin, project, &checkpoint)?;
    let mut report = format!(
        "build {build:5.1}s  test {test:5.1}s  fmt + clippy {lint:4.1}s  train {train:4.1}s  test accuracy {accuracy:.3}"
    );
    if variant.onnx {
        export_and_compare(&name, &bin, project, &checkpoint)?;
        report.push_str("  onnx: exported, verified, same accuracy");
    }
    if variant.backend == "cpu" && variant.onnx {
        report.push_str(&real_data_check(variant, project, &bin)?);
        report.push_str(&image_folder_check(variant, project, &bin)?);
    }
    // Before the user edits below, which add a BatchNorm to the cnn (per-rank statistics: 2 ranks
    // then train a close, not an equal, model).
    if variant.backend == "cpu" && variant.onnx && (variant.model == "cnn" || variant.model == "mlp") {
        report.push_str(&mpi_check(&name, project)?);
    }
    if variant.backend == "cpu" && variant.onnx && variant.model == "cnn" {
        report.push_str(&user_edits::user_edits_check(&name, project, &bin)?);
    }
    if variant.backend == "cpu" && variant.onnx && variant.model == "mlp" {
        report.push_str(&tables::tables_check(&name, project, &bin)?);
    }
    if variant.backend == "cpu" && variant.onnx && variant.model == "cnn" {
        report.push_str(&tables::cnn_tables_check(&name, project, &bin)?);
    }
    Ok(report)
}

/// The project's `distributed` feature: build it and run its `tests/mpi.rs` (`mpirun -np 2`
/// against one process, and a resumed 2-rank run). Needs Open MPI; CI installs it (`.ci/run`),
/// elsewhere a machine without `mpirun` skips this check with a printed line.
fn mpi_check(name: &str, project: &Path) -> Result<String, String> {
    let has_mpirun = Command::new("mpirun").arg("--version").output().is_ok_and(|o| o.status.success());
    if !has_mpirun {
        if std::env::var_os("CI").is_some() {
            return Err(format!("{name}: mpirun is missing; .ci/run installs Open MPI"));
        }
        println!(
            "{name}: mpirun not found, skipping the data-parallel check (apt-get install libopenmpi-dev openmpi-bin libclang-dev)"
        );
        return Ok(String::new());
    }
    let start = Instant::now();
    // One test at a time: two of them time how fast a job ends, on CI's 2 cores.
    let out = cargo(project, &["test", "--features", "distributed", "--test", "mpi", "--", "--test-threads", "1"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .map_err(|e| format!("{name}: cargo test --features distributed: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{name}: cargo test --features distributed --test mpi failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // The code behind the feature is the user's too: clippy-clean with it on.
    let lint = ["clippy", "--workspace", "--all-targets", "--features", "distributed", "--", "-D", "warnings"];
    let out =
        cargo(project, &lint).output().map_err(|e| format!("{name}: cargo clippy --features distributed: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{name}: cargo clippy --features distributed -D warnings failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(format!(
        "  mpi: 2 ranks = 1 process, resume exact, a killed rank and Ctrl-C end the job, clippy-clean ({:.0}s)",
        start.elapsed().as_secs_f64()
    ))
}

/// A user's own data: colour PNGs of several sizes in class folders, configured by editing the
/// `data_loader` section of config.json alone (standardisation measured, crops and flips); then
/// train, evaluate, predict, export (verified) and evaluate the ONNX file, each naming the classes
/// (the ONNX file from its metadata).
fn image_folder_check(variant: &Variant, project: &Path, bin: &Path) -> Result<String, String> {
    use candlecutter_tests::images::{CLASSES, class_image, write_folder, write_png};
    let name = variant.project_name();
    let root = project.join("my-images");
    write_folder(&root, "train", 16).and_then(|()| write_folder(&root, "test", 4)).map_err(|e| e.to_string())?;
    let config_path = project.join("config.json");
    let original = std::fs::read_to_string(&config_path).map_err(|e| e.to_string())?;
    let mut config: serde_json::Value = serde_json::from_str(&original).map_err(|e| e.to_string())?;
    config["data_loader"] = serde_json::json!({
        "type": "image_folder",
        "args": {"data_dir": "my-images", "image_size": [24, 24], "channels": 3, "batch_size": 16,
                 "normalize": "auto", "augment": {"crop_padding": 2, "horizontal_flip": true}}
    });
    std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).map_err(|e| e.to_string())?;
    let result = (|| {
        let run = |args: &[&str]| -> Result<String, String> {
            let out = Command::new(bin).current_dir(project).args(args).output().map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "{name}: `{}` on the image folder failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        run(&["train", "--set", "name=folder", "--set", "trainer.epochs=3", "--set", "device=cpu"])?;
        let run_dir = only_run_dir(project, "folder")?;
        let checkpoint = run_dir.join("model_best.safetensors").display().to_string();
        let recorded: serde_json::Value = std::fs::read_to_string(run_dir.join("config.json"))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .ok_or("the run has no config.json")?;
        let measured = &recorded["data_loader"]["args"]["normalize"];
        if measured["mean"].as_array().map(Vec::len) != Some(3) || measured["std"].as_array().map(Vec::len) != Some(3) {
            return Err(format!(
                "{name}: the run's config.json should record three measured means and stds, has {measured}"
            ));
        }
        let classes: Vec<String> = CLASSES.iter().map(|c| c.to_string()).collect();
        let evaluated =
            last_json(&name, bin, project, &["evaluate", "--split", "test", "--json", "--checkpoint", &checkpoint])?;
        if evaluated["classes"] != serde_json::json!(classes) || evaluated["samples"] != 12 {
            return Err(format!("{name}: evaluate on the image folder gave {evaluated}"));
        }
        let image = project.join("query.png");
        write_png(&image, 31, 22, &class_image(2, 31, 22, 99)).map_err(|e| e.to_string())?;
        let image = image.display().to_string();
        let predicted = last_json(
            &name,
            bin,
            project,
            &["predict", "--json", "--top-k", "2", "--checkpoint", &checkpoint, &image],
        )?;
        let top = predicted["top"].as_array().cloned().unwrap_or_default();
        if !predicted["name"].as_str().is_some_and(|n| CLASSES.contains(&n))
            || top.len() != 2
            || top[0]["name"] != predicted["name"]
            || !top[1]["name"].as_str().is_some_and(|n| CLASSES.contains(&n))
        {
            return Err(format!("{name}: predict --top-k 2 names no two classes: {predicted}"));
        }
        let onnx_accuracy = export_and_compare(&name, bin, project, Path::new(&checkpoint))?;
        let onnx = run_dir.join("model.onnx");
        let bytes = std::fs::read(&onnx).map_err(|e| e.to_string())?;
        let labels = serde_json::to_string(&classes).unwrap();
        if !bytes.windows(labels.len()).any(|w| w == labels.as_bytes()) {
            return Err(format!("{name}: {} does not carry the class labels {labels}", onnx.display()));
        }
        let onnx = onnx.display().to_string();
        let from_onnx = last_json(&name, bin, project, &["evaluate", "--split", "test", "--json", "--onnx", &onnx])?;
        let predicted_onnx = last_json(&name, bin, project, &["predict", "--json", "--onnx", &onnx, &image])?;
        if from_onnx["classes"] != serde_json::json!(classes) || predicted_onnx["name"] != predicted["name"] {
            return Err(format!("{name}: the ONNX file names other classes: {from_onnx} / {predicted_onnx}"));
        }
        let accuracy = evaluated["accuracy"].as_f64().unwrap_or(f64::NAN);
        Ok(format!(
            "  image folder: test accuracy {accuracy:.3} (ONNX {onnx_accuracy:.3}), predicted {}",
            predicted["name"]
        ))
    })();
    std::fs::write(&config_path, original).map_err(|e| e.to_string())?;
    result
}

/// Train 5 epochs on 8,000 real digits and evaluate the best checkpoint on the 2,000 held out.
fn real_data_check(variant: &Variant, project: &Path, bin: &Path) -> Result<String, String> {
    let name = variant.project_name();
    let Some(source) = candlecutter_tests::real_data::source_dir() else {
        progress(&format!("{name}: real-data accuracy check skipped: ../shared/data/mnist is absent"));
        return Ok(String::new());
    };
    let data = project.join("data-real");
    candlecutter_tests::real_data::write_split(&source, &data).map_err(|e| format!("{name}: {e}"))?;
    let start = Instant::now();
    let out = Command::new(bin)
        .current_dir(project)
        .args([
            "train",
            "--set",
            "data_loader.args.data_dir=data-real",
            "--set",
            "name=real",
            "--set",
            "trainer.epochs=5",
        ])
        .args(["--set", "device=cpu", "--set", "trainer.early_stop=0"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{name}: real-data training failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let seconds = start.elapsed().as_secs_f64();
    let run = only_run_dir(project, "real")?;
    let out = Command::new(bin)
        .current_dir(project)
        .args(["evaluate", "--split", "test", "--json", "--checkpoint"])
        .arg(run.join("model_best.safetensors"))
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .map_err(|e| format!("{name}: real-data evaluate printed {stdout:?}: {e}"))?;
    let accuracy = json["accuracy"].as_f64().unwrap_or(0.0);
    let target = REAL_DATA_TARGETS.iter().find(|(m, _)| *m == variant.model).map_or(1.0, |(_, t)| *t);
    if json["samples"] != candlecutter_tests::real_data::HELD_OUT || accuracy < target {
        return Err(format!("{name}: held-out accuracy {accuracy:.4} on real MNIST is below {target} ({json})"));
    }
    let onnx_accuracy = export_and_compare(&name, bin, project, &run.join("model_best.safetensors"))?;
    Ok(format!("  real MNIST: {accuracy:.4} held-out after 5 epochs ({seconds:.0}s), ONNX {onnx_accuracy:.4}"))
}

/// Two mistakes as a user meets them, on the terminal: a wrong type inside a `{"type", "args"}`
/// section names the full key, and a checkpoint evaluated with a config that builds another model
/// names the parameter, both shapes and the model arg, once, without a backtrace (even with
/// RUST_BACKTRACE=1).
fn printed_errors_name_the_key(variant: &Variant, bin: &Path, project: &Path, checkpoint: &Path) -> Result<(), String> {
    let name = variant.project_name();
    let stderr_of = |args: &[&str]| -> Result<String, String> {
        let out = Command::new(bin).current_dir(project).args(args).env("RUST_BACKTRACE", "1").output();
        let out = out.map_err(|e| e.to_string())?;
        if out.status.success() {
            return Err(format!("{name}: `{}` should fail", args.join(" ")));
        }
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let err = stderr_of(&["train", "--set", "data_loader.args.batch_size=\"big\""])?;
    if !err.contains("at `data_loader.args.batch_size`") {
        return Err(format!("{name}: a bad batch size is reported as:\n{err}"));
    }
    // A model arg that changes a parameter's shape (the cnn's args are dropout rates only).
    let arg = match variant.model {
        "mlp" => Some(("hidden", "[64]")),
        "convnext" => Some(("dims", "[8,16,24]")),
        _ => None,
    };
    if let Some((key, value)) = arg {
        let checkpoint = checkpoint.display().to_string();
        let err = stderr_of(&["evaluate", "--checkpoint", &checkpoint, "--set", &format!("model.args.{key}={value}")])?;
        let named = err.contains(&format!("`model.args.{key}` is {value} in the config"))
            && err.contains("different model")
            && err.matches("in the checkpoint but").count() == 1;
        if !named || err.contains("backtrace") {
            return Err(format!("{name}: a checkpoint of another shape is reported as:\n{err}"));
        }
    }
    Ok(())
}

/// Run the project's binary and parse the JSON object on the last line of its output.
fn last_json(name: &str, bin: &Path, project: &Path, args: &[&str]) -> Result<serde_json::Value, String> {
    let out = Command::new(bin).current_dir(project).args(args).output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).map_err(|e| {
        format!(
            "{name}: `{}` printed {stdout:?} ({e}); stderr: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Export `checkpoint` to ONNX (verified against candle by the export itself), then check that
/// the file's accuracy through tract equals candle's on the test split. Returns the accuracy.
fn export_and_compare(name: &str, bin: &Path, project: &Path, checkpoint: &Path) -> Result<f64, String> {
    let checkpoint = checkpoint.display().to_string();
    let out = Command::new(bin).current_dir(project).args(["export", "--checkpoint", &checkpoint]).output();
    let out = out.map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{name}: export failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let onnx = Path::new(&checkpoint).with_file_name("model.onnx");
    let report = onnx.with_file_name("model.onnx.json");
    if !onnx.is_file() || !report.is_file() {
        return Err(format!("{name}: export wrote no model.onnx / model.onnx.json beside {checkpoint}"));
    }
    let onnx = onnx.display().to_string();
    let candle =
        last_json(name, bin, project, &["evaluate", "--split", "test", "--json", "--checkpoint", &checkpoint])?;
    let tract = last_json(name, bin, project, &["evaluate", "--split", "test", "--json", "--onnx", &onnx])?;
    if candle["accuracy"] != tract["accuracy"] || candle["samples"] != tract["samples"] {
        return Err(format!("{name}: the ONNX file scores {tract} but the checkpoint {candle}"));
    }
    Ok(candle["accuracy"].as_f64().unwrap_or(f64::NAN))
}

/// TensorBoard's own reader (Python) finds every tag, with one point per epoch for the epoch tags.
/// The Python is $CANDLECUTTER_PYTHON (CI's entry point makes a virtualenv with tensorboard), else
/// python3; without the tensorboard package the check is skipped with a printed line.
fn tensorboard_check(name: &str, run_dir: &Path) -> Result<(), String> {
    let python = std::env::var("CANDLECUTTER_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = repo_root().join("tests").join("tensorboard_check.py");
    let out = Command::new(&python).arg(&script).arg(run_dir).output();
    let out = match out {
        Ok(out) if out.status.code() == Some(2) || out.status.code().is_none() => {
            progress(&format!(
                "{name}: TensorBoard reader check skipped: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return Ok(());
        }
        Err(e) => {
            progress(&format!("{name}: TensorBoard reader check skipped: cannot run {python}: {e}"));
            return Ok(());
        }
        Ok(out) => out,
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let counts: serde_json::Value = serde_json::from_str(stdout.trim()).map_err(|e| {
        format!("{name}: tensorboard_check.py printed {stdout:?} ({e}); {}", String::from_utf8_lossy(&out.stderr))
    })?;
    let epoch_tags =
        ["train/loss", "train/accuracy", "val/loss", "val/accuracy", "epoch/seconds", "epoch/samples_per_sec"];
    for tag in epoch_tags {
        if counts[tag] != EPOCHS {
            return Err(format!(
                "{name}: TensorBoard finds {} points for {tag}, expected {EPOCHS}: {counts}",
                counts[tag]
            ));
        }
    }
    for tag in ["train_step/loss", "train_step/lr", "config"] {
        if counts[tag].as_u64().is_none_or(|n| n < 1) {
            return Err(format!("{name}: TensorBoard finds no {tag}: {counts}"));
        }
    }
    progress(&format!("{name}: TensorBoard's reader finds every tag: {counts}"));
    Ok(())
}

/// (name, version) of every package in the project's Cargo.lock, the project itself aside.
fn locked_packages(project: &Path, name: &str) -> Result<std::collections::BTreeSet<(String, String)>, String> {
    let text = std::fs::read_to_string(project.join("Cargo.lock")).map_err(|e| format!("{name}: Cargo.lock: {e}"))?;
    let lock: toml::Table = toml::from_str(&text).map_err(|e| format!("{name}: Cargo.lock: {e}"))?;
    let packages =
        lock.get("package").and_then(|p| p.as_array()).ok_or(format!("{name}: Cargo.lock has no packages"))?;
    Ok(packages
        .iter()
        .filter_map(|p| Some((p.get("name")?.as_str()?.to_string(), p.get("version")?.as_str()?.to_string())))
        .filter(|(n, _)| n != name)
        .collect())
}

/// The one run folder of run `run_name`: `saved/<run_name>/<timestamp>` in `project`.
fn only_run_dir(project: &Path, run_name: &str) -> Result<PathBuf, String> {
    let runs = project.join("saved").join(run_name);
    let entry = std::fs::read_dir(&runs).map_err(|e| format!("no run folder in {}: {e}", runs.display()))?.next();
    Ok(entry.ok_or(format!("{} is empty", runs.display()))?.map_err(|e| e.to_string())?.path())
}

/// The run folder holds the resolved config, one metrics row per epoch and split, the checkpoints
/// and a summary that counts every step.
fn check_run_dir(name: &str, run_dir: &Path) -> Result<(), String> {
    let read = |file: &str| std::fs::read_to_string(run_dir.join(file)).map_err(|e| format!("{name}: {file}: {e}"));
    let metrics = read("metrics.csv")?;
    let rows: Vec<&str> = metrics.lines().collect();
    if rows.first() != Some(&"epoch,split,loss,accuracy,lr,seconds,samples_per_sec") || rows.len() != 1 + 2 * EPOCHS {
        return Err(format!("{name}: metrics.csv is\n{metrics}"));
    }
    let summary: serde_json::Value = serde_json::from_str(&read("summary.json")?).map_err(|e| e.to_string())?;
    let steps_per_epoch = (TRAIN_IMAGES - TRAIN_IMAGES / 10).div_ceil(64) as u64;
    if summary["epochs_run"] != EPOCHS || summary["global_steps"] != EPOCHS as u64 * steps_per_epoch {
        return Err(format!("{name}: summary.json is {summary}"));
    }
    let config: serde_json::Value = serde_json::from_str(&read("config.json")?).map_err(|e| e.to_string())?;
    if config["trainer"]["epochs"] != EPOCHS || config["device"] != "cpu" {
        return Err(format!("{name}: the saved config does not have the --set values: {config}"));
    }
    for file in ["model_best.safetensors", "checkpoint-epoch2.safetensors"] {
        if !run_dir.join(file).is_file() {
            return Err(format!("{name}: {file} is missing in {}", run_dir.display()));
        }
    }
    // save_top_k = 1: the best epoch checkpoint and the newest, nothing more.
    let epoch_checkpoints = std::fs::read_dir(run_dir)
        .map_err(|e| e.to_string())?
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with("checkpoint-epoch")))
        .count();
    if epoch_checkpoints > 2 {
        return Err(format!("{name}: {epoch_checkpoints} epoch checkpoints kept with save_top_k = 1"));
    }
    if read("train.log")?.is_empty() {
        return Err(format!("{name}: train.log is empty"));
    }
    Ok(())
}

#[test]
fn every_variant_and_preset_generates_builds_tests_and_trains() {
    let start = Instant::now();
    let cuda_compiled = nvcc_available();
    let scratch = tempfile::Builder::new().prefix("candlecutter-matrix-").tempdir().unwrap();
    let mut failures = Vec::new();
    progress(&format!("matrix: {} variants, target folder {}", Variant::all().len(), target_dir().display()));
    // CANDLECUTTER_MATRIX=cuda (say) runs only the variants whose name contains it.
    let only = std::env::var("CANDLECUTTER_MATRIX").unwrap_or_default();
    for variant in Variant::all().into_iter().filter(|v| v.project_name().contains(&only)) {
        let name = variant.project_name();
        let project = generate(scratch.path(), &name, &variant.define_args());
        if variant.backend == "cuda" && !cuda_compiled {
            progress(&format!(
                "{name}: CUDA compile skipped because nvcc is absent; building and testing with --no-default-features"
            ));
        }
        let started = Instant::now();
        match check_variant(&variant, &project, cuda_compiled) {
            Ok(report) => progress(&format!("{name:<22} ok in {:5.1}s: {report}", started.elapsed().as_secs_f64())),
            Err(e) => {
                progress(&format!("{name:<22} FAILED"));
                failures.push(e);
            }
        }
        let _ = std::fs::remove_dir_all(&project);
    }

    // Each preset must be exactly one of the variants built above.
    let presets = std::fs::read_dir(repo_root().join("examples")).unwrap();
    for preset in presets.map(|e| e.unwrap().path()) {
        let preset_name = preset.file_stem().unwrap().to_string_lossy().to_string();
        let values: toml::Table = toml::from_str(&std::fs::read_to_string(&preset).unwrap()).unwrap();
        let values = values["values"].as_table().unwrap();
        let get = |k: &str| values.get(k).map(|v| v.to_string().trim_matches('"').to_string());
        let Some(variant) = Variant::all().into_iter().find(|v| {
            get("backend").as_deref() == Some(v.backend)
                && get("model").as_deref() == Some(v.model)
                && get("onnx").as_deref() == Some(if v.onnx { "true" } else { "false" })
        }) else {
            failures.push(format!("preset {preset_name} sets values that are not one of the matrix variants"));
            continue;
        };
        let name = variant.project_name();
        let (a, b) = (scratch.path().join("preset"), scratch.path().join("variant"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let from_preset = generate(&a, &name, &["--preset".into(), preset_name.clone()]);
        let from_variant = generate(&b, &name, &variant.define_args());
        match tree_diff(&tree(&from_preset), &tree(&from_variant)) {
            None => progress(&format!("preset {preset_name:<22} = {name} (built above)")),
            Some(diff) => failures.push(format!("preset {preset_name} differs from {name}:\n{diff}")),
        }
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::remove_dir_all(&b).unwrap();
    }
    progress(&format!("matrix wall time: {:.0}s", start.elapsed().as_secs_f64()));
    assert!(failures.is_empty(), "{} failure(s):\n\n{}", failures.len(), failures.join("\n\n"));
}
