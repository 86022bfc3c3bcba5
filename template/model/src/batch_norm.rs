//! Batch normalisation over the channels of `[batch, c, h, w]`, as PyTorch's `BatchNorm2d`.
//!
//! Training normalises with the batch's statistics and updates the running mean and variance
//! (`running = (1 - momentum) * running + momentum * batch`, the variance unbiased); evaluation
//! and the ONNX graph use the running ones. The running statistics are state, not parameters:
//! they live in the VarMap under `<path>.running_mean` and `<path>.running_var`, so checkpoints
//! save and `--resume` restores them bit for bit, but they get no gradient, are not handed to the
//! optimiser and do not count as parameters ([`crate::is_state`]).

use candle_core::{Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use crate::graph::{Attr, Graph, Value};

/// PyTorch's defaults.
pub const MOMENTUM: f64 = 0.1;
pub const EPS: f64 = 1e-5;

#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    path: String,
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    momentum: f64,
    eps: f64,
}

/// Creates or loads `<vb>.weight` (ones), `<vb>.bias` (zeros), `<vb>.running_mean` (zeros) and
/// `<vb>.running_var` (ones), with PyTorch's momentum 0.1 and eps 1e-5.
pub fn batch_norm2d(channels: usize, vb: VarBuilder) -> Result<BatchNorm2d> {
    let state = |name, init| Var::from_tensor(&vb.get_with_hints(channels, name, init)?);
    Ok(BatchNorm2d {
        path: vb.prefix(),
        weight: vb.get_with_hints(channels, "weight", Init::Const(1.))?,
        bias: vb.get_with_hints(channels, "bias", Init::Const(0.))?,
        running_mean: state("running_mean", Init::Const(0.))?,
        running_var: state("running_var", Init::Const(1.))?,
        momentum: MOMENTUM,
        eps: EPS,
    })
}

impl BatchNorm2d {
    pub fn running_mean(&self) -> &Tensor {
        self.running_mean.as_tensor()
    }

    pub fn running_var(&self) -> &Tensor {
        self.running_var.as_tensor()
    }

    /// `(x - mean) / sqrt(var + eps) * weight + bias`, the statistics `[c]` broadcast per channel.
    fn normalize(&self, xs: &Tensor, mean: &Tensor, var: &Tensor) -> Result<Tensor> {
        let c = mean.dims1()?;
        let per_channel = |t: &Tensor| t.reshape((1, c, 1, 1));
        let scale = (var + self.eps)?.sqrt()?;
        xs.broadcast_sub(&per_channel(mean)?)?
            .broadcast_div(&per_channel(&scale)?)?
            .broadcast_mul(&per_channel(&self.weight)?)?
            .broadcast_add(&per_channel(&self.bias)?)
    }
}

impl crate::Layer for BatchNorm2d {
    fn path(&self) -> &str {
        &self.path
    }

