//! Gradients summed where they live, on the GPUs: a [`Collective`] that keeps the host group (MPI)
//! for everything small (losses, counts, the run folder's name) and sums tensors on this rank's
//! CUDA device with NCCL, on candle's own stream, so nothing is copied to host memory and no
//! extra synchronisation is needed. Rank 0 makes NCCL's unique id and the host group carries it
//! to the others, as Horovod does.
//!
//! The communicator sums on the stream candle gives the thread that joined it (candle's CUDA
//! devices use per-thread default streams): call [`Collective::all_reduce_sum_tensor`] from the
//! thread that trains, as the trainer does, or the sum is not ordered after the backward pass.
//!
//! Built with the `nccl` feature (which brings `cuda` and `distributed`); it needs the CUDA
//! toolkit and NCCL (`libnccl2`, `libnccl-dev`) where it is built and run.

use std::ffi::c_char;
use std::sync::{Mutex, PoisonError};

use candle_core::backend::BackendStorage;
use candle_core::cuda::CudaStorageSlice;
use candle_core::cuda::cudarc::driver::{CudaSlice, CudaView, DeviceRepr, ValidAsZeroBits};
use candle_core::cuda::cudarc::nccl::safe::{Comm, Id, NcclType, ReduceOp};
use candle_core::{CpuStorage, CudaDevice, CudaStorage, CustomOp1, Device, Layout, Shape, Tensor};

use super::{Collective, CollectiveError, Group};

/// The bytes of an NCCL unique id.
const ID_BYTES: usize = 128;

/// A host group with an NCCL communicator over the ranks' GPUs.
pub struct Nccl {
    host: Group,
    device: Device,
    comm: Mutex<Communicator>,
}

/// NCCL's communicator, used by one thread at a time (under [`Nccl::comm`]'s lock).
struct Communicator(Comm);

// SAFETY: an NCCL communicator may be used from any thread as long as calls on it do not overlap
// (NCCL's "thread safety" notes); `Nccl` only reaches it through a Mutex.
unsafe impl Send for Communicator {}

impl Nccl {
    /// Joins this rank's `device` to an NCCL communicator over `host`'s ranks. Every rank calls
    /// it at the same point: rank 0 decides. `None` when rank 0 is not on a GPU (the gradients
    /// then go through the host group); an error when this rank's device disagrees with rank 0's.
    pub fn join(host: &Group, device: &Device) -> Result<Option<Self>, CollectiveError> {
        let cuda = match device {
            Device::Cuda(cuda) => Some(cuda.clone()),
            _ => None,
        };
        let mut id = Vec::new();
        if host.is_writer() && cuda.is_some() {
            let made = Id::new().map_err(|e| {
                host.error(format!("NCCL could not make its unique id ({:?}); NCCL_DEBUG=INFO makes NCCL say why", e.0))
            })?;
            id = made.internal().iter().map(|&c| c as u8).collect();
        }
        host.0.broadcast(&mut id)?;
        let same_device_everywhere = "set `device` the same for every rank (config.json or --set device=...)";
        match (cuda, id.len()) {
            (None, 0) => Ok(None),
            (Some(_), 0) => {
                Err(host.error(format!("this rank is on a GPU but rank 0 is not: {same_device_everywhere}")))
            }
            (None, _) => Err(host.error(format!("rank 0 is on a GPU but this rank is not: {same_device_everywhere}"))),
            (Some(cuda), ID_BYTES) => {
                let mut internal = [0 as c_char; ID_BYTES];
                for (to, from) in internal.iter_mut().zip(&id) {
                    *to = *from as c_char;
                }
                let stream = cuda.cuda_stream();
                // NCCL joins the GPU that is current on this thread: make it this rank's.
                stream
                    .context()
                    .bind_to_thread()
                    .map_err(|e| host.error(format!("making this rank's GPU current for NCCL: {e}")))?;
                let comm = Comm::from_rank(stream, host.rank(), host.world(), Id::uninit(internal)).map_err(|e| {
                    host.error(format!(
                        "joining NCCL's communicator failed ({:?}); NCCL_DEBUG=INFO in the environment makes \
                             NCCL say why",
                        e.0
                    ))
                })?;
                Ok(Some(Self { host: host.clone(), device: device.clone(), comm: Mutex::new(Communicator(comm)) }))
            }
            (Some(_), n) => Err(host.error(format!("rank 0 sent a {n}-byte NCCL id where NCCL's are {ID_BYTES}"))),
        }
    }
}

impl Collective for Nccl {
    fn rank(&self) -> usize {
        self.host.rank()
    }

    fn world(&self) -> usize {
        self.host.world()
    }

    fn local_rank(&self) -> usize {
        self.host.local_rank()
    }

    fn abort_all(&self, code: i32) {
        self.host.0.abort_all(code)
    }

    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<(), CollectiveError> {
        self.host.0.all_reduce_sum(values)
    }

    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<(), CollectiveError> {
        self.host.0.all_reduce_sum_f64(values)
    }

    fn broadcast(&self, bytes: &mut Vec<u8>) -> Result<(), CollectiveError> {
        self.host.0.broadcast(bytes)
    }

    fn reduces_on(&self, device: &Device) -> bool {
        device.same_device(&self.device)
    }

    fn all_reduce_sum_tensor(&self, tensor: &Tensor) -> Result<Tensor, CollectiveError> {
        let comm = self.comm.lock().unwrap_or_else(PoisonError::into_inner);
        tensor
            .contiguous()
            .and_then(|t| t.apply_op1_no_bwd(&AllReduceSum(&comm.0)))
            .map_err(|e| self.host.error(format!("NCCL all-reduce: {e}")))
    }
}

/// The sum over the ranks, as a candle op so that it runs on the tensor's own storage and stream.
struct AllReduceSum<'a>(&'a Comm);

impl AllReduceSum<'_> {
    fn sum<T: NcclType + DeviceRepr + ValidAsZeroBits>(
        &self,
        sent: &CudaView<'_, T>,
        device: &CudaDevice,
    ) -> candle_core::Result<CudaSlice<T>> {
        let mut received = device.alloc_zeros::<T>(sent.len())?;
        self.0.all_reduce(sent, &mut received, &ReduceOp::Sum).map_err(|e| {
            candle_core::Error::Msg(format!("ncclAllReduce failed ({:?}); NCCL_DEBUG=INFO says why", e.0))
        })?;
        Ok(received)
    }
}

impl CustomOp1 for AllReduceSum<'_> {
    fn name(&self) -> &'static str {
        "nccl-all-reduce-sum"
    }

    fn cpu_fwd(&self, _storage: &CpuStorage, _layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("NCCL sums CUDA tensors only; this one is in host memory")
    }

    fn cuda_fwd(&self, storage: &CudaStorage, layout: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("nccl-all-reduce-sum: expected a contiguous tensor")
        };
        let device = storage.device().clone();
        let summed = match &storage.slice {
            CudaStorageSlice::F32(s) => CudaStorage::wrap_cuda_slice(self.sum(&s.slice(start..end), &device)?, device),
            CudaStorageSlice::F64(s) => CudaStorage::wrap_cuda_slice(self.sum(&s.slice(start..end), &device)?, device),
            _ => {
                candle_core::bail!("nccl-all-reduce-sum: gradients are summed as f32 or f64, not {:?}", storage.dtype())
            }
        };
        Ok((summed, layout.shape().clone()))
    }
}
