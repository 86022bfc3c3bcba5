//! Max-pooling with a window equal to its stride (non-overlapping, no padding) as one CPU op
//! forward and one backward (the `MaxPool2d` layer of the `model` crate runs it).
//!
//! candle's `max_pool2d` backward upsamples the output, compares, casts, average-pools, multiplies
//! and upsamples again: seven passes over the full-size activation, and it scales the gradient by
//! 1/k^2. Here the forward pass records where each window's first maximum is, and the backward
//! pass sends each output gradient there (as PyTorch does) in one scatter. Other devices gather
//! each window's first maximum with tensor ops ([`max_pool2d_gather`]), whose gradient is the same.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// `[b, c, h, w]` to `[b, c, h / k, w / k]` (floor), the maximum of each `k x k` window.
pub fn max_pool2d(xs: &Tensor, k: usize) -> Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == candle_core::DType::F32 {
        xs.contiguous()?.apply_op1(MaxPool { k, argmax: OnceLock::new() })
    } else {
        max_pool2d_gather(xs, k)
    }
}

/// The same function with tensor ops that run on every device: each window's values in a last
/// dimension (row by row, as the CPU kernel scans them), its first maximum found with `argmax`
/// and gathered, so the gradient goes to that one input, exactly as on the CPU.
pub fn max_pool2d_gather(xs: &Tensor, k: usize) -> Result<Tensor> {
    let (b, c, h, w) = xs.dims4()?;
    if k == 0 || h < k || w < k {
        bail!("max_pool2d: a {k}x{k} window does not fit a {h}x{w} input");
    }
    let (oh, ow) = (h / k, w / k);
    let windows = xs
        .narrow(2, 0, oh * k)?
        .narrow(3, 0, ow * k)?
        .reshape((b, c, oh, k, ow, k))?
        .permute((0, 1, 2, 4, 3, 5))?
        .contiguous()?
        .reshape((b, c, oh, ow, k * k))?;
    let first_max = windows.argmax_keepdim(4)?;
    windows.gather(&first_max, 4)?.squeeze(4)
}

struct MaxPool {
    k: usize,
    /// Filled by the forward pass: for every output, the index (within its plane) of its
    /// window's first maximum, so the backward pass is a scatter.
    argmax: OnceLock<Vec<u32>>,
}

/// The gradient of [`MaxPool`]: `grad_output` scattered to the recorded maxima.
struct MaxPoolGrad<'a> {
    input_shape: Shape,
    argmax: &'a [u32],
}

