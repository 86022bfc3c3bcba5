//! One pass over a dataset without gradients: mean loss, metrics, and the confusion matrix.

use std::collections::BTreeMap;

use candle_core::{DType, Result, Tensor};
use data_loader::{DataLoader, Dataset};
use model::Classifier;

use crate::loss::LossConfig;
use crate::metrics::Metric;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Evaluation {
    pub loss: f64,
    /// Metric name -> fraction correct, e.g. "accuracy" -> 0.98.
    pub metrics: BTreeMap<String, f64>,
    pub samples: usize,
    pub seconds: f64,
    /// `confusion[true][predicted]`: how many images of class `true` got `predicted` (the argmax),
    /// classes x classes. Empty where it was not counted (the running training metrics).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub confusion: Vec<Vec<u64>>,
    /// Per true class, the fraction predicted right: the diagonal over the row sums of
    /// `confusion`; NaN (null in JSON) for a class without images.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_class_accuracy: Vec<f64>,
}

impl Evaluation {
    pub fn accuracy(&self) -> f64 {
        self.metrics.get("accuracy").copied().unwrap_or(f64::NAN)
    }

    /// `per-class accuracy: 0 0.9980  1 0.9956 ...` on one line (`n/a` for a class without images).
    pub fn per_class_line(&self) -> String {
        let cells: Vec<String> = self
            .per_class_accuracy
            .iter()
            .enumerate()
            .map(|(class, a)| if a.is_nan() { format!("{class} n/a") } else { format!("{class} {a:.4}") })
            .collect();
        format!("per-class accuracy: {}", cells.join("  "))
    }

    /// The confusion matrix as right-aligned text, rows the true class, columns the predicted.
    pub fn confusion_table(&self) -> String {
        let widest = self.confusion.iter().flatten().max().map_or(1, |m| m.to_string().len());
        let width = widest.max(self.confusion.len().saturating_sub(1).to_string().len()) + 2;
        let mut out = format!("{:>10}", "true\\pred");
        for class in 0..self.confusion.len() {
            out.push_str(&format!("{class:>width$}"));
        }
        for (class, row) in self.confusion.iter().enumerate() {
            out.push_str(&format!("\n{class:>10}"));
            for count in row {
                out.push_str(&format!("{count:>width$}"));
            }
        }
        out
    }
}

/// Evaluate `model` in inference mode (no dropout) over every batch of `loader`.
pub fn evaluate<D: Dataset>(
    model: &dyn Classifier,
    loader: &DataLoader<'_, D>,
    loss: &LossConfig,
    metrics: &[Metric],
) -> Result<Evaluation> {
    let start = std::time::Instant::now();
    let mut all = vec![Metric::Accuracy];
    all.extend(metrics.iter().filter(|m| **m != Metric::Accuracy));
    let (mut loss_sum, mut samples, mut correct) = (0.0, 0usize, vec![0.0; all.len()]);
    let mut confusion: Vec<Vec<u64>> = Vec::new();
    for batch in loader.epoch(0) {
        let (images, labels) = batch?;
        let n = labels.dims1()?;
        let logits = model.forward_t(&images, false)?;
        count_confusion(&mut confusion, &logits, &labels)?;
        loss_sum += f64::from(loss.compute(&logits, &labels)?.to_scalar::<f32>()?) * n as f64;
        for (metric, c) in all.iter().zip(&mut correct) {
            *c += metric.correct(&logits, &labels)?;
        }
        samples += n;
    }
    let denom = samples.max(1) as f64;
    Ok(Evaluation {
        loss: loss_sum / denom,
        metrics: all.iter().zip(correct).map(|(m, c)| (m.name(), c / denom)).collect(),
        samples,
        seconds: start.elapsed().as_secs_f64(),
        per_class_accuracy: per_class_accuracy(&confusion),
        confusion,
    })
}

/// Add a batch to `confusion` (sized on the first batch from the logits' class count): only the
/// argmax leaves the device, one u32 per image.
fn count_confusion(confusion: &mut Vec<Vec<u64>>, logits: &Tensor, labels: &Tensor) -> Result<()> {
    let classes = logits.dim(1)?;
    if confusion.is_empty() {
        *confusion = vec![vec![0; classes]; classes];
    }
    let predicted = logits.argmax(1)?.to_vec1::<u32>()?;
    let labels = labels.to_dtype(DType::U32)?.to_vec1::<u32>()?;
    for (truth, guess) in labels.iter().zip(&predicted) {
        // A label beyond the model's classes cannot be placed; the loss has already refused it.
        if let Some(cell) = confusion.get_mut(*truth as usize).and_then(|row| row.get_mut(*guess as usize)) {
            *cell += 1;
        }
    }
    Ok(())
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
    fn the_confusion_matrix_counts_true_rows_against_predicted_columns() {
        let logits = Tensor::new(&[[0.9f32, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.0, 0.1, 0.9]], &Device::Cpu)
            .unwrap();
        let labels = Tensor::new(&[0u32, 1, 1, 2], &Device::Cpu).unwrap();
        let mut confusion = Vec::new();
        count_confusion(&mut confusion, &logits, &labels).unwrap();
        count_confusion(&mut confusion, &logits, &labels).unwrap();
        // Class 1 is right once and taken for class 0 once, per batch.
        assert_eq!(confusion, vec![vec![2, 0, 0], vec![2, 2, 0], vec![0, 0, 2]]);
        let per_class = per_class_accuracy(&confusion);
        assert_eq!(per_class, vec![1.0, 0.5, 1.0]);
    }

    #[test]
    fn the_confusion_table_is_aligned_under_its_header() {
        let evaluation = Evaluation {
            confusion: vec![vec![1234, 5], vec![0, 7]],
            per_class_accuracy: vec![1234.0 / 1239.0, f64::NAN],
            ..Default::default()
        };
        let table = evaluation.confusion_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines, [" true\\pred     0     1", "         0  1234     5", "         1     0     7"]);
        assert_eq!(evaluation.per_class_line(), "per-class accuracy: 0 0.9960  1 n/a");
    }

    #[test]
    fn a_class_without_images_has_no_accuracy() {
        let per_class = per_class_accuracy(&[vec![3, 1], vec![0, 0]]);
        assert_eq!(per_class[0], 0.75);
        assert!(per_class[1].is_nan());
    }
}
