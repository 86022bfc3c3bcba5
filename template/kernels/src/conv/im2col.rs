//! The ordinary convolution (`groups == 1`) as `im2col` + GEMM, one sample at a time, with its input
//! and weight gradients as GEMM + `col2im` and `im2col` + GEMM. The gradient ops have no backward pass
//! of their own (no second derivatives).
//!
//! Columns use Caffe's layout, `[channels * k * k, oh * ow]` per sample with row
//! `(c * k + ki) * k + kj`, so the output is `weight [out, c * k * k] @ cols`. Each thread unfolds one
//! sample at a time into a buffer that stays in cache, instead of a whole-batch column tensor (for the
//! cnn's conv2 at batch 64, 42 MB, and as much again for its gradient). A 1x1 kernel with stride 1
//! and no padding needs no unfolding: a sample's `[c, h * w]` already is its columns.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use super::{Geometry, check_dims, f32_values};

/// `(input [batch, c, h, w], weight [out, c, k, k])` to `[batch, out, oh, ow]`.
pub(super) struct Conv(pub Geometry, pub usize);

/// `(input, weight, bias [out])` to the same plus the bias, then a ReLU when `relu`: one op, so that
/// candle's backward pass accumulates no gradient for the output before the bias or the ReLU (a
/// zeroed tensor and an add of the output's size each, a tenth of the cnn's training step when the
/// bias was an op of its own).
pub(super) struct ConvBias {
    pub geometry: Geometry,
    pub out: usize,
    pub relu: bool,
}

/// `(grad_output [batch, out, oh, ow], weight)` to the input gradient `[batch, c, h, w]`.
struct GradInput(Geometry, usize);

/// `(input, grad_output)` to the weight gradient `[out, c, k, k]`.
struct GradWeight(Geometry, usize);

impl Geometry {
    /// Rows of one sample's columns: `c * k * k`.
    fn col_rows(&self) -> usize {
        self.channels * self.taps()
    }

    /// About two tasks per thread: each task allocates its own column buffer, and rayon would
    /// otherwise split a batch into as many tasks as it has samples when threads steal work.
    fn samples_per_task(&self) -> usize {
        self.batch.div_ceil(2 * rayon::current_num_threads()).max(1)
    }

    fn pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }

    /// Unfolds one sample `[c, h, w]` into `cols` `[c * k * k, oh * ow]`.
    fn im2col(&self, xs: &[f32], cols: &mut [f32]) {
        if self.padding > 0 {
            cols.fill(0.); // only the pixels inside the image are written below
        }
        let (plane, rows_len, n) = (self.input_plane(), self.taps() * self.output_plane(), self.output_plane());
        for (xs, rows) in xs.chunks_exact(plane).zip(cols.chunks_exact_mut(rows_len)) {
            self.for_each_run(|tap, out, inp, len| {
                let row = &mut rows[tap * n + out..][..len];
                if self.stride == 1 {
                    row.copy_from_slice(&xs[inp..][..len]);
                } else {
                    row.iter_mut().zip(xs[inp..].iter().step_by(self.stride)).for_each(|(c, x)| *c = *x);
                }
            });
        }
    }

    /// Adds one sample's columns `[c * k * k, oh * ow]` into the pixels they were read from, `xs`
    /// `[c, h, w]`: the adjoint of [`Geometry::im2col`].
    fn col2im(&self, cols: &[f32], xs: &mut [f32]) {
        let (plane, rows_len, n) = (self.input_plane(), self.taps() * self.output_plane(), self.output_plane());
        for (xs, rows) in xs.chunks_exact_mut(plane).zip(cols.chunks_exact(rows_len)) {
            self.for_each_run(|tap, out, inp, len| {
                let row = &rows[tap * n + out..][..len];
                if self.stride == 1 {
                    xs[inp..][..len].iter_mut().zip(row).for_each(|(x, c)| *x += c);
                } else {
                    xs[inp..].iter_mut().step_by(self.stride).zip(row).for_each(|(x, c)| *x += c);
                }
            });
        }
    }
}

/// A matrix view on a slice: element `(r, c)` is `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows x cols` matrix.
    fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "matrix data does not match its shape");
        Self { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }
}

