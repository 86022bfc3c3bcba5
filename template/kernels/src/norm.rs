//! Layer normalisation over one dimension as one CPU op forward and one backward.
//!
//! The tensor-op form (mean, subtract, square, mean, add, sqrt, divide, scale, shift, and for
//! `ChannelNorm` two permutes that copy) is ~12 ops forward and ~30 backward, each a pass and an
//! allocation; on the convnext's small activations the op overhead is most of the step. The tensor
//! is viewed as `[outer, channels, inner]` and normalised over `channels`: `inner = 1` for
//! `LayerNorm` on the last dimension, `inner = h * w` for `ChannelNorm` on NCHW.
//!
//! Each `[channels, inner]` slab is normalised a row of `inner` values at a time: the means and
//! variances of all `inner` positions accumulate together over the channels, in the same order as
//! one position's values would be summed, so the loops vectorise and the results are the same bits
//! as a position-by-position loop. The forward pass splits the slabs between threads; the backward
//! pass sums the parameters' gradients over them in a fixed order, on one thread.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};

/// `y = (x - mean) / sqrt(var + eps) * weight + bias` over `channels` (biased variance).
pub struct Norm {
    pub channels: usize,
    pub inner: usize,
    pub eps: f32,
}

/// For `(x, weight, grad_y)`: `[grad_x (x's size), grad_weight (channels), grad_bias (channels)]`
/// packed into one vector.
struct NormGrad {
    channels: usize,
    inner: usize,
    eps: f32,
}

fn slice<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else { bail!("layer norm: the {what} must be f32") };
    let Some((start, end)) = layout.contiguous_offsets() else { bail!("layer norm: the {what} must be contiguous") };
    Ok(&data[start..end])
}

/// Each position's mean and `1 / sqrt(var + eps)` over the channels of one slab `x`
/// `[channels, inner]`, into `mean` and `rstd` (`inner` values each).
#[inline(always)]
fn moments(x: &[f32], inner: usize, eps: f32, mean: &mut [f32], rstd: &mut [f32]) {
    let channels = (x.len() / inner) as f32;
    // Sums start at -0.0, as `Iterator::sum` does, so that a position whose values are all -0.0
    // keeps the sign a one-position loop gives it.
    mean.fill(-0.0);
    for row in x.chunks_exact(inner) {
        mean.iter_mut().zip(row).for_each(|(m, x)| *m += x);
    }
    mean.iter_mut().for_each(|m| *m /= channels);
    rstd.fill(-0.0);
    for row in x.chunks_exact(inner) {
        rstd.iter_mut().zip(row).zip(&*mean).for_each(|((v, x), m)| *v += (x - m).powi(2));
    }
    rstd.iter_mut().for_each(|v| *v = 1.0 / (*v / channels + eps).sqrt());
}

/// Slabs normalised per task in the forward pass: about 64 K values, so that small tensors stay on
/// one thread (a hand-off costs more than normalising a few thousand values).
const VALUES_PER_TASK: usize = 1 << 16;

