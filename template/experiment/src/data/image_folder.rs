//! The `image_folder` data type: `data_dir/train/<class>/<image>` (PNG, JPEG, BMP), with optional
//! `val/` and `test/` beside it (see `data_loader::image_folder` for the layout rules). Without
//! `val/`, `validation_split` of `train/` is held out. Small sets are decoded once and kept in
//! memory; larger ones are streamed from disk by worker threads (`cache`).

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use data_loader::image_folder::{self, ImageFormat, Listing};
use data_loader::{
    Augment, ChannelStats, DataError, Normalize, NormalizeSetting, SplitData, StreamedDataset, TensorDataset,
    ValidationSplit,
};
use model::DataSpec;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::Splits;

/// A data set kept in memory under `"cache": "auto"` when its decoded pixels take at most this.
pub const AUTO_CACHE_BYTES: usize = 512 << 20;
/// `"normalize": "auto"` measures at most this many training images, evenly spaced through the
/// listing (which is sorted by class), so every class counts and a huge set costs seconds.
pub const AUTO_NORMALIZE_IMAGES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageFolderArgs {
    /// The folder holding `train/` (and optionally `val/`, `test/`), relative to where you run.
    pub data_dir: PathBuf,
    /// `[height, width]` every image is resized to (its aspect ratio is not kept), or one number
    /// for square images.
    pub image_size: ImageSize,
    /// 1 (images converted to grey) or 3 (RGB).
    pub channels: usize,
    pub batch_size: usize,
    pub shuffle: bool,
    /// The part of `train/` held out for validation when there is no `val/` folder.
    pub validation_split: ValidationSplit,
    /// `"auto"` (the default: per-channel mean and std measured on `train/`), or the numbers,
    /// `{"mean": [r, g, b], "std": [r, g, b]}` (or one number for every channel).
    pub normalize: NormalizeSetting,
    /// Random crop (`crop_padding`) and `horizontal_flip` of training images; off by default.
    pub augment: Augment,
    pub drop_last: bool,
    /// Leave out (and count in the log) images whose header cannot be read, instead of stopping.
    pub skip_unreadable: bool,
    /// `"auto"`: in memory up to 512 MiB of decoded pixels, else streamed; `"memory"`; `"stream"`.
    pub cache: Cache,
    /// Threads decoding images (for streaming, and for filling the cache).
    pub workers: usize,
    /// Decoded batches kept ready ahead of the training step while streaming.
    pub prefetch: usize,
}

impl Default for ImageFolderArgs {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            image_size: ImageSize::HeightWidth([32, 32]),
            channels: 3,
            batch_size: 64,
            shuffle: true,
            validation_split: ValidationSplit::Fraction(0.1),
            normalize: NormalizeSetting::Auto,
            augment: Augment::default(),
            drop_last: false,
            skip_unreadable: false,
            cache: Cache::Auto,
            workers: 2,
            prefetch: 4,
        }
    }
}

/// `[height, width]`, or one number for both.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImageSize {
    Square(usize),
    HeightWidth([usize; 2]),
}

