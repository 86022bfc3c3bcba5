//! The `csv` data type: a table with a header row, one sample per row. The `target` column(s)
//! are what the model predicts (`task`: one class, any subset of labels, or real values); every
//! other column (or `features`, less `exclude`) is an input: numbers standardised, categories
//! one-hot. What that takes is fitted on the training split ([`Encoding`]: each column's kind,
//! categories, mean and std, and the targets' classes, labels or standardisation) and recorded in
//! the run's config.json, so validation, test, `predict` rows and the ONNX graph are encoded
//! exactly as training was. Reading and encoding are `data_loader::table`'s. With `images`, a
//! column names each row's image file, which is then the row's input (`csv/images.rs`).

mod columns;
mod images;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use data_loader::table::{ColumnKind, Encoding, FitOptions, Table, TargetEncoding, TargetKind, Targets};
use data_loader::{
    Augment, Channels, DataError, Normalize, NormalizeSetting, SplitData, TensorDataset, ValidationSplit,
};
use model::{DataSpec, Target, TaskKind, Values};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{Fitted, Splits};

pub use columns::{Columns, Delimiter};
pub use images::CsvImages;

/// Where a table's image settings sit in config.json, for messages.
pub(super) const IMAGES_KEY: &str = "data_loader.args.images";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsvArgs {
    /// The training table, relative to where you run.
    pub train: PathBuf,
    /// A validation table; null: `validation_split` of `train` is held out.
    pub val: Option<PathBuf>,
    /// The table `evaluate --split test` scores; null: there is no test split.
    pub test: Option<PathBuf>,
    pub validation_split: ValidationSplit,
    /// `","`, `";"` or `"\t"` (or `"tab"`); null: detected from the header line.
    pub delimiter: Option<Delimiter>,
    /// `"classification"` (one class per row), `"multi_label"` (any subset of labels per row) or
    /// `"regression"` (real values).
    pub task: TaskKind,
    /// The column(s) to predict: one name, or a list (several 0/1 label columns, several values).
    pub target: Columns,
    /// Multi-label from one column of delimited label names (`"cat|dog"`): the delimiter.
    pub label_delimiter: Option<String>,
    /// The input columns; null: every column but the targets and `exclude`.
    pub features: Option<Vec<String>>,
    /// Columns never read (an ID, a date).
    pub exclude: Vec<String>,
    /// Per column, `"numeric"` or `"categorical"`, where the inferred kind is wrong (a zip code).
    pub kinds: BTreeMap<String, ColumnKind>,
    /// Fill a missing feature value (an empty field) with the training mean or most frequent
    /// category; false: a missing value is an error naming its file, line and column.
    pub fill_missing: bool,
    /// Give a category not seen in training an input of its own; false: it is an error.
    pub unknown_category: bool,
    /// Regression: learn the targets standardised with the training split's mean and std (every
    /// number reported is still in the targets' units).
    pub standardize_target: bool,
    /// A column naming each row's image file: the images are then the inputs (the other
    /// columns are not), prepared as `image_folder` prepares them. Null: the columns are inputs.
    pub images: Option<CsvImages>,
    pub batch_size: usize,
    pub shuffle: bool,
    pub drop_last: bool,
    /// Written by training into the run's config.json: the encoding fitted on the training split.
    /// Leave it null in your own config.
    pub encoding: Option<Encoding>,
    /// Inputs encoded but not standardised (the ONNX graph standardises them itself).
    #[serde(skip)]
    raw_inputs: bool,
}

impl Default for CsvArgs {
    fn default() -> Self {
        Self {
            train: PathBuf::from("data/train.csv"),
            val: None,
            test: None,
            validation_split: ValidationSplit::Fraction(0.1),
            delimiter: None,
            task: TaskKind::Classification,
            target: Columns::default(),
            label_delimiter: None,
            features: None,
            exclude: Vec::new(),
            kinds: BTreeMap::new(),
            fill_missing: false,
            unknown_category: false,
            standardize_target: true,
            images: None,
            batch_size: 64,
            shuffle: true,
            drop_last: false,
            encoding: None,
            raw_inputs: false,
        }
    }
}

impl CsvArgs {
    pub(super) fn check(&self) -> Result<(), String> {
        let target = self.target.names();
        if target.is_empty() {
            return Err(
                "`data_loader.args.target` must name the column(s) to predict, e.g. \"target\": \"price\"".into()
            );
        }
        match self.task {
            TaskKind::Classification if target.len() > 1 => {
                return Err(format!(
                    "`data_loader.args.target` names {} columns, but a classification has one class column; for several \
                     0/1 columns set `data_loader.args.task` to \"multi_label\"",
                    target.len()
                ));
            }
            TaskKind::MultiLabel if self.label_delimiter.is_some() && target.len() > 1 => {
                return Err(
                    "`data_loader.args.label_delimiter` reads the labels from one column; `target` names several"
                        .into(),
                );
            }
            _ if self.label_delimiter.is_some() && self.task != TaskKind::MultiLabel => {
                return Err("`data_loader.args.label_delimiter` is for \"task\": \"multi_label\"".into());
            }
            _ => {}
        }
        if let Some(features) = &self.features
            && let Some(both) = features.iter().find(|f| target.contains(f))
        {
            return Err(format!(
                "column {both:?} is both in `data_loader.args.target` and in `data_loader.args.features`; a target cannot be an input"
            ));
        }
        if let Some(images) = &self.images {
            images.check()?;
            if self.features.is_some() {
                return Err(
                    "`data_loader.args.features` and `data_loader.args.images` are both set; a table naming images takes \
                     the images as its only input: remove `features`"
                        .into(),
                );
            }
        }
        if self.batch_size == 0 {
            return Err("`data_loader.args.batch_size` must be at least 1".into());
        }
        Ok(())
    }

