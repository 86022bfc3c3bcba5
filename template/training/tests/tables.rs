//! Training on a `csv` table: the run records the encoding fitted on the training split, a run
//! stopped part-way and resumed ends with the same weights, to the bit, as one that never
//! stopped (the resumed run reads the recorded encoding, not a new fit), and a loss or metric
//! that does not fit the task stops before any work, naming the key. A table whose column names
//! image files trains a regression on the images with the shipped model, and records the
//! images' standardisation beside the encoding; a row naming a missing image is refused.

// Only the config helper: this test writes a table, not IDX files.
#[allow(dead_code)]
mod support;

use std::path::Path;

use candle_core::Device;
use experiment::{Config, RunDir, checkpoint, resume};
use training::{TrainOptions, train};

/// `y = 3 a - 2 b + city`, 160 rows, with an ID column and a categorical column.
fn write_table(path: &Path) {
    let mut text = String::from("id,a,b,city,y\n");
    for i in 0..160 {
        let (a, b) = ((i % 13) as f64 / 6.0 - 1.0, (i * 7 % 11) as f64 / 5.0 - 1.0);
        let city = ["lyon", "oslo", "rome"][i % 3];
        let y = 100.0 + 3.0 * a - 2.0 * b + [0.0, 4.0, -4.0][i % 3];
        text.push_str(&format!("{i},{a:.4},{b:.4},{city},{y:.4}\n"));
    }
    std::fs::write(path, text).unwrap();
}

fn table_config(dir: &Path, set: &[&str]) -> Config {
    let data = format!(
        r#"data_loader={{"type": "csv", "args": {{"train": {:?}, "task": "regression", "target": "y", "exclude": ["id"], "batch_size": 16}}}}"#,
        dir.join("houses.csv").display().to_string()
    );
    let mut overrides =
        vec![data, "loss=null".to_string(), "metrics=null".to_string(), "trainer.monitor=null".to_string()];
    if shipped_model() == "mlp" {
        overrides.push(r#"model.args={"hidden": [8], "dropout": 0.1}"#.to_string());
    }
    overrides.extend(set.iter().map(|s| s.to_string()));
    let overrides: Vec<&str> = overrides.iter().map(String::as_str).collect();
    support::config(dir, &overrides)
}

/// The model this project ships (its config.json's `model.type`): only the mlp takes tables.
fn shipped_model() -> String {
    let config: serde_json::Value = serde_json::from_str(include_str!("../../config.json")).unwrap();
    config["model"]["type"].as_str().unwrap().to_owned()
}

fn final_weights(run: &Path) -> Vec<(String, Vec<u32>)> {
    let ckpt = checkpoint::load(&run.join("checkpoint-epoch2.safetensors"), &Device::Cpu).unwrap();
    let mut weights: Vec<_> = ckpt
        .weights
        .iter()
        .map(|(name, t)| {
            (name.clone(), t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect())
        })
        .collect();
    weights.sort();
    weights
}

#[test]
fn a_table_run_records_its_encoding_and_resumes_to_the_bit() {
    let dir = tempfile::tempdir().unwrap();
    write_table(&dir.path().join("houses.csv"));

    let straight_config = table_config(dir.path(), &["name=\"straight\""]);
    // Left out, the loss, the metrics and the monitor are the regression's.
    assert_eq!(straight_config.loss().name(), "mse");
    assert_eq!(straight_config.monitor().to_string(), "min val_loss");
    let straight = RunDir::create(&straight_config).unwrap();
    if shipped_model() != "mlp" {
        // The cnn and the convnext take images: a table is refused, pointing at the mlp.
        let err = train(&straight_config, &straight, &TrainOptions::default()).unwrap_err().to_string();
        assert!(err.contains("takes images") && err.contains("use the mlp"), "{err}");
        return;
    }
    let summary = train(&straight_config, &straight, &TrainOptions::default()).unwrap();
    let final_val = summary.final_val.expect("validated");
    assert!(final_val.metrics["rmse"].is_finite() && final_val.per_target[0].name == "y", "{final_val:?}");

    let recorded = Config::load(&straight.file("config.json"), &[]).unwrap();
    let encoding = recorded.data_loader.fitted().expect("the run's config.json records the encoding");
    let experiment::data::Fitted::Encoding { encoding, .. } = encoding else { panic!("a table's encoding") };
    // a, b and the one-hot city (3): 5 inputs; y standardised with its training mean.
    assert_eq!(encoding.width(), 5);
    assert_eq!(encoding.input_names()[2..], ["city=lyon", "city=oslo", "city=rome"]);

    // 144 training rows at batch 16 = 9 steps per epoch: stop in the middle of the first epoch.
    let stopped_config = table_config(dir.path(), &["name=\"resumed\"", "trainer.max_steps=5"]);
    let resumed = RunDir::create(&stopped_config).unwrap();
    train(&stopped_config, &resumed, &TrainOptions::default()).unwrap();
    let (checkpoint, _) = resume::find_checkpoint(resumed.path()).unwrap();
    // The resumed run reads the encoding its config.json recorded instead of fitting again.
    let continue_config =
        resume::with_recorded_normalize(table_config(dir.path(), &["name=\"resumed\""]), resumed.path());
    assert!(!continue_config.data_loader.needs_fitting());
    let options = TrainOptions { resume: Some(checkpoint), ..Default::default() };
    let summary = train(&continue_config, &resumed, &options).unwrap();
    assert_eq!((summary.stopped_by, summary.global_steps), ("completed", 18));
    assert_eq!(final_weights(straight.path()), final_weights(resumed.path()));
}

#[test]
fn a_loss_or_metric_of_another_task_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    write_table(&dir.path().join("houses.csv"));
    let try_config = |set: &[&str]| {
        let data = format!(
            r#"data_loader={{"type": "csv", "args": {{"train": {:?}, "task": "regression", "target": "y"}}}}"#,
            dir.path().join("houses.csv").display().to_string()
        );
        let overrides: Vec<String> = std::iter::once(data).chain(set.iter().map(|s| s.to_string())).collect();
        Config::from_json(include_str!("../../config.json"), Path::new("config.json"), &overrides)
            .unwrap_err()
            .to_string()
    };
    // The shipped config names cross_entropy and accuracy: a regression cannot take them.
    let err = try_config(&[]);
    assert!(err.contains("`loss.type` is \"cross_entropy\"") && err.contains("\"mse\""), "{err}");
    let err = try_config(&["loss=null"]);
    assert!(err.contains("`metrics` has \"accuracy\"") && err.contains("\"rmse\""), "{err}");
    let err = try_config(&["loss=null", "metrics=null"]);
    assert!(err.contains("`trainer.monitor` watches \"val_accuracy\"") && err.contains("val_rmse"), "{err}");
}

