//! ReLU and GELU as one CPU op forward and one backward each (the `Relu` and `GeluErf` layers of
//! the `model` crate run these).
//!
//! candle's `relu` backward builds the mask from four tensor ops (zeros, compare, cast, multiply),
//! each a pass over the activation; on the cnn's `[64, 64, 24, 24]` activations that is tens of
//! megabytes of memory traffic per step. Its `gelu_erf` backward is a dozen ops. Here each backward
//! pass reads the gradient and one saved tensor once. Other devices use candle's ops.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, bail};

/// Elements per parallel work item.
const CHUNK: usize = 1 << 14;

/// `max(x, 0)`, with a fused backward pass on the CPU.
pub fn relu(xs: &Tensor) -> Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == candle_core::DType::F32 {
        xs.contiguous()?.apply_op1(Forward(ReluFn))
    } else {
        xs.relu()
    }
}

/// The exact GELU, `x Phi(x) = x (1 + erf(x / sqrt 2)) / 2`, with a fused backward pass on the CPU.
pub fn gelu_erf(xs: &Tensor) -> Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == candle_core::DType::F32 {
        xs.contiguous()?.apply_op1(Forward(GeluFn))
    } else {
        xs.gelu_erf()
    }
}

/// The gradient of a ReLU's input from its output's gradient and its `output` (both contiguous
/// f32 CPU tensors of one shape): the gradient where the output is positive, zero elsewhere.
pub(crate) fn relu_grad(grad: &Tensor, output: &Tensor) -> Result<Tensor> {
    grad.contiguous()?.apply_op2_no_bwd(output, &Backward(ReluFn))
}

/// The standard normal CDF, `(1 + erf(x / sqrt 2)) / 2`.
#[inline(always)]
fn phi_cdf(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `erf(x)` within 5e-7 (absolute; f32 resolution near 1 is 6e-8), branch-free so that loops over it vectorise; libm's `erff`
/// branches per value and was a third of the convnext's inference time. `erfc` by the Chebyshev
/// fit of Numerical Recipes (relative error < 1.2e-7), with `t = 1 / (1 + |x| / 2)`.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204 + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * exp(-z * z + poly);
    (1.0 - erfc).copysign(x)
}

/// `e^x` within 2 ulp for the arguments GELU needs (down to about -87, where it flushes to 0):
/// `2^n * p(r)` with `r = x - n ln 2`, `|r| <= ln 2 / 2`, and a degree-6 Taylor polynomial.
/// Branch-free, like [`erf`].
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by adding and subtracting 1.5 * 2^23 (no `round` call, which would stop
    // the loop from vectorising on baseline x86-64).
    const ROUND: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    f32::from_bits(((n as i32 + 127) as u32) << 23) * p
}

/// An elementwise activation and its derivative, for [`Forward`] and [`Backward`]: one generic
/// kernel each, monomorphised per activation so that the loops inline and vectorise. The
/// functions are `#[inline(always)]`: left to the compiler, a change elsewhere in the crate once
/// moved `GeluFn::grad` into another codegen unit, uninlined, and the convnext's training step
/// lost 14%.
trait Activation: Copy + Send + Sync + 'static {
    const NAME: &'static str;
    const GRAD_NAME: &'static str;
    /// Whether [`Activation::grad`] reads the op's output (else its input).
    const GRAD_FROM_OUTPUT: bool;
    fn value(x: f32) -> f32;
    /// The input's gradient from the output's gradient `g` and the saved input or output.
    fn grad(g: f32, saved: f32) -> f32;
}

#[derive(Clone, Copy)]
struct ReluFn;

impl Activation for ReluFn {
    const NAME: &'static str = "relu-fused";
    const GRAD_NAME: &'static str = "relu-fused-grad";
    const GRAD_FROM_OUTPUT: bool = true;
    #[inline(always)]
    fn value(x: f32) -> f32 {
        x.max(0.0)
    }
    #[inline(always)]
    fn grad(g: f32, output: f32) -> f32 {
        if output > 0.0 { g } else { 0.0 }
    }
}

/// The exact GELU of one value, as the forward kernel computes it (for the tests of [`crate::simd`]).
#[cfg(test)]
pub(crate) fn gelu_value(x: f32) -> f32 {
    GeluFn::value(x)
}

#[derive(Clone, Copy)]
struct GeluFn;

