//! A 2-D convolution layer that trains fast on the CPU: `im2col` + GEMM and direct depthwise
//! kernels with their own backward passes (`kernels::conv`), where candle 0.11's `conv2d` backward
//! runs direct loops and splits a grouped convolution into one per group. Parameters and their names
//! are those of `candle_nn::conv2d` (and of PyTorch's state dict); the initialisation is PyTorch's
//! `nn.Conv2d` ([`crate::init`]). On other devices the layer calls candle's own convolution.

#[cfg(test)]
mod tests;

use candle_core::{Module, Result, Tensor, bail};
use candle_nn::{Conv2dConfig, VarBuilder};

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
    /// A ReLU after the convolution ([`Conv2d::with_relu`]).
    relu: bool,
}

/// Creates (initialised as PyTorch's `nn.Conv2d`) or loads `<vb>.weight`
/// `[out, in / groups, kernel, kernel]` and `<vb>.bias` `[out]`: the names and shapes of
/// `candle_nn::conv2d` and of PyTorch's state dict.
pub fn conv2d(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    cfg: Conv2dConfig,
    vb: VarBuilder,
) -> Result<Conv2d> {
    if cfg.groups == 0 || !in_channels.is_multiple_of(cfg.groups) {
        bail!("conv2d: groups = {} must divide the {in_channels} input channels", cfg.groups);
    }
    let shape = (out_channels, in_channels / cfg.groups, kernel, kernel);
    let (weight, bias) = crate::init::weight_and_bias(shape, true, &vb)?;
    Ok(Conv2d { path: vb.prefix(), ..Conv2d::new(weight, bias, cfg)? })
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
        Ok(Self { path: String::new(), weight, bias, config, relu: false })
    }

    /// The same layer followed by a ReLU, computed as one op on the CPU: the same values and
    /// gradients as a [`crate::activation::Relu`] layer after it, and a faster training step (the
    /// backward pass keeps no gradient for the output before the ReLU). Exported as Conv, Relu.
    pub fn with_relu(self) -> Self {
        Self { relu: true, ..self }
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

    /// `forward` on the CPU: the kernels of the `kernels` crate.
    fn forward_cpu(&self, xs: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let conv = if self.relu { kernels::conv::conv2d_relu } else { kernels::conv::conv2d };
        conv(xs, &self.weight, self.bias.as_ref(), c.stride, c.padding, c.groups)
    }
}

impl Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if xs.device().is_cpu() {
            return self.forward_cpu(xs);
        }
        // Elsewhere (CUDA, Metal), candle's own kernels.
        let c = &self.config;
        let ys = xs.conv2d_with_algo(&self.weight, c.padding, c.stride, c.dilation, c.groups, c.cudnn_fwd_algo)?;
        let ys = match &self.bias {
            None => ys,
            Some(bias) => ys.broadcast_add(&bias.reshape((1, (), 1, 1))?)?,
        };
        if self.relu { ys.relu() } else { Ok(ys) }
    }
}

impl crate::Layer for Conv2d {
    fn path(&self) -> &str {
        &self.path
    }

    fn kind(&self) -> &'static str {
        match (self.config.groups == 1, self.relu) {
            (true, false) => "conv2d",
            (true, true) => "conv2d+relu",
            (false, false) => "depthwise conv2d",
            (false, true) => "depthwise conv2d+relu",
        }
    }

    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        self.forward(xs)
    }

    /// One Conv with the layer's padding, stride and groups (depthwise when groups = channels),
    /// then a Relu for a layer [`Conv2d::with_relu`].
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
        let ys = g.node("Conv", 11, &inputs, attributes, &format!("{}/Conv", self.path));
        Ok(if self.relu { g.node("Relu", 6, &[&ys], vec![], &format!("{}/Relu", self.path)) } else { ys })
    }
}
