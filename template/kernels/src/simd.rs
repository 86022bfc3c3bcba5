//! The kernels' loops compiled for AVX2 + FMA as well as for the baseline x86-64 the crate is
//! built for, picked at run time.
//!
//! A release build targets every x86-64 CPU, so its loops vectorise with SSE2, four values at a
//! time; a CPU from the last ten years runs eight (AVX2). [`wide`] runs a closure inside a function
//! compiled with those features, where the closure is inlined and its loops vectorise eight wide.
//! The closure's body is compiled twice, so the compiler inlines it only when told to: the closures
//! on this path (from [`crate::buffer::par_fill`] down to the loop) are `#[inline(always)]`, and a
//! helper without it runs baseline code (the convnext's inference was 15% faster with them).
//! Rust never fuses a multiply and an add on its own and the vectoriser keeps the order of float
//! sums, so both versions give the same bits: results, tests and resume do not depend on the CPU.

/// `f()`, compiled for AVX2 + FMA when the CPU has them (checked once; a load afterwards).
#[inline(always)]
pub(crate) fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { avx2_fma(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn avx2_fma<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    #[test]
    fn wide_gives_the_bits_of_the_baseline_loop() {
        let xs: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() * 10.0).collect();
        let body = |xs: &[f32]| xs.iter().map(|x| x * 1.5 + 0.25).fold(-0.0f32, |s, v| s + v * v);
        assert_eq!(super::wide(|| body(&xs)).to_bits(), body(&xs).to_bits());
    }
}