/// The dimensions `(planes = b * c, h, w)` of a contiguous f32 `[b, c, h, w]` tensor, and its data.
fn planes<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<(&'a [f32], usize, usize, usize)> {
    let CpuStorage::F32(data) = storage else { bail!("{op}: expected f32") };
    let &[b, c, h, w] = layout.dims() else {
        bail!("{op}: expected [batch, channels, height, width], got {:?}", layout.dims())
    };
    let Some((start, end)) = layout.contiguous_offsets() else { bail!("{op}: expected a contiguous tensor") };
    Ok((&data[start..end], b * c, h, w))
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "max-pool2d-fused"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (xs, n, h, w) = planes(storage, layout, self.name())?;
        let (k, dims) = (self.k, layout.dims());
        if k == 0 || h < k || w < k {
            bail!("max_pool2d: a {k}x{k} window does not fit a {h}x{w} input");
        }
        let (oh, ow) = (h / k, w / k);
        let mut out = vec![0f32; n * oh * ow];
        let mut argmax = vec![0u32; n * oh * ow];
        out.par_chunks_mut(oh * ow).zip(argmax.par_chunks_mut(oh * ow)).zip(xs.par_chunks(h * w)).for_each(
            |((out, argmax), plane)| {
                for i in 0..oh {
                    for j in 0..ow {
                        let mut best = i * k * w + j * k;
                        let mut best_value = plane[best];
                        for y in i * k..(i + 1) * k {
                            let start = y * w + j * k;
                            for (x, &v) in plane[start..start + k].iter().enumerate() {
                                if v > best_value {
                                    (best, best_value) = (start + x, v);
                                }
                            }
                        }
                        out[i * ow + j] = best_value;
                        argmax[i * ow + j] = best as u32;
                    }
                }
            },
        );
        self.argmax.set(argmax).map_err(|_| candle_core::Error::Msg("max_pool2d: the op ran twice".into()))?;
        Ok((CpuStorage::F32(out), Shape::from((dims[0], dims[1], oh, ow))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let Some(argmax) = self.argmax.get() else { candle_core::bail!("max_pool2d: backward before forward") };
        let op = MaxPoolGrad { input_shape: arg.shape().clone(), argmax };
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

impl CustomOp1 for MaxPoolGrad<'_> {
    fn name(&self) -> &'static str {
        "max-pool2d-fused-grad"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (grad, n, oh, ow) = planes(storage, layout, self.name())?;
        let plane = self.input_shape.elem_count() / n;
        // SAFETY: each plane is written whole with zeros before the window maxima's gradients add in.
        let result = unsafe {
            crate::buffer::par_fill(
                self.input_shape.elem_count(),
                plane,
                1,
                || (),
                |_, p, out| {
                    let out = crate::buffer::write(out, 0.0);
                    let window = p * oh * ow..(p + 1) * oh * ow;
                    for (g, &i) in grad[window.clone()].iter().zip(&self.argmax[window]) {
                        out[i as usize] += g;
                    }
                },
            )
        };
        Ok((CpuStorage::F32(result), self.input_shape.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The forward pass equals candle's (including the floor for odd sizes); the gradient equals
    /// finite differences. (candle 0.11.1's own max-pool gradient is 1/k^2 of this: its backward
    /// multiplies by the window's share of maxima where it means to divide, so it is not the reference.)
    #[test]
    fn matches_candle_forward_and_finite_difference_gradients() {
        // Distinct multiples of 1/7 (no ties), so a 0.05 nudge never changes a window's maximum.
        let values: Vec<f32> = (0..2 * 3 * 9 * 8).map(|i| ((i * 7919) % 433) as f32 / 7.0).collect();
        let weights: Vec<f32> = (0..2 * 3 * 4 * 4).map(|i| i as f32 - 20.0).collect();
        let probe = Tensor::from_slice(&weights, (2, 3, 4, 4), &Device::Cpu).unwrap();
        // sum(pool(x) * probe), summed in f64 so the finite differences are not rounding noise.
        let loss = |values: &[f32]| {
            let xs = Tensor::from_slice(values, (2, 3, 9, 8), &Device::Cpu).unwrap();
            let ys = max_pool2d(&xs, 2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(ys, xs.max_pool2d(2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap());
            ys.iter().zip(&weights).map(|(y, w)| f64::from(*y) * f64::from(*w)).sum::<f64>()
        };
        let xs = Var::from_slice(&values, (2, 3, 9, 8), &Device::Cpu).unwrap();
        let ys = max_pool2d(xs.as_tensor(), 2).unwrap();
        let grads = (ys * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let grad = grads.get(xs.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let h = 0.05;
        for i in 0..values.len() {
            let (mut up, mut down) = (values.clone(), values.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = ((loss(&up) - loss(&down)) / (2.0 * f64::from(h))) as f32;
            assert!(
                (numeric - grad[i]).abs() < 1e-3 * (1.0 + grad[i].abs()),
                "input {i}: gradient {} vs finite difference {numeric}",
                grad[i]
            );
        }
        assert!(grad.iter().filter(|g| **g != 0.0).count() >= 90, "a gradient per window, rows 8 and 9 pooled away");
    }

    /// The path other devices take, run on the CPU: the same values and the same gradient as the
    /// CPU kernel, ties included (candle's own `max_pool2d` would give 1/k^2 of it).
    #[test]
    fn the_tensor_op_path_matches_the_cpu_kernel_in_value_and_gradient() {
        // Small integers: many ties inside windows; an odd size: a row and a column pooled away.
        let values: Vec<f32> = (0..2 * 3 * 7 * 9).map(|i| ((i * 37) % 5) as f32).collect();
        let probe: Vec<f32> = (0..2 * 3 * 3 * 4).map(|i| i as f32 - 11.0).collect();
        let probe = Tensor::from_slice(&probe, (2, 3, 3, 4), &Device::Cpu).unwrap();
        let run = |pool: fn(&Tensor, usize) -> Result<Tensor>| {
            let xs = Var::from_slice(&values, (2, 3, 7, 9), &Device::Cpu).unwrap();
            let ys = pool(xs.as_tensor(), 2).unwrap();
            let grads = (&ys * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let grad = grads.get(xs.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (ys.flatten_all().unwrap().to_vec1::<f32>().unwrap(), grad)
        };
        let (cpu, other) = (run(max_pool2d), run(max_pool2d_gather));
        assert_eq!(cpu.0, other.0, "values");
        assert_eq!(cpu.1, other.1, "gradients");
    }

    #[test]
    fn ties_send_the_gradient_to_the_first_maximum_like_pytorch() {
        let xs = Var::from_slice(&[1f32, 1.0, 0.0, 1.0], (1, 1, 2, 2), &Device::Cpu).unwrap();
        let grads = max_pool2d(xs.as_tensor(), 2).unwrap().sum_all().unwrap().backward().unwrap();
        let grad = grads.get(xs.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(grad, [1.0, 0.0, 0.0, 0.0]);
    }
}
