//! What a dataset is to the training loop (the [`Dataset`] trait: a length, a device, and gathering a
//! batch by indices), the pixel normalisation, and [`TensorDataset`], a split staged on the device once.

use std::borrow::Cow;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::mnist::MnistSplit;

/// Mean of MNIST training pixels after scaling to [0, 1].
pub const MNIST_MEAN: f32 = 0.1307;
/// Standard deviation of MNIST training pixels after scaling to [0, 1].
pub const MNIST_STD: f32 = 0.3081;

/// Pixel standardisation `(pixel / 255 - mean) / std`, so inputs are roughly zero-mean, unit-variance,
/// which keeps early activations and gradients in a range the default initialisations expect.
/// Missing fields in a config take the MNIST defaults; unknown fields are an error.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Normalize {
    pub mean: f32,
    pub std: f32,
}

impl Default for Normalize {
    fn default() -> Self {
        Self {
            mean: MNIST_MEAN,
            std: MNIST_STD,
        }
    }
}

impl Normalize {
    /// No standardisation: pixels scaled to [0, 1] only.
    pub const IDENTITY: Normalize = Normalize {
        mean: 0.0,
        std: 1.0,
    };

    /// Refuses constants that would turn every pixel into NaN or infinity.
    pub fn validate(&self) -> Result<()> {
        if !self.mean.is_finite() || !self.std.is_finite() || self.std <= 0.0 {
            return Err(DataError::InvalidNormalize(format!(
                "mean {} and std {}: the mean must be finite and the std finite and > 0",
                self.mean, self.std
            )));
        }
        Ok(())
    }

    /// The normalised value of one raw pixel.
    pub fn apply(&self, pixel: u8) -> f32 {
        (f32::from(pixel) / 255.0 - self.mean) / self.std
    }

    fn table(&self) -> [f32; 256] {
        std::array::from_fn(|p| self.apply(p as u8))
    }
}

/// A source of labelled samples the training loop can batch from.
pub trait Dataset {
    /// Number of samples.
    fn len(&self) -> usize;

    /// Whether there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Gather the samples at `indices` (a u32 tensor on the dataset's device) into
    /// (images `[b, 1, rows, cols]` f32, labels `[b]` u32).
    fn batch(&self, indices: &Tensor) -> candle_core::Result<(Tensor, Tensor)>;

    /// Where the batches live; index tensors must be created here.
    fn device(&self) -> &Device;

    /// Told an epoch's batches (sample indices, in order) before the first is asked for, so a
    /// dataset that reads from disk can start preparing them. In memory there is nothing to do.
    fn prepare(&self, _batches: Vec<Vec<u32>>) {}
}

/// The whole split staged on the device once as one tensor; batches are `index_select` slices of it
/// (fast, no per-step host copies). MNIST's 60,000 images take 188 MB as f32.
#[derive(Clone, Debug)]
pub struct TensorDataset {
    /// `[n, 1, rows, cols]` f32, normalised.
    images: Tensor,
    /// `[n]` u32.
    labels: Tensor,
}

impl TensorDataset {
    /// Stages the samples of `split` at `indices` (all of them, in order, when `None`) on `device`,
    /// each pixel mapped to `(pixel / 255 - mean) / std`.
    pub fn from_mnist(
        split: &MnistSplit,
        indices: Option<&[u32]>,
        normalize: Normalize,
        device: &Device,
    ) -> Result<Self> {
        normalize.validate()?;
        let images = &split.images;
        let n = split.labels.len();
        let expected_pixels = images.count.checked_mul(images.pixels_per_image());
        if images.count != n || expected_pixels != Some(images.pixels.len()) {
            return Err(DataError::Shape(format!(
                "MNIST split has {} labels and {} images of {}x{} in {} pixels",
                n,
                images.count,
                images.rows,
                images.cols,
                images.pixels.len()
            )));
        }
        let indices: Cow<[u32]> = match indices {
            Some(indices) => Cow::Borrowed(indices),
            None => {
                let n = u32::try_from(n).map_err(|_| {
                    DataError::Shape(format!("{n} samples is more than u32 indices can address"))
                })?;
                Cow::Owned((0..n).collect())
            }
        };
        let table = normalize.table();
        let mut pixels = Vec::with_capacity(indices.len() * images.pixels_per_image());
        let mut labels = Vec::with_capacity(indices.len());
        for &index in indices.iter() {
            let (image, &label) = images
                .image(index as usize)
                .zip(split.labels.get(index as usize))
                .ok_or(DataError::IndexOutOfRange { index, len: n })?;
            pixels.extend(image.iter().map(|&p| table[usize::from(p)]));
            labels.push(u32::from(label));
        }
        let count = labels.len();
        let images = Tensor::from_vec(pixels, (count, 1, images.rows, images.cols), device)?;
        let labels = Tensor::from_vec(labels, count, device)?;
        Self::new(images, labels)
    }

    /// Wraps tensors already prepared: images `[n, c, rows, cols]` f32 and labels `[n]` u32 on one device.
    pub fn new(images: Tensor, labels: Tensor) -> Result<Self> {
        let problem = if images.rank() != 4 || images.dtype() != DType::F32 {
            Some(format!(
                "images must be [n, channels, rows, cols] f32, got {:?} {:?}",
                images.dims(),
                images.dtype()
            ))
        } else if labels.rank() != 1 || labels.dtype() != DType::U32 {
            Some(format!(
                "labels must be [n] u32, got {:?} {:?}",
                labels.dims(),
                labels.dtype()
            ))
        } else if images.dims()[0] != labels.dims()[0] {
            Some(format!(
                "{} images but {} labels",
                images.dims()[0],
                labels.dims()[0]
            ))
        } else if !images.device().same_device(labels.device()) {
            Some(format!(
                "images on {:?} but labels on {:?}",
                images.device().location(),
                labels.device().location()
            ))
        } else {
            None
        };
        match problem {
            Some(problem) => Err(DataError::Shape(problem)),
            None => Ok(Self { images, labels }),
        }
    }

    /// All images, `[n, 1, rows, cols]` f32.
    pub fn images(&self) -> &Tensor {
        &self.images
    }

    /// All labels, `[n]` u32.
    pub fn labels(&self) -> &Tensor {
        &self.labels
    }
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        self.labels.dims()[0]
    }

    fn batch(&self, indices: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        Ok((
            self.images.index_select(indices, 0)?,
            self.labels.index_select(indices, 0)?,
        ))
    }

    fn device(&self) -> &Device {
        self.images.device()
    }
}