impl ImageSize {
    pub fn height_width(self) -> (usize, usize) {
        match self {
            Self::Square(side) => (side, side),
            Self::HeightWidth([h, w]) => (h, w),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cache {
    Auto,
    Memory,
    Stream,
}

impl ImageFolderArgs {
    pub(super) fn check(&self) -> Result<(), String> {
        check_format(super::ARGS_KEY, self.image_size, self.channels, &self.normalize)?;
        if self.workers == 0 || self.prefetch == 0 {
            return Err("`data_loader.args.workers` and `data_loader.args.prefetch` must be at least 1".into());
        }
        Ok(())
    }

    fn format(&self) -> ImageFormat {
        ImageFormat { channels: self.channels, size: self.image_size.height_width() }
    }

    fn list(&self, split: &str, classes: &[String]) -> data_loader::Result<Listing> {
        let listing = image_folder::list(&self.data_dir, split, classes, self.skip_unreadable)?;
        if listing.not_images > 0 {
            info!("{split}/: skipped {} files that are not PNG, JPEG or BMP images", listing.not_images);
        }
        if !listing.unreadable.is_empty() {
            warn!(
                "{split}/: skipped {} unreadable images (skip_unreadable), the first {}",
                listing.unreadable.len(),
                listing.unreadable[0].display()
            );
        }
        Ok(listing)
    }

    /// The classes (folder names of `train/`) and the configured sample shape.
    pub(super) fn spec(&self) -> data_loader::Result<DataSpec> {
        let classes = image_folder::classes(&self.data_dir)?;
        DataSpec::new(self.format().sample_shape(), classes)
            .map_err(|problem| DataError::Layout { path: self.data_dir.join("train"), problem })
    }

    pub(super) fn load_train_val(&self, seed: u64, device: &Device) -> data_loader::Result<Splits> {
        let spec = self.spec()?;
        let train = self.list("train", spec.classes())?;
        let (train_files, val_files) = if self.data_dir.join("val").is_dir() {
            (train.files, self.list("val", spec.classes())?.files)
        } else {
            let (train_idx, val_idx) = data_loader::train_val_indices(train.files.len(), self.validation_split, seed)?;
            let pick = |idx: &[u32]| idx.iter().map(|&i| train.files[i as usize].clone()).collect::<Vec<_>>();
            (pick(&train_idx), pick(&val_idx))
        };
        info!("data: {} classes from {}", spec.outputs(), self.data_dir.join("train").display());
        let normalize = match &self.normalize {
            NormalizeSetting::Fixed(normalize) => normalize.clone(),
            NormalizeSetting::Auto => measure(&train_files, self.format(), self.workers, device)?,
        };
        Ok(Splits {
            train: self.dataset(train_files, &normalize, device)?,
            val: self.dataset(val_files, &normalize, device)?,
            spec,
            fitted: super::Fitted::Normalize(normalize),
        })
    }

    pub(super) fn load_test(&self, spec: &DataSpec, device: &Device) -> data_loader::Result<SplitData> {
        if self.format().sample_shape()[..] != spec.input_shape[..] {
            return Err(DataError::Shape(format!(
                "`data_loader.args` gives images {:?} (channels, image_size) but the model was trained on {:?}",
                self.format().sample_shape(),
                spec.input_shape
            )));
        }
        let test = self.data_dir.join("test");
        if !test.is_dir() {
            return Err(DataError::Layout {
                path: test,
                problem: "no such folder: put test images in test/<class>/, or evaluate with --split val".into(),
            });
        }
        self.dataset(self.list("test", spec.classes())?.files, self.normalize.fixed(super::ARGS_KEY)?, device)
    }

    /// The files as a dataset: decoded once into memory, or streamed.
    fn dataset(
        &self,
        files: Vec<(PathBuf, u32)>,
        normalize: &Normalize,
        device: &Device,
    ) -> data_loader::Result<SplitData> {
        let format = self.format();
        let streamed = StreamedDataset::new(files, format, normalize, self.workers, self.prefetch, device)?;
        let bytes = streamed.files().len() * format.sample_len() * std::mem::size_of::<f32>();
        let in_memory = match self.cache {
            Cache::Memory => true,
            Cache::Stream => false,
            Cache::Auto => bytes <= AUTO_CACHE_BYTES,
        };
        if !in_memory {
            info!("streaming {} images from disk ({} MiB decoded)", streamed.files().len(), bytes >> 20);
            return Ok(SplitData::Streamed(streamed));
        }
        let (images, labels) = decode_all(&streamed)?;
        let black = normalize.for_channels(format.channels)?.black();
        Ok(SplitData::InMemory(TensorDataset::new(images, labels)?.with_black(black)))
    }
}

/// Checks the image settings under `key` (`data_loader.args`, or `data_loader.args.images` of a
/// table naming images): a size of at least 1x1, 1 or 3 channels, a mean and std per channel.
pub(super) fn check_format(
    key: &str,
    size: ImageSize,
    channels: usize,
    normalize: &NormalizeSetting,
) -> Result<(), String> {
    let (h, w) = size.height_width();
    if h == 0 || w == 0 {
        return Err(format!("`{key}.image_size` must be at least 1x1, got {h}x{w}"));
    }
    if channels != 1 && channels != 3 {
        return Err(format!("`{key}.channels` must be 1 (grey) or 3 (RGB), got {channels}"));
    }
    if let NormalizeSetting::Fixed(normalize) = normalize {
        normalize.for_channels(channels).map_err(|e| format!("`{key}.normalize`: {e}"))?;
    }
    Ok(())
}

/// The per-channel mean and std of (up to [`AUTO_NORMALIZE_IMAGES`] of) `files`, spread evenly.
pub(super) fn measure(
    files: &[(PathBuf, u32)],
    format: ImageFormat,
    workers: usize,
    device: &Device,
) -> data_loader::Result<Normalize> {
    let stride = files.len().div_ceil(AUTO_NORMALIZE_IMAGES).max(1);
    let picked: Vec<u32> = (0..files.len()).step_by(stride).map(|i| i as u32).collect();
    let reader = StreamedDataset::new(files.to_vec(), format, &Normalize::identity(), workers, 1, device)?;
    let mut stats = ChannelStats::new(format.channels);
    reader.for_each_raw(&picked, |bytes| stats.add(bytes))?;
    let normalize = stats.finish()?;
    info!("normalize \"auto\": measured on {} training images: {}", picked.len(), serde_json::json!(normalize));
    Ok(normalize)
}

/// Every image of `streamed` decoded (on its worker threads) into one tensor `[n, c, h, w]`,
/// with their labels `[n]`.
pub(super) fn decode_all(streamed: &StreamedDataset) -> data_loader::Result<(Tensor, Tensor)> {
    let all: Vec<u32> = (0..streamed.files().len() as u32).collect();
    let (pixels, labels) = streamed.decode(&all, None)?;
    let [c, h, w] = streamed.format().sample_shape();
    let n = labels.len();
    let device = data_loader::Dataset::device(streamed);
    Ok((Tensor::from_vec(pixels, (n, c, h, w), device)?, Tensor::from_vec(labels, n, device)?))
}
