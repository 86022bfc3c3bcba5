//! The depthwise convolution (`groups == channels`, one `k x k` filter per channel) as direct CPU
//! kernels: the forward pass and, for its backward pass, the input and the weight gradients. The
//! gradient ops have no backward pass of their own (no second derivatives).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::{Geometry, check_dims, f32_values, par_planes};

/// `(input [batch, c, h, w], weight [c, 1, k, k])` to `[batch, c, oh, ow]`.
pub(super) struct Depthwise(pub Geometry);

/// `(grad_output [batch, c, oh, ow], weight [c, 1, k, k])` to the input gradient `[batch, c, h, w]`.
struct GradInput(Geometry);

/// `(input [batch, c, h, w], grad_output [batch, c, oh, ow])` to the weight gradient `[c, 1, k, k]`.
struct GradWeight(Geometry);

impl Geometry {
    fn weight_dims(&self) -> [usize; 4] {
        [self.channels, 1, self.kernel, self.kernel]
    }

    fn output_dims(&self) -> [usize; 4] {
        [self.batch, self.channels, self.out_height, self.out_width]
    }
}

impl CustomOp2 for Depthwise {
    fn name(&self) -> &'static str {
        "depthwise-conv2d"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        check_dims(self.name(), l1, &g.input_dims())?;
        check_dims(self.name(), l2, &g.weight_dims())?;
        let (xs, weight) = (f32_values(s1, l1, self.name())?, f32_values(s2, l2, self.name())?);
        let (plane, taps) = (g.input_plane(), g.taps());
        let ys = par_planes(
            g.batch * g.channels,
            g.output_plane(),
            #[inline(always)]
            |i, ys| {
                let (xs, w) = (&xs[i * plane..][..plane], &weight[i % g.channels * taps..][..taps]);
                if g.stride == 1 {
                    return forward_plane_stride1(&g, xs, w, ys);
                }
                g.for_each_run(|tap, out, inp, len| {
                    for (y, x) in ys[out..][..len].iter_mut().zip(xs[inp..].iter().step_by(g.stride)) {
                        *y += w[tap] * x;
                    }
                });
            },
        );
        Ok((CpuStorage::F32(ys), Shape::from(g.output_dims().to_vec())))
    }

    fn bwd(
        &self,
        xs: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let grad_xs = xs.track_op().then(|| grad.apply_op2(weight, GradInput(self.0)));
        let grad_weight = weight.track_op().then(|| xs.apply_op2(&grad, GradWeight(self.0)));
        Ok((grad_xs.transpose()?, grad_weight.transpose()?))
    }
}

