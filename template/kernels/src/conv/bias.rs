//! Adding the per-channel bias, with a backward pass that reduces the cheap way.
//!
//! `broadcast_add` would do the same forward, but candle's backward for it sums all broadcast
//! dimensions `(0, 2, 3)` in one strided pass: ~20 ms for the cnn's conv2 at batch 64, more than the
//! convolution itself. Summing the last dimensions first takes a fraction of a millisecond.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::{check_dims, f32_values, par_planes};

/// `(ys [batch, out, oh, ow], bias [out])` to `ys + bias`, channel by channel.
pub(super) struct AddBias;

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "conv2d-add-bias"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (batch, out, height, width) = l1.shape().dims4()?;
        check_dims(self.name(), l2, &[out])?;
        let (ys, bias) = (f32_values(s1, l1, self.name())?, f32_values(s2, l2, self.name())?);
        let plane = height * width;
        let sums = par_planes(
            batch * out,
            plane,
            #[inline(always)]
            |i, sums| {
                let (ys, bias) = (&ys[i * plane..][..plane], bias[i % out]);
                sums.iter_mut().zip(ys).for_each(|(s, y)| *s = y + bias);
            },
        );
        Ok((CpuStorage::F32(sums), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _ys: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(grad.clone()), Some(bias_grad(grad)?)))
    }
}

/// The bias gradient `[out]` of an output gradient `[batch, out, oh, ow]`: the last dimensions
/// summed first.
pub(super) fn bias_grad(grad: &Tensor) -> Result<Tensor> {
    grad.flatten_from(2)?.sum(2)?.sum(0)
}
