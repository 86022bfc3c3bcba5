//! Layer normalisation over one dimension as one CPU op forward and one backward.
//!
//! The tensor-op form (mean, subtract, square, mean, add, sqrt, divide, scale, shift, and for
//! `ChannelNorm` two permutes that copy) is ~12 ops forward and ~30 backward, each a pass and an
//! allocation; on the convnext's small activations the op overhead is most of the step. The tensor
//! is viewed as `[outer, channels, inner]` and normalised over `channels`: `inner = 1` for
//! `LayerNorm` on the last dimension, `inner = h * w` for `ChannelNorm` on NCHW.

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

/// Mean and `1 / sqrt(var + eps)` of the `channels` values at stride `inner` from `base`.
fn moments(x: &[f32], base: usize, channels: usize, inner: usize, eps: f32) -> (f32, f32) {
    let mean = (0..channels).map(|c| x[base + c * inner]).sum::<f32>() / channels as f32;
    let var = (0..channels).map(|c| (x[base + c * inner] - mean).powi(2)).sum::<f32>() / channels as f32;
    (mean, 1.0 / (var + eps).sqrt())
}

impl Norm {
    /// The offset of the first value of every normalised group `(o, i)`.
    fn groups(channels: usize, inner: usize, len: usize) -> impl Iterator<Item = usize> {
        let outer = len / (channels * inner);
        (0..outer).flat_map(move |o| (0..inner).map(move |i| o * channels * inner + i))
    }
}

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
        let mut y = vec![0f32; x.len()];
        for base in Self::groups(channels, inner, x.len()) {
            let (mean, rstd) = moments(x, base, channels, inner, self.eps);
            for c in 0..channels {
                let k = base + c * inner;
                y[k] = (x[k] - mean) * rstd * weight[c] + bias[c];
            }
        }
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
        let mut xhat = vec![0f32; channels];
        for base in Norm::groups(channels, inner, n) {
            let (mean, rstd) = moments(x, base, channels, inner, self.eps);
            // dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), with dxhat = dy * weight.
            let (mut mean_dxhat, mut mean_dxhat_xhat) = (0f32, 0f32);
            for c in 0..channels {
                let k = base + c * inner;
                xhat[c] = (x[k] - mean) * rstd;
                let dxhat = dy[k] * weight[c];
                mean_dxhat += dxhat;
                mean_dxhat_xhat += dxhat * xhat[c];
                dweight[c] += dy[k] * xhat[c];
                dbias[c] += dy[k];
            }
            mean_dxhat /= channels as f32;
            mean_dxhat_xhat /= channels as f32;
            for c in 0..channels {
                let k = base + c * inner;
                dx[k] = rstd * (dy[k] * weight[c] - mean_dxhat - xhat[c] * mean_dxhat_xhat);
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(n + 2 * channels)))
    }
}
