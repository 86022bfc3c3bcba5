//! The optimiser updates on the CPU as one in-place pass over each parameter: the gradient is read
//! once, the moments (or momentum buffer) and the parameter are written in place. The tensor-op
//! form in `training`'s `optim.rs` (used on GPUs) takes a dozen passes and allocations per parameter and step.

use std::cell::RefCell;

use candle_core::{CpuStorage, InplaceOp2, Layout, Result, bail};
use rayon::prelude::*;

/// Parameters smaller than this are updated on the calling thread.
const PARALLEL_MIN: usize = 1 << 15;
/// Elements per parallel work item.
const CHUNK: usize = 1 << 13;

/// Matching chunks of (parameter, gradient) and (first, second) moments.
type Chunks<'a> = ((&'a mut [f32], &'a [f32]), (&'a mut [f32], &'a mut [f32]));

/// One step's update rule, with the step's constants folded in.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// PyTorch's `AdamW`: `p = p (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps)`.
    AdamW { decay: f32, beta1: f32, beta2: f32, eps: f32, lr: f32, bias1: f32, bias2: f32 },
    /// PyTorch's `SGD`: `d = g + wd p`, `buf = mu buf + d` (the first step: `buf = d`), then
    /// `p -= lr (d + mu buf)` with Nesterov or `p -= lr buf`. `momentum == 0`: no buffer.
    Sgd { lr: f32, momentum: f32, nesterov: bool, weight_decay: f32, first: bool },
}

/// Applies [`Rule`] to a parameter (the tensor the op runs on) given its gradient, updating
/// `state` (AdamW: `[m, v]`; SGD with momentum: `[buf]`) alongside.
pub struct FusedUpdate<'a> {
    pub rule: Rule,
    pub state: RefCell<&'a mut [Vec<f32>]>,
}

/// AdamW's per-step constants, as [`adamw`] uses them.
struct AdamWConstants {
    decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    /// `lr / (1 - beta1^t)`.
    step_size: f32,
    /// `sqrt(1 - beta2^t)`.
    bias2_sqrt: f32,
}

/// The AdamW update of one chunk, compiled for AVX2 + FMA where the CPU has it
/// ([`crate::simd::wide`]): the update is a fifth of an MLP step, and SSE2 does its square roots
/// and divisions four at a time.
fn adamw(chunks: Chunks<'_>, k: &AdamWConstants) {
    crate::simd::wide(
        #[inline(always)]
        || adamw_body(chunks, k),
    );
}

#[inline(always)]
fn adamw_body(((p, g), (m, v)): Chunks<'_>, k: &AdamWConstants) {
    let n = p.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    // Plain indexing over equal-length slices: bounds checks vanish and it vectorises.
    for i in 0..n {
        m[i] = k.beta1 * m[i] + (1.0 - k.beta1) * g[i];
        v[i] = k.beta2 * v[i] + (1.0 - k.beta2) * g[i] * g[i];
        p[i] = p[i] * k.decay - k.step_size * m[i] / (v[i].sqrt() / k.bias2_sqrt + k.eps);
    }
}

fn contiguous<'a>(data: &'a [f32], layout: &Layout, what: &str) -> Result<&'a [f32]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("fused optimizer update: the {what} is not contiguous"),
    }
}

impl InplaceOp2 for FusedUpdate<'_> {
    fn name(&self) -> &'static str {
        "fused-optimizer-update"
    }

    fn cpu_fwd(&self, param: &mut CpuStorage, param_l: &Layout, grad: &CpuStorage, grad_l: &Layout) -> Result<()> {
        let (CpuStorage::F32(param), CpuStorage::F32(grad)) = (param, grad) else {
            bail!("fused optimizer update: parameters and gradients must be f32");
        };
        let Some((start, end)) = param_l.contiguous_offsets() else {
            bail!("fused optimizer update: the parameter is not contiguous");
        };
        let param = &mut param[start..end];
        let grad = contiguous(grad, grad_l, "gradient")?;
        let mut state = self.state.borrow_mut();
        if grad.len() != param.len() || state.iter().any(|s| s.len() != param.len()) {
            bail!("fused optimizer update: parameter, gradient and state sizes differ");
        }
        match (self.rule, &mut **state) {
            (Rule::AdamW { decay, beta1, beta2, eps, lr, bias1, bias2 }, [m, v]) => {
                let k = AdamWConstants { decay, beta1, beta2, eps, step_size: lr / bias1, bias2_sqrt: bias2.sqrt() };
                let update = |chunks: Chunks<'_>| adamw(chunks, &k);
                if param.len() >= PARALLEL_MIN {
                    let moments = m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK));
                    param.par_chunks_mut(CHUNK).zip(grad.par_chunks(CHUNK)).zip(moments).for_each(update);
                } else {
                    update(((param, grad), (m, v)));
                }
            }
            (Rule::Sgd { lr, momentum, nesterov, weight_decay, first }, buffers) => {
                let update = |p: &mut f32, g: f32, buf: Option<&mut f32>| {
                    let d = g + weight_decay * *p;
                    let step = match buf {
                        None => d,
                        Some(buf) => {
                            *buf = if first { d } else { momentum * *buf + d };
                            if nesterov { d + momentum * *buf } else { *buf }
                        }
                    };
                    *p -= lr * step;
                };
                match buffers {
                    [] => param.iter_mut().zip(grad).for_each(|(p, g)| update(p, *g, None)),
                    [buf] => {
                        param.iter_mut().zip(grad).zip(buf.iter_mut()).for_each(|((p, g), b)| update(p, *g, Some(b)))
                    }
                    _ => bail!("fused optimizer update: SGD keeps at most one buffer"),
                }
            }
            _ => bail!("fused optimizer update: AdamW needs two moment buffers"),
        }
        Ok(())
    }
}
