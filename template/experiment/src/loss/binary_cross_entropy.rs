//! Binary cross-entropy on logits, one term per label, for multi-label targets (PyTorch's
//! `BCEWithLogitsLoss`, with `pos_weight`), in the numerically stable form:
//!
//! `l = (1 - y) x + (1 + (p - 1) y) (log(1 + exp(-|x|)) + max(-x, 0))`
//!
//! which equals `-[p y log σ(x) + (1 - y) log(1 - σ(x))]` but never takes the log of a sigmoid
//! that rounded to 0 or 1 (candle-nn's `binary_cross_entropy_with_logit` does: logits of ±100
//! give an infinite loss there, a finite one here).

use candle_core::{Result, Tensor};
use model::TaskKind;

use super::Loss;

/// `"loss": {"type": "binary_cross_entropy", "args": {"pos_weight": [3.0, 1.0]}}`.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct BinaryCrossEntropyArgs {
    /// Per label, the weight of its positive samples (> 1 for labels that are rarely set: the
    /// ratio negatives / positives balances them); one number for every label; null: 1.
    pub pos_weight: Option<PosWeight>,
}

model::optional_args!(BinaryCrossEntropyArgs);

/// One weight for every label, or one per label.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum PosWeight {
    All(f64),
    PerLabel(Vec<f64>),
}

impl Loss for BinaryCrossEntropyArgs {
    const TASKS: &'static [TaskKind] = &[TaskKind::MultiLabel];

    fn check(&self) -> std::result::Result<(), String> {
        let weights = match &self.pos_weight {
            None => return Ok(()),
            Some(PosWeight::All(w)) => std::slice::from_ref(w),
            Some(PosWeight::PerLabel(w)) => w.as_slice(),
        };
        if weights.is_empty() || weights.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
            return Err(format!(
                "`loss.args.pos_weight` must be positive numbers (one, or one per label), got {weights:?}"
            ));
        }
        Ok(())
    }

    /// Logits `[batch, labels]`, targets `[batch, labels]` of 0 and 1; the mean over every term.
    fn compute(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let targets = targets.to_dtype(logits.dtype())?;
        let x = logits.detach();
        // log(1 + exp(-|x|)) + max(-x, 0): softplus(-x) without overflow.
        let softplus = ((x.abs()?.neg()?.exp()? + 1.0)?.log()? + x.neg()?.relu()?)?;
        let negative = ((1.0 - &targets)? * &x)?;
        // 1 + (p - 1) y, the weight of each term's softplus; 1 without pos_weight.
        let factor = match &self.pos_weight {
            None => None,
            Some(weight) => {
                let labels = logits.dim(1)?;
                let per_label: Vec<f32> = match weight {
                    PosWeight::All(w) => vec![*w as f32; labels],
                    PosWeight::PerLabel(w) if w.len() == labels => w.iter().map(|&x| x as f32).collect(),
                    PosWeight::PerLabel(w) => candle_core::bail!(
                        "`loss.args.pos_weight` has {} weights but the data has {labels} labels; give one, or one per label",
                        w.len()
                    ),
                };
                let p = Tensor::from_vec(per_label, (1, labels), logits.device())?.to_dtype(logits.dtype())?;
                Some((targets.broadcast_mul(&(p - 1.0)?)? + 1.0)?)
            }
        };
        let value = match &factor {
            None => (negative + softplus)?,
            Some(f) => (negative + (softplus * f)?)?,
        }
        .mean_all()?;
        // The gradient, in closed form: dl/dx = (1 + (p - 1) y) σ(x) - p y, i.e. σ(x) - y without
        // pos_weight. Differentiating the form above instead would be wrong at x = 0, where |x|
        // and max(-x, 0) both have kinks (candle gives each a zero slope there; their true
        // slopes cancel into softplus's -1/2).
        let sigma = candle_nn::ops::sigmoid(&x)?;
        let slope = match &factor {
            None => (sigma - &targets)?,
            // p y = factor - (1 - y)
            Some(f) => ((sigma * f)? - (f - (1.0 - &targets)?)?)?,
        };
        // Its value is 0; its gradient is the slope over the number of terms.
        let surrogate = (slope * logits)?.mean_all()?;
        value + (&surrogate - surrogate.detach())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// `-[p y log σ(x) + (1 - y) log(1 - σ(x))]` in f64 with log-sigmoid written stably, the
    /// reference the tensor form must match.
    fn reference(x: f64, y: f64, p: f64) -> f64 {
        let log_sigmoid = |z: f64| -((-z.abs()).exp().ln_1p() + (-z).max(0.0));
        -(p * y * log_sigmoid(x) + (1.0 - y) * log_sigmoid(-x))
    }

    #[test]
    fn is_finite_and_exact_at_extreme_logits() {
        let xs = [100.0f32, -100.0, 100.0, -100.0, 0.0, 3.5, -2.0, 20.0];
        let ys = [1.0f32, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
        let logits = Var::from_slice(&xs, (2, 4), &Device::Cpu).unwrap();
        let targets = Tensor::from_slice(&ys, (2, 4), &Device::Cpu).unwrap();
        for (weight, p) in [(None, 1.0), (Some(PosWeight::All(3.0)), 3.0)] {
            let args = BinaryCrossEntropyArgs { pos_weight: weight };
            let loss = args.compute(logits.as_tensor(), &targets).unwrap();
            let want = xs.iter().zip(&ys).map(|(&x, &y)| reference(f64::from(x), f64::from(y), p)).sum::<f64>() / 8.0;
            let got = f64::from(loss.to_scalar::<f32>().unwrap());
            assert!((got - want).abs() < 1e-5 * want.max(1.0), "pos_weight {p}: {got} vs {want}");
            // d/dx = ((1 + (p - 1) y) σ(x) - p y) / n: ±1/8 at the saturated wrong answers, 0 at the right ones.
            let grad = loss
                .backward()
                .unwrap()
                .get(logits.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for ((&x, &y), g) in xs.iter().zip(&ys).zip(&grad) {
                let s = 1.0 / (1.0 + (-f64::from(x)).exp());
                let y = f64::from(y);
                let want = ((1.0 + (p - 1.0) * y) * s - p * y) / 8.0;
                assert!((f64::from(*g) - want).abs() < 1e-6, "x {x} y {y}: gradient {g} vs {want}");
            }
        }
        // The candle-nn form overflows where this one does not.
        let naive = candle_nn::loss::binary_cross_entropy_with_logit(logits.as_tensor(), &targets).unwrap();
        assert!(!naive.to_scalar::<f32>().unwrap().is_finite());
    }

    #[test]
    fn pos_weight_per_label_must_match_the_labels() {
        let args = BinaryCrossEntropyArgs { pos_weight: Some(PosWeight::PerLabel(vec![1.0, 2.0])) };
        let logits = Tensor::zeros((1, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let err = args.compute(&logits, &logits).unwrap_err().to_string();
        assert!(err.contains("2 weights but the data has 3 labels"), "{err}");
        let bad = BinaryCrossEntropyArgs { pos_weight: Some(PosWeight::All(0.0)) };
        assert!(bad.check().unwrap_err().contains("`loss.args.pos_weight`"));
    }
}