impl CustomOp3 for Norm {
    fn name(&self) -> &'static str {
        "layer-norm-fused"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, weight, bias) = (slice(s1, l1, "input")?, slice(s2, l2, "weight")?, slice(s3, l3, "bias")?);
        let (channels, inner) = (self.channels, self.inner);
        if x.len() % (channels * inner) != 0 || weight.len() != channels || bias.len() != channels {
            bail!("layer norm: input {:?} does not match {channels} channels", l1.dims());
        }
        let slab = channels * inner;
        let per_task = (VALUES_PER_TASK / slab).max(1) * slab;
        let scratch = || (vec![0f32; inner], vec![0f32; inner]);
        // SAFETY: a task's values are whole slabs (the input is, and `per_task` is a multiple of
        // `slab`), and each slab's values are written channel row by channel row.
        let y = unsafe {
            crate::buffer::par_fill(
                x.len(),
                per_task,
                1,
                scratch,
                #[inline(always)]
                |(mean, rstd), i, y| {
                    for (y, x) in y.chunks_exact_mut(slab).zip(x[i * per_task..].chunks_exact(slab)) {
                        moments(x, inner, self.eps, mean, rstd);
                        for (c, (y, x)) in y.chunks_exact_mut(inner).zip(x.chunks_exact(inner)).enumerate() {
                            let (w, b) = (weight[c], bias[c]);
                            for (((y, x), m), r) in y.iter_mut().zip(x).zip(&*mean).zip(&*rstd) {
                                y.write((x - m) * r * w + b);
                            }
                        }
                    }
                },
            )
        };
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c) = (x.elem_count(), self.channels);
        let op = NormGrad { channels: c, inner: self.inner, eps: self.eps };
        let packed = x.apply_op3_no_bwd(weight, &grad.contiguous()?, &op)?;
        Ok((
            Some(packed.narrow(0, 0, n)?.reshape(x.shape())?),
            Some(packed.narrow(0, n, c)?),
            Some(packed.narrow(0, n + c, c)?),
        ))
    }
}