    fn options(&self) -> FitOptions {
        FitOptions {
            target: self.target.names(),
            target_kind: match self.task {
                TaskKind::Classification => TargetKind::Classes,
                TaskKind::MultiLabel => TargetKind::Labels,
                TaskKind::Regression => TargetKind::Values,
            },
            label_delimiter: self.label_delimiter.clone(),
            features: self.features.clone(),
            exclude: self.exclude.clone(),
            kinds: self.kinds.clone(),
            fill_missing: self.fill_missing,
            unknown_category: self.unknown_category,
            standardize_target: self.standardize_target,
            image_column: self.images.as_ref().map(|i| i.column.clone()),
        }
    }

    fn read(&self, path: &Path) -> data_loader::Result<Table> {
        Table::read(path, self.delimiter.map(|d| d.0))
    }

    /// The recorded encoding, or an error saying where it is (the run's config.json).
    pub(super) fn encoding_or_error(&self) -> data_loader::Result<&Encoding> {
        self.encoding.as_ref().ok_or_else(|| DataError::Table {
            path: self.train.clone(),
            line: None,
            column: None,
            message: "`data_loader.args.encoding` is null: it is fitted on the training split by `train` and recorded \
                      in the run's config.json; evaluate and predict with that config (the default beside the checkpoint)"
                .into(),
        })
    }

    /// Per input, the standardisation of the recorded encoding (one-hot inputs: mean 0, std 1);
    /// for images, per channel.
    pub(super) fn input_normalize(&self) -> data_loader::Result<Channels> {
        if let Some(images) = &self.images {
            return images.normalize.fixed(IMAGES_KEY)?.for_channels(images.channels);
        }
        let (mean, std) = self.encoding_or_error()?.input_mean_std();
        Ok(Channels { mean, std })
    }

    /// The images' standardisation as configured (`None` for a table without images).
    pub(super) fn normalize(&self) -> Option<&NormalizeSetting> {
        self.images.as_ref().map(|i| &i.normalize)
    }

    pub(super) fn augment(&self) -> Augment {
        self.images.as_ref().map(|i| i.augment).unwrap_or_default()
    }

    /// Whether training fits something the run's config.json must record.
    pub(super) fn needs_fitting(&self) -> bool {
        self.encoding.is_none() || matches!(self.normalize(), Some(NormalizeSetting::Auto))
    }

    /// What this section has recorded: the encoding (and the images' standardisation).
    pub(super) fn fitted(&self) -> Option<Fitted> {
        let images = match self.normalize() {
            None => None,
            Some(NormalizeSetting::Fixed(normalize)) => Some(normalize.clone()),
            Some(NormalizeSetting::Auto) => return None,
        };
        let encoding = Box::new(self.encoding.clone()?);
        Some(Fitted::Encoding { encoding, images })
    }

    /// An error when the encoding (or the images' standardisation) is not recorded.
    pub(super) fn check_fitted(&self) -> data_loader::Result<()> {
        self.encoding_or_error()?;
        match self.normalize() {
            Some(normalize) => normalize.fixed(IMAGES_KEY).map(drop),
            None => Ok(()),
        }
    }

    pub(super) fn with_encoding(&self, encoding: &Encoding, normalize: Option<&Normalize>) -> Self {
        let mut args = Self { encoding: Some(encoding.clone()), ..self.clone() };
        if let (Some(images), Some(normalize)) = (&mut args.images, normalize) {
            images.normalize = NormalizeSetting::Fixed(normalize.clone());
        }
        args
    }

    pub(super) fn unstandardised(&self) -> Self {
        Self { raw_inputs: true, ..self.clone() }
    }

    /// The spec the encoding gives: one input per encoded column, and the targets.
    fn spec_of(&self, encoding: &Encoding) -> data_loader::Result<DataSpec> {
        let target = match &encoding.target {
            TargetEncoding::Classes { classes, .. } => Target::Classes(classes.clone()),
            TargetEncoding::Labels { labels, .. } => Target::Labels(labels.clone()),
            TargetEncoding::Values { columns, mean, std } => {
                Target::Values(Values { names: columns.clone(), mean: mean.clone(), std: std.clone() })
            }
        };
        let shape = match &self.images {
            Some(images) => images.format().sample_shape().to_vec(),
            None => vec![encoding.width()],
        };
        DataSpec::with_target(shape, target).map_err(|message| DataError::Table {
            path: self.train.clone(),
            line: None,
            column: None,
            message,
        })
    }

