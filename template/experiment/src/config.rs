//! The experiment configuration (`config.json`): typed, validated before any work starts, and
//! saved resolved into each run directory. Errors name the JSON path and the line and column.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::DataLoaderConfig;
use crate::device::DeviceSpec;
use crate::loss::LossConfig;
use crate::metrics::Metric;
use crate::optimizer::OptimizerConfig;
use crate::schedule::SchedulerConfig;
use model::{ModelConfig, TaskKind};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The run's name: runs are saved under `<trainer.save_dir>/<name>/<timestamp>/`.
    pub name: String,
    /// Seeds weight initialisation, the train/validation split, shuffling and dropout.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    #[serde(default)]
    pub device: DeviceSpec,
    pub data_loader: DataLoaderConfig,
    pub model: ModelConfig,
    /// Left out (or null): the task's default (`cross_entropy`, `binary_cross_entropy`, `mse`);
    /// a loaded config always has it ([`Config::loss`]).
    #[serde(default)]
    pub loss: Option<LossConfig>,
    /// Left out (or null): the task's defaults ([`Metric::defaults`]).
    #[serde(default)]
    pub metrics: Option<Vec<Metric>>,
    /// Multi-label targets: a label is predicted when its probability is at least this.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub lr_scheduler: SchedulerConfig,
    #[serde(default)]
    pub trainer: TrainerConfig,
}

fn default_seed() -> u64 {
    42
}

fn default_threshold() -> f64 {
    0.5
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainerConfig {
    pub epochs: usize,
    pub save_dir: PathBuf,
    /// Write `checkpoint-epoch<N>` every this many epochs (0: only the best and the last).
    pub save_period: usize,
    /// How many of the best epoch checkpoints to keep besides `model_best`.
    pub save_top_k: usize,
    /// `"min val_loss"`, `"max val_accuracy"`, `"max val_macro_f1"`, `"min val_rmse"` (any metric
    /// the run computes, prefixed by `val_`, or `train_loss` and, for classification,
    /// `train_accuracy`) or `"off"`. Left out: `"max val_accuracy"` for classification, `"min
    /// val_loss"` for the other tasks (`train_` without a validation set).
    pub monitor: Option<Monitor>,
    /// Stop after this many epochs without improvement of `monitor` (0: never).
    pub early_stop: usize,
    pub log_every_steps: usize,
    pub grad_clip_norm: Option<f64>,
    /// Stop with an error on a NaN or infinite loss or gradient.
    pub detect_anomaly: bool,
    /// Stop after this many optimiser steps in total (for smoke tests); null: no limit.
    pub max_steps: Option<usize>,
    /// Write TensorBoard event files into the run folder.
    pub tensorboard: bool,
    /// Start a new run from this checkpoint's weights where names and shapes match (see
    /// `init_from`); null: a fresh initialisation. `--resume` continues a run instead.
    pub init_from: Option<PathBuf>,
    /// Do not train the parameters `init_from` loaded.
    pub freeze_loaded: bool,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            save_dir: PathBuf::from("saved"),
            save_period: 1,
            save_top_k: 1,
            monitor: None,
            early_stop: 5,
            log_every_steps: 50,
            grad_clip_norm: None,
            detect_anomaly: true,
            max_steps: None,
            tensorboard: true,
            init_from: None,
            freeze_loaded: false,
        }
    }
}

/// Which metric decides the best checkpoint and early stopping.
#[derive(Debug, Clone, PartialEq)]
pub enum Monitor {
    Off,
    Min(String),
    Max(String),
}

impl Monitor {
    pub fn watches_validation(&self) -> bool {
        matches!(self, Self::Min(m) | Self::Max(m) if m.starts_with("val_"))
    }

    /// What a `task` run with `metrics` can monitor: the validation loss and every metric, and
    /// the training loss and (classification) accuracy, the running values of each epoch's steps.
    pub fn choices(task: TaskKind, metrics: &[Metric]) -> Vec<String> {
        let mut names = vec!["val_loss".to_owned()];
        if task == TaskKind::Classification {
            names.push("val_accuracy".to_owned());
        }
        names.extend(metrics.iter().filter(|m| **m != Metric::Accuracy).map(|m| format!("val_{}", m.name())));
        names.push("train_loss".to_owned());
        if task == TaskKind::Classification {
            names.push("train_accuracy".to_owned());
        }
        names
    }

