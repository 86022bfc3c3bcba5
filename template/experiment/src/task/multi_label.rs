//! Any subset of labels per sample: logits `[batch, labels]`, targets `[batch, labels]`, each
//! 0 or 1. A label is predicted when its probability σ(logit) is at least the threshold. Counts, per
//! label, the true positives, false positives and false negatives, and the samples whose every
//! label is right; subset accuracy, Hamming score, micro- and macro-F1 and the per-label table
//! come from those.

use candle_core::{Result, Tensor};

use crate::evaluate::{ClassScores, Evaluation};
use crate::metrics::Metric;

/// Samples with every label right, then per label: true positives, false positives, false negatives.
pub(super) fn sums_len(labels: usize) -> usize {
    1 + 3 * labels
}

/// The logit at which σ(logit) = `threshold`: comparing logits avoids computing the sigmoid.
fn logit_threshold(threshold: f64) -> f32 {
    (threshold / (1.0 - threshold)).ln() as f32
}

/// Whether each label of each row is predicted, row-major.
pub fn predicted(logits: &[f32], threshold: f64) -> Vec<bool> {
    let at = logit_threshold(threshold);
    logits.iter().map(|&x| x >= at).collect()
}

pub(super) fn count(threshold: f64, logits: &Tensor, targets: &Tensor, sums: &mut [f64]) -> Result<()> {
    let labels = logits.dim(1)?;
    let guesses = predicted(&logits.flatten_all()?.to_vec1::<f32>()?, threshold);
    let truths = targets.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let (subset, per_label) = sums.split_at_mut(1);
    for (row_guess, row_truth) in guesses.chunks(labels).zip(truths.chunks(labels)) {
        let mut all_right = true;
        for (label, (&guess, &truth)) in row_guess.iter().zip(row_truth).enumerate() {
            let truth = truth >= 0.5;
            let cell = match (guess, truth) {
                (true, true) => 0,
                (true, false) => 1,
                (false, true) => 2,
                (false, false) => continue,
            };
            per_label[3 * label + cell] += 1.0;
            all_right &= guess == truth;
        }
        subset[0] += f64::from(u8::from(all_right));
    }
    Ok(())
}

pub(super) fn finish(metrics: &[Metric], labels: usize, sums: &[f64], samples: usize, e: &mut Evaluation) {
    let n = samples as f64;
    let counts: Vec<[u64; 3]> =
        sums[1..].chunks(3).map(|c| [c[0].round() as u64, c[1].round() as u64, c[2].round() as u64]).collect();
    e.per_class = counts.iter().map(|&[tp, fp, fn_]| ClassScores::from_counts(tp, fp, fn_)).collect();
    let (tp, fp, fn_) = counts.iter().fold((0, 0, 0), |(a, b, c), [tp, fp, fn_]| (a + tp, b + fp, c + fn_));
    let values = |metric: &Metric| -> f64 {
        match metric {
            Metric::SubsetAccuracy => sums[0] / n,
            // Right decisions (true positives and true negatives) over all of them.
            Metric::HammingScore => 1.0 - (fp + fn_) as f64 / (n * labels as f64),
            Metric::MicroF1 => ClassScores::from_counts(tp, fp, fn_).f1,
            Metric::MacroF1 => super::classification::macro_f1(&e.per_class),
            _ => f64::NAN,
        }
    };
    for metric in metrics {
        let value = if samples == 0 { f64::NAN } else { values(metric) };
        e.metrics.insert(metric.name(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Three samples, three labels, threshold 0.5 (logit 0). Predictions vs truth:
    /// row 0: [1 0 1] vs [1 0 1] (all right); row 1: [1 1 0] vs [1 0 0]; row 2: [0 0 0] vs [0 1 1].
    /// Per label (tp, fp, fn): a (2, 0, 0), b (0, 1, 1), c (1, 0, 1).
    #[test]
    fn subset_accuracy_hamming_and_f1_match_hand_counts() {
        let logits = Tensor::new(&[[2.0f32, -1.0, 0.5], [3.0, 0.0, -2.0], [-1.0, -3.0, -0.1]], &Device::Cpu).unwrap();
        let targets = Tensor::new(&[[1.0f32, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], &Device::Cpu).unwrap();
        let mut sums = vec![0.0; sums_len(3)];
        count(0.5, &logits, &targets, &mut sums).unwrap();
        let metrics = Metric::defaults(model::TaskKind::MultiLabel);
        let mut e = Evaluation::default();
        finish(&metrics, 3, &sums, 3, &mut e);
        assert_eq!(e.metrics["subset_accuracy"], 1.0 / 3.0);
        // 3 wrong decisions of 9.
        assert!((e.metrics["hamming_score"] - 6.0 / 9.0).abs() < 1e-12);
        // Pooled tp 3, fp 1, fn 2: F1 = 6 / (6 + 3).
        assert!((e.metrics["micro_f1"] - 6.0 / 9.0).abs() < 1e-12);
        // Per label F1: a 1, b 0, c 2/3.
        let f1: Vec<f64> = e.per_class.iter().map(|s| s.f1).collect();
        assert!((f1[0] - 1.0).abs() < 1e-12 && f1[1] == 0.0 && (f1[2] - 2.0 / 3.0).abs() < 1e-12, "{f1:?}");
        assert!((e.metrics["macro_f1"] - (1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert_eq!(e.per_class[2].support, 2);
    }

    #[test]
    fn the_threshold_is_on_the_probability() {
        // σ(0.5) ≈ 0.62: predicted at 0.6, not at 0.7.
        assert_eq!(predicted(&[0.5], 0.6), [true]);
        assert_eq!(predicted(&[0.5], 0.7), [false]);
    }
}
