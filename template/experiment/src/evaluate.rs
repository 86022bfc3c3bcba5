//! One pass over a dataset without gradients: mean loss, metrics, the confusion matrix and, per
//! class (by name), precision, recall and F1.

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
    /// The class names, in label order (the rows and columns of `confusion`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// Per class: precision, recall, F1 and the number of images.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_class: Vec<ClassScores>,
}

/// One class's scores from the confusion matrix; NaN (null in JSON) where undefined (no images of
/// the class for recall, no predictions of it for precision).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// Precision, recall and F1 of every class of `confusion` (`confusion[true][predicted]`).
pub fn class_scores(confusion: &[Vec<u64>]) -> Vec<ClassScores> {
    (0..confusion.len())
        .map(|c| {
            let tp = confusion[c].get(c).copied().unwrap_or(0) as f64;
            let support: u64 = confusion[c].iter().sum();
            let predicted: u64 = confusion.iter().map(|row| row.get(c).copied().unwrap_or(0)).sum();
            let precision = if predicted == 0 { f64::NAN } else { tp / predicted as f64 };
            let recall = if support == 0 { f64::NAN } else { tp / support as f64 };
            let f1 = if support == 0 && predicted == 0 {
                f64::NAN
            } else if tp == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / (precision + recall)
            };
            ClassScores { precision, recall, f1, support }
        })
        .collect()
}

/// The mean F1 over the classes where it is defined; NaN when there is none.
pub fn macro_f1(scores: &[ClassScores]) -> f64 {
    let defined: Vec<f64> = scores.iter().map(|s| s.f1).filter(|f| !f.is_nan()).collect();
    if defined.is_empty() { f64::NAN } else { defined.iter().sum::<f64>() / defined.len() as f64 }
}

impl Evaluation {
    pub fn accuracy(&self) -> f64 {
        self.metrics.get("accuracy").copied().unwrap_or(f64::NAN)
    }

    /// The name of class `class` (its number where the names are unknown).
    pub fn class_name(&self, class: usize) -> String {
        self.classes.get(class).cloned().unwrap_or_else(|| class.to_string())
    }

    /// `per-class accuracy: 0 0.9980  1 0.9956 ...` on one line (`n/a` for a class without images).
    pub fn per_class_line(&self) -> String {
        let cells: Vec<String> = self
            .per_class_accuracy
            .iter()
            .enumerate()
            .map(|(class, a)| {
                let name = self.class_name(class);
                if a.is_nan() { format!("{name} n/a") } else { format!("{name} {a:.4}") }
            })
            .collect();
        format!("per-class accuracy: {}", cells.join("  "))
    }

    /// Precision, recall, F1 and the image count of each class, one row per class, by name.
    pub fn per_class_table(&self) -> String {
        let width = (0..self.per_class.len()).map(|c| self.class_name(c).len()).max().unwrap_or(0).max(5);
        let cell = |v: f64| if v.is_nan() { format!("{:>10}", "n/a") } else { format!("{v:>10.4}") };
        let mut out = format!("{:<width$}{:>10}{:>10}{:>10}{:>8}", "class", "precision", "recall", "f1", "images");
        for (class, s) in self.per_class.iter().enumerate() {
            let name = self.class_name(class);
            out.push_str(&format!(
                "\n{name:<width$}{}{}{}{:>8}",
                cell(s.precision),
                cell(s.recall),
                cell(s.f1),
                s.support
            ));
        }
        out
    }

    /// The confusion matrix as right-aligned text, rows the true class, columns the predicted.
    pub fn confusion_table(&self) -> String {
        let widest = self.confusion.iter().flatten().max().map_or(1, |m| m.to_string().len());
        let longest_name = (0..self.confusion.len()).map(|c| self.class_name(c).len()).max().unwrap_or(1);
        let width = widest.max(longest_name) + 2;
        let label = longest_name.max(9) + 1;
        let mut out = format!("{:>label$}", "true\\pred");
        for class in 0..self.confusion.len() {
            out.push_str(&format!("{:>width$}", self.class_name(class)));
        }
        for (class, row) in self.confusion.iter().enumerate() {
            out.push_str(&format!("\n{:>label$}", self.class_name(class)));
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
    classes: &[String],
) -> Result<Evaluation> {
    let start = std::time::Instant::now();
    let tally = Tally::count(model, loader, loss, metrics, classes.len())?;
    Ok(tally.finish(metrics, classes, start.elapsed().as_secs_f64()))
}

/// The counts an evaluation is computed from: sums over samples, so the tallies of the shards of
/// a split add up to the split's (data-parallel validation sums them over the ranks).
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    pub loss_sum: f64,
    pub samples: usize,
    /// Correct predictions per counted metric, accuracy first ([`Tally::counted`]).
    pub correct: Vec<f64>,
    /// Rows the true class, columns the predicted, `classes` × `classes`.
    pub confusion: Vec<Vec<u64>>,
}

impl Tally {
    /// The metrics counted per sample: accuracy, then the configured others that are counted.
    fn counted(metrics: &[Metric]) -> Vec<Metric> {
        let mut all = vec![Metric::Accuracy];
        all.extend(metrics.iter().filter(|m| **m != Metric::Accuracy && m.is_counted()).copied());
        all
    }