    /// What a `task` run watches when `trainer.monitor` is left out.
    pub fn default_for(task: TaskKind, has_validation: bool) -> Self {
        let split = if has_validation { "val" } else { "train" };
        match task {
            TaskKind::Classification => Self::Max(format!("{split}_accuracy")),
            _ => Self::Min(format!("{split}_loss")),
        }
    }

    /// Whether a larger value of the watched metric is better.
    pub fn higher_is_better(&self) -> Option<bool> {
        match self {
            Self::Off => None,
            Self::Max(_) => Some(true),
            Self::Min(_) => Some(false),
        }
    }

    /// An error listing the valid names when the run does not compute the watched value.
    fn check(&self, task: TaskKind, metrics: &[Metric]) -> Result<(), String> {
        let (Self::Min(name) | Self::Max(name)) = self else { return Ok(()) };
        let choices = Self::choices(task, metrics);
        if choices.contains(name) {
            return Ok(());
        }
        Err(format!(
            "`trainer.monitor` watches {name:?}, which this run does not compute; use \"min NAME\" or \"max NAME\" \
             with NAME one of {choices:?} (add a metric to `metrics` to monitor it), or \"off\""
        ))
    }
}

impl std::str::FromStr for Monitor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let expected =
            || format!("expected \"off\" or \"min NAME\" / \"max NAME\" such as \"max val_accuracy\", got {s:?}");
        if s == "off" {
            return Ok(Self::Off);
        }
        // Which names are valid depends on `metrics`: `Config::check` checks them.
        let (mode, metric) = s.split_once(' ').ok_or_else(expected)?;
        if metric.is_empty() || metric.contains(' ') {
            return Err(expected());
        }
        match mode {
            "min" => Ok(Self::Min(metric.into())),
            "max" => Ok(Self::Max(metric.into())),
            _ => Err(expected()),
        }
    }
}

impl std::fmt::Display for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Off => write!(f, "off"),
            Self::Min(m) => write!(f, "min {m}"),
            Self::Max(m) => write!(f, "max {m}"),
        }
    }
}

impl Serialize for Monitor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Monitor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path} is not valid JSON at line {line}, column {column}: {message}")]
    Syntax { path: PathBuf, line: usize, column: usize, message: String },
    #[error("config {path}: at `{json_path}`: {message}")]
    Invalid { path: PathBuf, json_path: String, message: String },
    #[error("--set {0:?} is not KEY.PATH=VALUE (for example --set trainer.epochs=3)")]
    MalformedSet(String),
    #[error("--set {assignment:?}: `{prefix}` is not an object, so `{key}` cannot be set inside it")]
    SetThroughValue { assignment: String, prefix: String, key: String },
    #[error("config {path}: {message}")]
    Rule { path: PathBuf, message: String },
}

