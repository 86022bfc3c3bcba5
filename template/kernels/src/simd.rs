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
    /// The GELU kernel through [`super::wide`] (inlined there, so built for AVX2 on a CPU that has
    /// it) against the same function called value by value in baseline code.
    fn wide_gives_the_bits_of_the_baseline_loop() {
        let xs: Vec<f32> = (0..100_000).map(|i| (i as f32 * 0.37).sin() * 6.0).collect();
        let wide = crate::buffer::map(&xs, 1 << 12, crate::activation::gelu_value);
        let baseline: Vec<f32> = xs.iter().map(|&x| crate::activation::gelu_value(x)).collect();
        assert!(wide.iter().zip(&baseline).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
