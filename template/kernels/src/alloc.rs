//! The process's memory allocator: the system allocator, plus a small cache of large freed blocks.
//!
//! A training step allocates and frees the same large buffers (activations, gradients, im2col
//! columns) every step. The system allocator hands blocks above its mmap threshold back to the
//! kernel on free and maps fresh zeroed pages on the next allocation, so every step pays page faults
//! and `munmap` for memory it is about to use again — measured at up to a third of an MLP step.
//! [`ReuseAllocator`] keeps freed blocks of at least [`MIN_BLOCK`] bytes (up to [`CACHE_BYTES`] in
//! all) and returns one of exactly the same size and alignment on the next request. Installed in
//! `src/main.rs` with `#[global_allocator]`.
//!
//! [`tune_system_allocator`] covers the smaller blocks on glibc: by default a thread's heap is
//! trimmed (handed back to the kernel) whenever 128 KiB at its top are free, so a training loop on
//! a worker thread page-faults its way through every step (measured: 40x the page faults).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

/// Blocks smaller than this go straight to the system allocator, which serves them from its heap.
pub const MIN_BLOCK: usize = 64 * 1024;
/// At most this many bytes are kept; beyond it the oldest kept block is released.
pub const CACHE_BYTES: usize = 1 << 30;
/// At most this many blocks are kept.
const SLOTS: usize = 128;

/// glibc: keep freed memory instead of trimming heaps, and serve blocks up to 32 MiB (glibc's
/// maximum) from the heap rather than fresh `mmap`s. Call once at start-up; a no-op elsewhere.
pub fn tune_system_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// A freed block: its address, size and alignment (`size == 0`: an empty slot).
#[derive(Clone, Copy)]
struct Block {
    addr: usize,
    size: usize,
    align: usize,
}

const EMPTY: Block = Block { addr: 0, size: 0, align: 0 };

struct Cache {
    blocks: [Block; SLOTS],
    bytes: usize,
    /// The slot the next eviction starts looking at (oldest first, round robin).
    next_victim: usize,
}

/// See the module documentation. `const`-constructible, for `#[global_allocator]`.
pub struct ReuseAllocator {
    /// A spin lock: std's `Mutex` may allocate on first use on some platforms, which an allocator
    /// must not do; the critical sections here are a scan of [`SLOTS`] entries.
    locked: AtomicBool,
    cache: std::cell::UnsafeCell<Cache>,
    limit: usize,
}

// SAFETY: `cache` is only accessed while `locked` is held (see `with_cache`).
unsafe impl Sync for ReuseAllocator {}

impl ReuseAllocator {
    pub const fn new() -> Self {
        Self::with_limit(CACHE_BYTES)
    }

    /// Keep at most `limit` bytes of freed blocks.
    pub const fn with_limit(limit: usize) -> Self {
        Self {
            locked: AtomicBool::new(false),
            cache: std::cell::UnsafeCell::new(Cache { blocks: [EMPTY; SLOTS], bytes: 0, next_victim: 0 }),
            limit,
        }
    }

    fn with_cache<R>(&self, f: impl FnOnce(&mut Cache) -> R) -> R {
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held, so this is the only reference to the cache.
        let result = f(unsafe { &mut *self.cache.get() });
        self.locked.store(false, Ordering::Release);
        result
    }

    /// A kept block of exactly this layout, removed from the cache.
    fn take(&self, layout: Layout) -> Option<*mut u8> {
        self.with_cache(|cache| {
            let slot = cache.blocks.iter_mut().find(|b| b.size == layout.size() && b.align == layout.align())?;
            let block = std::mem::replace(slot, EMPTY);
            cache.bytes -= block.size;
            Some(block.addr as *mut u8)
        })
    }

    /// Keep a freed block; returns the blocks to release instead (it, or older ones evicted for it).
    fn keep(&self, ptr: *mut u8, layout: Layout) -> Evicted {
        let mut evicted = Evicted::default();
        if layout.size() > self.limit {
            evicted.push(Block { addr: ptr as usize, size: layout.size(), align: layout.align() });
            return evicted;
        }
        self.with_cache(|cache| {
            // Room for the block: evict the oldest kept blocks, at most MAX_EVICTIONS of them.
            for _ in 0..MAX_EVICTIONS {
                if cache.bytes + layout.size() <= self.limit && cache.blocks.iter().any(|b| b.size == 0) {
                    break;
                }
                let victim = cache.next_victim;
                cache.next_victim = (victim + 1) % SLOTS;
                let block = std::mem::replace(&mut cache.blocks[victim], EMPTY);
                if block.size != 0 {
                    cache.bytes -= block.size;
                    evicted.push(block);
                }
            }
            let block = Block { addr: ptr as usize, size: layout.size(), align: layout.align() };
            match cache.blocks.iter_mut().find(|b| b.size == 0) {
                Some(slot) if cache.bytes + layout.size() <= self.limit => {
                    *slot = block;
                    cache.bytes += layout.size();
                }
                _ => evicted.push(block),
            }
        });
        evicted
    }

    /// Bytes currently kept for reuse.
    pub fn cached_bytes(&self) -> usize {
        self.with_cache(|cache| cache.bytes)
    }
}

