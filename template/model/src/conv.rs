//! A 2-D convolution layer that trains fast on the CPU, and its CPU kernels.
//!
//! candle 0.11's `conv2d` backward runs direct loops (`conv_transpose2d` for the input gradient, a
//! convolution over transposed tensors for the weight gradient) and splits a grouped convolution into
//! one convolution per group. Here an ordinary convolution is `im2col` + GEMM one sample per thread,
//! and its gradients GEMM + `col2im` and `im2col` + GEMM (`im2col.rs`); a depthwise convolution has
//! direct kernels for its forward pass and both gradients (`depthwise.rs`); the bias gradient sums
//! the cheap way (`bias.rs`). Parameters, their names and their initialisation are exactly those of
//! `candle_nn::conv2d`, so checkpoints and seeded runs are unchanged. On other devices the layer
//! calls candle's own convolution.

mod bias;
mod depthwise;
mod im2col;
#[cfg(test)]
mod tests;

use std::ops::Range;

use candle_core::{CpuStorage, DType, Layout, Module, Result, Tensor, bail};
use candle_nn::{Conv2dConfig, VarBuilder};
use rayon::prelude::*;

/// A 2-D convolution: `[batch, in, h, w]` to `[batch, out, oh, ow]`, with a square kernel.
///
/// `groups` is 1 or depthwise (`groups == in == out`); `dilation` is 1. Build it with [`conv2d`].
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// The VarBuilder prefix (`""` when built from tensors with [`Conv2d::new`]).
    path: String,
    /// `[out, in / groups, kernel, kernel]`.
    weight: Tensor,
    /// `[out]`.
    bias: Option<Tensor>,
    config: Conv2dConfig,
}

/// Creates or loads `<vb>.weight` and `<vb>.bias` exactly as `candle_nn::conv2d` does (same shapes and
/// initialisation), so a model switching layers keeps its checkpoint keys and its seeded weights.
pub fn conv2d(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    cfg: Conv2dConfig,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let path = vb.prefix();
    let layer = candle_nn::conv2d(in_channels, out_channels, kernel, cfg, vb)?;
    Ok(Conv2d { path, ..Conv2d::new(layer.weight().clone(), layer.bias().cloned(), cfg)? })
}

impl Conv2d {
    /// Fails, saying what is supported, for a dilation other than 1, a non-square kernel, or
    /// groups that are neither 1 nor depthwise.
    pub fn new(weight: Tensor, bias: Option<Tensor>, config: Conv2dConfig) -> Result<Self> {
        let (out, in_per_group, kh, kw) = weight.dims4()?;
        if config.dilation != 1 {
            bail!(
                "conv2d: dilation {} is not supported, only 1; use candle_nn::Conv2d for dilated convolutions",
                config.dilation
            );
        }
        if kh != kw {
            bail!("conv2d: the kernel must be square, got {kh}x{kw}");
        }
        if config.stride == 0 {
            bail!("conv2d: stride must be at least 1");
        }
        let depthwise = config.groups == out && in_per_group == 1;
        if config.groups != 1 && !depthwise {
            bail!(
                "conv2d: groups = {} is not supported, only 1 or depthwise (groups == in_channels == \
                 out_channels); use candle_nn::Conv2d for other grouped convolutions",
                config.groups
            );
        }
        Ok(Self {
            path: String::new(),
            weight,
            bias,
            config,
        })
    }

    /// `[out, in / groups, kernel, kernel]`, as in `candle_nn::Conv2d`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }

    /// `forward` on the CPU: the kernels of `im2col.rs` and `depthwise.rs`, then the bias.
    fn forward_cpu(&self, xs: &Tensor) -> Result<Tensor> {
        if xs.dtype() != DType::F32 {
            bail!(
                "conv2d on the CPU supports only f32 input, got {:?}; convert it with to_dtype(DType::F32)",
                xs.dtype()
            );
        }
        let (out, in_per_group, k, _) = self.weight.dims4()?;
        let (batch, channels, height, width) = xs.dims4()?;
        let groups = self.config.groups;
        if channels != in_per_group * groups {
            bail!(
                "conv2d: input {:?} has {channels} channels, the layer expects {}",
                xs.dims(),
                in_per_group * groups
            );
        }
        let (stride, padding) = (self.config.stride, self.config.padding);
        let g = Geometry::new([batch, channels, height, width], k, stride, padding)?;
        let (xs, weight) = (xs.contiguous()?, self.weight.contiguous()?);
        let ys = if groups == 1 {
            xs.apply_op2(&weight, im2col::Conv(g, out))?
        } else {
            debug_assert_eq!(groups, out, "Conv2d::new admits only depthwise groups");
            xs.apply_op2(&weight, depthwise::Depthwise(g))?
        }; // [batch, out, oh, ow]
        match &self.bias {
            None => Ok(ys),
            Some(bias) => ys.apply_op2(&bias.contiguous()?, bias::AddBias),
        }
    }
}

