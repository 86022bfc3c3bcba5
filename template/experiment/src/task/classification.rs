//! One class per sample: logits `[batch, classes]`, targets `[batch]` u32. Counts the correct
//! top-k predictions and the confusion matrix; accuracy, top-k accuracy, per-class precision,
//! recall and F1 and their macro mean come from those.

use candle_core::{DType, Result, Tensor};

use crate::evaluate::{ClassScores, Evaluation};
use crate::metrics::Metric;

/// The `k` of each counted metric: accuracy (k = 1) first, then the configured `top<K>_accuracy`.
fn counted(metrics: &[Metric]) -> Vec<(String, usize)> {
    let mut all = vec![(Metric::Accuracy.name(), 1)];
    all.extend(metrics.iter().filter_map(|m| match m {
        Metric::TopK(k) => Some((m.name(), *k)),
        _ => None,
    }));
    all
}

/// The counted metrics' hits, then the `classes` × `classes` confusion matrix.
pub(super) fn sums_len(metrics: &[Metric], classes: usize) -> usize {
    counted(metrics).len() + classes * classes
}

/// How many samples of the batch have their target among the `k` highest logits.
pub fn correct(logits: &Tensor, targets: &Tensor, k: usize) -> Result<f64> {
    // A sample is correct when fewer than k classes score strictly above its target.
    let target_logit = logits.gather(&targets.unsqueeze(1)?, 1)?; // [batch, 1]
    let above = logits.broadcast_gt(&target_logit)?.to_dtype(DType::F32)?.sum(1)?; // [batch]
    let hits = above.lt(k as f64)?.to_dtype(DType::F32)?.sum_all()?;
    Ok(f64::from(hits.to_scalar::<f32>()?))
}

pub(super) fn count(
    metrics: &[Metric],
    classes: usize,
    logits: &Tensor,
    targets: &Tensor,
    sums: &mut [f64],
) -> Result<()> {
    let counted = counted(metrics);
    let (hits, confusion) = sums.split_at_mut(counted.len());
    for ((_, k), hit) in counted.iter().zip(hits) {
        *hit += correct(logits, targets, *k)?;
    }
    let predicted = logits.argmax(1)?.to_vec1::<u32>()?;
    let truths = targets.to_dtype(DType::U32)?.to_vec1::<u32>()?;
    for (truth, guess) in truths.iter().zip(&predicted) {
        let (t, g) = (*truth as usize, *guess as usize);
        // A target beyond the model's classes cannot be placed; the loss has already refused it.
        if t < classes && g < classes {
            confusion[t * classes + g] += 1.0;
        }
    }
    Ok(())
}

pub(super) fn finish(metrics: &[Metric], classes: usize, sums: &[f64], samples: usize, e: &mut Evaluation) {
    let counted = counted(metrics);
    let (hits, cells) = sums.split_at(counted.len());
    let denom = samples.max(1) as f64;
    for ((name, _), hit) in counted.iter().zip(hits) {
        e.metrics.insert(name.clone(), hit / denom);
    }
    e.confusion = cells.chunks(classes.max(1)).map(|row| row.iter().map(|&c| c.round() as u64).collect()).collect();
    e.per_class_accuracy = per_class_accuracy(&e.confusion);
    e.per_class = class_scores(&e.confusion);
    if metrics.contains(&Metric::MacroF1) {
        e.metrics.insert(Metric::MacroF1.name(), macro_f1(&e.per_class));
    }
}

/// Probabilities from one row of logits (max-subtracted, so large logits do not overflow).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let exp: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

/// Precision, recall and F1 of every class of `confusion` (`confusion[true][predicted]`).
pub fn class_scores(confusion: &[Vec<u64>]) -> Vec<ClassScores> {
    (0..confusion.len())
        .map(|c| {
            let tp = confusion[c].get(c).copied().unwrap_or(0);
            let support: u64 = confusion[c].iter().sum();
            let predicted: u64 = confusion.iter().map(|row| row.get(c).copied().unwrap_or(0)).sum();
            ClassScores::from_counts(tp, predicted - tp, support - tp)
        })
        .collect()
}

