//! The fully connected layer's product, `y = x W^T + b`, as one CPU op forward and two GEMMs
//! backward (the `Linear` layer of the `model` crate runs this).
//!
//! candle's path is a matrix multiply, then the bias added as a second op: the product is a tensor
//! of its own, which candle's backward pass zeroes and adds a gradient for, and each multiply
//! starts the thread pool for a GEMM that splits its work finer than two cores need. Here the
//! GEMM writes onto the bias, each thread takes a block of rows of the output (one packing of the
//! weight per thread, one parallel region per product), and the gradients come out contiguous in
//! their tensors' own layouts: the weight's `g^T x` as `[out, in]`, the input's `g W` as
//! `[batch, in]`. Other devices and dtypes use candle's ops, with the same values and gradients.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, bail};
use gemm::{Parallelism, gemm};

/// `xs [batch, in] @ weight [out, in]^T + bias [out]`: `[batch, out]`, contiguous.
pub fn linear(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (batch, in_dim) = xs.dims2()?;
    let (out, weight_in) = weight.dims2()?;
    if weight_in != in_dim {
        bail!(
            "linear: input {:?} has {in_dim} features, the layer's weight {:?} expects {weight_in}",
            xs.dims(),
            weight.dims()
        );
    }
    if let Some(bias) = bias
        && bias.dims() != [out]
    {
        bail!("linear: the bias is {:?}, the layer has {out} outputs", bias.dims());
    }
    let fast =
        [Some(xs), Some(weight), bias].into_iter().flatten().all(|t| t.device().is_cpu() && t.dtype() == DType::F32);
    if !fast {
        let ys = weight.matmul(&xs.t()?)?.t()?; // candle's gradients of this form come out contiguous
        return match bias {
            Some(bias) => ys.broadcast_add(bias),
            None => ys.contiguous(),
        };
    }
    let shape = Product { rows: batch, inner: in_dim, cols: out };
    let (xs, weight) = (xs.contiguous()?, weight.contiguous()?);
    match bias {
        Some(bias) => xs.apply_op3(&weight, &bias.contiguous()?, LinearBias(shape)),
        None => xs.apply_op2(&weight, Linear(shape)),
    }
}

/// The sizes of `[rows, inner] @ [inner, cols]`.
#[derive(Debug, Clone, Copy)]
struct Product {
    rows: usize,
    inner: usize,
    cols: usize,
}

/// `(xs, weight)` to `xs @ weight^T`.
struct Linear(Product);

/// `(xs, weight, bias)` to `xs @ weight^T + bias`.
struct LinearBias(Product);

/// `(a, b)` to `a @ b` (`a^T @ b` when `transpose_a`): the gradients' products, without a backward
/// pass of their own.
struct MatMul {
    shape: Product,
    transpose_a: bool,
}

/// A row-major or transposed view of a contiguous matrix.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> View<'a> {
    /// `data` as a row-major `[rows, cols]` matrix.
    fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "a matrix's values do not match its shape");
        Self { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }
}

/// Rows of the output below which one GEMM (parallel across its columns) beats splitting rows
/// between threads: a thread's share must amortise its own packing of the right-hand side.
const MIN_ROWS_PER_THREAD: usize = 16;

/// `a @ b`, or `bias + a @ b` with `bias [b.cols]` added to every row: row-major `[a.rows, b.cols]`.
/// Blocks of rows run on rayon's threads, each writing its rows' bias (or nothing: the GEMM then
/// overwrites them) and one single-threaded GEMM onto it: one parallel region per product, and no
/// zeroing of the output first ([`crate::buffer`]).
fn matmul(a: View, b: View, bias: Option<&[f32]>) -> Vec<f32> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    assert!(bias.is_none_or(|bias| bias.len() == n), "the bias does not match the product's columns");
    if m == 0 || n == 0 {
        return Vec::new();
    }
    // `dst`: the rows from `first`, as many as it holds.
    let block = |dst: &mut [MaybeUninit<f32>], first: usize, parallelism: Parallelism| {
        if let Some(bias) = bias {
            dst.chunks_exact_mut(n).for_each(|row| _ = crate::buffer::copy(row, bias));
        }
        // SAFETY: rows `first..first + dst.len() / n` lie within `0..m` (the callers split `0..m`
        // into blocks), and `dst` holds them; with a bias they were written above, and without one
        // the GEMM overwrites them without reading.
        unsafe { gemm_rows(dst.as_mut_ptr().cast(), a, first, dst.len() / n, b, bias.is_some(), parallelism) }
    };
    let threads = rayon::current_num_threads();
    if threads == 1 || m < 2 * MIN_ROWS_PER_THREAD {
        // SAFETY: `block` writes all `m` rows: the bias (if any), then the GEMM.
        return unsafe { crate::buffer::fill(m * n, |dst| block(dst, 0, Parallelism::Rayon(threads))) };
    }
    let rows = m.div_ceil(threads).max(MIN_ROWS_PER_THREAD);
    // SAFETY: as above, for each block of `rows` rows (the last may be shorter).
    unsafe { crate::buffer::par_fill(m * n, rows * n, 1, || (), |_, i, dst| block(dst, i * rows, Parallelism::None)) }
}

