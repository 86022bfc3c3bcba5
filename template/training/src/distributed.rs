//! Data-parallel training: the processes a run is spread over ([`Group`]) and the all-reduce that
//! sums their gradients. Every process builds the same model from the same seed (so the weights
//! start identical without a broadcast), walks the same seeded order of global batches and takes
//! its own contiguous part of each ([`data_loader::shard_range`]); its loss is its part's mean
//! weighted by the part's share of the batch, so the summed gradients are the gradient of the
//! global batch's mean loss, as one process would compute it.
//!
//! A [`Collective`] is what moves the numbers: [`Group::single`] is one process (nothing moves);
//! [`local::run`] runs ranks as threads of one process (for tests, and to check the arithmetic of
//! a change without a cluster); with the `distributed` feature, [`mpi`] runs them as the
//! processes an MPI launcher (`mpirun`, `srun`) started, and [`launch::from_environment`] picks
//! the group the program was started as.
//!
//! Batch normalisation computes its statistics over each rank's part of the batch (as PyTorch's
//! DDP does without `SyncBatchNorm`), so a model with BatchNorm trained on N ranks is close to,
//! not equal to, the one-process model; every other layer shipped here computes the same
//! function on N ranks as on one. Before each validation every rank takes rank 0's running
//! statistics ([`Group::copy_from_rank0`], DDP's `broadcast_buffers`), so the validation numbers
//! are those of the model rank 0 saves, and a resumed run continues exactly.

use std::fmt;
use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

pub mod launch;
pub mod local;
#[cfg(feature = "distributed")]
pub mod mpi;
#[cfg(feature = "nccl")]
pub mod nccl;

