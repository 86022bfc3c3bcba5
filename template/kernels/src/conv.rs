//! 2-D convolution on the CPU: an ordinary convolution is `im2col` + GEMM one sample per thread,
//! and its gradients GEMM + `col2im` and `im2col` + GEMM (`im2col.rs`); a depthwise convolution has
//! direct kernels for its forward pass and both gradients (`depthwise.rs`); the bias gradient sums
//! the cheap way (`bias.rs`). candle 0.11's own `conv2d` backward runs direct loops and splits a
//! grouped convolution into one convolution per group.

mod bias;
mod depthwise;
mod im2col;

use std::ops::Range;

use candle_core::{CpuStorage, DType, Layout, Result, Tensor, bail};

/// `xs [batch, in, h, w]` convolved with `weight [out, in / groups, k, k]` (square kernel,
/// dilation 1, groups 1 or depthwise), plus `bias [out]`: `[batch, out, oh, ow]`, with a fused
/// backward pass. CPU tensors, f32.
pub fn conv2d(
    xs: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    groups: usize,
) -> Result<Tensor> {
    convolve(xs, weight, bias, Options { stride, padding, groups, relu: false })
}

/// [`conv2d`] then a ReLU, as one op when the convolution is an ordinary one with a bias: the
/// backward pass then keeps no gradient for the output before the ReLU (on the cnn, 1.4 M and
/// 2.4 M floats per batch that candle would zero and add to). Otherwise the two ops.
pub fn conv2d_relu(
    xs: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    groups: usize,
) -> Result<Tensor> {
    convolve(xs, weight, bias, Options { stride, padding, groups, relu: true })
}

/// What [`convolve`] does besides the convolution's shapes.
struct Options {
    stride: usize,
    padding: usize,
    groups: usize,
    relu: bool,
}

fn convolve(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>, options: Options) -> Result<Tensor> {
    let Options { stride, padding, groups, relu } = options;
    if xs.dtype() != DType::F32 {
        bail!("conv2d on the CPU supports only f32 input, got {:?}; convert it with to_dtype(DType::F32)", xs.dtype());
    }
    let (out, in_per_group, k, _) = weight.dims4()?;
    let (batch, channels, height, width) = xs.dims4()?;
    if channels != in_per_group * groups {
        bail!("conv2d: input {:?} has {channels} channels, the layer expects {}", xs.dims(), in_per_group * groups);
    }
    if groups != 1 && groups != out {
        bail!("conv2d: groups = {groups} is neither 1 nor depthwise ({out} output channels)");
    }
    let g = Geometry::new([batch, channels, height, width], k, stride, padding)?;
    let (xs, weight) = (xs.contiguous()?, weight.contiguous()?);
    // [batch, out, oh, ow]
    let ys = match (groups, bias) {
        (1, Some(bias)) => {
            return xs.apply_op3(&weight, &bias.contiguous()?, im2col::ConvBias { geometry: g, out, relu });
        }
        (1, None) => xs.apply_op2(&weight, im2col::Conv(g, out))?,
        (_, None) => xs.apply_op2(&weight, depthwise::Depthwise(g))?,
        (_, Some(bias)) => {
            xs.apply_op2(&weight, depthwise::Depthwise(g))?.apply_op2(&bias.contiguous()?, bias::AddBias)?
        }
    };
    if relu { crate::activation::relu(&ys) } else { Ok(ys) }
}

/// The sizes of one convolution: the input `[batch, channels, height, width]`, a square kernel and the
/// output side lengths they give. The kernels work one `height x width` plane at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    out_height: usize,
    out_width: usize,
}

impl Geometry {
    fn new(input: [usize; 4], kernel: usize, stride: usize, padding: usize) -> Result<Self> {
        let [batch, channels, height, width] = input;
        let out_side = |side: usize| match (side + 2 * padding).checked_sub(kernel) {
            Some(room) => Ok(room / stride + 1),
            None => bail!(
                "conv2d: the {kernel}x{kernel} kernel is larger than the padded input {input:?} (padding {padding})"
            ),
        };
        Ok(Self {
            batch,
            channels,
            height,
            width,
            kernel,
            stride,
            padding,
            out_height: out_side(height)?,
            out_width: out_side(width)?,
        })
    }

    fn input_dims(&self) -> [usize; 4] {
        [self.batch, self.channels, self.height, self.width]
    }

    fn input_plane(&self) -> usize {
        self.height * self.width
    }

    fn output_plane(&self) -> usize {
        self.out_height * self.out_width
    }

    fn taps(&self) -> usize {
        self.kernel * self.kernel
    }

    /// The output positions `o` along one axis whose input position `o * stride + tap - padding`
    /// lies inside `0..size`: the others read padding.
    fn inside(&self, tap: usize, size: usize, out_size: usize) -> Range<usize> {
        let lo = self.padding.saturating_sub(tap).div_ceil(self.stride);
        let hi = (size + self.padding).checked_sub(tap + 1).map_or(0, |last| last / self.stride + 1).min(out_size);
        lo.min(hi)..hi
    }

    /// Calls `f(tap, out_start, in_start, len)` for each kernel tap (`ki * kernel + kj`) and output row:
    /// the `len` output pixels from `out_start` (step 1, in an `out_height x out_width` plane) read
    /// the input pixels from `in_start` with step `stride` (in a `height x width` plane).
    #[inline(always)]
    fn for_each_run(&self, mut f: impl FnMut(usize, usize, usize, usize)) {
        for ki in 0..self.kernel {
            let rows = self.inside(ki, self.height, self.out_height);
            for kj in 0..self.kernel {
                let cols = self.inside(kj, self.width, self.out_width);
                if cols.is_empty() {
                    continue;
                }
                for oy in rows.clone() {
                    let iy = oy * self.stride + ki - self.padding;
                    let ix = cols.start * self.stride + kj - self.padding;
                    f(ki * self.kernel + kj, oy * self.out_width + cols.start, iy * self.width + ix, cols.len());
                }
            }
        }
    }
}

/// The f32 values of a contiguous CPU tensor, or an error naming the op.
fn f32_values<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    use candle_core::backend::BackendStorage;
    let CpuStorage::F32(values) = storage else {
        bail!("{op} supports only f32, got {:?}; convert with to_dtype(DType::F32)", storage.dtype());
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("{op} needs a contiguous input; call .contiguous() first");
    };
    Ok(&values[start..end])
}

/// Fails when an op's input is not the shape its geometry was computed for.
fn check_dims(op: &str, layout: &Layout, expected: &[usize]) -> Result<()> {
    if layout.dims() != expected {
        bail!("{op}: expected an input {expected:?}, got {:?}", layout.dims());
    }
    Ok(())
}

/// `planes` planes of `plane_len` values, each zeroed and then filled by `fill(plane_index, plane)`
/// on rayon's threads (the zeroing too: [`crate::buffer`]).
fn par_planes(planes: usize, plane_len: usize, fill: impl Fn(usize, &mut [f32]) + Send + Sync) -> Vec<f32> {
    // SAFETY: each plane is written whole with zeros before `fill` sees it.
    unsafe {
        crate::buffer::par_fill(
            planes * plane_len,
            plane_len,
            1,
            || (),
            #[inline(always)]
            |_, i, plane| fill(i, crate::buffer::write(plane, 0.0)),
        )
    }
}
