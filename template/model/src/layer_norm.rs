//! A trainable LayerNorm. candle-nn 0.11's `LayerNorm` runs a fused kernel on contiguous input
//! that has no backward pass, so its parameters (and everything before it) would silently never
//! train; this one is the differentiable composition of tensor ops. Use it in your own models.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// LayerNorm over the last dimension, with weight and bias.
///
/// candle-nn's `LayerNorm` runs a fused kernel on contiguous input that has no backward pass (its
/// parameters would silently never train); this uses the differentiable composition of tensor ops.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// `eps` is added to the variance; the parameters are `<vb>.weight` (ones) and `<vb>.bias` (zeros).
    pub fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(size, "weight", Init::Const(1.))?,
            bias: vb.get_with_hints(size, "bias", Init::Const(0.))?,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let centered = xs.broadcast_sub(&xs.mean_keepdim(D::Minus1)?)?;
        let std = (centered.sqr()?.mean_keepdim(D::Minus1)? + self.eps)?.sqrt()?;
        centered
            .broadcast_div(&std)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// LayerNorm over the channels of an NCHW tensor: to NHWC, normalise the last dimension, back.
#[derive(Debug, Clone)]
pub struct ChannelNorm(LayerNorm);

impl ChannelNorm {
    pub fn new(channels: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        LayerNorm::new(channels, eps, vb).map(Self)
    }
}

impl Module for ChannelNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        xs.permute((0, 2, 3, 1))? // [batch, h, w, c]
            .apply(&self.0)?
            .permute((0, 3, 1, 2)) // [batch, c, h, w]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use candle_nn::VarMap;

    #[test]
    fn normalises_the_last_dimension_and_trains() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let norm = LayerNorm::new(4, 1e-6, vb).unwrap();
        let xs = Var::new(&[[1.0f32, 2.0, 3.0, 4.0]], &Device::Cpu).unwrap();
        let ys = norm.forward(xs.as_tensor()).unwrap();
        let values = ys.to_vec2::<f32>().unwrap()[0].clone();
        // (x - 2.5) / sqrt(1.25)
        for (y, x) in values.iter().zip([1.0f32, 2.0, 3.0, 4.0]) {
            assert!((y - (x - 2.5) / 1.25f32.sqrt()).abs() < 1e-5, "{values:?}");
        }
        let weighted = (ys * Tensor::new(&[[1.0f32, 0.0, 0.0, 0.0]], &Device::Cpu).unwrap()).unwrap();
        let grads = weighted.sum_all().unwrap().backward().unwrap();
        for var in varmap.all_vars() {
            assert!(grads.get(var.as_tensor()).is_some(), "a parameter gets no gradient");
        }
    }
}
