//! A split read from image files as training goes, for data sets larger than memory: worker
//! threads decode the next batches of the epoch while the model trains on the current one,
//! through a bounded queue, so the step waits on the disk only when decoding is slower than
//! training. Memory holds at most `prefetch` decoded batches.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::augment::EpochAugment;
use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::image_folder::ImageFormat;
use crate::normalize::Normalize;

/// One decoded batch: the indices and augmentation it was made with (to check it is the one asked
/// for), pixels, labels.
type Decoded = (Vec<u32>, Option<EpochAugment>, std::result::Result<(Vec<f32>, Vec<u32>), String>);

/// The files of a split, decoded on demand and ahead of demand.
pub struct StreamedDataset {
    shared: Arc<Shared>,
    device: Device,
    prefetch: usize,
    queue: Mutex<Option<Receiver<Decoded>>>,
}

struct Shared {
    files: Vec<(PathBuf, u32)>,
    format: ImageFormat,
    /// Per channel, pixel byte -> normalised value.
    tables: Vec<[f32; 256]>,
    /// Each channel's standardised black, which augmentation pads with.
    black: Vec<f32>,
    pool: rayon::ThreadPool,
}

impl StreamedDataset {
    /// A dataset over `files` (`(path, label)`), decoded by `workers` threads with up to
    /// `prefetch` batches ready ahead of the training step.
    pub fn new(
        files: Vec<(PathBuf, u32)>,
        format: ImageFormat,
        normalize: &Normalize,
        workers: usize,
        prefetch: usize,
        device: &Device,
    ) -> Result<Self> {
        let tables = normalize.for_channels(format.channels)?.tables();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers.max(1))
            .thread_name(|i| format!("decode-{i}"))
            .build()
            .map_err(|e| DataError::InvalidLoader(format!("cannot start {workers} decoding threads: {e}")))?;
        let black = tables.iter().map(|t| t[0]).collect();
        let shared = Arc::new(Shared { files, format, tables, black, pool });
        Ok(Self { shared, device: device.clone(), prefetch: prefetch.max(1), queue: Mutex::new(None) })
    }

    /// Decodes the samples at `indices` (in parallel on the worker threads), standardised and,
    /// with `augment`, augmented.
    pub fn decode(&self, indices: &[u32], augment: Option<&EpochAugment>) -> Result<(Vec<f32>, Vec<u32>)> {
        self.shared.decode(indices, augment)
    }

    /// Calls `each` with the raw bytes (channel by channel) of the samples at `indices`, in order,
    /// decoding them on the worker threads a few hundred at a time.
    pub fn for_each_raw(&self, indices: &[u32], mut each: impl FnMut(&[u8])) -> Result<()> {
        for chunk in indices.chunks(256) {
            for bytes in self.shared.decode_raw(chunk) {
                each(&bytes?.0);
            }
        }
        Ok(())
    }

    /// The images, their labels and how each is decoded.
    pub fn files(&self) -> &[(PathBuf, u32)] {
        &self.shared.files
    }

    pub fn format(&self) -> ImageFormat {
        self.shared.format
    }

    fn to_tensors(&self, pixels: Vec<f32>, labels: Vec<u32>) -> candle_core::Result<(Tensor, Tensor)> {
        let [c, h, w] = self.shared.format.sample_shape();
        let n = labels.len();
        Ok((Tensor::from_vec(pixels, (n, c, h, w), &self.device)?, Tensor::from_vec(labels, n, &self.device)?))
    }
}

impl Shared {
    fn read(&self, i: u32) -> Result<(Vec<u8>, u32)> {
        let (path, label) =
            self.files.get(i as usize).ok_or(DataError::IndexOutOfRange { index: i, len: self.files.len() })?;
        let mut bytes = Vec::with_capacity(self.format.sample_len());
        self.format.decode_into(path, &mut bytes)?;
        Ok((bytes, *label))
    }

    fn decode_raw(&self, indices: &[u32]) -> Vec<Result<(Vec<u8>, u32)>> {
        self.pool.install(|| indices.par_iter().map(|&i| self.read(i)).collect())
    }

