//! The loss (`config.json` `loss`): cross-entropy with optional label smoothing.

use candle_core::{D, DType, Result, Tensor};
use serde::{Deserialize, Serialize};


#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "args", rename_all = "snake_case", deny_unknown_fields)]
pub enum LossConfig {
    CrossEntropy(CrossEntropyArgs),
}

impl Default for LossConfig {
    fn default() -> Self {
        Self::CrossEntropy(CrossEntropyArgs::default())
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrossEntropyArgs {
    /// Weight of the uniform distribution mixed into the targets, in [0, 1).
    pub label_smoothing: f64,
}

impl LossConfig {
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        let Self::CrossEntropy(args) = self;
        if !(0.0..1.0).contains(&args.label_smoothing) {
            return Err(format!("`loss.args.label_smoothing` must be in [0, 1), got {}", args.label_smoothing));
        }
        Ok(())
    }

    /// Mean loss over the batch: logits [batch, classes] f32, targets [batch] u32.
    pub fn compute(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let Self::CrossEntropy(args) = self;
        if logits.device().is_cpu() && logits.dtype() == DType::F32 && targets.dtype() == DType::U32 {
            let op = kernels::loss::CrossEntropy { smoothing: args.label_smoothing as f32 };
            return logits.contiguous()?.apply_op2(&targets.contiguous()?, op);
        }
        self.compute_with_tensor_ops(logits, targets)
    }

    /// The same loss as tensor ops, for every device and dtype.
    fn compute_with_tensor_ops(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let Self::CrossEntropy(args) = self;
        let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
        // [batch]: -log p(target)
        let nll = log_probs.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
        if args.label_smoothing == 0.0 {
            return nll.mean_all();
        }
        // [batch]: cross-entropy against the uniform distribution
        let uniform = log_probs.mean(D::Minus1)?.neg()?;
        let eps = args.label_smoothing;
        ((nll * (1.0 - eps))? + (uniform * eps)?)?.mean_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn loss(smoothing: f64) -> f32 {
        let logits = Tensor::new(&[[2.0f32, 0.0, 0.0], [0.0, 1.0, 3.0]], &Device::Cpu).unwrap();
        let targets = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
        let cfg = LossConfig::CrossEntropy(CrossEntropyArgs { label_smoothing: smoothing });
        cfg.compute(&logits, &targets).unwrap().to_scalar::<f32>().unwrap()
    }

    /// PyTorch's definition (F.cross_entropy with label_smoothing), computed by hand:
    /// log-softmax rows [-0.2395, -2.2395, -2.2395] and [-3.1698, -2.1698, -0.1698];
    /// nll = (0.2395 + 2.1698) / 2 = 1.20470; uniform = (4.7185 / 3 + 5.5095 / 3) / 2 = 1.70470;
    /// smoothed = 0.9 * nll + 0.1 * uniform = 1.25470.
    #[test]
    fn matches_pytorch_definition() {
        assert!((loss(0.0) - 1.204_70).abs() < 1e-4, "{}", loss(0.0));
        assert!((loss(0.1) - 1.254_70).abs() < 1e-4, "{}", loss(0.1));
    }

    /// The fused CPU op equals the tensor-op form in value and in its gradient.
    #[test]
    fn fused_loss_and_gradient_match_the_tensor_ops() {
        let values: Vec<f32> = (0..50).map(|i| ((i * 29 % 17) as f32 - 8.0) / 3.0).collect();
        let targets = Tensor::new(&[3u32, 0, 9, 5, 1], &Device::Cpu).unwrap();
        for smoothing in [0.0, 0.1] {
            let cfg = LossConfig::CrossEntropy(CrossEntropyArgs { label_smoothing: smoothing });
            let logits = candle_core::Var::from_slice(&values, (5, 10), &Device::Cpu).unwrap();
            let run = |loss: Tensor| {
                let grad = loss.backward().unwrap().get(logits.as_tensor()).unwrap().flatten_all().unwrap();
                (loss.to_scalar::<f32>().unwrap(), grad.to_vec1::<f32>().unwrap())
            };
            let (fused, fused_grad) = run(cfg.compute(logits.as_tensor(), &targets).unwrap());
            let (reference, reference_grad) = run(cfg.compute_with_tensor_ops(logits.as_tensor(), &targets).unwrap());
            assert!((fused - reference).abs() < 1e-5, "smoothing {smoothing}: {fused} vs {reference}");
            for (a, b) in fused_grad.iter().zip(&reference_grad) {
                assert!((a - b).abs() < 1e-6, "smoothing {smoothing}: gradient {a} vs {b}");
            }
        }
    }

    #[test]
    fn a_target_outside_the_classes_is_an_error() {
        let logits = Tensor::zeros((2, 10), candle_core::DType::F32, &Device::Cpu).unwrap();
        let targets = Tensor::new(&[1u32, 10], &Device::Cpu).unwrap();
        let err = LossConfig::default().compute(&logits, &targets).unwrap_err().to_string();
        assert!(err.contains("target 10"), "{err}");
    }
}
