//! The ONNX twin of model/src/convnext.rs: patchify stem, one ConvNeXt block per stage with
//! LayerNorm + stride-2 conv between stages, global average pooling, and the LayerNorm + two
//! Linear head.

use candle_nn::Conv2dConfig;
use model::convnext::ConvNextConfig;

use crate::onnx::OnnxError;
use crate::onnx::graph::{GraphBuilder, Value};

// The architecture constants of model/src/convnext.rs (private there), with the same names.
const STEM_STRIDE: usize = 4;
const DW_KERNEL: usize = 7;
const DOWN_STRIDE: usize = 2;
const LN_EPS: f64 = 1e-6;

pub fn export(g: &mut GraphBuilder, cfg: &ConvNextConfig, x: &Value) -> Result<Value, OnnxError> {
    let stem = Conv2dConfig {
        stride: STEM_STRIDE,
        ..Default::default()
    };
    let mut x = g.conv2d(x, "stem.conv", &stem)?; // [batch, dims[0], 7, 7]
    x = g.channel_norm(&x, "stem.norm", LN_EPS)?;
    for (i, &dim) in cfg.dims.iter().enumerate() {
        x = block(g, &x, &format!("stages.{i}.block"), dim)?;
        if i + 1 < cfg.dims.len() {
            x = downsample(g, &x, &format!("downsample.{i}"))?;
        }
    } // [batch, dims.last, 1, 1]
    let x = g.mean_hw(&x); // [batch, dims.last]
    let x = g.layer_norm(&x, "head.norm", LN_EPS)?;
    let x = g.linear(&x, "head.fc1")?; // [batch, 64]
    g.linear(&x, "head.fc2") // [batch, 10]
}

/// x + pwconv2(gelu(pwconv1(norm(dwconv(x))))): shape-preserving, `[batch, d, h, w]`.
fn block(g: &mut GraphBuilder, x: &Value, prefix: &str, dim: usize) -> Result<Value, OnnxError> {
    let depthwise = Conv2dConfig {
        padding: DW_KERNEL / 2,
        groups: dim,
        ..Default::default()
    };
    let pointwise = Conv2dConfig::default();
    let y = g.conv2d(x, &format!("{prefix}.dwconv"), &depthwise)?; // [batch, d, h, w]
    let y = g.channel_norm(&y, &format!("{prefix}.norm"), LN_EPS)?;
    let y = g.conv2d(&y, &format!("{prefix}.pwconv1"), &pointwise)?; // [batch, 2d, h, w]
    let y = g.gelu_erf(&y);
    let y = g.conv2d(&y, &format!("{prefix}.pwconv2"), &pointwise)?; // [batch, d, h, w]
    Ok(g.add(x, &y))
}

/// LayerNorm then a 2x2 stride-2 conv: `[batch, d, h, w]` to `[batch, d_next, h/2, w/2]`.
fn downsample(g: &mut GraphBuilder, x: &Value, prefix: &str) -> Result<Value, OnnxError> {
    let cfg = Conv2dConfig {
        stride: DOWN_STRIDE,
        ..Default::default()
    };
    let x = g.channel_norm(x, &format!("{prefix}.norm"), LN_EPS)?;
    g.conv2d(&x, &format!("{prefix}.conv"), &cfg)
}
