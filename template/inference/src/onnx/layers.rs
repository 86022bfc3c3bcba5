//! The layer emitters: one method per candle layer or tensor op the models use, each writing the
//! ONNX ops that compute exactly what candle computes. A model's export function chains them the
//! way its `forward_t` chains the layers; a layer of your own gets a method here.
//!
//! Parameterised layers take the VarBuilder prefix of the layer (`"conv1"`, `"stages.0.block.norm"`)
//! and read `<prefix>.weight` and `<prefix>.bias` from the checkpoint.

use candle_nn::Conv2dConfig;
use data_loader::Channels;

use super::OnnxError;
use super::graph::{GraphBuilder, Value};
use super::proto::{as_i64, attr_float, attr_int, attr_ints};

impl GraphBuilder<'_> {
    /// `(x - mean[c]) / std[c]` per channel, as the data loader standardises pixels (the graph
    /// takes pixels in [0, 1]); the constants are `[1, channels, 1, 1]`.
    pub fn normalize(&mut self, x: &Value, normalize: &Channels) -> Value {
        let dims = [1, normalize.channels(), 1, 1];
        let mean = self.constant("normalize/mean", &dims, &normalize.mean);
        let std = self.constant("normalize/std", &dims, &normalize.std);
        let centered = self.node("Sub", 7, &[x, &mean], vec![], "normalize/Sub");
        self.node("Div", 7, &[&centered, &std], vec![], "normalize/Div")
    }

    /// candle-nn `Linear` on `[batch, in]`: `x W^T + b` as one Gemm with `transB = 1` (the weight
    /// stays `[out, in]` as in the checkpoint). The bias is used when the checkpoint has one.
    pub fn linear(&mut self, x: &Value, prefix: &str) -> Result<Value, OnnxError> {
        let (weight, dims) = self.param(&format!("{prefix}.weight"))?;
        self.expect_rank(prefix, "weight", &dims, 2, "[out, in]")?;
        let mut inputs = vec![x, &weight];
        let bias = self.optional_param(&format!("{prefix}.bias"))?;
        inputs.extend(bias.as_ref());
        let attributes = vec![
            attr_float("alpha", 1.0),
            attr_float("beta", 1.0),
            attr_int("transA", 0),
            attr_int("transB", 1),
        ];
        Ok(self.node("Gemm", 11, &inputs, attributes, &format!("{prefix}/Gemm")))
    }

    /// candle-nn `Conv2d` with its `Conv2dConfig` (padding, stride, dilation, groups; depthwise when
    /// `groups` is the channel count). The kernel size comes from the weight `[out, in/groups, k, k]`.
    pub fn conv2d(
        &mut self,
        x: &Value,
        prefix: &str,
        cfg: &Conv2dConfig,
    ) -> Result<Value, OnnxError> {
        let (weight, dims) = self.param(&format!("{prefix}.weight"))?;
        self.expect_rank(prefix, "weight", &dims, 4, "[out, in/groups, kh, kw]")?;
        let mut inputs = vec![x, &weight];
        let bias = self.optional_param(&format!("{prefix}.bias"))?;
        inputs.extend(bias.as_ref());
        let (pad, stride, dilation) = (
            as_i64(cfg.padding),
            as_i64(cfg.stride),
            as_i64(cfg.dilation),
        );
        let attributes = vec![
            attr_ints("kernel_shape", &[as_i64(dims[2]), as_i64(dims[3])]),
            attr_ints("strides", &[stride, stride]),
            attr_ints("pads", &[pad, pad, pad, pad]),
            attr_ints("dilations", &[dilation, dilation]),
            attr_int("group", as_i64(cfg.groups)),
        ];
        Ok(self.node("Conv", 11, &inputs, attributes, &format!("{prefix}/Conv")))
    }

    /// `Tensor::relu`.
    pub fn relu(&mut self, x: &Value) -> Value {
        self.node("Relu", 6, &[x], vec![], "Relu")
    }

    /// `Tensor::max_pool2d_with_stride(kernel, stride)`: no padding, floor rounding.
    pub fn max_pool2d(&mut self, x: &Value, kernel: usize, stride: usize) -> Value {
        let (kernel, stride) = (as_i64(kernel), as_i64(stride));
        let attributes = vec![
            attr_ints("kernel_shape", &[kernel, kernel]),
            attr_ints("strides", &[stride, stride]),
            attr_ints("pads", &[0, 0, 0, 0]),
        ];
        self.node("MaxPool", 12, &[x], attributes, "MaxPool")
    }

    /// `Tensor::flatten_from(axis)`: `[d0, .., d(axis-1), product of the rest]`.
    pub fn flatten(&mut self, x: &Value, axis: usize) -> Value {
        self.node(
            "Flatten",
            13,
            &[x],
            vec![attr_int("axis", as_i64(axis))],
            "Flatten",
        )
    }

    /// `model::LayerNorm`: normalise the last dimension, then `* weight + bias`.
    pub fn layer_norm(&mut self, x: &Value, prefix: &str, eps: f64) -> Result<Value, OnnxError> {
        let (weight, dims) = self.param(&format!("{prefix}.weight"))?;
        self.expect_rank(prefix, "weight", &dims, 1, "[size]")?;
        let (bias, _) = self.param(&format!("{prefix}.bias"))?;
        // The attribute is a float; a model's eps (1e-5, 1e-6) is exact enough in f32.
        let attributes = vec![attr_int("axis", -1), attr_float("epsilon", eps as f32)];
        Ok(self.node(
            "LayerNormalization",
            17,
            &[x, &weight, &bias],
            attributes,
            &format!("{prefix}/LayerNormalization"),
        ))
    }

    /// `model::ChannelNorm`: LayerNorm over the channels of `[batch, c, h, w]`, through NHWC and
    /// back as the model does.
    pub fn channel_norm(&mut self, x: &Value, prefix: &str, eps: f64) -> Result<Value, OnnxError> {
        let nhwc = self.transpose(x, &[0, 2, 3, 1], &format!("{prefix}/to_nhwc")); // [batch, h, w, c]
        let normed = self.layer_norm(&nhwc, prefix, eps)?;
        Ok(self.transpose(&normed, &[0, 3, 1, 2], &format!("{prefix}/to_nchw"))) // [batch, c, h, w]
    }

    /// `Tensor::permute(perm)`.
    pub fn transpose(&mut self, x: &Value, perm: &[i64], label: &str) -> Value {
        self.node("Transpose", 13, &[x], vec![attr_ints("perm", perm)], label)
    }

    /// `Tensor::gelu_erf`, the exact GELU, as candle computes it:
    /// `(erf(x * (1/sqrt 2)) + 1) * 0.5 * x`.
    pub fn gelu_erf(&mut self, x: &Value) -> Value {
        let inv_sqrt2 = self.scalar("gelu/inv_sqrt2", std::f32::consts::FRAC_1_SQRT_2);
        let one = self.scalar("gelu/one", 1.0);
        let half = self.scalar("gelu/half", 0.5);
        let scaled = self.node("Mul", 7, &[x, &inv_sqrt2], vec![], "gelu/Mul");
        let erf = self.node("Erf", 13, &[&scaled], vec![], "gelu/Erf");
        let shifted = self.node("Add", 7, &[&erf, &one], vec![], "gelu/Add");
        let halved = self.node("Mul", 7, &[&shifted, &half], vec![], "gelu/Mul");
        self.node("Mul", 7, &[&halved, x], vec![], "gelu/Mul")
    }

    /// Average over height and width, keeping them as 1: `[batch, c, h, w]` to `[batch, c, 1, 1]`.
    pub fn global_average_pool(&mut self, x: &Value) -> Value {
        self.node("GlobalAveragePool", 1, &[x], vec![], "GlobalAveragePool")
    }

    /// `Tensor::mean((2, 3))` on `[batch, c, h, w]`: `[batch, c]`.
    pub fn mean_hw(&mut self, x: &Value) -> Value {
        let pooled = self.global_average_pool(x); // [batch, c, 1, 1]
        self.flatten(&pooled, 1) // [batch, c]
    }

    /// Elementwise `a + b` (a residual connection).
    pub fn add(&mut self, a: &Value, b: &Value) -> Value {
        self.node("Add", 7, &[a, b], vec![], "Add")
    }

    /// The checkpoint tensor `key` if the checkpoint has it (a layer built without bias has none).
    fn optional_param(&mut self, key: &str) -> Result<Option<Value>, OnnxError> {
        if self.has_param(key) {
            Ok(Some(self.param(key)?.0))
        } else {
            Ok(None)
        }
    }

    fn expect_rank(
        &self,
        prefix: &str,
        what: &str,
        dims: &[usize],
        rank: usize,
        layout: &str,
    ) -> Result<(), OnnxError> {
        if dims.len() == rank {
            return Ok(());
        }
        Err(OnnxError::WeightShape {
            model: self.model().to_owned(),
            name: format!("{prefix}.{what}"),
            got: dims.to_vec(),
            expected: layout.to_owned(),
        })
    }
}