    /// Count over every batch of `loader`, in inference mode.
    pub fn count<D: Dataset>(
        model: &dyn Classifier,
        loader: &DataLoader<'_, D>,
        loss: &LossConfig,
        metrics: &[Metric],
        classes: usize,
    ) -> Result<Self> {
        let counted = Self::counted(metrics);
        let mut tally =
            Self { loss_sum: 0.0, samples: 0, correct: vec![0.0; counted.len()], confusion: vec![vec![0; classes]; classes] };
        for batch in loader.epoch(0) {
            let (images, labels) = batch?;
            let n = labels.dims1()?;
            if n == 0 {
                continue;
            }
            let logits = model.forward_t(&images, false)?;
            count_confusion(&mut tally.confusion, &logits, &labels)?;
            tally.loss_sum += f64::from(loss.compute(&logits, &labels)?.to_scalar::<f32>()?) * n as f64;
            for (metric, c) in counted.iter().zip(&mut tally.correct) {
                *c += metric.correct(&logits, &labels)?;
            }
            tally.samples += n;
        }
        Ok(tally)
    }

    /// Every count as one list of numbers (to be summed over processes).
    pub fn to_sums(&self) -> Vec<f64> {
        let mut sums = vec![self.loss_sum, self.samples as f64];
        sums.extend(&self.correct);
        sums.extend(self.confusion.iter().flatten().map(|&c| c as f64));
        sums
    }

    /// The counts from a list [`Tally::to_sums`] made (and that was summed since).
    pub fn set_sums(&mut self, sums: &[f64]) {
        self.loss_sum = sums[0];
        self.samples = sums[1].round() as usize;
        let (correct, cells) = sums[2..].split_at(self.correct.len());
        self.correct.copy_from_slice(correct);
        for (cell, &sum) in self.confusion.iter_mut().flatten().zip(cells) {
            *cell = sum.round() as u64;
        }
    }

    /// The evaluation these counts give.
    pub fn finish(self, metrics: &[Metric], classes: &[String], seconds: f64) -> Evaluation {
        let denom = self.samples.max(1) as f64;
        let per_class = class_scores(&self.confusion);
        let mut values: BTreeMap<String, f64> =
            Self::counted(metrics).iter().zip(&self.correct).map(|(m, c)| (m.name(), c / denom)).collect();
        if metrics.contains(&Metric::MacroF1) {
            values.insert(Metric::MacroF1.name(), macro_f1(&per_class));
        }
        Evaluation {
            loss: self.loss_sum / denom,
            metrics: values,
            samples: self.samples,
            seconds,
            per_class_accuracy: per_class_accuracy(&self.confusion),
            confusion: self.confusion,
            classes: classes.to_vec(),
            per_class,
        }
    }
}

fn count_confusion(confusion: &mut [Vec<u64>], logits: &Tensor, labels: &Tensor) -> Result<()> {
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
        let mut confusion = vec![vec![0; 3]; 3];
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
    fn tables_name_the_classes() {
        let evaluation = Evaluation {
            confusion: vec![vec![5, 1], vec![0, 7]],
            per_class_accuracy: per_class_accuracy(&[vec![5, 1], vec![0, 7]]),
            per_class: class_scores(&[vec![5, 1], vec![0, 7]]),
            classes: vec!["cat".into(), "hedgehog".into()],
            ..Default::default()
        };
        let table = evaluation.confusion_table();
        assert!(table.lines().next().unwrap().ends_with("     cat  hedgehog"), "{table}");
        assert!(table.lines().nth(2).unwrap().trim_start().starts_with("hedgehog"), "{table}");
        assert!(evaluation.per_class_line().starts_with("per-class accuracy: cat 0.8333  hedgehog 1.0000"));
        let per_class = evaluation.per_class_table();
        assert!(per_class.lines().nth(1).unwrap().starts_with("cat"), "{per_class}");
        assert!(per_class.contains("0.8333") && per_class.lines().count() == 3, "{per_class}");
    }

    #[test]
    fn a_class_without_images_has_no_accuracy() {
        let per_class = per_class_accuracy(&[vec![3, 1], vec![0, 0]]);
        assert_eq!(per_class[0], 0.75);
        assert!(per_class[1].is_nan());
    }
}
