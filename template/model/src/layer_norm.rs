//! A trainable LayerNorm. candle-nn 0.11's `LayerNorm` runs a fused kernel on contiguous input
//! that has no backward pass, so its parameters (and everything before it) would silently never
//! train; this one is the differentiable composition of tensor ops. Use it in your own models.

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::graph::{Attr, Graph, Value};

/// LayerNorm over the last dimension, with weight and bias.
///
/// candle-nn's `LayerNorm` runs a fused kernel on contiguous input that has no backward pass (its
/// parameters would silently never train); this uses the differentiable composition of tensor ops.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    path: String,
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// `eps` is added to the variance; the parameters are `<vb>.weight` (ones) and `<vb>.bias` (zeros).
    pub fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            path: vb.prefix(),
            weight: vb.get_with_hints(size, "weight", Init::Const(1.))?,
            bias: vb.get_with_hints(size, "bias", Init::Const(0.))?,
            eps,
        })
    }
}

impl LayerNorm {
    /// Normalise over dimension `dim`: one fused op on the CPU (see `fused_cpu`), tensor ops elsewhere.
    fn normalize(&self, xs: &Tensor, dim: usize) -> Result<Tensor> {
        let dims = xs.dims();
        let op =
            kernels::norm::Norm { channels: dims[dim], inner: dims[dim + 1..].iter().product(), eps: self.eps as f32 };
        xs.contiguous()?.apply_op3(&self.weight, &self.bias, op)
    }

    fn fusable(xs: &Tensor) -> bool {
        xs.device().is_cpu() && xs.dtype() == DType::F32
    }

    /// The tensor-op form over the last dimension: every device and dtype.
    fn forward_with_tensor_ops(&self, xs: &Tensor) -> Result<Tensor> {
        let centered = xs.broadcast_sub(&xs.mean_keepdim(D::Minus1)?)?;
        let std = (centered.sqr()?.mean_keepdim(D::Minus1)? + self.eps)?.sqrt()?;
        centered.broadcast_div(&std)?.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if Self::fusable(xs) { self.normalize(xs, xs.rank() - 1) } else { self.forward_with_tensor_ops(xs) }
    }
}

/// LayerNorm over the channels of an NCHW tensor (on the CPU in place of the layout; elsewhere: to
/// NHWC, normalise the last dimension, back).
#[derive(Debug, Clone)]
pub struct ChannelNorm(LayerNorm);

impl ChannelNorm {
    pub fn new(channels: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        LayerNorm::new(channels, eps, vb).map(Self)
    }
}

impl ChannelNorm {
    fn forward_with_tensor_ops(&self, xs: &Tensor) -> Result<Tensor> {
        let nhwc = xs.permute((0, 2, 3, 1))?; // [batch, h, w, c]
        self.0.forward_with_tensor_ops(&nhwc)?.permute((0, 3, 1, 2)) // [batch, c, h, w]
    }
}

impl Module for ChannelNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if LayerNorm::fusable(xs) { self.0.normalize(xs, 1) } else { self.forward_with_tensor_ops(xs) }
    }
}

impl LayerNorm {
    /// LayerNormalization over the last axis, with the checkpoint's weight and bias (opset 17).
    fn emit_last_axis(&self, g: &mut Graph, x: &Value) -> Result<Value> {
        let weight = g.param(&format!("{}.weight", self.path), &self.weight)?;
        let bias = g.param(&format!("{}.bias", self.path), &self.bias)?;
        // The attribute is a float; a model's eps (1e-5, 1e-6) is exact enough in f32.
        let attributes = vec![("axis", Attr::Int(-1)), ("epsilon", Attr::Float(self.eps as f32))];
        Ok(g.node(
            "LayerNormalization",
            17,
            &[x, &weight, &bias],
            attributes,
            &format!("{}/LayerNormalization", self.path),
        ))
    }
}

impl crate::Layer for LayerNorm {
    fn path(&self) -> &str {
        &self.path
    }

