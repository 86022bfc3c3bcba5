//! Cross-entropy with label smoothing as one CPU op (and one op for its gradient): the tensor-op form
//! (log-softmax, gather, means) is a dozen small ops forward and more backward, each a pass and an
//! allocation, which is most of the loss's cost at small images' sizes.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, bail};

/// `mean_i [(1 - eps) (lse_i - x_{i,t_i}) + eps (lse_i - mean_j x_ij)]` for logits `[batch, classes]`
/// and `u32` targets `[batch]`; `lse_i = log sum_j exp x_ij`.
pub struct CrossEntropy {
    pub smoothing: f32,
}

/// The gradient of [`CrossEntropy`] with respect to the logits, for an upstream gradient of 1:
/// `(softmax_ij - (1 - eps) [j = t_i] - eps / classes) / batch`.
struct CrossEntropyGrad {
    smoothing: f32,
}

/// Contiguous `(logits, targets, batch, classes)`, checked.
fn operands<'a>(
    s1: &'a CpuStorage,
    l1: &Layout,
    s2: &'a CpuStorage,
    l2: &Layout,
) -> Result<(&'a [f32], &'a [u32], usize, usize)> {
    let (CpuStorage::F32(logits), CpuStorage::U32(targets)) = (s1, s2) else {
        bail!("cross-entropy: logits must be f32 and targets u32");
    };
    let &[batch, classes] = l1.dims() else {
        bail!("cross-entropy: logits must be [batch, classes], got {:?}", l1.dims())
    };
    let (Some((a, b)), Some((c, d))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
        bail!("cross-entropy: logits and targets must be contiguous");
    };
    let (logits, targets) = (&logits[a..b], &targets[c..d]);
    if targets.len() != batch {
        bail!("cross-entropy: {} targets for a batch of {batch}", targets.len());
    }
    if let Some(t) = targets.iter().find(|t| **t as usize >= classes) {
        bail!("cross-entropy: target {t} is not a class index below {classes}");
    }
    Ok((logits, targets, batch, classes))
}

/// The row's maximum and `log sum exp`.
fn log_sum_exp(row: &[f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|x| (x - max).exp()).sum();
    (max, max + sum.ln())
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (logits, targets, batch, classes) = operands(s1, l1, s2, l2)?;
        let eps = self.smoothing;
        let total: f64 = logits
            .chunks_exact(classes)
            .zip(targets)
            .map(|(row, &t)| {
                let (_, lse) = log_sum_exp(row);
                let mean = row.iter().sum::<f32>() / classes as f32;
                f64::from((1.0 - eps) * (lse - row[t as usize]) + eps * (lse - mean))
            })
            .sum();
        Ok((CpuStorage::F32(vec![(total / batch as f64) as f32]), Shape::from(())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = logits.apply_op2_no_bwd(targets, &CrossEntropyGrad { smoothing: self.smoothing })?;
        Ok((Some(grad.broadcast_mul(grad_res)?), None))
    }
}

impl CustomOp2 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "cross-entropy-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (logits, targets, batch, classes) = operands(s1, l1, s2, l2)?;
        let eps = self.smoothing;
        let scale = 1.0 / batch as f32;
        let mut grad = vec![0.0f32; logits.len()];
        for ((row, out), &t) in logits.chunks_exact(classes).zip(grad.chunks_exact_mut(classes)).zip(targets) {
            let (_, lse) = log_sum_exp(row);
            for (g, x) in out.iter_mut().zip(row) {
                *g = ((x - lse).exp() - eps / classes as f32) * scale;
            }
            out[t as usize] -= (1.0 - eps) * scale;
        }
        Ok((CpuStorage::F32(grad), Shape::from((batch, classes))))
    }
}
