//! Config errors name the JSON path (and line and column), and `--set` overrides any key.

use std::path::Path;

use experiment::{Config, ConfigError};

const CONFIG: &str = include_str!("../../config.json");

fn load(text: &str, set: &[&str]) -> Result<Config, ConfigError> {
    let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
    Config::from_json(text, Path::new("config.json"), &set)
}

#[test]
fn the_shipped_config_loads() {
    let config = load(CONFIG, &[]).unwrap();
    assert_eq!(config.seed, 42);
    assert_eq!(config.trainer.epochs, 10);
}

#[test]
fn a_typo_names_the_json_path_and_position() {
    let text = CONFIG.replace("\"log_every_steps\"", "\"log_every_step\"");
    let err = load(&text, &[]).unwrap_err().to_string();
    assert!(err.contains("trainer") && err.contains("log_every_step"), "{err}");
    assert!(err.contains("config.json"), "{err}");

    let text = CONFIG.replace("\"batch_size\": 64", "\"batch_size\": \"64\"");
    let err = load(&text, &[]).unwrap_err().to_string();
    assert!(err.contains("data_loader.args.batch_size"), "{err}");
}

/// Inside `{"type": ..., "args": ...}` sections the path goes down to the key, however the section
/// is ordered and whether the value comes from the file or from `--set`.
#[test]
fn errors_inside_type_and_args_sections_name_the_full_path() {
    let err = load(CONFIG, &["data_loader.args.batch_size=\"big\""]).unwrap_err().to_string();
    assert!(err.contains("at `data_loader.args.batch_size`"), "{err}");
    for (set, path) in [
        ("model.args.no_such_key=1", "model.args"),
        ("optimizer.args.lr=\"fast\"", "optimizer.args.lr"),
        ("loss.args.label_smoothing=\"x\"", "loss.args.label_smoothing"),
        ("lr_scheduler.args.no_such_key=1", "lr_scheduler.args"),
    ] {
        let err = load(CONFIG, &[set]).unwrap_err().to_string();
        assert!(err.contains(&format!("at `{path}")), "{set}: {err}");
    }
    // `args` written before `type` in the file.
    let text = r#"{"name": "x", "data_loader": {"args": {"batch_size": "big"}, "type": "mnist"},
                   "model": {"type": "mlp"}, "optimizer": {"type": "sgd", "args": {"lr": 0.1}}}"#;
    let err = load(text, &[]).unwrap_err().to_string();
    assert!(err.contains("at `data_loader.args.batch_size`"), "{err}");
    // No position from the re-rendered text: the JSON path says where.
    assert!(!err.contains(" at line "), "{err}");
}

#[test]
fn monitor_accepts_any_metric_the_run_computes_and_lists_them_otherwise() {
    let config =
        load(CONFIG, &["metrics=[\"accuracy\", \"macro_f1\", \"top3_accuracy\"]", "trainer.monitor=max val_macro_f1"])
            .unwrap();
    assert_eq!(config.monitor().to_string(), "max val_macro_f1");
    load(CONFIG, &["metrics=[\"top3_accuracy\"]", "trainer.monitor=max val_top3_accuracy"]).unwrap();
    let err = load(CONFIG, &["trainer.monitor=max val_macro_f1"]).unwrap_err().to_string();
    assert!(err.contains("trainer.monitor") && err.contains("\"val_loss\", \"val_accuracy\""), "{err}");
    assert!(err.contains("add a metric to `metrics`"), "{err}");
    let err = load(CONFIG, &["trainer.monitor=max val_acuracy"]).unwrap_err().to_string();
    assert!(err.contains("val_acuracy") && err.contains("train_loss"), "{err}");
    let err = load(CONFIG, &["trainer.monitor=maximum val_loss"]).unwrap_err().to_string();
    assert!(err.contains("trainer.monitor"), "{err}");
}

#[test]
fn broken_json_reports_line_and_column() {
    let err = load("{\n  \"name\": \"x\",\n  oops\n}", &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { line: 3, .. }), "{err}");
}

#[test]
fn unknown_component_types_list_the_known_ones() {
    let text = CONFIG.replace("\"type\": \"adamw\"", "\"type\": \"adam\"");
    let err = load(&text, &[]).unwrap_err().to_string();
    assert!(err.contains("optimizer") && err.contains("adamw") && err.contains("sgd"), "{err}");
}