/// The operations data-parallel training needs from the processes it runs on.
pub trait Collective: Send + Sync {
    /// This process's rank, `0..world()`.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn world(&self) -> usize;
    /// This process's rank among those on its machine: which of the machine's GPUs it uses.
    fn local_rank(&self) -> usize {
        self.rank()
    }
    /// Ends every rank at once (after this rank failed), where the group can; the others would
    /// otherwise wait for this one at their next collective.
    fn abort_all(&self, _code: i32) {}
    /// Element-wise sum over all ranks, left in `values` on every rank (each rank gets the same
    /// numbers, summed in the same order).
    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<(), CollectiveError>;
    /// The same for `f64` (losses and counts).
    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<(), CollectiveError>;
    /// Rank 0's `bytes`, left in `bytes` on every rank.
    fn broadcast(&self, bytes: &mut Vec<u8>) -> Result<(), CollectiveError>;
    /// Whether [`Collective::all_reduce_sum_tensor`] sums tensors that live on `device` without
    /// copying them to host memory (NCCL on a GPU); otherwise gradients go through
    /// [`Collective::all_reduce_sum`].
    fn reduces_on(&self, _device: &candle_core::Device) -> bool {
        false
    }
    /// Element-wise sum of `tensor` over all ranks, on its device.
    fn all_reduce_sum_tensor(&self, _tensor: &Tensor) -> Result<Tensor, CollectiveError> {
        Err(CollectiveError { rank: self.rank(), world: self.world(), what: "no device all-reduce here".into() })
    }
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
    fn broadcast(&self, _bytes: &mut Vec<u8>) -> Result<(), CollectiveError> {
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

    pub fn local_rank(&self) -> usize {
        self.0.local_rank()
    }

    /// After this rank failed: stop the other ranks too (an MPI job ends; returns otherwise).
    pub fn abort_all(&self, code: i32) {
        if !self.is_single() {
            self.0.abort_all(code);
        }
    }

    pub fn is_single(&self) -> bool {
        self.world() == 1
    }

    /// This group, with the gradients' all-reduce moved onto `device` where it can be: with the
    /// `nccl` feature and a CUDA device, an NCCL communicator over the ranks' GPUs; otherwise
    /// this group as it is. Every rank calls it at the same point, with devices of one kind.
    pub fn for_device(&self, device: &candle_core::Device) -> Result<Group, CollectiveError> {
        if self.is_single() || self.0.reduces_on(device) {
            return Ok(self.clone());
        }
        #[cfg(feature = "nccl")]
        if let Some(nccl) = nccl::Nccl::join(self, device)? {
            return Ok(Group::new(Arc::new(nccl)));
        }
        Ok(self.clone())
    }

    /// Whether the gradients of variables on `device` are summed there, without a copy to host
    /// memory.
    pub fn reduces_on(&self, device: &candle_core::Device) -> bool {
        self.0.reduces_on(device)
    }

    /// Whether this process writes the run folder, logs to its file and shows progress: rank 0.
    pub fn is_writer(&self) -> bool {
        self.rank() == 0
    }

    /// Sums `values` over the ranks (nothing to do in one process).
    pub fn sum_f64(&self, values: &mut [f64]) -> Result<(), CollectiveError> {
        if self.is_single() { Ok(()) } else { self.0.all_reduce_sum_f64(values) }
    }

    /// Rank 0's text, on every rank (the run folder rank 0 created, say).
    pub fn share_text(&self, text: &str) -> Result<String, CollectiveError> {
        if self.is_single() {
            return Ok(text.to_string());
        }
        let mut bytes = text.as_bytes().to_vec();
        self.0.broadcast(&mut bytes)?;
        String::from_utf8(bytes).map_err(|e| self.error(format!("rank 0 sent text that is not UTF-8: {e}")))
    }

    /// A failure of this rank's collective work.
    pub fn error(&self, what: String) -> CollectiveError {
        CollectiveError { rank: self.rank(), world: self.world(), what }
    }

    /// Sets each of `vars` to rank 0's value on every rank: one all-reduce of rank 0's numbers and
    /// the other ranks' zeros, which leaves rank 0's exactly (x + 0 = x).
    pub fn copy_from_rank0(&self, vars: &[(String, Var)]) -> Result<(), CollectiveError> {
        if self.is_single() || vars.is_empty() {
            return Ok(());
        }
        let fail = |what: String| self.error(what);
        let mut flat = Vec::with_capacity(vars.iter().map(|(_, v)| v.elem_count()).sum());
        for (name, var) in vars {
            if self.is_writer() {
                flat.extend(
                    var.flatten_all()
                        .and_then(|v| v.to_dtype(candle_core::DType::F32))
                        .and_then(|v| v.to_vec1::<f32>())
                        .map_err(|e| fail(format!("reading {name}: {e}")))?,
                );
            } else {
                flat.resize(flat.len() + var.elem_count(), 0.0);
            }
        }
        self.0.all_reduce_sum(&mut flat)?;
        let mut offset = 0;
        for (name, var) in vars {
            let n = var.elem_count();
            Tensor::from_slice(&flat[offset..offset + n], var.shape(), var.device())
                .and_then(|v| v.to_dtype(var.dtype()))
                .and_then(|v| var.set(&v))
                .map_err(|e| fail(format!("setting {name} to rank 0's: {e}")))?;
            offset += n;
        }
        Ok(())
    }

    /// Replaces each of `vars`' gradients in `grads` by its sum over the ranks: one all-reduce of
    /// all of them, in the order of `vars` (the same on every rank). A variable without a gradient
    /// here (a rank whose part of the batch was empty) contributes zeros.
    pub fn sum_gradients(&self, vars: &[(String, Var)], grads: &mut GradStore) -> Result<(), CollectiveError> {
        if self.is_single() {
            return Ok(());
        }
        let fail = |what: String| self.error(what);
        // Decided from the variables, not the gradients, so every rank takes the same path.
        let Some((_, first)) = vars.first() else { return Ok(()) };
        let device = first.device().clone();
        let summed = if self.0.reduces_on(&device) {
            // Where the gradients live (NCCL on GPUs): one flat tensor, one all-reduce.
            let parts = vars
                .iter()
                .map(|(name, var)| {
                    match grads.get(var.as_tensor()) {
                        Some(g) => g.flatten_all().and_then(|g| g.to_dtype(candle_core::DType::F32)),
                        None => Tensor::zeros(var.elem_count(), candle_core::DType::F32, &device),
                    }
                    .map_err(|e| fail(format!("reading the gradient of {name}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let flat = Tensor::cat(&parts, 0).map_err(|e| fail(format!("joining the gradients: {e}")))?;
            self.0.all_reduce_sum_tensor(&flat)?
        } else {
            // Through host memory (MPI on CPUs, or on GPUs without NCCL).
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
            let len = flat.len();
            Tensor::from_vec(flat, len, &device).map_err(|e| fail(format!("copying the summed gradients: {e}")))?
        };
        let mut offset = 0;
        for (name, var) in vars {
            let n = var.elem_count();
            let summed = summed
                .narrow(0, offset, n)
                .and_then(|g| g.reshape(var.shape()))
                .and_then(|g| g.to_dtype(var.dtype()))
                .map_err(|e| fail(format!("writing the gradient of {name}: {e}")))?;
            grads.insert(var.as_tensor(), summed);
            offset += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device all-reduce on the CPU: the tensor's numbers summed through the host group, so that
    /// `sum_gradients`' device path (one flat tensor, summed once, then split) runs without a GPU.
    struct OnDevice(Group);

    impl Collective for OnDevice {
        fn rank(&self) -> usize {
            self.0.rank()
        }
        fn world(&self) -> usize {
            self.0.world()
        }
        fn all_reduce_sum(&self, values: &mut [f32]) -> Result<(), CollectiveError> {
            self.0.0.all_reduce_sum(values)
        }
        fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<(), CollectiveError> {
            self.0.0.all_reduce_sum_f64(values)
        }
        fn broadcast(&self, bytes: &mut Vec<u8>) -> Result<(), CollectiveError> {
            self.0.0.broadcast(bytes)
        }
        fn reduces_on(&self, _device: &candle_core::Device) -> bool {
            true
        }
        fn all_reduce_sum_tensor(&self, tensor: &Tensor) -> Result<Tensor, CollectiveError> {
            let mut values = tensor.to_vec1::<f32>().map_err(|e| self.0.error(e.to_string()))?;
            self.0.0.all_reduce_sum(&mut values)?;
            Tensor::new(values, tensor.device()).map_err(|e| self.0.error(e.to_string()))
        }
    }

    #[test]
    fn every_rank_ends_with_rank_zeros_layer_state() {
        let values = local::run(3, |group| {
            let r = group.rank() as f32;
            let mean =
                Var::from_tensor(&Tensor::new(&[r + 1.0, -(r + 2.0)], &candle_core::Device::Cpu).unwrap()).unwrap();
            let var = Var::from_tensor(&Tensor::new(&[[0.5 + r]], &candle_core::Device::Cpu).unwrap()).unwrap();
            let vars = vec![("bn.running_mean".to_string(), mean.clone()), ("bn.running_var".to_string(), var.clone())];
            group.copy_from_rank0(&vars).unwrap();
            (mean.to_vec1::<f32>().unwrap(), var.flatten_all().unwrap().to_vec1::<f32>().unwrap(), var.dims().to_vec())
        });
        for (rank, (mean, var, dims)) in values.into_iter().enumerate() {
            assert_eq!(mean, vec![1.0, -2.0], "rank {rank}");
            assert_eq!((var, dims), (vec![0.5], vec![1, 1]), "rank {rank}");
        }
    }

    #[test]
    fn gradients_summed_on_the_device_equal_those_summed_through_the_host() {
        let cpu = candle_core::Device::Cpu;
        let vars: Vec<(String, Var)> = vec![
            ("a.weight".into(), Var::zeros((2, 3), candle_core::DType::F32, &cpu).unwrap()),
            ("b.bias".into(), Var::zeros(4, candle_core::DType::F32, &cpu).unwrap()),
        ];
        let sums = local::run(2, |group| {
            // Rank r's gradients; rank 1 has none for b.bias (an empty part of the batch).
            let grads_of = || {
                let mut grads = GradStore::default();
                let r = group.rank() as f32;
                let a: Vec<f32> = (0..6).map(|i| r * 10.0 + i as f32).collect();
                grads.insert(vars[0].1.as_tensor(), Tensor::from_vec(a, (2, 3), &cpu).unwrap());
                if group.rank() == 0 {
                    grads.insert(vars[1].1.as_tensor(), Tensor::new(&[1f32, 2., 3., 4.], &cpu).unwrap());
                }
                grads
            };
            let read = |grads: &GradStore| -> Vec<Vec<f32>> {
                vars.iter()
                    .map(|(_, v)| grads.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap())
                    .collect()
            };
            let (mut host, mut device) = (grads_of(), grads_of());
            group.sum_gradients(&vars, &mut host).unwrap();
            let on_device = Group::new(Arc::new(OnDevice(group.clone())));
            assert!(on_device.reduces_on(&cpu));
            on_device.sum_gradients(&vars, &mut device).unwrap();
            assert_eq!(device.get(vars[0].1.as_tensor()).unwrap().dims(), &[2, 3]);
            (read(&host), read(&device))
        });
        let expected = vec![vec![10f32, 12., 14., 16., 18., 20.], vec![1., 2., 3., 4.]];
        for (rank, (host, device)) in sums.into_iter().enumerate() {
            assert_eq!(host, expected, "rank {rank}, through the host");
            assert_eq!(device, expected, "rank {rank}, on the device");
        }
    }
}
