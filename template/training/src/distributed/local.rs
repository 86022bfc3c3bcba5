//! Ranks as threads of one process: a [`Collective`] over shared memory, for tests and for checking
//! a change to the data-parallel arithmetic without a cluster. Sums run in rank order, so every
//! rank gets the same numbers.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use super::{Collective, CollectiveError, Group};

/// How long a rank waits at a collective for the others before giving up.
const PATIENCE: Duration = Duration::from_secs(60);

/// Runs `each(group)` on `world` threads, rank `r` on the `r`-th, and returns their results in
/// rank order. A rank that fails or panics makes the others' next collective fail within
/// [`PATIENCE`] rather than wait forever.
pub fn run<T: Send>(world: usize, each: impl Fn(Group) -> T + Sync) -> Vec<T> {
    let shared = Arc::new(Shared {
        world,
        arrivals: Mutex::new((0, 0)),
        all_here: Condvar::new(),
        f32s: Mutex::new(vec![Vec::new(); world]),
        f64s: Mutex::new(vec![Vec::new(); world]),
        bytes: Mutex::new(Vec::new()),
    });
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..world)
            .map(|rank| {
                let group = Group::new(Arc::new(LocalGroup { rank, shared: shared.clone() }));
                let each = &each;
                std::thread::Builder::new()
                    .name(format!("rank-{rank}"))
                    .spawn_scoped(scope, move || each(group))
                    .expect("a rank's thread starts")
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    })
}

struct Shared {
    world: usize,
    /// Ranks arrived at the current rendezvous, and how many rendezvous have completed.
    arrivals: Mutex<(usize, u64)>,
    all_here: Condvar,
    f32s: Mutex<Vec<Vec<f32>>>,
    f64s: Mutex<Vec<Vec<f64>>>,
    bytes: Mutex<Vec<u8>>,
}

struct LocalGroup {
    rank: usize,
    shared: Arc<Shared>,
}

impl LocalGroup {
    fn error(&self, what: String) -> CollectiveError {
        CollectiveError { rank: self.rank, world: self.shared.world, what }
    }

    /// Waits until every rank has arrived here.
    fn rendezvous(&self) -> Result<(), CollectiveError> {
        let mut arrivals = self.shared.arrivals.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = arrivals.1;
        arrivals.0 += 1;
        if arrivals.0 == self.shared.world {
            *arrivals = (0, generation + 1);
            self.shared.all_here.notify_all();
            return Ok(());
        }
        loop {
            let (next, wait) =
                self.shared.all_here.wait_timeout(arrivals, PATIENCE).unwrap_or_else(PoisonError::into_inner);
            arrivals = next;
            if arrivals.1 != generation {
                return Ok(());
            }
            if wait.timed_out() {
                return Err(self.error(format!(
                    "{} of {} ranks reached this collective within {PATIENCE:?}; the others failed or stopped \
                     (see their errors above)",
                    arrivals.0, self.shared.world
                )));
            }
        }
    }

    fn reduce<T: Copy + std::ops::Add<Output = T>>(
        &self,
        slots: &Mutex<Vec<Vec<T>>>,
        values: &mut [T],
    ) -> Result<(), CollectiveError> {
        slots.lock().unwrap_or_else(PoisonError::into_inner)[self.rank] = values.to_vec();
        self.rendezvous()?;
        let result = {
            let slots = slots.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(bad) = slots.iter().position(|s| s.len() != values.len()) {
                Err(self.error(format!("rank {bad} sent {} values, this rank {}", slots[bad].len(), values.len())))
            } else {
                for (i, v) in values.iter_mut().enumerate() {
                    *v = slots[1..].iter().fold(slots[0][i], |sum, s| sum + s[i]);
                }
                Ok(())
            }
        };
        // No rank may overwrite its slot before every rank has read them all.
        self.rendezvous()?;
        result
    }
}

impl Collective for LocalGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world(&self) -> usize {
        self.shared.world
    }
    fn all_reduce_sum(&self, values: &mut [f32]) -> Result<(), CollectiveError> {
        self.reduce(&self.shared.f32s, values)
    }
    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<(), CollectiveError> {
        self.reduce(&self.shared.f64s, values)
    }
    fn broadcast(&self, bytes: &mut Vec<u8>) -> Result<(), CollectiveError> {
        if self.rank == 0 {
            *self.shared.bytes.lock().unwrap_or_else(PoisonError::into_inner) = bytes.clone();
        }
        self.rendezvous()?;
        if self.rank != 0 {
            *bytes = self.shared.bytes.lock().unwrap_or_else(PoisonError::into_inner).clone();
        }
        self.rendezvous()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rank_gets_the_same_sum() {
        let sums = run(3, |group| {
            let mut values = vec![group.rank() as f32, 1.0];
            group.0.all_reduce_sum(&mut values).unwrap();
            let mut counts = [group.rank() as f64 * 10.0];
            group.sum_f64(&mut counts).unwrap();
            (values, counts[0])
        });
        assert_eq!(sums, vec![(vec![3.0, 3.0], 30.0); 3]);
    }

    #[test]
    fn every_rank_gets_rank_zeros_text() {
        let texts = run(3, |group| group.share_text(&format!("from rank {}", group.rank())).unwrap());
        assert_eq!(texts, vec!["from rank 0"; 3]);
    }
}