/// `images/<i>.png`, 28x28 grey squares of a brightness that is the `level` target, listed in
/// `levels.csv` with a column of file names (relative to the table).
fn write_image_table(dir: &Path, rows: usize) {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let mut text = String::from("file,level\n");
    for i in 0..rows {
        let level = (i % 8) as f64 / 7.0;
        let image = image::GrayImage::from_fn(28, 28, |x, y| {
            let inside = (6..22).contains(&x) && (6..22).contains(&y);
            image::Luma([if inside { (40.0 + 200.0 * level) as u8 } else { ((x * y) % 20) as u8 }])
        });
        image.save(dir.join(format!("images/{i}.png"))).unwrap();
        text.push_str(&format!("images/{i}.png,{level:.4}\n"));
    }
    std::fs::write(dir.join("levels.csv"), text).unwrap();
}

fn image_table_config(dir: &Path) -> Config {
    let data = format!(
        r#"data_loader={{"type": "csv", "args": {{"train": {:?}, "task": "regression", "target": "level",
            "images": {{"column": "file", "image_size": 28, "channels": 1}}, "batch_size": 8}}}}"#,
        dir.join("levels.csv").display().to_string()
    );
    let set =
        [data.as_str(), "loss=null", "metrics=null", "trainer.monitor=null", "trainer.epochs=1", "name=\"levels\""];
    support::config(dir, &set)
}

#[test]
fn a_table_naming_images_trains_on_them_and_records_their_standardisation() {
    let dir = tempfile::tempdir().unwrap();
    write_image_table(dir.path(), 40);
    let config = image_table_config(dir.path());
    assert!(config.data_loader.needs_fitting());
    let run = RunDir::create(&config).unwrap();
    let summary = train(&config, &run, &TrainOptions::default()).unwrap();
    assert!(summary.final_val.expect("validated").metrics["rmse"].is_finite());

    let recorded = Config::load(&run.file("config.json"), &[]).unwrap();
    assert!(!recorded.data_loader.needs_fitting(), "the run records the encoding and the measured numbers");
    let Some(experiment::data::Fitted::Encoding { images: Some(normalize), .. }) = recorded.data_loader.fitted() else {
        panic!("an image table records its images' standardisation")
    };
    let channels = normalize.for_channels(1).unwrap();
    assert!(channels.mean[0] > 0.0 && channels.std[0] > 0.0, "{normalize:?}");
    let spec = recorded.data_loader.spec().unwrap();
    assert_eq!(spec.input_shape, [1, 28, 28]);

    // The images are an image table's only input: feature columns beside them are refused.
    let data = r#"data_loader={"type": "csv", "args": {"train": "levels.csv", "target": "level", "features": ["file"],
        "images": {"column": "file"}}}"#
        .to_string();
    let err = Config::from_json(include_str!("../../config.json"), Path::new("config.json"), &[data])
        .unwrap_err()
        .to_string();
    assert!(err.contains("`data_loader.args.features`") && err.contains("remove `features`"), "{err}");

    // A row naming an image that is not there: the table, its line and the column are named.
    let mut text = std::fs::read_to_string(dir.path().join("levels.csv")).unwrap();
    text.push_str("images/gone.png,0.5\n");
    std::fs::write(dir.path().join("levels.csv"), text).unwrap();
    let err = train(&config, &RunDir::create(&config).unwrap(), &TrainOptions::default()).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("levels.csv")
            && err.contains("line 42")
            && err.contains("column \"file\"")
            && err.contains("gone.png"),
        "{err}"
    );
}
