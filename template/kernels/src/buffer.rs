//! Output buffers that the kernels fill on rayon's threads, without zeroing them first.
//!
//! `vec![0f32; n]` zeroes all `n` values on the calling thread before a kernel writes them again:
//! [`crate::alloc::ReuseAllocator`] hands back a used block, so the zeroing is a `memset` of the
//! whole output on one core while the other waits (4% of the mlp's inference step and 6% of the
//! cnn's training step, most of it for values the kernel then overwrites). Here each chunk is
//! written once, by the thread that computes it; an output that must start at zero (one that a
//! kernel adds into) is zeroed chunk by chunk on the threads, while it is in their caches.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// A vector of `len` values whose chunk `i` (values `i * chunk ..`, the last chunk shorter) is
/// written by `fill(scratch, i, chunk)` on rayon's threads, at least `min_len` chunks to a task;
/// `init` makes each task's scratch state (a column buffer, say). `fill` runs compiled for AVX2
/// where the CPU has it ([`crate::simd::wide`]).
///
/// # Safety
/// `fill` must write every value of each chunk it is given (with [`write`], [`copy`], or a GEMM that
/// overwrites its destination), as the returned vector's values are those writes.
pub(crate) unsafe fn par_fill<S>(
    len: usize,
    chunk: usize,
    min_len: usize,
    init: impl Fn() -> S + Send + Sync,
    fill: impl Fn(&mut S, usize, &mut [MaybeUninit<f32>]) + Send + Sync,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk.max(1))
        .with_min_len(min_len.max(1))
        .enumerate()
        .for_each_init(init, |scratch, (i, values)| {
            crate::simd::wide(
                #[inline(always)]
                || fill(scratch, i, values),
            )
        });
    // SAFETY: the chunks cover `0..len`, and `fill` wrote each of them (the caller's promise).
    unsafe { out.set_len(len) };
    out
}

/// [`par_fill`] on the calling thread, for outputs too small to split.
///
/// # Safety
/// `fill` must write every value, as for [`par_fill`].
pub(crate) unsafe fn fill(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    crate::simd::wide(
        #[inline(always)]
        || fill(&mut out.spare_capacity_mut()[..len]),
    );
    // SAFETY: `fill` wrote all `len` values (the caller's promise).
    unsafe { out.set_len(len) };
    out
}

/// `f(x)` for each value of `xs`, computed in parallel chunks of `chunk` values.
pub(crate) fn map(xs: &[f32], chunk: usize, f: impl Fn(f32) -> f32 + Send + Sync) -> Vec<f32> {
    // SAFETY: chunk `i` of the output zips with the values of `xs` from `i * chunk`, at least as
    // many as the chunk has, so each of its values is written.
    unsafe {
        par_fill(
            xs.len(),
            chunk,
            1,
            || (),
            #[inline(always)]
            |_, i, out| {
                for (o, x) in out.iter_mut().zip(&xs[i * chunk..]) {
                    o.write(f(*x));
                }
            },
        )
    }
}

/// `f(a, b)` for each pair of values of `a` and `b` (of one length), in parallel chunks.
pub(crate) fn map2(a: &[f32], b: &[f32], chunk: usize, f: impl Fn(f32, f32) -> f32 + Send + Sync) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "map2: the two inputs differ in length");
    // SAFETY: as in `map`; `b` is as long as `a`.
    unsafe {
        par_fill(
            a.len(),
            chunk,
            1,
            || (),
            #[inline(always)]
            |_, i, out| {
                for ((o, a), b) in out.iter_mut().zip(&a[i * chunk..]).zip(&b[i * chunk..]) {
                    o.write(f(*a, *b));
                }
            },
        )
    }
}

/// Sets every value of `dst` to `value`; the same values, initialised.
pub(crate) fn write(dst: &mut [MaybeUninit<f32>], value: f32) -> &mut [f32] {
    dst.fill(MaybeUninit::new(value));
    // SAFETY: every value was just written.
    unsafe { assume_init(dst) }
}

/// Copies `src` into `dst` (of the same length); the same values, initialised.
pub(crate) fn copy<'a>(dst: &'a mut [MaybeUninit<f32>], src: &[f32]) -> &'a mut [f32] {
    assert_eq!(dst.len(), src.len(), "copy: source and destination differ in length");
    for (d, s) in dst.iter_mut().zip(src) {
        d.write(*s);
    }
    // SAFETY: every value was just written.
    unsafe { assume_init(dst) }
}

/// `dst` as the values it holds.
///
/// # Safety
/// Every value of `dst` has been written.
pub(crate) unsafe fn assume_init(dst: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and the caller promises the values are written.
    unsafe { &mut *(dst as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_and_map2_write_every_value_for_every_chunking() {
        for len in [0, 1, 7, 64, 1000] {
            let xs: Vec<f32> = (0..len).map(|i| i as f32 - 3.0).collect();
            for chunk in [1, 3, 64, 5000] {
                assert_eq!(
                    map(&xs, chunk, |x| x * 2.0),
                    xs.iter().map(|x| x * 2.0).collect::<Vec<_>>(),
                    "len {len}, chunk {chunk}"
                );
                let sums = map2(&xs, &xs, chunk, |a, b| a + b + 1.0);
                assert_eq!(sums, xs.iter().map(|x| 2.0 * x + 1.0).collect::<Vec<_>>(), "len {len}, chunk {chunk}");
            }
        }
    }

    #[test]
    fn par_fill_gives_each_chunk_its_index_and_a_shorter_last_chunk() {
        // SAFETY: each chunk is written whole with `write`.
        let out = unsafe {
            par_fill(
                10,
                4,
                1,
                || 0usize,
                |calls, i, c| {
                    *calls += 1;
                    write(c, i as f32 * 10.0 + c.len() as f32);
                },
            )
        };
        assert_eq!(out, [4.0, 4.0, 4.0, 4.0, 14.0, 14.0, 14.0, 14.0, 22.0, 22.0]);
    }

    #[test]
    fn copy_and_write_return_the_values_written() {
        let mut buf = [MaybeUninit::uninit(); 3];
        assert_eq!(copy(&mut buf, &[1.0, 2.0, 3.0]), [1.0, 2.0, 3.0]);
        assert_eq!(write(&mut buf, -0.0).iter().map(|v| v.to_bits()).collect::<Vec<_>>(), [(-0.0f32).to_bits(); 3]);
    }
}