    fn kind(&self) -> &'static str {
        "batch norm"
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let (b, c, h, w) = xs.dims4()?;
        if !train {
            return self.normalize(xs, self.running_mean.as_tensor(), self.running_var.as_tensor());
        }
        let n = b * h * w;
        if n < 2 {
            candle_core::bail!(
                "batch norm `{}` needs more than one value per channel to train, got [{b}, {c}, {h}, {w}]",
                self.path
            );
        }
        let per_channel = xs.transpose(0, 1)?.reshape((c, n))?; // [c, b*h*w]
        let mean = per_channel.mean(1)?;
        let var = per_channel.broadcast_sub(&mean.unsqueeze(1)?)?.sqr()?.mean(1)?; // biased, as used
        let m = self.momentum;
        let update = |running: &Var, batch: &Tensor| -> Result<()> {
            running.set(&((running.as_tensor() * (1.0 - m))? + (batch.detach() * m)?)?)
        };
        update(&self.running_mean, &mean)?;
        update(&self.running_var, &(&var * (n as f64 / (n - 1) as f64))?)?;
        self.normalize(xs, &mean, &var)
    }

    /// ONNX BatchNormalization with the running statistics (inference mode).
    fn emit(&self, g: &mut Graph, x: &Value) -> Result<Value> {
        let p = &self.path;
        let scale = g.param(&format!("{p}.weight"), &self.weight)?;
        let bias = g.param(&format!("{p}.bias"), &self.bias)?;
        let mean = g.param(&format!("{p}.running_mean"), self.running_mean.as_tensor())?;
        let var = g.param(&format!("{p}.running_var"), self.running_var.as_tensor())?;
        let attributes = vec![("epsilon", Attr::Float(self.eps as f32))];
        Ok(g.node(
            "BatchNormalization",
            9,
            &[x, &scale, &bias, &mean, &var],
            attributes,
            &format!("{p}/BatchNormalization"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Layer;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    fn layer(varmap: &VarMap) -> BatchNorm2d {
        let vb = VarBuilder::from_varmap(varmap, DType::F32, &Device::Cpu);
        batch_norm2d(2, vb.pp("bn")).unwrap()
    }

    fn input() -> Tensor {
        // Channel 0: 0..8, channel 1: 10 * (0..8), in a [2, 2, 2, 2] batch.
        let v: Vec<f32> = (0..16)
            .map(|i| {
                let (s, c, p) = (i / 8, (i / 4) % 2, i % 4);
                ((s * 4 + p) * if c == 0 { 1 } else { 10 }) as f32
            })
            .collect();
        Tensor::from_vec(v, (2, 2, 2, 2), &Device::Cpu).unwrap()
    }

    #[test]
    fn training_uses_batch_statistics_and_updates_the_running_ones_as_pytorch() {
        let varmap = VarMap::new();
        let bn = layer(&varmap);
        let ys = bn.forward_t(&input(), true).unwrap();
        // Each channel standardised: mean 0, biased variance ~1.
        let per_channel = ys.transpose(0, 1).unwrap().reshape((2, 8)).unwrap();
        let mean = per_channel.mean(1).unwrap().to_vec1::<f32>().unwrap();
        let var = per_channel.sqr().unwrap().mean(1).unwrap().to_vec1::<f32>().unwrap();
        assert!(mean.iter().all(|m| m.abs() < 1e-5) && var.iter().all(|v| (v - 1.0).abs() < 1e-3), "{mean:?} {var:?}");
        // Channel 0 holds 0..8: mean 3.5, unbiased variance 6; momentum 0.1 from (0, 1).
        let rm = bn.running_mean().to_vec1::<f32>().unwrap();
        let rv = bn.running_var().to_vec1::<f32>().unwrap();
        assert!((rm[0] - 0.35).abs() < 1e-6 && (rm[1] - 3.5).abs() < 1e-5, "{rm:?}");
        assert!((rv[0] - (0.9 + 0.6)).abs() < 1e-5 && (rv[1] - (0.9 + 60.0)).abs() < 1e-3, "{rv:?}");
        // The VarMap holds the updated state, so a checkpoint saves it.
        let saved = varmap.data().lock().unwrap()["bn.running_mean"].as_tensor().to_vec1::<f32>().unwrap();
        assert_eq!(saved, rm);
    }

    #[test]
    fn evaluation_uses_the_running_statistics_and_changes_nothing() {
        let varmap = VarMap::new();
        let bn = layer(&varmap);
        bn.running_mean.set(&Tensor::new(&[1f32, -2.0], &Device::Cpu).unwrap()).unwrap();
        bn.running_var.set(&Tensor::new(&[4f32, 0.25], &Device::Cpu).unwrap()).unwrap();
        let ys = bn.forward_t(&input(), false).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let xs = input().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (i, (x, y)) in xs.iter().zip(&ys).enumerate() {
            let (mean, var) = if (i / 4) % 2 == 0 { (1.0, 4.0) } else { (-2.0, 0.25) };
            assert!((y - (x - mean) / (var + EPS as f32).sqrt()).abs() < 1e-5, "{i}: {y}");
        }
        assert_eq!(bn.running_mean().to_vec1::<f32>().unwrap(), [1.0, -2.0]);
    }

    #[test]
    fn gradients_reach_the_input_and_the_affine_parameters_not_the_state() {
        let varmap = VarMap::new();
        let bn = layer(&varmap);
        let xs = Var::from_tensor(&input()).unwrap();
        let probe = Tensor::arange(0f32, 16.0, &Device::Cpu).unwrap().reshape((2, 2, 2, 2)).unwrap();
        let loss = (bn.forward_t(xs.as_tensor(), true).unwrap() * probe).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let vars = varmap.data().lock().unwrap().clone();
        for name in ["bn.weight", "bn.bias"] {
            assert!(grads.get(vars[name].as_tensor()).is_some(), "{name}");
        }
        for name in ["bn.running_mean", "bn.running_var"] {
            assert!(grads.get(vars[name].as_tensor()).is_none(), "{name} is state");
            assert!(crate::is_state(name));
        }
        assert!(grads.get(xs.as_tensor()).is_some());
    }
}
