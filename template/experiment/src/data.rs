//! The data section of the config (`config.json` `data_loader`): which data type, and loading the
//! splits it names. Each type is one variant here and its loader in its own file (`data/`):
//! `mnist` (IDX files), `image_folder` (a folder per class) and `csv` (a table: classes, labels
//! or values from its columns). To add one, add a variant, its args struct with `check`, `spec`,
//! `load_train_val` and `load_test`, and a line in each match.

pub mod csv;
pub mod image_folder;
pub mod mnist;

use std::path::Path;

use candle_core::Device;
use data_loader::table::Encoding;
use data_loader::{Augment, Channels, DataLoader, Normalize, NormalizeSetting, SplitData, ValidationSplit};
use model::{DataSpec, TaskKind};
use serde::{Deserialize, Serialize};

pub use csv::CsvArgs;
pub use image_folder::ImageFolderArgs;
pub use mnist::MnistArgs;

/// Where an image type's settings (`normalize`, `augment`, ...) sit in config.json, for messages.
const ARGS_KEY: &str = "data_loader.args";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "args", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataLoaderConfig {
    Mnist(MnistArgs),
    ImageFolder(ImageFolderArgs),
    /// Boxed: a table's settings are three times an image source's.
    Csv(Box<CsvArgs>),
}

/// The training and validation parts of the training data, and what they say a model must take.
pub struct Splits {
    pub train: SplitData,
    pub val: SplitData,
    /// The sample shape and the targets, which the model is built for and every checkpoint records.
    pub spec: DataSpec,
    /// What was measured on the training split to prepare both splits (which the run's
    /// config.json then records): the images' standardisation, or a table's encoding.
    pub fitted: Fitted,
}

/// What a data type measures on the training split: per-channel standardisation (images), or a
/// table's encoding (its columns' kinds, categories and standardisation, [`Encoding`]), with its
/// images' standardisation when it names images.
#[derive(Debug, Clone, PartialEq)]
pub enum Fitted {
    Normalize(Normalize),
    /// A table's encoding, and the standardisation of its images when a column names them.
    Encoding {
        encoding: Box<Encoding>,
        images: Option<Normalize>,
    },
}

/// The settings every data type has, read through [`DataLoaderConfig`]'s accessors.
macro_rules! common {
    ($self:ident, $field:ident) => {
        match $self {
            Self::Mnist(args) => &args.$field,
            Self::ImageFolder(args) => &args.$field,
            Self::Csv(args) => &args.$field,
        }
    };
}