/// `dst += a @ b`; `dst` is row-major `a.rows x b.cols`. Single threaded: the callers run one
/// sample per thread.
fn matmul_add(dst: &mut [f32], a: Mat, b: Mat) {
    assert_eq!(dst.len(), a.rows * b.cols, "destination does not match the product's shape");
    // SAFETY: `dst` holds the product's values, initialised.
    unsafe { gemm_into(dst.as_mut_ptr(), a, b, true) }
}

/// `dst = a @ b` (`dst`'s old values, if any, are neither read nor kept): `dst`, written.
fn matmul_set<'d>(dst: &'d mut [MaybeUninit<f32>], a: Mat, b: Mat) -> &'d mut [f32] {
    assert_eq!(dst.len(), a.rows * b.cols, "destination does not match the product's shape");
    // SAFETY: `dst` holds the product's values; without `accumulate` the GEMM writes each of them
    // (zeros when `a.cols` is 0) and reads none.
    unsafe {
        gemm_into(dst.as_mut_ptr().cast(), a, b, false);
        crate::buffer::assume_init(dst)
    }
}

/// `dst = a @ b`, or `dst += a @ b` when `accumulate`.
///
/// # Safety
/// `dst` is valid for writes of `a.rows * b.cols` values, and for reads when `accumulate`.
unsafe fn gemm_into(dst: *mut f32, a: Mat, b: Mat, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: `dst` holds `m * n` values written at `r * n + c` (the caller's promise); `Mat::new`
    // checked each operand's length against its shape, and a transposed view covers the same elements.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

impl Conv {
    /// `[batch, out, oh, ow]`: each sample's output starts as the bias (or zero) and the GEMM adds
    /// `weight @ cols` to it.
    fn forward(
        &self,
        name: &str,
        inputs: [(&CpuStorage, &Layout); 2],
        bias: Option<&[f32]>,
        relu: bool,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, out) = (self.0, self.1);
        let [(s1, l1), (s2, l2)] = inputs;
        check_dims(name, l1, &g.input_dims())?;
        check_dims(name, l2, &[out, g.channels, g.kernel, g.kernel])?;
        let (xs, weight) = (f32_values(s1, l1, name)?, f32_values(s2, l2, name)?);
        let weight = Mat::new(weight, out, g.col_rows());
        let (sample, n) = (g.channels * g.input_plane(), g.output_plane());
        let cols_len = if g.pointwise() { 0 } else { g.col_rows() * n };
        // One sample's output: the bias and the GEMM adding to it, or the GEMM alone.
        let fill = |cols: &mut Vec<f32>, b: usize, ys: &mut [MaybeUninit<f32>]| {
            let xs = &xs[b * sample..][..sample];
            let cols = if g.pointwise() {
                xs
            } else {
                g.im2col(xs, cols);
                cols
            };
            let cols = Mat::new(cols, g.col_rows(), n);
            let ys = match bias {
                Some(bias) if n > 0 => {
                    ys.chunks_exact_mut(n).zip(bias).for_each(|(plane, b)| _ = crate::buffer::write(plane, *b));
                    // SAFETY: every plane was just written with its bias.
                    let ys = unsafe { crate::buffer::assume_init(ys) };
                    matmul_add(ys, weight, cols);
                    ys
                }
                _ => matmul_set(ys, weight, cols),
            };
            if relu {
                ys.iter_mut().for_each(|y| *y = y.max(0.0));
            }
        };
        // SAFETY: `fill` writes the whole of each sample's output.
        let ys = unsafe {
            crate::buffer::par_fill(g.batch * out * n, out * n, g.samples_per_task(), || vec![0f32; cols_len], fill)
        };
        Ok((CpuStorage::F32(ys), Shape::from((g.batch, out, g.out_height, g.out_width))))
    }

    /// The input's and the weight's gradients (those that are tracked) from the output's.
    fn grads(&self, xs: &Tensor, weight: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (g, out) = (self.0, self.1);
        let grad = grad.contiguous()?;
        // The model's input images need no gradient.
        let grad_xs = xs.track_op().then(|| grad.apply_op2(weight, GradInput(g, out)));
        let grad_weight = weight.track_op().then(|| xs.apply_op2(&grad, GradWeight(g, out)));
        Ok((grad_xs.transpose()?, grad_weight.transpose()?))
    }
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "im2col-conv2d"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.forward(self.name(), [(s1, l1), (s2, l2)], None, false)
    }

    fn bwd(
        &self,
        xs: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        self.grads(xs, weight, grad)
    }
}

