//! Data-parallel training: the processes a run is spread over ([`Group`]) and the all-reduce that
//! sums their gradients. Every process builds the same model from the same seed (so the weights
//! start identical without a broadcast), walks the same seeded order of global batches and takes
//! its own contiguous part of each ([`data_loader::shard_range`]); its loss is its part's mean
//! weighted by the part's share of the batch, so the summed gradients are the gradient of the
//! global batch's mean loss, as one process would compute it.
//!
//! A [`Collective`] is what moves the numbers: [`Group::single`] is one process (nothing moves);
//! [`local::LocalGroup`] runs ranks as threads of one process (for tests, and to check the
//! arithmetic of a change without a cluster).

use std::fmt;
use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

pub mod local;

/// The operations data-parallel training needs from the processes it runs on.
pub trait Collective: Send + Sync {
    /// This process's rank, `0..world()`.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn world(&self) -> usize;
    /// Element-wise sum over all ranks, left in `values` on every rank (each rank gets the same
    /// numbers, summed in the same order).
    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<(), CollectiveError>;
    /// The same for `f64` (losses and counts).
    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<(), CollectiveError>;
}

#[derive(Debug, thiserror::Error)]
#[error("rank {rank} of {world}: {what}")]
pub struct CollectiveError {
    pub rank: usize,
    pub world: usize,
    pub what: String,
}

/// The processes of one run; cheap to clone.
#[derive(Clone)]
pub struct Group(Arc<dyn Collective>);

impl Default for Group {
    fn default() -> Self {
        Self::single()
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Group(rank {} of {})", self.rank(), self.world())
    }
}

struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn world(&self) -> usize {
        1
    }
    fn all_reduce_sum(&self, _values: &mut [f32]) -> Result<(), CollectiveError> {
        Ok(())
    }
    fn all_reduce_sum_f64(&self, _values: &mut [f64]) -> Result<(), CollectiveError> {
        Ok(())
    }
}

impl Group {
    /// One process: training runs exactly as without this module.
    pub fn single() -> Self {
        Self(Arc::new(Single))
    }

    pub fn new(collective: Arc<dyn Collective>) -> Self {
        Self(collective)
    }

    pub fn rank(&self) -> usize {
        self.0.rank()
    }

    pub fn world(&self) -> usize {
        self.0.world()
    }

    pub fn is_single(&self) -> bool {
        self.world() == 1
    }

    /// Sums `values` over the ranks (nothing to do in one process).
    pub fn sum_f64(&self, values: &mut [f64]) -> Result<(), CollectiveError> {
        if self.is_single() { Ok(()) } else { self.0.all_reduce_sum_f64(values) }
    }

    /// Replaces each of `vars`' gradients in `grads` by its sum over the ranks: one all-reduce of
    /// all of them, in the order of `vars` (the same on every rank). A variable without a gradient
    /// here (a rank whose part of the batch was empty) contributes zeros.
    pub fn sum_gradients(&self, vars: &[(String, Var)], grads: &mut GradStore) -> Result<(), CollectiveError> {
        if self.is_single() {
            return Ok(());
        }
        let fail = |what: String| CollectiveError { rank: self.rank(), world: self.world(), what };
        let mut flat = Vec::with_capacity(vars.iter().map(|(_, v)| v.elem_count()).sum());
        for (name, var) in vars {
            match grads.get(var.as_tensor()) {
                Some(g) => flat.extend(
                    g.flatten_all()
                        .and_then(|g| g.to_dtype(candle_core::DType::F32))
                        .and_then(|g| g.to_vec1::<f32>())
                        .map_err(|e| fail(format!("reading the gradient of {name}: {e}")))?,
                ),
                None => flat.resize(flat.len() + var.elem_count(), 0.0),
            }
        }
        self.0.all_reduce_sum(&mut flat)?;
        let mut offset = 0;
        for (name, var) in vars {
            let n = var.elem_count();
            let summed = Tensor::from_slice(&flat[offset..offset + n], var.shape(), var.device())
                .and_then(|g| g.to_dtype(var.dtype()))
                .map_err(|e| fail(format!("writing the gradient of {name}: {e}")))?;
            grads.insert(var.as_tensor(), summed);
            offset += n;
        }
        Ok(())
    }
}