thread_local! {
    /// Each thread's zero-padded copy of the plane it is working on (one allocation per thread).
    static PADDED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Output pixels computed together: one 8-lane vector (AVX2; half an AVX-512 register).
const LANES: usize = 8;

/// The stride-1 forward pass of one plane: the input is copied into a zero-padded buffer (with
/// room for a full vector past the right edge), then every `LANES` adjacent outputs of a row
/// accumulate `weight[tap] * input` over the taps as one fixed-size array, which the compiler turns
/// into vector multiplies and adds (eight wide where AVX2 is, [`crate::simd`]). ConvNeXt's 7x7
/// planes are too small for the run-per-tap loop to vectorise.
#[inline(always)]
fn forward_plane_stride1(g: &Geometry, xs: &[f32], w: &[f32], ys: &mut [f32]) {
    let (k, p) = (g.kernel, g.padding);
    let padded_width = (g.out_width + k - 1).next_multiple_of(LANES) + LANES;
    PADDED.with_borrow_mut(|padded| {
        padded.clear();
        padded.resize((g.height + 2 * p) * padded_width, 0.0);
        for (y, row) in xs.chunks_exact(g.width).enumerate() {
            padded[(y + p) * padded_width + p..][..g.width].copy_from_slice(row);
        }
        accumulate_rows(g, padded, padded_width, w, ys);
    });
}

/// `ys` from the padded plane, `LANES` outputs of a row at a time. The taps whose rows, or whose
/// `LANES` columns, lie wholly in the padding add only zeros and are skipped: on ConvNeXt's 7x7
/// kernel over 7x7, 3x3 and 1x1 planes that is half of the work (the sum is the same: the terms
/// left out are zeros).
#[inline(always)]
fn accumulate_rows(g: &Geometry, padded: &[f32], padded_width: usize, w: &[f32], ys: &mut [f32]) {
    let (k, p) = (g.kernel, g.padding);
    for oy in 0..g.out_height {
        // Kernel rows `ki` that read image rows: `p <= oy + ki < p + height`.
        let rows = p.saturating_sub(oy)..k.min((p + g.height).saturating_sub(oy));
        for x0 in (0..g.out_width).step_by(LANES) {
            // Kernel columns whose window `x0 + kj .. x0 + kj + LANES` meets `p .. p + width`.
            let cols = (p + 1).saturating_sub(x0 + LANES)..k.min((p + g.width).saturating_sub(x0));
            let mut acc = [0f32; LANES];
            for ki in rows.clone() {
                let row = &padded[(oy + ki) * padded_width + x0..];
                for (kj, &weight) in w[ki * k..][..k].iter().enumerate().take(cols.end).skip(cols.start) {
                    let src: &[f32; LANES] = row[kj..kj + LANES].try_into().expect("LANES values");
                    for lane in 0..LANES {
                        acc[lane] += weight * src[lane];
                    }
                }
            }
            let n = LANES.min(g.out_width - x0);
            ys[oy * g.out_width + x0..][..n].copy_from_slice(&acc[..n]);
        }
    }
}

impl CustomOp2 for GradInput {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-grad-input"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        check_dims(self.name(), l1, &g.output_dims())?;
        check_dims(self.name(), l2, &g.weight_dims())?;
        let (grad, weight) = (f32_values(s1, l1, self.name())?, f32_values(s2, l2, self.name())?);
        let (out_plane, taps) = (g.output_plane(), g.taps());
        let grad_xs = par_planes(
            g.batch * g.channels,
            g.input_plane(),
            #[inline(always)]
            |i, gx| {
                let (gy, w) = (&grad[i * out_plane..][..out_plane], &weight[i % g.channels * taps..]);
                g.for_each_run(|tap, out, inp, len| {
                    for (x, y) in gx[inp..].iter_mut().step_by(g.stride).zip(&gy[out..][..len]) {
                        *x += w[tap] * y;
                    }
                });
            },
        );
        Ok((CpuStorage::F32(grad_xs), Shape::from(g.input_dims().to_vec())))
    }
}

impl CustomOp2 for GradWeight {
    fn name(&self) -> &'static str {
        "depthwise-conv2d-grad-weight"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        check_dims(self.name(), l1, &g.input_dims())?;
        check_dims(self.name(), l2, &g.output_dims())?;
        let (xs, grad) = (f32_values(s1, l1, self.name())?, f32_values(s2, l2, self.name())?);
        let (plane, out_plane) = (g.input_plane(), g.output_plane());
        // One channel's k * k weights, summed over the batch.
        let grad_weight = par_planes(
            g.channels,
            g.taps(),
            #[inline(always)]
            |c, gw| {
                for b in 0..g.batch {
                    let i = b * g.channels + c;
                    let (xs, gy) = (&xs[i * plane..][..plane], &grad[i * out_plane..][..out_plane]);
                    g.for_each_run(|tap, out, inp, len| {
                        let xs = xs[inp..].iter().step_by(g.stride);
                        gw[tap] += gy[out..][..len].iter().zip(xs).map(|(y, x)| y * x).sum::<f32>();
                    });
                }
            },
        );
        Ok((CpuStorage::F32(grad_weight), Shape::from(g.weight_dims().to_vec())))
    }
}
