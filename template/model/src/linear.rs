//! A fully connected layer, `y = x W^T + b`: one op forward on the CPU ([`kernels::linear`]: the
//! product written onto the bias, the gradients contiguous in the weight's and the input's own
//! layouts), candle's ops elsewhere. Same parameters (`weight: [out, in]`, `bias: [out]`) and values
//! as candle-nn's `Linear`; PyTorch's `nn.Linear` initialisation ([`crate::init`]).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::graph::{Attr, Graph, Value};

#[derive(Debug, Clone)]
pub struct Linear {
    path: String,
    weight: Tensor,
    bias: Option<Tensor>,
}

/// Creates (initialised as PyTorch's `nn.Linear`) or loads `weight` `[out, in]` and `bias` `[out]`
/// under `vb`: the names and shapes of `candle_nn::linear` and of PyTorch's state dict.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let (weight, bias) = crate::init::weight_and_bias((out_dim, in_dim), true, &vb)?;
    Ok(Linear { path: vb.prefix(), weight, bias })
}

impl Linear {
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for Linear {
    /// `xs: [batch, in]` to `[batch, out]`.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        kernels::linear::linear(xs, &self.weight, self.bias.as_ref())
    }
}

impl crate::Layer for Linear {
    fn path(&self) -> &str {
        &self.path
    }

    fn kind(&self) -> &'static str {
        "linear"
    }

    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        self.forward(xs)
    }

    /// One Gemm with `transB = 1`: the weight stays `[out, in]` as in the checkpoint.
    fn emit(&self, g: &mut Graph, x: &Value) -> Result<Value> {
        let weight = g.param(&format!("{}.weight", self.path), &self.weight)?;
        let mut inputs = vec![x, &weight];
        let bias = self.bias.as_ref().map(|b| g.param(&format!("{}.bias", self.path), b)).transpose()?;
        inputs.extend(bias.as_ref());
        let attributes = vec![
            ("alpha", Attr::Float(1.0)),
            ("beta", Attr::Float(1.0)),
            ("transA", Attr::Int(0)),
            ("transB", Attr::Int(1)),
        ];
        Ok(g.node("Gemm", 11, &inputs, attributes, &format!("{}/Gemm", self.path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use candle_nn::VarMap;

    #[test]
    fn matches_candle_linear_in_value_and_gradient_and_grads_are_contiguous() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let ours = linear(5, 3, vb.clone()).unwrap();
        let theirs = candle_nn::Linear::new(ours.weight().clone(), ours.bias().cloned());
        let xs = Var::new(&[[0.5f32, -1.0, 2.0, 0.0, 3.0], [1.0, 1.5, -0.5, 2.5, -2.0]], &Device::Cpu).unwrap();
        let probe = Tensor::new(&[[1.0f32, -2.0, 0.5], [3.0, 0.25, -1.0]], &Device::Cpu).unwrap();
        let grads_of = |layer: &dyn Module| {
            let ys = layer.forward(xs.as_tensor()).unwrap();
            let grads = (&ys * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let grad = |t: &Tensor| grads.get(t).unwrap().clone();
            (ys, grad(ours.weight()), grad(ours.bias().unwrap()), grad(xs.as_tensor()))
        };
        let (a, b) = (grads_of(&ours), grads_of(&theirs));
        assert!(a.1.is_contiguous(), "the weight gradient must be contiguous");
        for (x, y) in [(a.0, b.0), (a.1, b.1), (a.2, b.2), (a.3, b.3)] {
            let diff = (x - y).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
            assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
        }
    }
}
