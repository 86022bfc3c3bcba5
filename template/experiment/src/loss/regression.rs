//! The regression losses: mean squared error, mean absolute error and Huber. They compare the
//! model's outputs and the targets standardised as the data spec records (see the module docs of
//! `loss`), so their scale does not depend on the targets' units; `huber`'s `delta` is therefore
//! in standard deviations of the target (in the targets' units when `standardize_target` is off).

use candle_core::{Result, Tensor};
use model::TaskKind;

use super::Loss;

/// `"loss": {"type": "mse"}`: mean of (output - target)².
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct MseArgs {}

model::optional_args!(MseArgs);

impl Loss for MseArgs {
    const TASKS: &'static [TaskKind] = &[TaskKind::Regression];

    fn compute(&self, outputs: &Tensor, targets: &Tensor) -> Result<Tensor> {
        (outputs - targets)?.sqr()?.mean_all()
    }
}

/// `"loss": {"type": "l1"}`: mean of |output - target|.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct L1Args {}

model::optional_args!(L1Args);

impl Loss for L1Args {
    const TASKS: &'static [TaskKind] = &[TaskKind::Regression];

    fn compute(&self, outputs: &Tensor, targets: &Tensor) -> Result<Tensor> {
        (outputs - targets)?.abs()?.mean_all()
    }
}

/// `"loss": {"type": "huber", "args": {"delta": 1.0}}`: squared below `delta`, linear above
/// (PyTorch's `HuberLoss`: `0.5 e²` for |e| ≤ δ, `δ (|e| - 0.5 δ)` beyond).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct HuberArgs {
    pub delta: f64,
}

model::optional_args!(HuberArgs);

impl Default for HuberArgs {
    fn default() -> Self {
        Self { delta: 1.0 }
    }
}

impl Loss for HuberArgs {
    const TASKS: &'static [TaskKind] = &[TaskKind::Regression];

    fn check(&self) -> std::result::Result<(), String> {
        if !(self.delta.is_finite() && self.delta > 0.0) {
            return Err(format!("`loss.args.delta` must be a positive number, got {}", self.delta));
        }
        Ok(())
    }

    fn compute(&self, outputs: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let delta = self.delta;
        let abs = (outputs - targets)?.abs()?;
        // min(|e|, δ) is the squared part; the rest of |e| is linear: 0.5 m² + δ (|e| - m).
        let m = abs.clamp(0.0, delta)?;
        let quadratic = (m.sqr()? * 0.5)?;
        let linear = ((abs - &m)? * delta)?;
        (quadratic + linear)?.mean_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn mse_l1_and_huber_match_their_definitions() {
        let outputs = Tensor::new(&[[0.0f32, 3.0], [1.0, -1.0]], &Device::Cpu).unwrap();
        let targets = Tensor::new(&[[0.5f32, 0.0], [1.0, 1.0]], &Device::Cpu).unwrap();
        // Errors -0.5, 3, 0, -2.
        let value = |t: Tensor| t.to_scalar::<f32>().unwrap();
        assert!((value(MseArgs {}.compute(&outputs, &targets).unwrap()) - (0.25 + 9.0 + 4.0) / 4.0).abs() < 1e-6);
        assert!((value(L1Args {}.compute(&outputs, &targets).unwrap()) - 5.5 / 4.0).abs() < 1e-6);
        // δ = 1: 0.125, 2.5, 0, 1.5.
        let huber = value(HuberArgs::default().compute(&outputs, &targets).unwrap());
        assert!((huber - 4.125 / 4.0).abs() < 1e-6, "{huber}");
        assert!(HuberArgs { delta: 0.0 }.check().unwrap_err().contains("`loss.args.delta`"));
    }
}
