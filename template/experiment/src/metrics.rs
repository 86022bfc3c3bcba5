//! Metrics (`config.json` `metrics`): `"accuracy"` and `"top<K>_accuracy"`, counted per batch, and
//! `"macro_f1"`, the mean over classes of F1, computed from the confusion matrix of a whole pass.

use candle_core::{DType, Result, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Accuracy,
    TopK(usize),
    /// The unweighted mean of the classes' F1 scores (classes without images and without
    /// predictions left out), from the confusion matrix.
    MacroF1,
}

impl Metric {
    pub fn name(&self) -> String {
        match self {
            Self::Accuracy => "accuracy".into(),
            Self::TopK(k) => format!("top{k}_accuracy"),
            Self::MacroF1 => "macro_f1".into(),
        }
    }

    /// Whether the metric is a per-sample count that [`Metric::correct`] sums over batches (F1 is not).
    pub fn is_counted(&self) -> bool {
        !matches!(self, Self::MacroF1)
    }

    /// How many samples of the batch count as correct: logits [batch, classes], targets [batch] u32.
    pub fn correct(&self, logits: &Tensor, targets: &Tensor) -> Result<f64> {
        let k = match self {
            Self::Accuracy => 1,
            Self::TopK(k) => *k,
            Self::MacroF1 => candle_core::bail!("macro_f1 is computed from the confusion matrix, not counted per batch"),
        };
        // A sample is correct when fewer than k classes score strictly above its target.
        let target_logit = logits.gather(&targets.unsqueeze(1)?, 1)?; // [batch, 1]
        let above = logits.broadcast_gt(&target_logit)?.to_dtype(DType::F32)?.sum(1)?; // [batch]
        let hits = above.lt(k as f64)?.to_dtype(DType::F32)?.sum_all()?;
        Ok(f64::from(hits.to_scalar::<f32>()?))
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "accuracy" {
            return Ok(Self::Accuracy);
        }
        if s == "macro_f1" {
            return Ok(Self::MacroF1);
        }
        s.strip_prefix("top")
            .and_then(|r| r.strip_suffix("_accuracy"))
            .and_then(|k| k.parse().ok())
            .filter(|k| *k >= 1)
            .map(Self::TopK)
            .ok_or_else(|| {
                format!("expected \"accuracy\", \"macro_f1\" or \"top<K>_accuracy\" such as \"top3_accuracy\", got {s:?}")
            })
    }
}

impl serde::Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn counts_top1_and_topk_hits() {
        let logits = Tensor::new(&[[0.1f32, 0.9, 0.0], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]], &Device::Cpu).unwrap();
        let targets = Tensor::new(&[1u32, 1, 0], &Device::Cpu).unwrap();
        // Ranks of the targets: 0, 1, 2.
        assert_eq!(Metric::Accuracy.correct(&logits, &targets).unwrap(), 1.0);
        assert_eq!(Metric::TopK(2).correct(&logits, &targets).unwrap(), 2.0);
        assert_eq!(Metric::TopK(3).correct(&logits, &targets).unwrap(), 3.0);
    }

    #[test]
    fn parses_names() {
        assert_eq!("top5_accuracy".parse::<Metric>().unwrap(), Metric::TopK(5));
        assert_eq!(Metric::TopK(5).name(), "top5_accuracy");
        assert_eq!("macro_f1".parse::<Metric>().unwrap(), Metric::MacroF1);
        for bad in ["acc", "top0_accuracy", "topx_accuracy"] {
            assert!(bad.parse::<Metric>().is_err(), "{bad}");
        }
    }
}