/// `dst = a[first..first + rows] @ b` (or `+=`), `dst` row-major `[rows, b.cols]`.
///
/// # Safety
/// `first + rows <= a.rows`; `dst` is valid for writes of `rows * b.cols` values, and for reads
/// of them too when `accumulate` (then they must be initialised).
unsafe fn gemm_rows(
    dst: *mut f32,
    a: View,
    first: usize,
    rows: usize,
    b: View,
    accumulate: bool,
    parallelism: Parallelism,
) {
    debug_assert!(first + rows <= a.rows);
    let n = b.cols;
    // SAFETY: the caller's bounds: element (r, c) of the block is at (first + r) * row_stride +
    // c * col_stride of `a.data`, below its length; `b` is a whole matrix, `dst` the caller's.
    unsafe {
        gemm(
            rows,
            n,
            a.cols,
            dst,
            1,
            n as isize,
            accumulate,
            a.data.as_ptr().add(first * a.row_stride),
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
            parallelism,
        );
    }
}

/// The f32 values of a contiguous CPU tensor of the expected shape, or an error naming the op.
fn values<'a>(op: &str, storage: &'a CpuStorage, layout: &Layout, dims: &[usize]) -> Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else {
        bail!("{op}: expected f32, got {:?}", candle_core::backend::BackendStorage::dtype(storage))
    };
    let Some((start, end)) = layout.contiguous_offsets() else { bail!("{op}: expected a contiguous tensor") };
    if layout.dims() != dims {
        bail!("{op}: expected an input {dims:?}, got {:?}", layout.dims());
    }
    Ok(&values[start..end])
}

impl Product {
    /// `xs @ weight^T`, onto `bias` broadcast over the rows when there is one.
    fn forward(
        &self,
        op: &str,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
        bias: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let Self { rows, inner, cols } = *self;
        let xs = View::new(values(op, s1, l1, &[rows, inner])?, rows, inner);
        let weight = View::new(values(op, s2, l2, &[cols, inner])?, cols, inner);
        Ok((CpuStorage::F32(matmul(xs, weight.t(), bias)), Shape::from((rows, cols))))
    }

    /// The gradients of `xs` (`grad @ weight`) and of `weight` (`grad^T @ xs`), each only when
    /// tracked (the model's input needs none).
    fn grads(&self, xs: &Tensor, weight: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let Self { rows, inner, cols } = *self;
        let grad = grad.contiguous()?;
        let grad_xs = xs
            .track_op()
            .then(|| {
                grad.apply_op2_no_bwd(
                    weight,
                    &MatMul { shape: Product { rows, inner: cols, cols: inner }, transpose_a: false },
                )
            })
            .transpose()?;
        let grad_weight = weight
            .track_op()
            .then(|| {
                grad.apply_op2_no_bwd(
                    xs,
                    &MatMul { shape: Product { rows: cols, inner: rows, cols: inner }, transpose_a: true },
                )
            })
            .transpose()?;
        Ok((grad_xs, grad_weight))
    }
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.0.forward(self.name(), (s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        xs: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        self.0.grads(xs, weight, grad)
    }
}

impl CustomOp3 for LinearBias {
    fn name(&self) -> &'static str {
        "linear-bias"
    }

