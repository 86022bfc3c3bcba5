//! A split read from image files as training goes, for data sets larger than memory: worker
//! threads decode the next batches of the epoch while the model trains on the current one,
//! through a bounded queue, so the step waits on the disk only when decoding is slower than
//! training. Memory holds at most `prefetch` decoded batches.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::dataset::{Dataset, Normalize};
use crate::error::{DataError, Result};
use crate::image_folder::ImageFormat;

/// One decoded batch: the indices it holds (to check it is the one asked for), pixels, labels.
type Decoded = (Vec<u32>, std::result::Result<(Vec<f32>, Vec<u32>), String>);

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
    /// Pixel byte -> normalised value.
    table: [f32; 256],
    pool: rayon::ThreadPool,
}

impl StreamedDataset {
    /// A dataset over `files` (`(path, label)`), decoded by `workers` threads with up to
    /// `prefetch` batches ready ahead of the training step.
    pub fn new(
        files: Vec<(PathBuf, u32)>,
        format: ImageFormat,
        normalize: Normalize,
        workers: usize,
        prefetch: usize,
        device: &Device,
    ) -> Result<Self> {
        normalize.validate()?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers.max(1))
            .thread_name(|i| format!("decode-{i}"))
            .build()
            .map_err(|e| DataError::InvalidLoader(format!("cannot start {workers} decoding threads: {e}")))?;
        let table = std::array::from_fn(|p| normalize.apply(p as u8));
        let shared = Arc::new(Shared { files, format, table, pool });
        Ok(Self { shared, device: device.clone(), prefetch: prefetch.max(1), queue: Mutex::new(None) })
    }

    /// Decodes the samples at `indices` (in parallel on the worker threads).
    pub fn decode(&self, indices: &[u32]) -> Result<(Vec<f32>, Vec<u32>)> {
        self.shared.decode(indices)
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
    fn decode(&self, indices: &[u32]) -> Result<(Vec<f32>, Vec<u32>)> {
        let per_sample = self.format.sample_len();
        let decoded: Vec<Result<(Vec<u8>, u32)>> = self.pool.install(|| {
            indices
                .par_iter()
                .map(|&i| {
                    let (path, label) = self
                        .files
                        .get(i as usize)
                        .ok_or(DataError::IndexOutOfRange { index: i, len: self.files.len() })?;
                    let mut bytes = Vec::with_capacity(per_sample);
                    self.format.decode_into(path, &mut bytes)?;
                    Ok((bytes, *label))
                })
                .collect()
        });
        let mut pixels = Vec::with_capacity(indices.len() * per_sample);
        let mut labels = Vec::with_capacity(indices.len());
        for sample in decoded {
            let (bytes, label) = sample?;
            pixels.extend(bytes.iter().map(|&b| self.table[usize::from(b)]));
            labels.push(label);
        }
        Ok((pixels, labels))
    }

    /// Decode `batches` in order into `sender`; stops when the receiver is gone (the epoch ended
    /// or a new one began).
    fn produce(&self, batches: Vec<Vec<u32>>, sender: SyncSender<Decoded>) {
        for indices in batches {
            let result = self.decode(&indices).map_err(|e| e.to_string());
            if sender.send((indices, result)).is_err() {
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
    fn prepare(&self, batches: Vec<Vec<u32>>) {
        let (sender, receiver) = sync_channel(self.prefetch);
        let shared = Arc::clone(&self.shared);
        std::thread::Builder::new()
            .name("prefetch".into())
            .spawn(move || shared.produce(batches, sender))
            .expect("a thread can be started");
        // Replacing the receiver ends the previous epoch's producer at its next send.
        *self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(receiver);
    }

    fn batch(&self, indices: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let wanted = indices.to_vec1::<u32>()?;
        let prepared = {
            let queue = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            queue.as_ref().and_then(|q| q.recv().ok())
        };
        let (pixels, labels) = match prepared {
            Some((got, result)) if got == wanted => result.map_err(candle_core::Error::Msg)?,
            // Not prepared (or out of step): decode here.
            _ => self.decode(&wanted).map_err(|e| candle_core::Error::Msg(e.to_string()))?,
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

    fn batch(&self, indices: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        match self {
            Self::InMemory(d) => d.batch(indices),
            Self::Streamed(d) => d.batch(indices),
        }
    }

    fn device(&self) -> &Device {
        match self {
            Self::InMemory(d) => d.device(),
            Self::Streamed(d) => d.device(),
        }
    }

    fn prepare(&self, batches: Vec<Vec<u32>>) {
        match self {
            Self::InMemory(d) => d.prepare(batches),
            Self::Streamed(d) => d.prepare(batches),
        }
    }
}
