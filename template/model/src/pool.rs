//! Pooling layers and flattening. Max-pooling runs the fused CPU kernel of the `kernels` crate
//! (its gradient goes to each window's first maximum, as PyTorch's), and on other devices tensor
//! ops with the same gradient (candle's own `max_pool2d` scales it by 1/k^2).

use candle_core::{Result, Tensor};
use kernels::pool::max_pool2d;

use crate::graph::{Attr, Graph, Value, int};

/// [`max_pool2d`] with a `k x k` window, as a layer.
#[derive(Debug, Clone, Copy)]
pub struct MaxPool2d(pub usize);

impl candle_core::Module for MaxPool2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        max_pool2d(xs, self.0)
    }
}

impl crate::Layer for MaxPool2d {
    fn kind(&self) -> &'static str {
        "max pool"
    }

    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        max_pool2d(xs, self.0)
    }

    /// No padding, floor rounding.
    fn emit(&self, g: &mut Graph, x: &Value) -> Result<Value> {
        Ok(g.node("MaxPool", 12, &[x], window_attributes(self.0), "MaxPool"))
    }
}

/// The mean of each `k x k` window (stride `k`, no padding): `[b, c, h, w]` to `[b, c, h / k, w / k]`.
#[derive(Debug, Clone, Copy)]
pub struct AvgPool2d(pub usize);

impl crate::Layer for AvgPool2d {
    fn kind(&self) -> &'static str {
        "average pool"
    }

    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        xs.avg_pool2d(self.0)
    }

    fn emit(&self, g: &mut Graph, x: &Value) -> Result<Value> {
        Ok(g.node("AveragePool", 11, &[x], window_attributes(self.0), "AveragePool"))
    }
}

/// A `k x k` window moved by `k`, without padding (ONNX's pooling attributes).
fn window_attributes(k: usize) -> Vec<(&'static str, Attr)> {
    let k = int(k);
    vec![
        ("kernel_shape", Attr::Ints(vec![k, k])),
        ("strides", Attr::Ints(vec![k, k])),
        ("pads", Attr::Ints(vec![0; 4])),
    ]
}

/// The mean over height and width: `[b, c, h, w]` to `[b, c]`.
#[derive(Debug, Clone, Copy)]
pub struct GlobalAvgPool;

impl crate::Layer for GlobalAvgPool {
    fn kind(&self) -> &'static str {
        "global average pool"
    }

    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        xs.mean((2, 3))
    }

    fn emit(&self, g: &mut Graph, x: &Value) -> Result<Value> {
        let pooled = g.node("GlobalAveragePool", 1, &[x], vec![], "GlobalAveragePool"); // [b, c, 1, 1]
        Ok(g.node("Flatten", 13, &[&pooled], vec![("axis", Attr::Int(1))], "Flatten"))
    }
}

/// `[b, d1, d2, ...]` to `[b, d1 * d2 * ...]`.
#[derive(Debug, Clone, Copy)]
pub struct Flatten;

impl crate::Layer for Flatten {
    fn kind(&self) -> &'static str {
        "flatten"
    }

    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        xs.flatten_from(1)
    }

    fn emit(&self, g: &mut Graph, x: &Value) -> Result<Value> {
        Ok(g.node("Flatten", 13, &[x], vec![("axis", Attr::Int(1))], "Flatten"))
    }
}
