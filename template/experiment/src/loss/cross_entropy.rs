//! Cross-entropy of the class logits, with optional label smoothing and class weights
//! (PyTorch's `F.cross_entropy` with `label_smoothing` and `weight`).

use candle_core::{D, DType, Result, Tensor};
use model::TaskKind;

use super::Loss;

/// `"loss": {"type": "cross_entropy", "args": {"label_smoothing": 0.1, "class_weights": [1, 3]}}`.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct CrossEntropyArgs {
    /// Weight of the uniform distribution mixed into the targets, in [0, 1).
    pub label_smoothing: f64,
    /// One weight per class (label order), for imbalanced classes: each sample's loss is weighted
    /// by its class's weight and the batch's by the sum of those weights, as PyTorch's `weight`.
    /// Null: every class 1.
    pub class_weights: Option<Vec<f64>>,
}

model::optional_args!(CrossEntropyArgs);

impl Loss for CrossEntropyArgs {
    const TASKS: &'static [TaskKind] = &[TaskKind::Classification];

    fn check(&self) -> std::result::Result<(), String> {
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(format!("`loss.args.label_smoothing` must be in [0, 1), got {}", self.label_smoothing));
        }
        if let Some(weights) = &self.class_weights
            && (weights.is_empty()
                || weights.iter().any(|w| !(w.is_finite() && *w >= 0.0))
                || weights.iter().all(|w| *w == 0.0))
        {
            return Err(format!(
                "`loss.args.class_weights` must be one non-negative number per class, not all 0, got {weights:?}"
            ));
        }
        Ok(())
    }

    /// Logits `[batch, classes]` f32, targets `[batch]` u32.
    fn compute(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        if let Some(weights) = &self.class_weights
            && weights.len() != logits.dim(1)?
        {
            candle_core::bail!(
                "`loss.args.class_weights` has {} weights but the data has {} classes; give one per class, in label order",
                weights.len(),
                logits.dim(1)?
            );
        }
        let fused = logits.device().is_cpu() && logits.dtype() == DType::F32 && targets.dtype() == DType::U32;
        if fused && self.class_weights.is_none() {
            let op = kernels::loss::CrossEntropy { smoothing: self.label_smoothing as f32 };
            return logits.contiguous()?.apply_op2(&targets.contiguous()?, op);
        }
        self.compute_with_tensor_ops(logits, targets)
    }
}

impl CrossEntropyArgs {
    /// The same loss as tensor ops, for every device and dtype, and for class weights.
    pub(crate) fn compute_with_tensor_ops(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let classes = logits.dim(1)?;
        let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
        // [batch]: -log p(target)
        let nll = log_probs.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
        let eps = self.label_smoothing;
        let per_sample = if eps == 0.0 {
            nll
        } else {
            // [batch]: cross-entropy against the uniform distribution
            let uniform = log_probs.mean(D::Minus1)?.neg()?;
            ((nll * (1.0 - eps))? + (uniform * eps)?)?
        };
        match &self.class_weights {
            None => per_sample.mean_all(),
            Some(weights) => {
                let weights: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
                let weights = Tensor::from_vec(weights, classes, logits.device())?.to_dtype(logits.dtype())?;
                let w = weights.index_select(targets, 0)?; // [batch]
                (per_sample * &w)?.sum_all()?.broadcast_div(&w.sum_all()?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn args(label_smoothing: f64) -> CrossEntropyArgs {
        CrossEntropyArgs { label_smoothing, class_weights: None }
    }

    fn loss(cfg: &CrossEntropyArgs) -> f32 {
        let logits = Tensor::new(&[[2.0f32, 0.0, 0.0], [0.0, 1.0, 3.0]], &Device::Cpu).unwrap();
        let targets = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
        cfg.compute(&logits, &targets).unwrap().to_scalar::<f32>().unwrap()
    }

    /// PyTorch's definition (F.cross_entropy with label_smoothing), computed by hand:
    /// log-softmax rows [-0.2395, -2.2395, -2.2395] and [-3.1698, -2.1698, -0.1698];
    /// nll = (0.2395 + 2.1698) / 2 = 1.20470; uniform = (4.7185 / 3 + 5.5095 / 3) / 2 = 1.70470;
    /// smoothed = 0.9 * nll + 0.1 * uniform = 1.25470.
    #[test]
    fn matches_pytorch_definition() {
        assert!((loss(&args(0.0)) - 1.204_70).abs() < 1e-4, "{}", loss(&args(0.0)));
        assert!((loss(&args(0.1)) - 1.254_70).abs() < 1e-4, "{}", loss(&args(0.1)));
    }

    /// PyTorch's `weight`: sum(w[y] * nll) / sum(w[y]) = (1 * 0.2395 + 3 * 2.1698) / 4 = 1.68723.
    #[test]
    fn class_weights_weigh_each_sample_by_its_class() {
        let weighted = CrossEntropyArgs { label_smoothing: 0.0, class_weights: Some(vec![1.0, 3.0, 1.0]) };
        assert!((loss(&weighted) - 1.687_23).abs() < 1e-4, "{}", loss(&weighted));
        let wrong = CrossEntropyArgs { label_smoothing: 0.0, class_weights: Some(vec![1.0, 3.0]) };
        let logits = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        let err = wrong.compute(&logits, &Tensor::new(&[0u32, 1], &Device::Cpu).unwrap()).unwrap_err().to_string();
        assert!(err.contains("has 2 weights but the data has 3 classes"), "{err}");
        assert!(
            CrossEntropyArgs { class_weights: Some(vec![-1.0]), ..args(0.0) }
                .check()
                .unwrap_err()
                .contains("class_weights")
        );
    }

    /// The fused CPU op equals the tensor-op form in value and in its gradient.
    #[test]
    fn fused_loss_and_gradient_match_the_tensor_ops() {
        let values: Vec<f32> = (0..50).map(|i| ((i * 29 % 17) as f32 - 8.0) / 3.0).collect();
        let targets = Tensor::new(&[3u32, 0, 9, 5, 1], &Device::Cpu).unwrap();
        for smoothing in [0.0, 0.1] {
            let cfg = args(smoothing);
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
        let logits = Tensor::zeros((2, 10), DType::F32, &Device::Cpu).unwrap();
        let targets = Tensor::new(&[1u32, 10], &Device::Cpu).unwrap();
        let err = args(0.0).compute(&logits, &targets).unwrap_err().to_string();
        assert!(err.contains("target 10"), "{err}");
    }
}
