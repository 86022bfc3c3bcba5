//! A table whose rows name image files (`"images": {"column": "file", ...}`): each row's input is
//! its image, prepared as the `image_folder` type prepares images (resized to `image_size`,
//! converted to `channels`, standardised per channel, augmented in training), and its targets are
//! the table's (a class, labels or values). Paths are relative to the folder of the CSV file that
//! names them. The decoded images are kept in memory.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use data_loader::image_folder::ImageFormat;
use data_loader::table::Table;
use data_loader::{Augment, DataError, Normalize, NormalizeSetting, StreamedDataset};
use serde::{Deserialize, Serialize};

use super::super::image_folder::{ImageSize, check_format, decode_all, measure};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsvImages {
    /// The column naming each row's image file (PNG, JPEG or BMP), relative to the CSV's folder.
    pub column: String,
    /// `[height, width]` every image is resized to, or one number for square images.
    pub image_size: ImageSize,
    /// 1 (images converted to grey) or 3 (RGB).
    pub channels: usize,
    /// `"auto"` (per-channel mean and std measured on the training rows' images, recorded in the
    /// run's config.json), or `{"mean": [...], "std": [...]}`.
    pub normalize: NormalizeSetting,
    /// Random crop (`crop_padding`) and `horizontal_flip` of training images; off by default.
    pub augment: Augment,
    /// Threads decoding images.
    pub workers: usize,
}

impl Default for CsvImages {
    fn default() -> Self {
        Self {
            column: "image".into(),
            image_size: ImageSize::HeightWidth([32, 32]),
            channels: 3,
            normalize: NormalizeSetting::Auto,
            augment: Augment::default(),
            workers: 2,
        }
    }
}

impl CsvImages {
    pub(super) fn check(&self) -> Result<(), String> {
        check_format(super::IMAGES_KEY, self.image_size, self.channels, &self.normalize)?;
        if self.column.is_empty() {
            return Err("`data_loader.args.images.column` is empty; name the column of image files".into());
        }
        if self.workers == 0 {
            return Err("`data_loader.args.images.workers` must be at least 1".into());
        }
        Ok(())
    }

    pub(super) fn format(&self) -> ImageFormat {
        ImageFormat { channels: self.channels, size: self.image_size.height_width() }
    }

    /// The image file of every row of `table`, each checked to exist: a missing one is an error
    /// naming the table, its line and the column.
    pub(super) fn files(&self, table: &Table) -> data_loader::Result<Vec<(PathBuf, u32)>> {
        let column = table.column(&self.column).map_err(|e| match e {
            DataError::Table { path, line, column, message } => DataError::Table {
                path,
                line,
                column,
                message: format!("{message}; `data_loader.args.images.column` names the column of image files"),
            },
            other => other,
        })?;
        let folder = table.path().parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        (0..table.len())
            .map(|row| {
                let named = table.field(row, column);
                let missing = |message: String| DataError::Table {
                    path: table.path().to_path_buf(),
                    line: Some(table.line(row)),
                    column: Some(self.column.clone()),
                    message,
                };
                if named.is_empty() {
                    return Err(missing("names no image file; give every row an image".into()));
                }
                let path = folder.join(named);
                if !path.is_file() {
                    return Err(missing(format!(
                        "names the image {}, which does not exist (paths are relative to the CSV's folder, {})",
                        path.display(),
                        folder.display()
                    )));
                }
                Ok((path, 0))
            })
            .collect()
    }

    /// The configured standardisation, or (`"auto"`) the one measured on `train`'s images.
    pub(super) fn fit(&self, train: &Table, device: &Device) -> data_loader::Result<Normalize> {
        match &self.normalize {
            NormalizeSetting::Fixed(normalize) => Ok(normalize.clone()),
            NormalizeSetting::Auto => measure(&self.files(train)?, self.format(), self.workers, device),
        }
    }

    /// The images of `table`'s rows `[rows, channels, height, width]`, standardised with
    /// `normalize`, and each channel's standardised black (which augmentation pads with).
    pub(super) fn decode(
        &self,
        table: &Table,
        normalize: &Normalize,
        device: &Device,
    ) -> data_loader::Result<(Tensor, Vec<f32>)> {
        let streamed = StreamedDataset::new(self.files(table)?, self.format(), normalize, self.workers, 1, device)?;
        let (images, _) = decode_all(&streamed)?;
        Ok((images, normalize.for_channels(self.channels)?.black()))
    }
}
