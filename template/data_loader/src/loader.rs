//! Batching a [`Dataset`] for one epoch at a time: batch size, drop-last, and a shuffle order that is
//! a pure function of `(seed, epoch)`, so a resumed run replays exactly the batches it would have seen.

use std::ops::Range;

use candle_core::Tensor;

use crate::augment::{Augment, EpochAugment};
use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::shuffle;

/// Iterates a dataset in batches, epoch by epoch.
#[derive(Debug)]
pub struct DataLoader<'a, D: Dataset> {
    dataset: &'a D,
    batch_size: usize,
    shuffle: bool,
    drop_last: bool,
    seed: u64,
    augment: Augment,
    /// This process's rank and the number of data-parallel processes.
    shard: (usize, usize),
}

/// The part `[start, end)` of a batch of `len` samples that rank `rank` of `world` takes: the
/// ranks' parts are contiguous, disjoint, in rank order and differ in size by at most one.
pub fn shard_range(len: usize, rank: usize, world: usize) -> Range<usize> {
    len * rank / world..len * (rank + 1) / world
}

impl<'a, D: Dataset> DataLoader<'a, D> {
    /// A loader over `dataset`. `drop_last` leaves out a final batch smaller than `batch_size`
    /// (useful where a batch-size-dependent statistic must not be skewed by a tiny last batch).
    pub fn new(dataset: &'a D, batch_size: usize, shuffle: bool, drop_last: bool, seed: u64) -> Result<Self> {
        if batch_size == 0 {
            return Err(DataError::InvalidLoader("batch size is 0; it must be at least 1".into()));
        }
        if dataset.len() > u32::MAX as usize {
            return Err(DataError::InvalidLoader(format!(
                "{} samples is more than u32 indices can address",
                dataset.len()
            )));
        }
        Ok(Self { dataset, batch_size, shuffle, drop_last, seed, augment: Augment::default(), shard: (0, 1) })
    }

    /// Every batch keeps its size, order and samples, and this loader yields only rank `rank`'s
    /// part of it ([`shard_range`]): `world` processes with the same seed together see what one
    /// process sees.
    pub fn with_shard(mut self, rank: usize, world: usize) -> Result<Self> {
        if world == 0 || rank >= world {
            return Err(DataError::InvalidLoader(format!("rank {rank} of {world} processes does not exist")));
        }
        if self.batch_size < world {
            return Err(DataError::InvalidLoader(format!(
                "a batch of {} cannot be shared by {world} processes; make the batch size at least {world}",
                self.batch_size
            )));
        }
        self.shard = (rank, world);
        Ok(self)
    }

    /// The samples of global batch `batch` (the last may be short), and where this process's part
    /// of it starts in it.
    pub fn batch_len_and_offset(&self, batch: usize) -> (usize, usize) {
        let len = self.batch_size.min(self.num_samples().saturating_sub(batch * self.batch_size));
        (len, shard_range(len, self.shard.0, self.shard.1).start)
    }

    /// Augments every batch as `augment` says, keyed by (the loader's seed, epoch, sample).
    pub fn with_augment(mut self, augment: Augment) -> Self {
        self.augment = augment;
        self
    }

    /// The augmentation of epoch `epoch`, if any.
    pub fn epoch_augment(&self, epoch: u64) -> Option<EpochAugment> {
        (!self.augment.is_off()).then(|| self.augment.for_epoch(self.seed, epoch))
    }

    /// The dataset being batched.
    pub fn dataset(&self) -> &'a D {
        self.dataset
    }

    /// Samples per batch (the last batch may be smaller unless `drop_last`).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        let n = self.dataset.len();
        if self.drop_last { n / self.batch_size } else { n.div_ceil(self.batch_size) }
    }

    /// Samples per epoch after `drop_last`.
    pub fn num_samples(&self) -> usize {
        let n = self.dataset.len();
        if self.drop_last { n / self.batch_size * self.batch_size } else { n }
    }

    /// The order in which epoch `epoch` visits the samples: a permutation of `0..len` when
    /// shuffling (its first `num_samples()` entries are used), `0..len` otherwise.
    pub fn epoch_order(&self, epoch: u64) -> Vec<u32> {
        let n = self.dataset.len();
        if self.shuffle {
            shuffle::permutation(n, &mut shuffle::rng(self.seed, epoch))
        } else {
            // `new` checked that `n <= u32::MAX`.
            (0..n as u32).collect()
        }
    }

    /// Batches of one epoch. The order depends only on (seed, epoch), so a resumed run sees the same
    /// order without storing RNG state: same seed+epoch -> same order; different epochs -> different orders.
    pub fn epoch(&self, epoch: u64) -> impl ExactSizeIterator<Item = candle_core::Result<(Tensor, Tensor)>> + '_ {
        self.epoch_from(epoch, 0)
    }

    /// The same, starting at batch `skip` (for resuming mid-epoch); empty when `skip >= num_batches()`.
    pub fn epoch_from(
        &self,
        epoch: u64,
        skip: usize,
    ) -> impl ExactSizeIterator<Item = candle_core::Result<(Tensor, Tensor)>> + '_ {
        let order = self.epoch_order(epoch);
        let samples = self.num_samples();
        let batch_size = self.batch_size;
        let first = skip.min(self.num_batches());
        let augment = self.epoch_augment(epoch);
        let (rank, world) = self.shard;
        let part = move |batch: usize| {
            let start = batch * batch_size;
            let end = (start + batch_size).min(samples);
            let mine = shard_range(end - start, rank, world);
            start + mine.start..start + mine.end
        };
        self.dataset.prepare((first..self.num_batches()).map(|b| order[part(b)].to_vec()).collect(), augment);
        // The epoch's order goes to the device once; each batch slices it there, so on a GPU no
        // step copies anything from the host (the images themselves never leave the device,
        // except through the host for augmentation, see `EpochAugment::apply_batch`).
        let len = order.len();
        let order = Tensor::from_vec(order, len, self.dataset.device());
        (skip.min(self.num_batches())..self.num_batches()).map(move |batch| {
            let range = part(batch);
            let order = order.as_ref().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let indices = order.narrow(0, range.start, range.len())?;
            self.dataset.batch(&indices, augment.as_ref())
        })
    }
}
