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
///
/// The two variables are set only while this is the process's one thread (counted in
/// `/proc/self/task`), which is what makes `set_var` sound; called later, or where the threads
/// cannot be counted, the variables are left as they are (set them in the shell instead).
pub fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    crate::alloc::tune_system_allocator();
    let defaults = [
        ("RAYON_NUM_THREADS", candle_core::utils::get_num_threads().to_string()),
        ("CANDLE_BARRIER_POOL_SPIN_LIMIT", SPIN_LIMIT.to_string()),
    ];
    for (name, value) in defaults {
        if std::env::var_os(name).is_none() && the_only_thread() {
            // SAFETY: no other thread exists (just counted, and this one starts none in
            // between), so nothing can read the environment while it changes.
            unsafe { std::env::set_var(name, value) };
        }
    }
    if let Err(err) = rayon::ThreadPoolBuilder::new().stack_size(STACK_BYTES).build_global() {
        eprintln!("warning: could not configure the thread pool ({err}); using rayon's defaults");
    }
    rayon::scope(|_| f())
}

/// Whether the calling thread is the process's only one (Linux: `/proc/self/task` has one entry;
/// elsewhere unknown, so false).
fn the_only_thread() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() == 1)
}

/// How long candle's elementwise workers spin before they sleep (candle's default: 25,000).
const SPIN_LIMIT: u32 = 1_000;

/// The stack of rayon's threads, where the program runs: a main thread's size.
const STACK_BYTES: usize = 8 << 20;

#[cfg(test)]
mod tests {
    /// A test binary runs tests on several threads, so the environment is left alone here.
    #[test]
    fn the_environment_is_not_changed_once_other_threads_exist() {
        let helper = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(200)));
        if cfg!(target_os = "linux") {
            assert!(!super::the_only_thread());
        }
        let before = std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT");
        super::run(|| ());
        assert_eq!(std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT"), before);
        helper.join().unwrap();
    }
}