impl Activation for GeluFn {
    const NAME: &'static str = "gelu-erf-fused";
    const GRAD_NAME: &'static str = "gelu-erf-fused-grad";
    const GRAD_FROM_OUTPUT: bool = false;
    #[inline(always)]
    fn value(x: f32) -> f32 {
        x * phi_cdf(x)
    }
    /// `g (Phi(x) + x phi(x))`.
    #[inline(always)]
    fn grad(g: f32, x: f32) -> f32 {
        let inv_sqrt_2pi = 0.5 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2;
        g * (phi_cdf(x) + x * inv_sqrt_2pi * exp(-0.5 * x * x))
    }
}

/// The activation of a contiguous f32 tensor; its backward pass is [`Backward`].
struct Forward<A>(A);

/// `(grad_output, saved)` to the input's gradient, `A::grad` elementwise.
struct Backward<A>(A);

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else { bail!("{op}: expected f32") };
    let Some((start, end)) = layout.contiguous_offsets() else { bail!("{op}: expected a contiguous tensor") };
    Ok(&data[start..end])
}

impl<A: Activation> CustomOp1 for Forward<A> {
    fn name(&self) -> &'static str {
        A::NAME
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = contiguous_f32(storage, layout, A::NAME)?;
        Ok((CpuStorage::F32(crate::buffer::map(xs, CHUNK, A::value)), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let saved = if A::GRAD_FROM_OUTPUT { res } else { arg };
        Ok(Some(grad_res.contiguous()?.apply_op2_no_bwd(saved, &Backward(self.0))?))
    }
}

impl<A: Activation> CustomOp2 for Backward<A> {
    fn name(&self) -> &'static str {
        A::GRAD_NAME
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (grad, saved) = (contiguous_f32(s1, l1, A::GRAD_NAME)?, contiguous_f32(s2, l2, A::GRAD_NAME)?);
        if grad.len() != saved.len() {
            bail!("{}: the gradient has {} values, the saved tensor {}", A::GRAD_NAME, grad.len(), saved.len());
        }
        Ok((CpuStorage::F32(crate::buffer::map2(grad, saved, CHUNK, A::grad)), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_candle_relu_in_value_and_gradient() {
        let values: Vec<f32> = (0..40_000).map(|i| ((i * 7919 % 1001) as f32 - 500.0) / 100.0 + 0.005).collect();
        let xs = Var::from_slice(&values, (4, 100, 100), &Device::Cpu).unwrap();
        let probe =
            Tensor::from_slice(&values.iter().rev().copied().collect::<Vec<_>>(), (4, 100, 100), &Device::Cpu).unwrap();
        let run = |ys: Tensor| {
            let grads = (&ys * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let grad = grads.get(xs.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (ys.flatten_all().unwrap().to_vec1::<f32>().unwrap(), grad)
        };
        let ours = run(relu(xs.as_tensor()).unwrap());
        let theirs = run(xs.as_tensor().relu().unwrap());
        assert_eq!(ours, theirs);
        assert!(ours.1.contains(&0.0) && ours.1.iter().any(|g| *g != 0.0));
    }

    #[test]
    fn gelu_matches_candle_in_value_and_gradient() {
        let values: Vec<f32> = (0..2_000).map(|i| (i as f32 - 1000.0) / 150.0).collect();
        let xs = Var::from_slice(&values, (20, 100), &Device::Cpu).unwrap();
        let run = |ys: Tensor| {
            let grads = ys.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let grad = grads.get(xs.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (ys.flatten_all().unwrap().to_vec1::<f32>().unwrap(), grad)
        };
        let (ours, theirs) = (run(gelu_erf(xs.as_tensor()).unwrap()), run(xs.as_tensor().gelu_erf().unwrap()));
        for (a, b) in ours.0.iter().zip(&theirs.0).chain(ours.1.iter().zip(&theirs.1)) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }

    #[test]
    fn fast_erf_and_exp_are_accurate() {
        for i in -6000..=6000 {
            let x = i as f32 / 1000.0;
            let reference = candle_core::cpu::erf::erf_f64(f64::from(x));
            assert!((f64::from(erf(x)) - reference).abs() < 5e-7, "erf({x}) = {} vs {reference}", erf(x));
        }
        for i in -870..=880 {
            let x = i as f32 / 10.0;
            let reference = f64::from(x).exp();
            assert!(((f64::from(exp(x)) - reference) / reference).abs() < 3e-7 || reference < 1e-37, "exp({x})");
        }
    }
}