impl Config {
    /// Read `path`, apply `--set` overrides (`key.path=value`, the value parsed as JSON and else
    /// taken as a string), and check the result.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::from_json(&text, path, overrides)
    }

    /// Like [`Config::load`], from text; `path` is only used in messages.
    pub fn from_json(text: &str, path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let mut value: serde_json::Value = serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        for assignment in overrides {
            apply_override(&mut value, assignment)?;
        }
        let mut canonical = String::with_capacity(text.len());
        write_type_first(&value, &mut canonical);
        let mut de = serde_json::Deserializer::from_str(&canonical);
        let mut config: Config = serde_path_to_error::deserialize(&mut de).map_err(|e| invalid(path, e))?;
        config.check().map_err(|message| ConfigError::Rule { path: path.to_path_buf(), message })?;
        // What was left to the task is written out, so the run's config.json says what ran.
        let task = config.task();
        config.loss.get_or_insert_with(|| LossConfig::default_for(task));
        config.metrics.get_or_insert_with(|| Metric::defaults(task));
        let has_validation = config.data_loader.has_validation();
        config.trainer.monitor.get_or_insert_with(|| Monitor::default_for(task, has_validation));
        Ok(config)
    }

    /// The task the data's targets make (classification for images, as configured for tables).
    pub fn task(&self) -> TaskKind {
        self.data_loader.task()
    }

    /// The loss: as configured, or the task's default.
    pub fn loss(&self) -> LossConfig {
        self.loss.clone().unwrap_or_else(|| LossConfig::default_for(self.task()))
    }

    /// The metrics: as configured, or the task's defaults.
    pub fn metrics(&self) -> Vec<Metric> {
        self.metrics.clone().unwrap_or_else(|| Metric::defaults(self.task()))
    }

    /// What decides the best checkpoint and early stopping: as configured, or the task's default.
    pub fn monitor(&self) -> Monitor {
        self.trainer
            .monitor
            .clone()
            .unwrap_or_else(|| Monitor::default_for(self.task(), self.data_loader.has_validation()))
    }

    /// Rules serde cannot express.
    fn check(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name == ".." {
            return Err(format!("`name` {:?} must be a non-empty folder name without '/'", self.name));
        }
        if self.trainer.epochs == 0 {
            return Err("`trainer.epochs` must be at least 1".into());
        }
        if self.trainer.log_every_steps == 0 {
            return Err("`trainer.log_every_steps` must be at least 1".into());
        }
        if let Some(norm) = self.trainer.grad_clip_norm.filter(|n| !(n.is_finite() && *n > 0.0)) {
            return Err(format!("`trainer.grad_clip_norm` must be a positive number or null, got {norm}"));
        }
        let task = self.task();
        let monitor = self.monitor();
        if !self.data_loader.has_validation() && monitor.watches_validation() {
            return Err(format!(
                "`trainer.monitor` is \"{monitor}\" but `data_loader.args.validation_split` is 0, so there is no \
                 validation set; set a validation split, monitor a train_* metric, or \"off\""
            ));
        }
        self.loss().check(task)?;
        Metric::check_all(&self.metrics(), task)?;
        monitor.check(task, &self.metrics())?;
        if task == TaskKind::MultiLabel && !(self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(format!("`threshold` must be a probability strictly between 0 and 1, got {}", self.threshold));
        }
        if self.trainer.freeze_loaded && self.trainer.init_from.is_none() {
            return Err(
                "`trainer.freeze_loaded` needs `trainer.init_from`: the checkpoint whose parameters to freeze".into()
            );
        }
        self.model.validate().map_err(|e| e.to_string())?;
        self.data_loader.check()?;
        self.optimizer.check()?;
        self.lr_scheduler.check()
    }

    /// The config as pretty JSON, as saved into the run directory.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a Config always serializes")
    }
}

fn invalid(path: &Path, e: serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
    // serde_json ends its message with a position in the text it read, which is `write_type_first`'s
    // rendering, not the user's file: the JSON path says where.
    let message = e.inner().to_string();
    let message = match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message,
    };
    ConfigError::Invalid { path: path.to_path_buf(), json_path: e.path().to_string(), message }
}

/// `value` as JSON text with every object's `"type"` key first.
///
/// Every `{"type": ..., "args": ...}` section (`#[serde(tag = "type", content = "args")]`) must be
/// read tag first: serde buffers the `args` of a section whose `type` it has not seen yet and
/// deserializes them afterwards, and errors inside them then lose their JSON path (an error in
/// `data_loader.args.batch_size` would be reported at `data_loader`). Parsed JSON objects are
/// sorted by key, so `"args"` would always come first; this puts `"type"` first for every section,
/// present and future, whatever order the file or `--set` gave.
fn write_type_first(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            out.push('{');
            let tag = map.get_key_value("type");
            for (i, (key, item)) in tag.into_iter().chain(map.iter().filter(|(k, _)| *k != "type")).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_type_first(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_type_first(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Apply one `--set a.b.c=value` to the JSON tree.
fn apply_override(root: &mut serde_json::Value, assignment: &str) -> Result<(), ConfigError> {
    let (key_path, raw) = assignment.split_once('=').ok_or_else(|| ConfigError::MalformedSet(assignment.into()))?;
    let keys: Vec<&str> = key_path.trim().split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(ConfigError::MalformedSet(assignment.into()));
    }
    let value = serde_json::from_str(raw).unwrap_or_else(|_| serde_json::Value::String(raw.to_string()));
    let mut node = root;
    for (depth, key) in keys.iter().enumerate() {
        let object = node.as_object_mut().ok_or_else(|| ConfigError::SetThroughValue {
            assignment: assignment.into(),
            prefix: keys[..depth].join("."),
            key: (*key).into(),
        })?;
        if depth + 1 == keys.len() {
            object.insert((*key).to_string(), value);
            return Ok(());
        }
        node = object.entry((*key).to_string()).or_insert_with(|| serde_json::json!({}));
    }
    unreachable!("the loop returns at the last key")
}