    #[allow(clippy::too_many_arguments)] // candle's signature
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let bias = values(self.name(), s3, l3, &[self.0.cols])?;
        self.0.forward(self.name(), (s1, l1), (s2, l2), Some(bias))
    }

    fn bwd(
        &self,
        xs: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (grad_xs, grad_weight) = self.0.grads(xs, weight, grad)?;
        let grad_bias = bias.track_op().then(|| grad.sum(0)).transpose()?;
        Ok((grad_xs, grad_weight, grad_bias))
    }
}

impl CustomOp2 for MatMul {
    fn name(&self) -> &'static str {
        "linear-grad-matmul"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let Product { rows, inner, cols } = self.shape;
        let a = match self.transpose_a {
            false => View::new(values(self.name(), s1, l1, &[rows, inner])?, rows, inner),
            true => View::new(values(self.name(), s1, l1, &[inner, rows])?, inner, rows).t(),
        };
        let b = View::new(values(self.name(), s2, l2, &[inner, cols])?, inner, cols);
        Ok((CpuStorage::F32(matmul(a, b, None)), Shape::from((rows, cols))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Fixed pseudo-random values in [-1, 1).
    fn values(dims: &[usize], seed: u64) -> Tensor {
        let n = dims.iter().product::<usize>();
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let data: Vec<f32> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect();
        Tensor::from_vec(data, dims, &Device::Cpu).unwrap()
    }

    fn max_difference(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    /// The output and the three gradients of `sum(linear(x) * probe)`, ours or candle's ops.
    fn run(batch: usize, in_dim: usize, out: usize, bias: bool, ours: bool) -> Vec<Tensor> {
        let xs = Var::from_tensor(&values(&[batch, in_dim], 1)).unwrap();
        let weight = Var::from_tensor(&values(&[out, in_dim], 2)).unwrap();
        let b = Var::from_tensor(&values(&[out], 3)).unwrap();
        let b = bias.then_some(b.as_tensor());
        let ys = if ours {
            linear(&xs, &weight, b).unwrap()
        } else {
            let ys = xs.matmul(&weight.t().unwrap()).unwrap();
            b.map_or(ys.clone(), |b| ys.broadcast_add(b).unwrap())
        };
        let grads = (&ys * values(&[batch, out], 4)).unwrap().sum_all().unwrap().backward().unwrap();
        let mut all = vec![ys, grads.get(&xs).unwrap().clone(), grads.get(&weight).unwrap().clone()];
        all.extend(b.map(|b| grads.get(b).unwrap().clone()));
        all
    }

    #[test]
    fn matches_candle_in_value_and_gradients_for_every_split_of_the_rows() {
        // Batch 1 (one GEMM), below and above the threads' split, and not a multiple of a block.
        for (batch, in_dim, out) in [(1, 7, 3), (5, 16, 9), (31, 10, 4), (64, 33, 17), (203, 50, 70)] {
            for bias in [true, false] {
                let (got, want) = (run(batch, in_dim, out, bias, true), run(batch, in_dim, out, bias, false));
                for ((what, got), want) in
                    ["output", "input grad", "weight grad", "bias grad"].iter().zip(&got).zip(&want)
                {
                    assert_eq!(got.dims(), want.dims(), "{what} at {batch}x{in_dim}->{out}");
                    assert!(got.is_contiguous(), "{what} must be contiguous");
                    let diff = max_difference(got, want);
                    assert!(
                        diff < 1e-4 * in_dim.max(batch) as f32,
                        "{what} at {batch}x{in_dim}->{out}, bias {bias}: differs by {diff}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_same_under_one_thread_and_several() {
        let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
        let one = pool(1).install(|| run(100, 40, 30, true, true));
        let four = pool(4).install(|| run(100, 40, 30, true, true));
        for (a, b) in one.iter().zip(&four) {
            assert!(max_difference(a, b) < 1e-5);
        }
    }

    #[test]
    fn mismatched_shapes_are_refused_naming_both() {
        let xs = values(&[4, 5], 1);
        let err = linear(&xs, &values(&[3, 6], 2), None).unwrap_err().to_string();
        assert!(err.contains("5 features") && err.contains("expects 6"), "{err}");
        let err = linear(&xs, &values(&[3, 5], 2), Some(&values(&[4], 3))).unwrap_err().to_string();
        assert!(err.contains("bias is [4]") && err.contains("3 outputs"), "{err}");
    }
}