#[test]
fn set_overrides_numbers_strings_and_nested_objects() {
    let config = load(
        CONFIG,
        &["trainer.epochs=3", "device=cpu", "optimizer.args.lr=0.01", "data_loader.args.validation_split=500"],
    )
    .unwrap();
    assert_eq!(config.trainer.epochs, 3);
    assert_eq!(config.device.to_string(), "cpu");
    assert_eq!(config.optimizer.lr(), 0.01);
    assert_eq!(config.data_loader.validation_split(), data_loader::ValidationSplit::Count(500));
    // The saved (resolved) config carries the overrides.
    assert!(config.to_json().contains("\"epochs\": 3"));
}

#[test]
fn set_errors_are_checked_like_the_file() {
    let err = load(CONFIG, &["trainer.epochs=-1"]).unwrap_err().to_string();
    assert!(err.contains("trainer.epochs"), "{err}");
    let err = load(CONFIG, &["trainer.epocs=3"]).unwrap_err().to_string();
    assert!(err.contains("epocs"), "{err}");
    assert!(matches!(load(CONFIG, &["trainer.epochs"]).unwrap_err(), ConfigError::MalformedSet(_)));
    let err = load(CONFIG, &["seed.x=1"]).unwrap_err();
    assert!(matches!(err, ConfigError::SetThroughValue { .. }), "{err}");
}

#[test]
fn rules_serde_cannot_express_are_checked() {
    for (set, needle) in [
        ("trainer.epochs=0", "trainer.epochs"),
        ("data_loader.args.batch_size=0", "batch_size"),
        ("optimizer.args.lr=-1", "optimizer.args.lr"),
        ("trainer.monitor=\"max accuracy\"", "monitor"),
        ("loss.args.label_smoothing=1.5", "label_smoothing"),
        ("device=gpu", "cuda"),
        ("data_loader.args.validation_split=1.5", "`data_loader.args.validation_split` is 1.5"),
        ("data_loader.args.validation_split=-0.25", "`data_loader.args.validation_split` is -0.25"),
    ] {
        let err = load(CONFIG, &[set]).unwrap_err().to_string();
        assert!(err.contains(needle), "{set}: {err}");
    }
    let err = load(CONFIG, &["data_loader.args.validation_split=0"]).unwrap_err().to_string();
    assert!(err.contains("no validation set"), "{err}");
}

/// Every key a config can hold (the shipped file with every default written out), set by `--set` to
/// values of the wrong kind and out of range: each either loads or fails with a message that names
/// the key's full JSON path in backticks, or its section's path and then the key (a `type`'s error
/// may name its section alone).
#[test]
fn every_key_s_errors_name_its_json_path() {
    let full = load(CONFIG, &[]).unwrap().to_json();
    let mut keys = Vec::new();
    leaf_paths(&serde_json::from_str(&full).unwrap(), String::new(), &mut keys);
    assert!(keys.len() > 30, "{keys:?}");
    let mut unnamed = Vec::new();
    for key in &keys {
        for value in ["\"bogus\"", "-1", "0", "0.5", "1.5", "1e30", "true", "{}", "[1]", "null"] {
            let set = format!("{key}={value}");
            let Err(err) = load(&full, &[set.as_str()]) else { continue };
            let err = err.to_string();
            let (section, leaf) = key.rsplit_once('.').unwrap_or(("", key));
            let named = err.contains(&format!("`{key}"))
                || (leaf == "type" && err.contains(&format!("`{section}`")))
                || err.contains(&format!("`{section}`")) && err.contains(&format!("`{leaf}`"));
            if !named {
                unnamed.push(format!("--set {set}: {err}"));
            }
        }
    }
    assert!(unnamed.is_empty(), "{} errors do not name their key:\n{}", unnamed.len(), unnamed.join("\n"));
}

/// The dotted paths of `value`'s leaves (arrays and empty objects count as leaves).
fn leaf_paths(value: &serde_json::Value, prefix: String, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (key, value) in map {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                leaf_paths(value, path, out);
            }
        }
        _ => out.push(prefix),
    }
}
