//! The fitted encoding of a table's columns and the options it is fitted with: plain data,
//! recorded (serde JSON) with the run, and the methods every user of a table calls. How it is
//! fitted is `fit`; how rows and targets are encoded with it is `encode`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::read::Table;
use super::{encode, error, fit, list};
use crate::error::Result;

/// Whether a feature is standardised or one-hot encoded (`data_loader.args.kinds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    Numeric,
    Categorical,
}

/// What the targets are: one class per row, any subset of labels per row, or real values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    #[default]
    Classes,
    Labels,
    Values,
}

/// How to fit an encoding. Every field comes from the user's config.json, `data_loader.args.*`.
#[derive(Debug, Clone, Default)]
pub struct FitOptions {
    /// `target`: the column(s) to predict.
    pub target: Vec<String>,
    /// `target_kind`.
    pub target_kind: TargetKind,
    /// `label_delimiter`: labels from ONE column of delimited label names, e.g. `"cat|dog"`.
    pub label_delimiter: Option<String>,
    /// `features`: None = every column except the targets (and `exclude`).
    pub features: Option<Vec<String>>,
    /// `exclude`: columns never read.
    pub exclude: Vec<String>,
    /// `kinds`: overrides the inferred kind of a feature.
    pub kinds: BTreeMap<String, ColumnKind>,
    /// `fill_missing`: fill missing feature values with the training mean / most frequent category.
    pub fill_missing: bool,
    /// `unknown_category`: an extra input per categorical feature for values not seen in training.
    pub unknown_category: bool,
    /// `standardize_target`: record the training mean and std of value targets (Values only), for
    /// the model to learn them as `(y - mean) / std`; [`Targets::Values`] stay in their own units.
    pub standardize_target: bool,
    /// `images.column`: the column naming each row's image file, which is then the only input
    /// (no feature columns are fitted; the images are prepared by the caller).
    pub image_column: Option<String>,
}

/// The fitted encoding: recorded (serde JSON) in the run's config.json and in checkpoints, so
/// evaluation, prediction and export rebuild inputs without the training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encoding {
    pub features: Vec<Feature>,
    pub target: TargetEncoding,
}

/// One feature column and how it becomes model inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Feature {
    /// Standardised as (x - mean) / std: the population mean and std of the training values
    /// (missing ones left out), std 1 for a constant column so it encodes as 0. `fill` (the
    /// training mean) replaces a missing value when fitted with fill_missing.
    Numeric { column: String, mean: f64, std: f64, fill: Option<f64> },
    /// One-hot over `categories` (sorted numerically when all are integers, else by bytes); with
    /// `unknown` an extra last input for values not seen in training; `fill` = the most frequent
    /// training category (the first in order on a tie) when fitted with fill_missing.
    Categorical { column: String, categories: Vec<String>, unknown: bool, fill: Option<String> },
}

impl Feature {
    /// The column it reads.
    pub fn column(&self) -> &str {
        match self {
            Feature::Numeric { column, .. } | Feature::Categorical { column, .. } => column,
        }
    }

    /// The model inputs it makes.
    pub fn width(&self) -> usize {
        match self {
            Feature::Numeric { .. } => 1,
            Feature::Categorical { categories, unknown, .. } => categories.len() + usize::from(*unknown),
        }
    }
}

/// The target column(s) and how they become training targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetEncoding {
    /// Class names sorted (numerically when all are integers: "2" before "10");
    /// label `i` = `classes[i]`.
    Classes { column: String, classes: Vec<String> },
    /// Several 0/1 columns (their names are the labels), or one column of delimited names
    /// (`delimiter` set; labels = sorted names seen in training; an empty field is no label).
    Labels { columns: Vec<String>, delimiter: Option<String>, labels: Vec<String> },
    /// Real outputs. The model learns them as (y - mean) / std (the caller standardises the
    /// as-written [`Targets::Values`] with these), with mean 0 and std 1 when not standardised.
    Values { columns: Vec<String>, mean: Vec<f64>, std: Vec<f64> },
}

impl TargetEncoding {
    /// The column(s) it reads.
    pub fn columns(&self) -> &[String] {
        match self {
            TargetEncoding::Classes { column, .. } => std::slice::from_ref(column),
            TargetEncoding::Labels { columns, .. } | TargetEncoding::Values { columns, .. } => columns,
        }
    }
}

