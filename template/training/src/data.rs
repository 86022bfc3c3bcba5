//! The data section of the config (`config.json` `data_loader`) and loading the splits it names.

use std::path::PathBuf;

use candle_core::Device;
use data_loader::{DataLoader, Normalize, TensorDataset, ValidationSplit, mnist};
use model::DataSpec;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "args", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataLoaderConfig {
    Mnist(MnistArgs),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MnistArgs {
    /// Folder with the IDX files (train-images-idx3-ubyte[.gz], ...), relative to where you run.
    pub data_dir: PathBuf,
    pub batch_size: usize,
    pub shuffle: bool,
    /// A fraction of the training files (0.1) or a number of images (6000).
    pub validation_split: ValidationSplit,
    pub normalize: Normalize,
    /// Skip the last, smaller batch of each epoch.
    pub drop_last: bool,
    /// Base URLs the `download` subcommand tries in order (the file name is appended).
    pub mirrors: Vec<String>,
    /// The class names, in label order (label 0 is the first). Null: as many classes as the
    /// training labels imply (the largest label + 1), named "0", "1", ... Any IDX classification
    /// set reads this way (Fashion-MNIST, KMNIST, EMNIST, ...); a label outside the classes is an
    /// error naming the file and the index.
    pub classes: Option<Vec<String>>,
}

impl Default for MnistArgs {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            batch_size: 64,
            shuffle: true,
            validation_split: ValidationSplit::Fraction(0.1),
            normalize: Normalize::default(),
            drop_last: false,
            mirrors: data_loader::default_mirrors(),
            classes: None,
        }
    }
}

/// The training and validation parts of the training files, and what they say a model must take.
pub struct Splits {
    pub train: TensorDataset,
    pub val: TensorDataset,
    /// The sample shape and the classes, which the model is built for and every checkpoint records.
    pub spec: DataSpec,
}

impl DataLoaderConfig {
    pub fn args(&self) -> &MnistArgs {
        let Self::Mnist(args) = self;
        args
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        let args = self.args();
        if args.batch_size == 0 {
            return Err("`data_loader.args.batch_size` must be at least 1".into());
        }
        if args.mirrors.iter().any(|m| !(m.starts_with("http://") || m.starts_with("https://"))) {
            return Err(format!("`data_loader.args.mirrors` must be http:// or https:// URLs, got {:?}", args.mirrors));
        }
        if !(args.normalize.std.is_finite() && args.normalize.std > 0.0) {
            return Err(format!("`data_loader.args.normalize.std` must be > 0, got {}", args.normalize.std));
        }
        if let Some(classes) = &args.classes {
            // The shape is checked with the data; the names can be checked now.
            DataSpec::new([1, 1, 1], classes.clone()).map_err(|e| format!("`data_loader.args.classes`: {e}"))?;
        }
        Ok(())
    }

    /// The spec of the training data: its sample shape and classes.
    fn spec_of(&self, split: &mnist::MnistSplit) -> data_loader::Result<DataSpec> {
        let classes = match &self.args().classes {
            Some(names) => names.clone(),
            None => DataSpec::numbered_classes(split.implied_classes()),
        };
        split.check_classes(classes.len())?;
        DataSpec::new(split.sample_shape(), classes).map_err(|e| {
            data_loader::DataError::Shape(format!("{}: {e}", split.labels_path.display()))
        })
    }

    /// The spec the training data would give, read from the training files; without them, the
    /// data type's published shape and classes (for `bench`, which needs no data).
    pub fn spec(&self) -> data_loader::Result<DataSpec> {
        match mnist::load(&self.args().data_dir, mnist::Split::Train) {
            Ok(split) => self.spec_of(&split),
            Err(data_loader::DataError::MissingFile { .. }) => {
                let classes = self.args().classes.clone().unwrap_or_else(|| DataSpec::numbered_classes(mnist::CLASSES));
                DataSpec::new(mnist::SAMPLE_SHAPE, classes).map_err(data_loader::DataError::Shape)
            }
            Err(e) => Err(e),
        }
    }

    /// Load the training files and split them (seeded) into training and validation sets.
    pub fn load_train_val(&self, seed: u64, device: &Device) -> data_loader::Result<Splits> {
        let args = self.args();
        let split = mnist::load(&args.data_dir, mnist::Split::Train)?;
        let spec = self.spec_of(&split)?;
        let (train_idx, val_idx) =
            data_loader::train_val_indices(split.labels.len(), args.validation_split, seed)?;
        Ok(Splits {
            train: TensorDataset::from_mnist(&split, Some(&train_idx), args.normalize, device)?,
            val: TensorDataset::from_mnist(&split, Some(&val_idx), args.normalize, device)?,
            spec,
        })
    }

    /// Load the test files (t10k-*), checked against `spec` (the trained model's): the same image
    /// size and no label outside its classes.
    pub fn load_test(&self, spec: &DataSpec, device: &Device) -> data_loader::Result<TensorDataset> {
        let args = self.args();
        let split = mnist::load(&args.data_dir, mnist::Split::Test)?;
        if split.sample_shape() != spec.input_shape {
            return Err(data_loader::DataError::Shape(format!(
                "the test images in {} are {:?} but the model was trained on {:?}",
                args.data_dir.display(),
                split.sample_shape(),
                spec.input_shape
            )));
        }
        split.check_classes(spec.num_classes())?;
        TensorDataset::from_mnist(&split, None, args.normalize, device)
    }

    /// A loader over `dataset`: shuffled (if configured) for training, in order for evaluation.
    pub fn loader<'a>(
        &self,
        dataset: &'a TensorDataset,
        training: bool,
        seed: u64,
    ) -> data_loader::Result<DataLoader<'a, TensorDataset>> {
        let args = self.args();
        DataLoader::new(dataset, args.batch_size, training && args.shuffle, training && args.drop_last, seed)
    }
}