/// The mean F1 over the classes (or labels) where it is defined; NaN when there is none.
pub fn macro_f1(scores: &[ClassScores]) -> f64 {
    let defined: Vec<f64> = scores.iter().map(|s| s.f1).filter(|f| !f.is_nan()).collect();
    if defined.is_empty() { f64::NAN } else { defined.iter().sum::<f64>() / defined.len() as f64 }
}

/// The diagonal of `confusion` over its row sums.
pub fn per_class_accuracy(confusion: &[Vec<u64>]) -> Vec<f64> {
    confusion
        .iter()
        .enumerate()
        .map(|(class, row)| {
            let total: u64 = row.iter().sum();
            if total == 0 { f64::NAN } else { row.get(class).copied().unwrap_or(0) as f64 / total as f64 }
        })
        .collect()
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
        assert_eq!(correct(&logits, &targets, 1).unwrap(), 1.0);
        assert_eq!(correct(&logits, &targets, 2).unwrap(), 2.0);
        assert_eq!(correct(&logits, &targets, 3).unwrap(), 3.0);
    }

    #[test]
    fn the_confusion_matrix_counts_true_rows_against_predicted_columns() {
        let logits =
            Tensor::new(&[[0.9f32, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.0, 0.1, 0.9]], &Device::Cpu)
                .unwrap();
        let labels = Tensor::new(&[0u32, 1, 1, 2], &Device::Cpu).unwrap();
        let metrics = [Metric::Accuracy, Metric::TopK(2)];
        let mut sums = vec![0.0; sums_len(&metrics, 3)];
        count(&metrics, 3, &logits, &labels, &mut sums).unwrap();
        count(&metrics, 3, &logits, &labels, &mut sums).unwrap();
        let mut e = Evaluation::default();
        finish(&metrics, 3, &sums, 8, &mut e);
        // Class 1 is right once and taken for class 0 once, per batch.
        assert_eq!(e.confusion, vec![vec![2, 0, 0], vec![2, 2, 0], vec![0, 0, 2]]);
        assert_eq!(e.per_class_accuracy, vec![1.0, 0.5, 1.0]);
        assert_eq!((e.metrics["accuracy"], e.metrics["top2_accuracy"]), (0.75, 1.0));
    }

    #[test]
    fn precision_recall_and_f1_per_class_and_their_macro_mean() {
        // cat: 3 right, 1 taken for dog; dog: 2 right; bird: never present, predicted once.
        let confusion = vec![vec![3, 1, 0], vec![0, 2, 1], vec![0, 0, 0]];
        let scores = class_scores(&confusion);
        assert_eq!((scores[0].precision, scores[0].recall, scores[0].support), (1.0, 0.75, 4));
        assert!((scores[0].f1 - 2.0 * 0.75 / 1.75).abs() < 1e-12);
        assert_eq!((scores[1].precision, scores[1].recall), (2.0 / 3.0, 2.0 / 3.0));
        // No images of bird but one prediction: precision 0, recall undefined, F1 0.
        assert!(scores[2].recall.is_nan());
        assert_eq!((scores[2].precision, scores[2].f1), (0.0, 0.0));
        let expected = (scores[0].f1 + scores[1].f1 + 0.0) / 3.0;
        assert!((macro_f1(&scores) - expected).abs() < 1e-12);
        // A class absent from both the images and the predictions does not count.
        let scores = class_scores(&[vec![2, 0], vec![0, 0]]);
        assert!(scores[1].f1.is_nan());
        assert_eq!(macro_f1(&scores), 1.0);
    }

    #[test]
    fn a_class_without_images_has_no_accuracy() {
        let per_class = per_class_accuracy(&[vec![3, 1], vec![0, 0]]);
        assert_eq!(per_class[0], 0.75);
        assert!(per_class[1].is_nan());
    }
}