/// Encoded targets of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// `[rows]`: the index of each row's class.
    Classes(Vec<u32>),
    /// `[rows * labels]`, row-major, 0.0 or 1.0.
    Labels(Vec<f32>),
    /// `[rows * values]`, row-major, in the targets' own units (the encoding's mean/std are for
    /// the caller to learn them in).
    Values(Vec<f32>),
}

impl Encoding {
    /// Fits the encoding on the training rows: which columns are features and of what kind, their
    /// statistics and categories, and the targets' classes, labels or statistics.
    pub fn fit(train: &Table, options: &FitOptions) -> Result<Encoding> {
        fit::fit(train, options)
    }

    /// Model inputs per row.
    pub fn width(&self) -> usize {
        self.features.iter().map(Feature::width).sum()
    }

    /// A name per input: `age`, `city=Paris`, `city=<unknown>`.
    pub fn input_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.width());
        for feature in &self.features {
            match feature {
                Feature::Numeric { column, .. } => names.push(column.clone()),
                Feature::Categorical { column, categories, unknown, .. } => {
                    names.extend(categories.iter().map(|c| format!("{column}={c}")));
                    if *unknown {
                        names.push(format!("{column}=<unknown>"));
                    }
                }
            }
        }
        names
    }

    /// Per input, the mean and std that standardise it: numeric features their fitted numbers,
    /// one-hot inputs 0 and 1.
    pub fn input_mean_std(&self) -> (Vec<f32>, Vec<f32>) {
        let (mut mean, mut std) = (Vec::with_capacity(self.width()), Vec::with_capacity(self.width()));
        for feature in &self.features {
            match feature {
                Feature::Numeric { mean: m, std: s, .. } => {
                    mean.push(*m as f32);
                    std.push(*s as f32);
                }
                Feature::Categorical { .. } => {
                    mean.resize(mean.len() + feature.width(), 0.0);
                    std.resize(std.len() + feature.width(), 1.0);
                }
            }
        }
        (mean, std)
    }

    /// Which kind of target the encoding was fitted for (the loss and metrics follow from it).
    pub fn target_kind(&self) -> TargetKind {
        match self.target {
            TargetEncoding::Classes { .. } => TargetKind::Classes,
            TargetEncoding::Labels { .. } => TargetKind::Labels,
            TargetEncoding::Values { .. } => TargetKind::Values,
        }
    }

    /// Class names, label names, or value column names: one per model output.
    pub fn target_names(&self) -> Vec<String> {
        match &self.target {
            TargetEncoding::Classes { classes, .. } => classes.clone(),
            TargetEncoding::Labels { labels, .. } => labels.clone(),
            TargetEncoding::Values { columns, .. } => columns.clone(),
        }
    }

    /// Errors when `table` lacks a column the encoding reads (features, and targets when
    /// `with_targets`), naming the missing ones, the file and the columns training used. Extra
    /// columns are fine.
    pub fn check_columns(&self, table: &Table, with_targets: bool) -> Result<()> {
        let features = self.features.iter().map(Feature::column);
        let targets = self.target.columns().iter().map(String::as_str);
        let needed: Vec<&str> = if with_targets { features.chain(targets).collect() } else { features.collect() };
        let missing: Vec<&str> = needed.into_iter().filter(|c| !table.header().iter().any(|h| h == c)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(error(
            table.path(),
            None,
            None,
            format!(
                "lacks {} {} that the model reads; training used the features {} and the target {}; \
                 add the missing columns (extra columns are fine)",
                if missing.len() == 1 { "the column" } else { "the columns" },
                list(&missing),
                list(&self.features.iter().map(Feature::column).collect::<Vec<_>>()),
                list(self.target.columns()),
            ),
        ))
    }

    /// Raw encoded inputs, row-major `[rows, width]`: numbers as written (missing ones filled when
    /// the encoding has a fill), categories one-hot. NOT standardised: the caller applies
    /// [`Encoding::input_mean_std`], as the ONNX graph does.
    pub fn encode_inputs(&self, table: &Table) -> Result<Vec<f32>> {
        encode::inputs(self, table)
    }

    /// The targets of every row of `table`, encoded as in training.
    pub fn encode_targets(&self, table: &Table) -> Result<Targets> {
        encode::targets(self, table)
    }
}
