//! The data section of the config (`config.json` `data_loader`): which data type, and loading the
//! splits it names. Each type is one variant here and its loader in its own file (`data/`):
//! `mnist` (IDX files) and `image_folder` (a folder per class). To add one, add a variant, its
//! args struct with `check`, `spec`, `load_train_val` and `load_test`, and a line in each match.

pub mod image_folder;
pub mod mnist;

use std::path::Path;

use candle_core::Device;
use data_loader::{Augment, Channels, DataLoader, Normalize, NormalizeSetting, SplitData, ValidationSplit};
use model::DataSpec;
use serde::{Deserialize, Serialize};

pub use image_folder::ImageFolderArgs;
pub use mnist::MnistArgs;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "args", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataLoaderConfig {
    Mnist(MnistArgs),
    ImageFolder(ImageFolderArgs),
}

/// The training and validation parts of the training data, and what they say a model must take.
pub struct Splits {
    pub train: SplitData,
    pub val: SplitData,
    /// The sample shape and the classes, which the model is built for and every checkpoint records.
    pub spec: DataSpec,
    /// The standardisation both splits were prepared with (for `"auto"`, the measured numbers,
    /// which the run's config.json then records).
    pub normalize: Normalize,
}

/// The settings every data type has, read through [`DataLoaderConfig`]'s accessors.
macro_rules! common {
    ($self:ident, $field:ident) => {
        match $self {
            Self::Mnist(args) => &args.$field,
            Self::ImageFolder(args) => &args.$field,
        }
    };
}

impl DataLoaderConfig {
    /// The `type` in config.json.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mnist(_) => "mnist",
            Self::ImageFolder(_) => "image_folder",
        }
    }

    pub fn data_dir(&self) -> &Path {
        common!(self, data_dir)
    }

    pub fn batch_size(&self) -> usize {
        *common!(self, batch_size)
    }

    pub fn validation_split(&self) -> ValidationSplit {
        *common!(self, validation_split)
    }

    /// `normalize` as configured (numbers, or `"auto"`).
    pub fn normalize(&self) -> &NormalizeSetting {
        common!(self, normalize)
    }

    /// The standardisation of images with `channels` channels, one mean and std per channel;
    /// an error for `"auto"`, whose numbers only a training run's config.json holds.
    pub fn channel_normalize(&self, channels: usize) -> data_loader::Result<Channels> {
        self.normalize().fixed()?.for_channels(channels)
    }

    /// Training-time augmentation (applied by the training loader only).
    pub fn augment(&self) -> Augment {
        *common!(self, augment)
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
        }
        data
    }

    /// Whether training will have validation images: a `val/` folder of an image folder, or a
    /// non-zero `validation_split`.
    pub fn has_validation(&self) -> bool {
        !self.validation_split().is_zero()
            || matches!(self, Self::ImageFolder(args) if args.data_dir.join("val").is_dir())
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.batch_size() == 0 {
            return Err("`data_loader.args.batch_size` must be at least 1".into());
        }
        if let NormalizeSetting::Fixed(normalize) = self.normalize() {
            normalize.validate().map_err(|e| e.to_string())?;
        }
        match self {
            Self::Mnist(args) => args.check(),
            Self::ImageFolder(args) => args.check(),
        }
    }

    /// The spec the training data gives (its sample shape and classes), without loading it all;
    /// for `mnist` without files, MNIST's published one (for `bench`, which needs no data).
    pub fn spec(&self) -> data_loader::Result<DataSpec> {
        match self {
            Self::Mnist(args) => args.spec(),
            Self::ImageFolder(args) => args.spec(),
        }
    }

    /// Load the training data and split it (seeded) into training and validation sets.
    pub fn load_train_val(&self, seed: u64, device: &Device) -> data_loader::Result<Splits> {
        match self {
            Self::Mnist(args) => args.load_train_val(seed, device),
            Self::ImageFolder(args) => args.load_train_val(seed, device),
        }
    }

    /// Load the test split, checked against `spec` (the trained model's): the same image shape
    /// and no label outside its classes.
    pub fn load_test(&self, spec: &DataSpec, device: &Device) -> data_loader::Result<SplitData> {
        match self {
            Self::Mnist(args) => args.load_test(spec, device),
            Self::ImageFolder(args) => args.load_test(spec, device),
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
