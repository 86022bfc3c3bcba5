//! The `mnist` data type: the four IDX files of MNIST, or of any IDX image-classification set
//! (Fashion-MNIST, KMNIST, EMNIST, ...), staged on the device in full.

use std::path::PathBuf;

use candle_core::Device;
use data_loader::{
    Augment, ChannelStats, DataError, Normalize, NormalizeSetting, SplitData, TensorDataset, ValidationSplit, mnist,
};
use model::DataSpec;
use serde::{Deserialize, Serialize};

use super::Splits;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MnistArgs {
    /// Folder with the IDX files (train-images-idx3-ubyte[.gz], ...), relative to where you run.
    pub data_dir: PathBuf,
    pub batch_size: usize,
    pub shuffle: bool,
    /// A fraction of the training files (0.1) or a number of images (6000).
    pub validation_split: ValidationSplit,
    /// `{"mean": m, "std": s}` (MNIST's by default), or `"auto"`: measured on the training split.
    pub normalize: NormalizeSetting,
    /// Random crop (`crop_padding`) and `horizontal_flip` of training images; off by default.
    pub augment: Augment,
    /// Skip the last, smaller batch of each epoch.
    pub drop_last: bool,
    /// Base URLs the `download` subcommand tries in order (the file name is appended).
    pub mirrors: Vec<String>,
    /// The class names, in label order (label 0 is the first). Null: as many classes as the
    /// training labels imply (the largest label + 1), named "0", "1", ... A label outside the
    /// classes is an error naming the file and the index.
    pub classes: Option<Vec<String>>,
    /// `predict` turns an image with a light border (a dark digit drawn on paper) into MNIST's
    /// light-on-dark before classifying it; false: images are used as they are.
    pub invert_light_background: bool,
}

impl Default for MnistArgs {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            batch_size: 64,
            shuffle: true,
            validation_split: ValidationSplit::Fraction(0.1),
            normalize: NormalizeSetting::Fixed(Normalize::uniform(mnist::MEAN, mnist::STD)),
            augment: Augment::default(),
            drop_last: false,
            mirrors: data_loader::default_mirrors(),
            classes: None,
            invert_light_background: true,
        }
    }
}

impl MnistArgs {
    pub(super) fn check(&self) -> Result<(), String> {
        if self.mirrors.iter().any(|m| !(m.starts_with("http://") || m.starts_with("https://"))) {
            return Err(format!("`data_loader.args.mirrors` must be http:// or https:// URLs, got {:?}", self.mirrors));
        }
        if let NormalizeSetting::Fixed(normalize) = &self.normalize {
            normalize.for_channels(1).map_err(|e| format!("{e} (IDX images have one channel)"))?;
        }
        if let Some(classes) = &self.classes {
            // The shape is checked with the data; the names can be checked now.
            DataSpec::new([1, 1, 1], classes.clone()).map_err(|e| format!("`data_loader.args.classes`: {e}"))?;
        }
        Ok(())
    }

    /// The spec of the training files: their sample shape and classes.
    fn spec_of(&self, split: &mnist::MnistSplit) -> data_loader::Result<DataSpec> {
        let classes = match &self.classes {
            Some(names) => names.clone(),
            None => DataSpec::numbered_classes(split.implied_classes()),
        };
        split.check_classes(classes.len())?;
        DataSpec::new(split.sample_shape(), classes)
            .map_err(|e| DataError::Shape(format!("{}: {e}", split.labels_path.display())))
    }

    /// The spec of the training files; without them, MNIST's published shape and classes.
    pub(super) fn spec(&self) -> data_loader::Result<DataSpec> {
        match mnist::load(&self.data_dir, mnist::Split::Train) {
            Ok(split) => self.spec_of(&split),
            Err(DataError::MissingFile { .. }) => {
                let classes = self.classes.clone().unwrap_or_else(|| DataSpec::numbered_classes(mnist::CLASSES));
                DataSpec::new(mnist::SAMPLE_SHAPE, classes).map_err(DataError::Shape)
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn load_train_val(&self, seed: u64, device: &Device) -> data_loader::Result<Splits> {
        let split = mnist::load(&self.data_dir, mnist::Split::Train)?;
        let spec = self.spec_of(&split)?;
        let (train_idx, val_idx) = data_loader::train_val_indices(split.labels.len(), self.validation_split, seed)?;
        let normalize = match &self.normalize {
            NormalizeSetting::Fixed(normalize) => normalize.clone(),
            NormalizeSetting::Auto => {
                let mut stats = ChannelStats::new(1);
                for &i in &train_idx {
                    let image = split
                        .images
                        .image(i as usize)
                        .ok_or(DataError::IndexOutOfRange { index: i, len: split.labels.len() })?;
                    stats.add(image);
                }
                stats.finish()?
            }
        };
        let stage = |indices: &[u32]| TensorDataset::from_mnist(&split, Some(indices), &normalize, device);
        Ok(Splits {
            train: SplitData::InMemory(stage(&train_idx)?),
            val: SplitData::InMemory(stage(&val_idx)?),
            spec,
            fitted: super::Fitted::Normalize(normalize),
        })
    }

    pub(super) fn load_test(&self, spec: &DataSpec, device: &Device) -> data_loader::Result<SplitData> {
        let split = mnist::load(&self.data_dir, mnist::Split::Test)?;
        if split.sample_shape()[..] != spec.input_shape[..] {
            return Err(DataError::Shape(format!(
                "the test images in {} are {:?} but the model was trained on {:?}",
                self.data_dir.display(),
                split.sample_shape(),
                spec.input_shape
            )));
        }
        split.check_classes(spec.outputs())?;
        Ok(SplitData::InMemory(TensorDataset::from_mnist(
            &split,
            None,
            self.normalize.fixed(super::ARGS_KEY)?,
            device,
        )?))
    }
}