    fn kind(&self) -> &'static str {
        "layer norm"
    }

    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        self.forward(xs)
    }

    fn emit(&self, g: &mut Graph, x: &Value) -> Result<Value> {
        self.emit_last_axis(g, x)
    }
}

impl crate::Layer for ChannelNorm {
    fn path(&self) -> &str {
        &self.0.path
    }

    fn kind(&self) -> &'static str {
        "channel norm"
    }

    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        self.forward(xs)
    }

    /// Through NHWC and back, as the tensor-op path does.
    fn emit(&self, g: &mut Graph, x: &Value) -> Result<Value> {
        let path = &self.0.path;
        let nhwc =
            g.node("Transpose", 13, &[x], vec![("perm", Attr::Ints(vec![0, 2, 3, 1]))], &format!("{path}/to_nhwc"));
        let normed = self.0.emit_last_axis(g, &nhwc)?;
        Ok(g.node(
            "Transpose",
            13,
            &[&normed],
            vec![("perm", Attr::Ints(vec![0, 3, 1, 2]))],
            &format!("{path}/to_nchw"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use candle_nn::VarMap;

    /// Output, input gradient and parameter gradients of `forward` for a fixed probe.
    fn value_and_grads(varmap: &VarMap, xs: &Var, ys: Tensor) -> Vec<Vec<f32>> {
        let probe: Vec<f32> = (0..ys.elem_count()).map(|i| ((i * 13 % 7) as f32 - 3.0) / 2.0).collect();
        let probe = Tensor::from_slice(&probe, ys.shape(), &Device::Cpu).unwrap();
        let grads = (&ys * probe).unwrap().sum_all().unwrap().backward().unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut out = vec![flat(&ys), flat(grads.get(xs.as_tensor()).unwrap())];
        let mut vars = varmap.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        out.extend(vars.iter().map(|(_, v)| flat(grads.get(v.as_tensor()).unwrap())));
        out
    }

    fn assert_close(a: &[Vec<f32>], b: &[Vec<f32>]) {
        for (i, (a, b)) in a.iter().zip(b).enumerate() {
            let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-4, "output {i} (0: value, 1: input grad, then weight/bias grads) differs by {worst}");
        }
    }

    /// The fused CPU op equals the tensor-op form, values and all gradients, for both layouts.
    #[test]
    fn fused_norms_match_the_tensor_ops() {
        let values: Vec<f32> = (0..2 * 6 * 3 * 5).map(|i| ((i * 37 % 23) as f32 - 11.0) / 4.0).collect();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let norm = ChannelNorm::new(6, 1e-6, vb).unwrap();
        // Non-trivial weight and bias, so their gradients and the scaling are exercised.
        for (name, var) in varmap.data().lock().unwrap().iter() {
            let shift = if name.ends_with("bias") { 0.5 } else { 1.5 };
            var.set(
                &(var.as_tensor().affine(1.0, shift).unwrap()
                    * Tensor::new(&[1f32, -1.0, 2.0, 0.5, 1.0, 3.0], &Device::Cpu).unwrap())
                .unwrap(),
            )
            .unwrap();
        }
        let xs = Var::from_slice(&values, (2, 6, 3, 5), &Device::Cpu).unwrap();
        let fused = value_and_grads(&varmap, &xs, norm.forward(xs.as_tensor()).unwrap());
        let reference = value_and_grads(&varmap, &xs, norm.forward_with_tensor_ops(xs.as_tensor()).unwrap());
        assert_close(&fused, &reference);

        let xs = Var::from_slice(&values, (30, 6), &Device::Cpu).unwrap();
        let fused = value_and_grads(&varmap, &xs, norm.0.forward(xs.as_tensor()).unwrap());
        let reference = value_and_grads(&varmap, &xs, norm.0.forward_with_tensor_ops(xs.as_tensor()).unwrap());
        assert_close(&fused, &reference);
    }

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