impl Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if xs.device().is_cpu() {
            return self.forward_cpu(xs);
        }
        // Elsewhere (CUDA, Metal), candle's own kernels.
        let c = &self.config;
        let ys = xs.conv2d_with_algo(
            &self.weight,
            c.padding,
            c.stride,
            c.dilation,
            c.groups,
            c.cudnn_fwd_algo,
        )?;
        match &self.bias {
            None => Ok(ys),
            Some(bias) => ys.broadcast_add(&bias.reshape((1, (), 1, 1))?),
        }
    }
}

impl crate::Layer for Conv2d {
    fn path(&self) -> &str {
        &self.path
    }

    fn kind(&self) -> &'static str {
        if self.config.groups == 1 { "conv2d" } else { "depthwise conv2d" }
    }

    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        self.forward(xs)
    }

    /// One Conv with the layer's padding, stride and groups (depthwise when groups = channels).
    fn emit(&self, g: &mut crate::graph::Graph, x: &crate::graph::Value) -> Result<crate::graph::Value> {
        use crate::graph::{Attr, int};
        let weight = g.param(&format!("{}.weight", self.path), &self.weight)?;
        let mut inputs = vec![x, &weight];
        let bias = self.bias.as_ref().map(|b| g.param(&format!("{}.bias", self.path), b)).transpose()?;
        inputs.extend(bias.as_ref());
        let (_, _, kh, kw) = self.weight.dims4()?;
        let c = &self.config;
        let (pad, stride, dilation) = (int(c.padding), int(c.stride), int(c.dilation));
        let attributes = vec![
            ("kernel_shape", Attr::Ints(vec![int(kh), int(kw)])),
            ("strides", Attr::Ints(vec![stride, stride])),
            ("pads", Attr::Ints(vec![pad, pad, pad, pad])),
            ("dilations", Attr::Ints(vec![dilation, dilation])),
            ("group", Attr::Int(int(c.groups))),
        ];
        Ok(g.node("Conv", 11, &inputs, attributes, &format!("{}/Conv", self.path)))
    }
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
        let hi = (size + self.padding)
            .checked_sub(tap + 1)
            .map_or(0, |last| last / self.stride + 1)
            .min(out_size);
        lo.min(hi)..hi
    }

    /// Calls `f(tap, out_start, in_start, len)` for each kernel tap (`ki * kernel + kj`) and output row:
    /// the `len` output pixels from `out_start` (step 1, in an `out_height x out_width` plane) read
    /// the input pixels from `in_start` with step `stride` (in a `height x width` plane).
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
                    f(
                        ki * self.kernel + kj,
                        oy * self.out_width + cols.start,
                        iy * self.width + ix,
                        cols.len(),
                    );
                }
            }
        }
    }
}

/// The f32 values of a contiguous CPU tensor, or an error naming the op.
fn f32_values<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    use candle_core::backend::BackendStorage;
    let CpuStorage::F32(values) = storage else {
        bail!(
            "{op} supports only f32, got {:?}; convert with to_dtype(DType::F32)",
            storage.dtype()
        );
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("{op} needs a contiguous input; call .contiguous() first");
    };
    Ok(&values[start..end])
}

/// Fails when an op's input is not the shape its geometry was computed for.
fn check_dims(op: &str, layout: &Layout, expected: &[usize]) -> Result<()> {
    if layout.dims() != expected {
        bail!(
            "{op}: expected an input {expected:?}, got {:?}",
            layout.dims()
        );
    }
    Ok(())
}

/// `planes` zeroed planes of `plane_len` values, filled by `fill(plane_index, plane)` in parallel.
fn par_planes(
    planes: usize,
    plane_len: usize,
    fill: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let mut out = vec![0f32; planes * plane_len];
    if plane_len > 0 {
        out.par_chunks_mut(plane_len)
            .enumerate()
            .for_each(|(i, plane)| fill(i, plane));
    }
    out
}