impl CustomOp3 for ConvBias {
    fn name(&self) -> &'static str {
        if self.relu { "im2col-conv2d-bias-relu" } else { "im2col-conv2d-bias" }
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
        check_dims(self.name(), l3, &[self.out])?;
        let bias = f32_values(s3, l3, self.name())?;
        Conv(self.geometry, self.out).forward(self.name(), [(s1, l1), (s2, l2)], Some(bias), self.relu)
    }

    fn bwd(
        &self,
        xs: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // Through the ReLU first: the gradient where the output is positive.
        let grad = if self.relu { crate::activation::relu_grad(grad, res)? } else { grad.clone() };
        let (grad_xs, grad_weight) = Conv(self.geometry, self.out).grads(xs, weight, &grad)?;
        let grad_bias = bias.track_op().then(|| super::bias::bias_grad(&grad)).transpose()?;
        Ok((grad_xs, grad_weight, grad_bias))
    }
}

impl CustomOp2 for GradInput {
    fn name(&self) -> &'static str {
        "im2col-conv2d-grad-input"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (g, out) = (self.0, self.1);
        check_dims(self.name(), l1, &[g.batch, out, g.out_height, g.out_width])?;
        check_dims(self.name(), l2, &[out, g.channels, g.kernel, g.kernel])?;
        let (grad, weight) = (f32_values(s1, l1, self.name())?, f32_values(s2, l2, self.name())?);
        let weight_t = Mat::new(weight, out, g.col_rows()).t();
        let (sample, n) = (g.channels * g.input_plane(), g.output_plane());
        let cols_len = if g.pointwise() { 0 } else { g.col_rows() * n };
        // SAFETY: each sample's gradient is written whole: by the GEMM, or zeroed and added into.
        let grad_xs = unsafe {
            let scratch = || vec![MaybeUninit::uninit(); cols_len];
            crate::buffer::par_fill(g.batch * sample, sample, g.samples_per_task(), scratch, |cols, b, grad_xs| {
                let grad = Mat::new(&grad[b * out * n..][..out * n], out, n);
                if g.pointwise() {
                    matmul_set(grad_xs, weight_t, grad);
                } else {
                    let cols = matmul_set(cols, weight_t, grad); // [c * k * k, oh * ow]
                    g.col2im(cols, crate::buffer::write(grad_xs, 0.0));
                }
            })
        };
        Ok((CpuStorage::F32(grad_xs), Shape::from(g.input_dims().to_vec())))
    }
}

impl CustomOp2 for GradWeight {
    fn name(&self) -> &'static str {
        "im2col-conv2d-grad-weight"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (g, out) = (self.0, self.1);
        check_dims(self.name(), l1, &g.input_dims())?;
        check_dims(self.name(), l2, &[g.batch, out, g.out_height, g.out_width])?;
        let (xs, grad) = (f32_values(s1, l1, self.name())?, f32_values(s2, l2, self.name())?);
        let (sample, n, rows) = (g.channels * g.input_plane(), g.output_plane(), g.col_rows());
        let cols_len = if g.pointwise() { 0 } else { rows * n };
        // Each thread sums its samples' `grad [out, n] @ cols^T [n, c * k * k]`, then the sums add up.
        let grad_weight = (0..g.batch)
            .into_par_iter()
            .with_min_len(g.samples_per_task())
            .fold(
                || (vec![0f32; out * rows], vec![0f32; cols_len]),
                |(mut sum, mut cols), b| {
                    let xs = &xs[b * sample..][..sample];
                    let cols_ref = if g.pointwise() {
                        xs
                    } else {
                        g.im2col(xs, &mut cols);
                        &cols[..]
                    };
                    let grad = Mat::new(&grad[b * out * n..][..out * n], out, n);
                    matmul_add(&mut sum, grad, Mat::new(cols_ref, rows, n).t());
                    (sum, cols)
                },
            )
            .map(|(sum, _)| sum)
            .reduce(
                || vec![0f32; out * rows],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                    a
                },
            );
        Ok((CpuStorage::F32(grad_weight), Shape::from((out, g.channels, g.kernel, g.kernel))))
    }
}