impl DataLoaderConfig {
    /// The `type` in config.json.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mnist(_) => "mnist",
            Self::ImageFolder(_) => "image_folder",
            Self::Csv(_) => "csv",
        }
    }

    /// The task the targets make: classification for the image types, as configured for tables.
    pub fn task(&self) -> TaskKind {
        match self {
            Self::Csv(args) => args.task,
            _ => TaskKind::Classification,
        }
    }

    /// Where the data is: the folder of the files (for a table, the training file's folder).
    pub fn data_dir(&self) -> &Path {
        match self {
            Self::Mnist(args) => &args.data_dir,
            Self::ImageFolder(args) => &args.data_dir,
            Self::Csv(args) => args.train.parent().unwrap_or(Path::new(".")),
        }
    }

    /// What the data is, for messages: the folder, or the training table.
    pub fn source(&self) -> String {
        match self {
            Self::Csv(args) => args.train.display().to_string(),
            _ => self.data_dir().display().to_string(),
        }
    }

    pub fn batch_size(&self) -> usize {
        *common!(self, batch_size)
    }

    pub fn validation_split(&self) -> ValidationSplit {
        *common!(self, validation_split)
    }

    /// The images' `normalize` as configured (numbers, or `"auto"`); `None` for a table without
    /// images (its encoding standardises each numeric column).
    pub fn normalize(&self) -> Option<&NormalizeSetting> {
        match self {
            Self::Mnist(args) => Some(&args.normalize),
            Self::ImageFolder(args) => Some(&args.normalize),
            Self::Csv(args) => args.normalize(),
        }
    }

    /// The standardisation of images with `channels` channels, one mean and std per channel;
    /// an error for `"auto"`, whose numbers only a training run's config.json holds.
    pub fn channel_normalize(&self, channels: usize) -> data_loader::Result<Channels> {
        match self {
            Self::Csv(args) => args.input_normalize(),
            _ => self.normalize().expect("image types have normalize").fixed(self.images_key())?.for_channels(channels),
        }
    }

    /// The standardisation of `spec`'s inputs along dimension 1 (per channel of an image, per
    /// input of a table row), which the data loaders apply and the ONNX graph builds in.
    pub fn input_normalize(&self, spec: &DataSpec) -> data_loader::Result<Channels> {
        self.channel_normalize(spec.channels())
    }

    /// Training-time augmentation (applied by the training loader only; none for a table
    /// without images).
    pub fn augment(&self) -> Augment {
        match self {
            Self::Mnist(args) => args.augment,
            Self::ImageFolder(args) => args.augment,
            Self::Csv(args) => args.augment(),
        }
    }

    /// Whether training measures something on the training split that the run's config.json
    /// must then record (`"normalize": "auto"`, a table's encoding).
    pub fn needs_fitting(&self) -> bool {
        match self {
            Self::Csv(args) => args.needs_fitting(),
            _ => matches!(self.normalize(), Some(NormalizeSetting::Auto)),
        }
    }

    /// What this data section has recorded of a training split, if anything.
    pub fn fitted(&self) -> Option<Fitted> {
        match self {
            Self::Csv(args) => args.fitted(),
            _ => match self.normalize() {
                Some(NormalizeSetting::Fixed(n)) => Some(Fitted::Normalize(n.clone())),
                _ => None,
            },
        }
    }

    /// The same data section recording `fitted` (what training measured), as the run's
    /// config.json holds it: evaluate, predict, export and `--resume` then prepare data exactly
    /// as training did.
    pub fn with_fitted(&self, fitted: &Fitted) -> Self {
        match (self, fitted) {
            (Self::Csv(args), Fitted::Encoding { encoding, images }) => {
                Self::Csv(Box::new(args.with_encoding(encoding, images.as_ref())))
            }
            (_, Fitted::Normalize(normalize)) => self.with_normalize(normalize.clone()),
            _ => self.clone(),
        }
    }

    /// An error when evaluation would have to measure again what only training measures: it
    /// says where the recorded numbers are.
    pub fn check_fitted(&self) -> data_loader::Result<()> {
        match self {
            Self::Csv(args) => args.check_fitted(),
            _ => self.normalize().expect("image types have normalize").fixed(self.images_key()).map(|_| ()),
        }
    }

    /// The same data, yielding inputs as the ONNX graph takes them (which standardises them
    /// itself): images with pixels in [0, 1], table rows encoded but not standardised.
    pub fn unstandardised(&self) -> Self {
        match self {
            Self::Csv(args) => Self::Csv(Box::new(args.unstandardised())),
            _ => self.with_normalize(Normalize::identity()),
        }
    }

    /// Whether `predict` inverts a grey image with a light border (an option of the `mnist` type,
    /// whose digits are light on dark; never for the other types).
    pub fn inverts_light_background(&self) -> bool {
        matches!(self, Self::Mnist(args) if args.invert_light_background)
    }

    /// The same data with fixed numbers for standardisation (the ones `"auto"` measured; the ONNX
    /// path, which feeds pixels in [0, 1], uses `Normalize::identity()`).
    pub fn with_normalize(&self, normalize: Normalize) -> Self {
        let mut data = self.clone();
        let setting = NormalizeSetting::Fixed(normalize);
        match &mut data {
            Self::Mnist(args) => args.normalize = setting,
            Self::ImageFolder(args) => args.normalize = setting,
            Self::Csv(args) => {
                if let Some(images) = &mut args.images {
                    images.normalize = setting;
                }
            }
        }
        data
    }

    /// The names of a table's model inputs, in order (`age`, `city=Paris`), from the recorded
    /// encoding; `None` for images (or a table without one).
    pub fn input_names(&self) -> Option<Vec<String>> {
        match self {
            Self::Csv(args) if args.images.is_none() => args.encoding.as_ref().map(Encoding::input_names),
            _ => None,
        }
    }

    /// Whether training will have validation samples: a `val/` folder of an image folder, a
    /// table's `val` file, or a non-zero `validation_split`.
    pub fn has_validation(&self) -> bool {
        !self.validation_split().is_zero()
            || matches!(self, Self::ImageFolder(args) if args.data_dir.join("val").is_dir())
            || matches!(self, Self::Csv(args) if args.val.is_some())
    }

    /// Where the image settings (`normalize`, `augment`) sit in config.json, for messages.
    fn images_key(&self) -> &'static str {
        match self {
            Self::Csv(_) => csv::IMAGES_KEY,
            _ => ARGS_KEY,
        }
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.batch_size() == 0 {
            return Err("`data_loader.args.batch_size` must be at least 1".into());
        }
        self.validation_split().check()?;
        if let Some(NormalizeSetting::Fixed(normalize)) = self.normalize() {
            normalize.validate().map_err(|e| format!("`{}.normalize`: {e}", self.images_key()))?;
        }
        match self {
            Self::Mnist(args) => args.check(),
            Self::ImageFolder(args) => args.check(),
            Self::Csv(args) => args.check(),
        }
    }

    /// The spec the training data gives (its sample shape and targets), without loading it all;
    /// for `mnist` without files, MNIST's published one (for `bench`, which needs no data).
    pub fn spec(&self) -> data_loader::Result<DataSpec> {
        match self {
            Self::Mnist(args) => args.spec(),
            Self::ImageFolder(args) => args.spec(),
            Self::Csv(args) => args.spec(),
        }
    }

    /// Load the training data and split it (seeded) into training and validation sets.
    pub fn load_train_val(&self, seed: u64, device: &Device) -> data_loader::Result<Splits> {
        let splits = match self {
            Self::Mnist(args) => args.load_train_val(seed, device)?,
            Self::ImageFolder(args) => args.load_train_val(seed, device)?,
            Self::Csv(args) => args.load_train_val(seed, device)?,
        };
        if let Some([_, height, width]) = splits.spec.image_shape() {
            let key = format!("{}.augment", self.images_key());
            self.augment().check(&key, height, width).map_err(data_loader::DataError::InvalidLoader)?;
        }
        Ok(splits)
    }

    /// Load the test split, checked against `spec` (the trained model's): the same sample shape
    /// and no target outside its classes or labels.
    pub fn load_test(&self, spec: &DataSpec, device: &Device) -> data_loader::Result<SplitData> {
        match self {
            Self::Mnist(args) => args.load_test(spec, device),
            Self::ImageFolder(args) => args.load_test(spec, device),
            Self::Csv(args) => args.load_test(spec, device),
        }
    }

    /// A loader over `dataset`: shuffled and augmented (as configured) for training, in order and as
    /// it is for evaluation.
    pub fn loader<'a>(
        &self,
        dataset: &'a SplitData,
        training: bool,
        seed: u64,
    ) -> data_loader::Result<DataLoader<'a, SplitData>> {
        let (shuffle, drop_last) = (*common!(self, shuffle), *common!(self, drop_last));
        let loader = DataLoader::new(dataset, self.batch_size(), training && shuffle, training && drop_last, seed)?;
        Ok(if training { loader.with_augment(self.augment()) } else { loader })
    }
}