impl CustomOp3 for NormGrad {
    fn name(&self) -> &'static str {
        "layer-norm-fused-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, weight, dy) = (slice(s1, l1, "input")?, slice(s2, l2, "weight")?, slice(s3, l3, "gradient")?);
        let (channels, inner, n) = (self.channels, self.inner, x.len());
        let mut out = vec![0f32; n + 2 * channels];
        let (dx, dparams) = out.split_at_mut(n);
        let (dweight, dbias) = dparams.split_at_mut(channels);
        if n % (channels * inner) != 0 || weight.len() != channels || dy.len() != n {
            bail!("layer norm: input {:?} does not match {channels} channels", l1.dims());
        }
        let (mut mean, mut rstd) = (vec![0f32; inner], vec![0f32; inner]);
        // Per position: the means over the channels of dxhat and of dxhat * xhat (dxhat = dy * weight).
        let (mut mean_dxhat, mut mean_dxhat_xhat) = (vec![0f32; inner], vec![0f32; inner]);
        let xhat = |x: f32, m: f32, r: f32| (x - m) * r;
        let slab = channels * inner;
        for ((x, dy), dx) in x.chunks_exact(slab).zip(dy.chunks_exact(slab)).zip(dx.chunks_exact_mut(slab)) {
            moments(x, inner, self.eps, &mut mean, &mut rstd);
            mean_dxhat.fill(0.0);
            mean_dxhat_xhat.fill(0.0);
            for (c, (x, dy)) in x.chunks_exact(inner).zip(dy.chunks_exact(inner)).enumerate() {
                let w = weight[c];
                for i in 0..inner {
                    let (h, dxhat) = (xhat(x[i], mean[i], rstd[i]), dy[i] * w);
                    mean_dxhat[i] += dxhat;
                    mean_dxhat_xhat[i] += dxhat * h;
                }
                // The parameters' sums run over the slabs and positions in order, on one thread.
                for i in 0..inner {
                    dweight[c] += dy[i] * xhat(x[i], mean[i], rstd[i]);
                    dbias[c] += dy[i];
                }
            }
            mean_dxhat.iter_mut().chain(mean_dxhat_xhat.iter_mut()).for_each(|m| *m /= channels as f32);
            // dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)).
            for (c, ((x, dy), dx)) in
                x.chunks_exact(inner).zip(dy.chunks_exact(inner)).zip(dx.chunks_exact_mut(inner)).enumerate()
            {
                let w = weight[c];
                for i in 0..inner {
                    dx[i] = rstd[i] * (dy[i] * w - mean_dxhat[i] - xhat(x[i], mean[i], rstd[i]) * mean_dxhat_xhat[i]);
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(n + 2 * channels)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Fixed pseudo-random values in [-2, 2).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761) | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 8) as f32 / (1u32 << 22) as f32 - 2.0
            })
            .collect()
    }

    /// One position at a time, as the definition reads: y and the three gradients of sum(y * probe).
    fn by_position(
        x: &[f32],
        w: &[f32],
        b: &[f32],
        probe: &[f32],
        channels: usize,
        inner: usize,
        eps: f32,
    ) -> [Vec<f32>; 4] {
        let (mut y, mut dx, mut dw, mut db) =
            (vec![0f32; x.len()], vec![0f32; x.len()], vec![0f32; channels], vec![0f32; channels]);
        for o in 0..x.len() / (channels * inner) {
            for i in 0..inner {
                let at = |c: usize| o * channels * inner + c * inner + i;
                let mean = (0..channels).map(|c| x[at(c)]).sum::<f32>() / channels as f32;
                let var = (0..channels).map(|c| (x[at(c)] - mean).powi(2)).sum::<f32>() / channels as f32;
                let rstd = 1.0 / (var + eps).sqrt();
                let xhat = |c: usize| (x[at(c)] - mean) * rstd;
                let (mut m1, mut m2) = (0f32, 0f32);
                for c in 0..channels {
                    y[at(c)] = (x[at(c)] - mean) * rstd * w[c] + b[c];
                    let dxhat = probe[at(c)] * w[c];
                    m1 += dxhat;
                    m2 += dxhat * xhat(c);
                    dw[c] += probe[at(c)] * xhat(c);
                    db[c] += probe[at(c)];
                }
                let (m1, m2) = (m1 / channels as f32, m2 / channels as f32);
                for c in 0..channels {
                    dx[at(c)] = rstd * (probe[at(c)] * w[c] - m1 - xhat(c) * m2);
                }
            }
        }
        [y, dx, dw, db]
    }

    #[test]
    fn the_same_bits_as_normalising_one_position_at_a_time_on_any_thread_count() {
        // LayerNorm (inner 1), ChannelNorm on convnext's planes, and enough slabs to split.
        for (outer, channels, inner) in [(5, 32, 1), (3, 8, 49), (40, 16, 9), (300, 8, 49)] {
            let n = outer * channels * inner;
            let (mut x, w, mut b, probe) = (values(n, 1), values(channels, 2), values(channels, 3), values(n, 4));
            if inner > 1 {
                // A position of -0.0 in every channel and a bias of -0.0: the output's sign there
                // depends on the sums starting at -0.0.
                (0..channels).for_each(|c| x[c * inner] = -0.0);
                b[0] = -0.0;
            }
            let want = by_position(&x, &w, &b, &probe, channels, inner, 1e-6);
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let got: Vec<Vec<f32>> = pool.install(|| {
                    let dev = &Device::Cpu;
                    let xs = Var::from_vec(x.clone(), (outer, channels, inner), dev).unwrap();
                    let weight = Var::from_vec(w.clone(), channels, dev).unwrap();
                    let bias = Var::from_vec(b.clone(), channels, dev).unwrap();
                    let ys = xs.apply_op3(&weight, &bias, Norm { channels, inner, eps: 1e-6 }).unwrap();
                    let probe = Tensor::from_vec(probe.clone(), (outer, channels, inner), dev).unwrap();
                    let grads = (&ys * probe).unwrap().sum_all().unwrap().backward().unwrap();
                    [&ys, grads.get(&xs).unwrap(), grads.get(&weight).unwrap(), grads.get(&bias).unwrap()]
                        .map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                        .into()
                });
                for ((what, got), want) in
                    ["output", "input grad", "weight grad", "bias grad"].iter().zip(&got).zip(&want)
                {
                    let differs = got.iter().zip(want).position(|(g, w)| g.to_bits() != w.to_bits());
                    assert!(
                        got.len() == want.len() && differs.is_none(),
                        "{what} at [{outer}, {channels}, {inner}] on {threads} threads: value {differs:?} is {:?}, not {:?}",
                        differs.map(|i| got[i]),
                        differs.map(|i| want[i])
                    );
                }
            }
        }
    }
}