    /// Decoding, standardising and augmenting each sample on the worker threads.
    fn decode(&self, indices: &[u32], augment: Option<&EpochAugment>) -> Result<(Vec<f32>, Vec<u32>)> {
        let shape = self.format.sample_shape();
        let plane = shape[1] * shape[2];
        let decoded: Vec<Result<(Vec<f32>, u32)>> = self.pool.install(|| {
            indices
                .par_iter()
                .map(|&i| {
                    let (bytes, label) = self.read(i)?;
                    let mut values: Vec<f32> =
                        bytes.iter().enumerate().map(|(k, &b)| self.tables[k / plane][usize::from(b)]).collect();
                    if let Some(augment) = augment {
                        augment.apply(i, &mut values, shape, &self.black);
                    }
                    Ok((values, label))
                })
                .collect()
        });
        let mut pixels = Vec::with_capacity(indices.len() * self.format.sample_len());
        let mut labels = Vec::with_capacity(indices.len());
        for sample in decoded {
            let (values, label) = sample?;
            pixels.extend_from_slice(&values);
            labels.push(label);
        }
        Ok((pixels, labels))
    }

    /// Decode `batches` in order into `sender`; stops when the receiver is gone (the epoch ended
    /// or a new one began).
    fn produce(&self, batches: Vec<Vec<u32>>, augment: Option<EpochAugment>, sender: SyncSender<Decoded>) {
        for indices in batches {
            let result = self.decode(&indices, augment.as_ref()).map_err(|e| e.to_string());
            if sender.send((indices, augment, result)).is_err() {
                return;
            }
        }
    }
}

impl Dataset for StreamedDataset {
    fn len(&self) -> usize {
        self.shared.files.len()
    }

    /// Starts decoding `batches` (the epoch's, in order) on a background thread.
    fn prepare(&self, batches: Vec<Vec<u32>>, augment: Option<EpochAugment>) {
        let (sender, receiver) = sync_channel(self.prefetch);
        let shared = Arc::clone(&self.shared);
        std::thread::Builder::new()
            .name("prefetch".into())
            .spawn(move || shared.produce(batches, augment, sender))
            .expect("a thread can be started");
        // Replacing the receiver ends the previous epoch's producer at its next send.
        *self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(receiver);
    }

    fn batch(&self, indices: &Tensor, augment: Option<&EpochAugment>) -> candle_core::Result<(Tensor, Tensor)> {
        let wanted = indices.to_vec1::<u32>()?;
        let prepared = {
            let queue = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            queue.as_ref().and_then(|q| q.recv().ok())
        };
        let (pixels, labels) = match prepared {
            Some((got, made_with, result)) if got == wanted && made_with.as_ref() == augment => {
                result.map_err(candle_core::Error::Msg)?
            }
            // Not prepared (or out of step): decode here.
            _ => self.decode(&wanted, augment).map_err(|e| candle_core::Error::Msg(e.to_string()))?,
        };
        self.to_tensors(pixels, labels)
    }

    fn device(&self) -> &Device {
        &self.device
    }
}

/// A split as the training loop uses it: staged on the device in full, or streamed from files.
pub enum SplitData {
    InMemory(crate::TensorDataset),
    Streamed(StreamedDataset),
}

impl Dataset for SplitData {
    fn len(&self) -> usize {
        match self {
            Self::InMemory(d) => d.len(),
            Self::Streamed(d) => d.len(),
        }
    }

    fn batch(&self, indices: &Tensor, augment: Option<&EpochAugment>) -> candle_core::Result<(Tensor, Tensor)> {
        match self {
            Self::InMemory(d) => d.batch(indices, augment),
            Self::Streamed(d) => d.batch(indices, augment),
        }
    }

    fn device(&self) -> &Device {
        match self {
            Self::InMemory(d) => d.device(),
            Self::Streamed(d) => d.device(),
        }
    }

    fn prepare(&self, batches: Vec<Vec<u32>>, augment: Option<EpochAugment>) {
        match self {
            Self::InMemory(d) => d.prepare(batches, augment),
            Self::Streamed(d) => d.prepare(batches, augment),
        }
    }
}
