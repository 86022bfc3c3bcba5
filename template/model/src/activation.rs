//! Activation layers: ReLU and the exact GELU (fused CPU kernels from the `kernels` crate, candle's
//! ops elsewhere), and SiLU.

use candle_core::{Result, Tensor};
use kernels::activation::{gelu_erf, relu};

use crate::graph::{Graph, Value};

/// [`gelu_erf`] as a layer.
#[derive(Debug, Clone, Copy)]
pub struct GeluErf;

impl candle_core::Module for GeluErf {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        gelu_erf(xs)
    }
}

/// [`relu`] as a layer, for method chains: `xs.apply(&fc)?.apply(&Relu)?`.
#[derive(Debug, Clone, Copy)]
pub struct Relu;

impl candle_core::Module for Relu {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        relu(xs)
    }
}

impl crate::Layer for Relu {
    fn kind(&self) -> &'static str {
        "relu"
    }

    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        relu(xs)
    }

    fn emit(&self, g: &mut Graph, x: &Value) -> Result<Value> {
        Ok(g.node("Relu", 6, &[x], vec![], "Relu"))
    }
}

impl crate::Layer for GeluErf {
    fn kind(&self) -> &'static str {
        "gelu"
    }

    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        gelu_erf(xs)
    }

    /// `(erf(x * (1/sqrt 2)) + 1) * 0.5 * x`, as candle computes it.
    fn emit(&self, g: &mut Graph, x: &Value) -> Result<Value> {
        let inv_sqrt2 = g.scalar("gelu/inv_sqrt2", std::f32::consts::FRAC_1_SQRT_2);
        let one = g.scalar("gelu/one", 1.0);
        let half = g.scalar("gelu/half", 0.5);
        let scaled = g.node("Mul", 7, &[x, &inv_sqrt2], vec![], "gelu/Mul");
        let erf = g.node("Erf", 13, &[&scaled], vec![], "gelu/Erf");
        let shifted = g.node("Add", 7, &[&erf, &one], vec![], "gelu/Add");
        let halved = g.node("Mul", 7, &[&shifted, &half], vec![], "gelu/Mul");
        Ok(g.node("Mul", 7, &[&halved, x], vec![], "gelu/Mul"))
    }
}

/// SiLU (swish), `x * sigmoid(x)`, on every device with candle's differentiable ops.
#[derive(Debug, Clone, Copy)]
pub struct Silu;

impl crate::Layer for Silu {
    fn kind(&self) -> &'static str {
        "silu"
    }

    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        candle_nn::ops::silu(xs)
    }

    fn emit(&self, g: &mut Graph, x: &Value) -> Result<Value> {
        let sigmoid = g.node("Sigmoid", 6, &[x], vec![], "silu/Sigmoid");
        Ok(g.node("Mul", 7, &[x, &sigmoid], vec![], "silu/Mul"))
    }
}