impl Default for ReuseAllocator {
    fn default() -> Self {
        Self::new()
    }
}

/// How many kept blocks one `dealloc` may release to make room.
const MAX_EVICTIONS: usize = 4;

/// Blocks to hand back to the system allocator once the lock is released: up to
/// [`MAX_EVICTIONS`] evicted ones and the freed block itself (a fixed array: an allocator must not
/// allocate while deallocating).
#[derive(Default)]
struct Evicted {
    blocks: [Option<Block>; MAX_EVICTIONS + 1],
    len: usize,
}

impl Evicted {
    fn push(&mut self, block: Block) {
        self.blocks[self.len] = Some(block);
        self.len += 1;
    }

    /// # Safety
    /// Every block must have been allocated by `System` with its size and alignment.
    unsafe fn release(self) {
        for block in self.blocks.into_iter().flatten() {
            // SAFETY: the caller's contract; size and align came from a valid `Layout`.
            unsafe {
                System.dealloc(block.addr as *mut u8, Layout::from_size_align_unchecked(block.size, block.align));
            }
        }
    }
}

// SAFETY: every block handed out comes from `System` with the requested layout, either directly
// or from the cache, which only holds blocks freed with exactly that layout.
unsafe impl GlobalAlloc for ReuseAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MIN_BLOCK
            && let Some(ptr) = self.take(layout)
        {
            return ptr;
        }
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MIN_BLOCK
            && let Some(ptr) = self.take(layout)
        {
            // SAFETY: the block is `layout.size()` bytes and ours alone.
            unsafe { std::ptr::write_bytes(ptr, 0, layout.size()) };
            return ptr;
        }
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() < MIN_BLOCK {
            // SAFETY: small blocks always come from `System` directly.
            return unsafe { System.dealloc(ptr, layout) };
        }
        // SAFETY: everything kept or evicted came from `System` with its layout.
        unsafe { self.keep(ptr, layout).release() }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.size() < MIN_BLOCK && new_size < MIN_BLOCK {
            // SAFETY: forwarded contract; small blocks are `System`'s.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller guarantees `new_size` with this alignment is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: forwarded contract.
        let new_ptr = unsafe { self.alloc(new_layout) };
        if !new_ptr.is_null() {
            // SAFETY: both blocks are valid for the smaller size and do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new_ptr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(size: usize) -> Layout {
        Layout::from_size_align(size, 64).unwrap()
    }

    #[test]
    fn a_freed_large_block_is_reused_for_the_same_layout() {
        let a = ReuseAllocator::new();
        unsafe {
            let p = a.alloc(big(MIN_BLOCK));
            p.write_bytes(7, MIN_BLOCK);
            a.dealloc(p, big(MIN_BLOCK));
            assert_eq!(a.cached_bytes(), MIN_BLOCK);
            let other = a.alloc(big(MIN_BLOCK + 64));
            assert_ne!(other, p, "a different size must not get the kept block");
            let q = a.alloc(big(MIN_BLOCK));
            assert_eq!(q, p);
            assert_eq!(a.cached_bytes(), 0);
            a.dealloc(q, big(MIN_BLOCK));
            let z = a.alloc_zeroed(big(MIN_BLOCK));
            assert_eq!(z, p);
            assert!(
                std::slice::from_raw_parts(z, MIN_BLOCK).iter().all(|b| *b == 0),
                "reused zeroed block has old bytes"
            );
            a.dealloc(z, big(MIN_BLOCK));
            a.dealloc(other, big(MIN_BLOCK + 64));
        }
    }

    #[test]
    fn small_blocks_are_not_kept() {
        let a = ReuseAllocator::new();
        unsafe {
            let p = a.alloc(big(1024));
            a.dealloc(p, big(1024));
        }
        assert_eq!(a.cached_bytes(), 0);
    }

    #[test]
    fn the_cache_never_exceeds_its_limit() {
        let a = ReuseAllocator::with_limit(3 * MIN_BLOCK);
        unsafe {
            let blocks: Vec<_> = (0..5).map(|i| (a.alloc(big(MIN_BLOCK + i * 64)), big(MIN_BLOCK + i * 64))).collect();
            for (p, layout) in blocks {
                a.dealloc(p, layout);
                assert!(a.cached_bytes() <= 3 * MIN_BLOCK, "{}", a.cached_bytes());
            }
            let p = a.alloc(big(2 * (1 << 30)));
            if !p.is_null() {
                a.dealloc(p, big(2 * (1 << 30)));
            }
        }
        assert!(a.cached_bytes() <= 3 * MIN_BLOCK && a.cached_bytes() > 0);
    }

    #[test]
    fn growing_a_vector_through_the_threshold_keeps_its_contents() {
        let a = ReuseAllocator::new();
        unsafe {
            let small = big(1024);
            let p = a.alloc(small);
            for i in 0..1024 {
                *p.add(i) = (i % 251) as u8;
            }
            let q = a.realloc(p, small, 2 * MIN_BLOCK);
            assert!((0..1024).all(|i| *q.add(i) == (i % 251) as u8));
            let r = a.realloc(q, big(2 * MIN_BLOCK), 512);
            assert!((0..512).all(|i| *r.add(i) == (i % 251) as u8));
            a.dealloc(r, big(512));
        }
    }
}