    /// The spec: from the recorded encoding, or fitted on the training table.
    pub(super) fn spec(&self) -> data_loader::Result<DataSpec> {
        match &self.encoding {
            Some(encoding) => self.spec_of(encoding),
            None => self.spec_of(&Encoding::fit(&self.read(&self.train)?, &self.options())?),
        }
    }

    pub(super) fn load_train_val(&self, seed: u64, device: &Device) -> data_loader::Result<Splits> {
        let table = self.read(&self.train)?;
        let (train, val) = match &self.val {
            Some(path) => (table, self.read(path)?),
            None => {
                let (train_idx, val_idx) = data_loader::train_val_indices(table.len(), self.validation_split, seed)?;
                (table.select(&train_idx), table.select(&val_idx))
            }
        };
        let encoding = match &self.encoding {
            Some(recorded) => recorded.clone(),
            None => Encoding::fit(&train, &self.options())?,
        };
        let spec = self.spec_of(&encoding)?;
        let inputs = match &self.images {
            Some(images) => format!("images {:?} from the column {:?}", spec.input_shape, images.column),
            None => format!("{} inputs from {} columns", encoding.width(), encoding.features.len()),
        };
        info!(
            "data: {} rows for training and {} for validation from {}, {inputs}, {}",
            train.len(),
            val.len(),
            self.train.display(),
            spec.target.describe()
        );
        let normalize = self.images.as_ref().map(|images| images.fit(&train, device)).transpose()?;
        let args = self.with_encoding(&encoding, normalize.as_ref());
        Ok(Splits {
            train: args.dataset(&train, &encoding, device)?,
            val: args.dataset(&val, &encoding, device)?,
            spec,
            fitted: Fitted::Encoding { encoding: Box::new(encoding), images: normalize },
        })
    }

    pub(super) fn load_test(&self, spec: &DataSpec, device: &Device) -> data_loader::Result<SplitData> {
        let path = self.test.as_ref().ok_or_else(|| DataError::Table {
            path: self.train.clone(),
            line: None,
            column: None,
            message: "`data_loader.args.test` is null: name a test table to evaluate on it, or use --split val".into(),
        })?;
        let encoding = self.encoding_or_error()?;
        let recorded = self.spec_of(encoding)?;
        if recorded != *spec {
            return Err(DataError::Shape(format!(
                "the config's encoding gives inputs {:?} and {}, but the model was trained on {:?} and {}; use the run's config.json",
                recorded.input_shape,
                recorded.target.describe(),
                spec.input_shape,
                spec.target.describe()
            )));
        }
        self.dataset(&self.read(path)?, encoding, device)
    }

    /// The rows of `table` as the model's inputs `[rows, width]`, standardised unless this is the
    /// unstandardised data of the ONNX path; targets are not read (`predict`'s rows need none).
    pub fn inputs(&self, table: &Table, device: &Device) -> data_loader::Result<Tensor> {
        let encoding = self.encoding_or_error()?;
        encoding.check_columns(table, false)?;
        self.input_tensor(table, encoding, device)
    }

    /// Reads `path` (rows to predict: the input columns, the targets optional).
    pub fn read_rows(&self, path: &Path) -> data_loader::Result<Table> {
        self.read(path)
    }

    fn input_tensor(&self, table: &Table, encoding: &Encoding, device: &Device) -> data_loader::Result<Tensor> {
        Ok(self.inputs_and_black(table, encoding, device)?.0)
    }

    /// The inputs of `table`'s rows, and (for images) each channel's standardised black.
    fn inputs_and_black(
        &self,
        table: &Table,
        encoding: &Encoding,
        device: &Device,
    ) -> data_loader::Result<(Tensor, Vec<f32>)> {
        if let Some(images) = &self.images {
            let normalize =
                if self.raw_inputs { Normalize::identity() } else { images.normalize.fixed(IMAGES_KEY)?.clone() };
            return images.decode(table, &normalize, device);
        }
        let mut inputs = encoding.encode_inputs(table)?;
        if !self.raw_inputs {
            let (mean, std) = encoding.input_mean_std();
            for row in inputs.chunks_mut(mean.len().max(1)) {
                for ((x, m), s) in row.iter_mut().zip(&mean).zip(&std) {
                    *x = (*x - m) / s;
                }
            }
        }
        Ok((Tensor::from_vec(inputs, (table.len(), encoding.width()), device)?, Vec::new()))
    }

    fn dataset(&self, table: &Table, encoding: &Encoding, device: &Device) -> data_loader::Result<SplitData> {
        encoding.check_columns(table, true)?;
        let (inputs, black) = self.inputs_and_black(table, encoding, device)?;
        let (n, width) = (table.len(), encoding.target_names().len());
        let targets = match encoding.encode_targets(table)? {
            Targets::Classes(classes) => Tensor::from_vec(classes, n, device)?,
            Targets::Labels(values) | Targets::Values(values) => Tensor::from_vec(values, (n, width), device)?,
        };
        let dataset = TensorDataset::new(inputs, targets)?;
        Ok(SplitData::InMemory(if black.is_empty() { dataset } else { dataset.with_black(black) }))
    }
}
