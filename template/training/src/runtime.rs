//! Process set-up for fast CPU training: the thread count, the allocator settings and the thread
//! pool the program runs on. Call [`run`] from `main`.

/// Runs `f` on a rayon worker thread after setting the process up:
///
/// - `RAYON_NUM_THREADS` is fixed once (to candle's default, the physical cores, unless already
///   set): candle 0.11 otherwise looks the count up again on every matrix multiply, reading
///   `/proc/cpuinfo` each time (a sixth of an MLP step on Linux);
/// - candle's elementwise worker threads spin 1,000 rounds rather than 25,000 waiting for the next
///   op (`CANDLE_BARRIER_POOL_SPIN_LIMIT`, unless already set): on a small machine the spinning
///   takes the core a matrix multiply was about to use (measured: +5-10% samples/s on 2 cores);
/// - glibc's heaps are no longer trimmed after every step ([`crate::alloc::tune_system_allocator`]);
/// - the program runs on rayon's pool: the CPU kernels (ours and candle's matrix multiplies) split
///   their work with rayon, which from a worker costs a queue push, and from the main thread would
///   hand every op to the pool and wait for it, two context switches per op.
pub fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    crate::alloc::tune_system_allocator();
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = candle_core::utils::get_num_threads();
        // SAFETY: called first thing in `main`, before any other thread exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        // SAFETY: as above.
        unsafe { std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", SPIN_LIMIT.to_string()) };
    }
    if let Err(err) = rayon::ThreadPoolBuilder::new().stack_size(STACK_BYTES).build_global() {
        eprintln!("warning: could not configure the thread pool ({err}); using rayon's defaults");
    }
    rayon::scope(|_| f())
}

/// How long candle's elementwise workers spin before they sleep (candle's default: 25,000).
const SPIN_LIMIT: u32 = 1_000;

/// The stack of rayon's threads, where the program runs: a main thread's size.
const STACK_BYTES: usize = 8 << 20;
