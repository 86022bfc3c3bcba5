//! Ranks as the processes of an MPI job (`mpirun -np N`, `srun`): a [`Collective`] over MPI's
//! all-reduce and broadcast, through rsmpi (`mpi` crate) and whatever MPI the machine has
//! (Open MPI, MPICH, a cluster's vendor MPI).
//!
//! A rank that panics calls `MPI_Abort`, so the launcher stops every other rank within a second
//! or two instead of leaving them blocked in their next all-reduce; a rank that is killed or
//! exits with an error is noticed by the launcher, which stops the rest the same way.

use std::sync::{Mutex, PoisonError};

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use super::{Collective, CollectiveError};

/// The MPI job this process is a rank of. MPI is finalised when it is dropped.
pub struct Mpi {
    rank: usize,
    world: usize,
    local_rank: usize,
    /// Serialises the calls (MPI was initialised for serialised use from any thread) and keeps the
    /// receive buffer of the gradient all-reduce between steps.
    calls: Mutex<Vec<f32>>,
    _universe: Universe,
}

impl Mpi {
    /// Initialises MPI, once per process: the rank and world size come from the launcher.
    pub fn init() -> Result<Self, CollectiveError> {
        let fail = |what: String| CollectiveError { rank: 0, world: 0, what };
        let (universe, threading) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or_else(|| fail("MPI was initialised already in this process".into()))?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        if threading < mpi::Threading::Serialized {
            return Err(CollectiveError {
                rank,
                world: size,
                what: format!(
                    "this MPI offers only {threading:?} threading; training needs Serialized (build Open MPI or \
                     MPICH with thread support, as Debian's packages are)"
                ),
            });
        }
        abort_the_job_on_panic(rank, size);
        let local_rank = world.split_shared(rank as i32).rank() as usize;
        Ok(Self { rank, world: size, local_rank, calls: Mutex::new(Vec::new()), _universe: universe })
    }
}

/// A panic on any thread of this rank prints its message, naming the rank, then aborts the job;
/// without this the rank's unwinding would wait in `MPI_Finalize` and the others in their next
/// all-reduce, forever.
fn abort_the_job_on_panic(rank: usize, world: usize) {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        eprintln!("error: rank {rank} of {world} panicked (above); stopping every rank of the job");
        SimpleCommunicator::world().abort(101);
    }));
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// `MPI_Abort`: the launcher stops every rank and exits with `code`.
    fn abort_all(&self, code: i32) {
        SimpleCommunicator::world().abort(code)
    }

    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<(), CollectiveError> {
        let mut received = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        received.resize(values.len(), 0.0);
        SimpleCommunicator::world().all_reduce_into(&*values, &mut received[..], SystemOperation::sum());
        values.copy_from_slice(&received);
        Ok(())
    }

    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<(), CollectiveError> {
        let _serial = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let sent = values.to_vec();
        SimpleCommunicator::world().all_reduce_into(&sent[..], values, SystemOperation::sum());
        Ok(())
    }

    fn broadcast(&self, bytes: &mut Vec<u8>) -> Result<(), CollectiveError> {
        let _serial = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let world = SimpleCommunicator::world();
        let root = world.process_at_rank(0);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        bytes.resize(len as usize, 0);
        // An empty Rust slice's pointer is dangling, which MPI refuses even for no bytes.
        if len > 0 {
            root.broadcast_into(&mut bytes[..]);
        }
        Ok(())
    }
}
