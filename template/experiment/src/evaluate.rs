//! One pass over a dataset without gradients: mean loss and the task's metrics, with its tables
//! (the confusion matrix and per-class scores, per-label scores, or per-target errors), and how
//! they print.

use std::collections::BTreeMap;

use candle_core::{DType, Result, Tensor};
use data_loader::{DataLoader, Dataset};
use model::{Classifier, TaskKind};

use crate::task::Task;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Evaluation {
    pub task: TaskKind,
    pub loss: f64,
    /// Metric name -> value, e.g. "accuracy" -> 0.98, "rmse" -> 3.2.
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
    /// The class, label or value names, in output order (the rows and columns of `confusion`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// Per class (or label): precision, recall, F1 and the number of samples that have it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_class: Vec<ClassScores>,
    /// Per regression target: MSE, RMSE, MAE and R².
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_target: Vec<TargetScores>,
}

/// One class's (or label's) scores; NaN (null in JSON) where undefined (no samples of the class
/// for recall, no predictions of it for precision).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

impl ClassScores {
    /// The scores of `tp` true positives, `fp` false positives and `fn_` false negatives.
    pub fn from_counts(tp: u64, fp: u64, fn_: u64) -> Self {
        let (predicted, support) = (tp + fp, tp + fn_);
        let precision = if predicted == 0 { f64::NAN } else { tp as f64 / predicted as f64 };
        let recall = if support == 0 { f64::NAN } else { tp as f64 / support as f64 };
        let f1 = if support == 0 && predicted == 0 {
            f64::NAN
        } else if tp == 0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Self { precision, recall, f1, support }
    }
}

/// One regression target's scores, in its own units; R² is NaN (null) for a target without variance.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TargetScores {
    pub name: String,
    pub mse: f64,
    pub rmse: f64,
    pub mae: f64,
    pub r2: f64,
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

    /// The metrics on one line, by name: `accuracy 0.9812  macro_f1 0.9790`.
    pub fn metrics_line(&self) -> String {
        let cells: Vec<String> = self.metrics.iter().map(|(name, v)| format!("{name} {}", number(*v))).collect();
        cells.join("  ")
    }

    /// Precision, recall, F1 and the sample count of each class (or label), one row each, by name.
    pub fn per_class_table(&self) -> String {
        let (what, count) = if self.task == TaskKind::MultiLabel { ("label", "samples") } else { ("class", "images") };
        let width = (0..self.per_class.len()).map(|c| self.class_name(c).len()).max().unwrap_or(0).max(5);
        let cell = |v: f64| if v.is_nan() { format!("{:>10}", "n/a") } else { format!("{v:>10.4}") };
        let mut out = format!("{what:<width$}{:>10}{:>10}{:>10}{count:>8}", "precision", "recall", "f1");
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

    /// MSE, RMSE, MAE and R² of each regression target, one row each, in the target's units.
    pub fn per_target_table(&self) -> String {
        let width = self.per_target.iter().map(|t| t.name.len()).max().unwrap_or(0).max(6);
        let mut out = format!("{:<width$}{:>12}{:>12}{:>12}{:>10}", "target", "mse", "rmse", "mae", "r2");
        for t in &self.per_target {
            let r2 = if t.r2.is_nan() { "n/a (constant target)".to_owned() } else { format!("{:.4}", t.r2) };
            out.push_str(&format!(
                "\n{:<width$}{:>12}{:>12}{:>12}{r2:>10}",
                t.name,
                number(t.mse),
                number(t.rmse),
                number(t.mae)
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

/// A metric's value for tables: 4 decimals, or 4 significant digits for large numbers; `n/a` for NaN.
fn number(v: f64) -> String {
    if v.is_nan() {
        "n/a".to_owned()
    } else if v.abs() >= 1000.0 {
        format!("{v:.4e}")
    } else {
        format!("{v:.4}")
    }
}

/// Evaluate `model` in inference mode (no dropout) over every batch of `loader`.
pub fn evaluate<D: Dataset>(model: &dyn Classifier, loader: &DataLoader<'_, D>, task: &Task) -> Result<Evaluation> {
    let start = std::time::Instant::now();
    let tally = Tally::count(model, loader, task)?;
    Ok(tally.finish(task, start.elapsed().as_secs_f64()))
}

/// The counts an evaluation is computed from: sums over samples, so the tallies of the shards of
/// a split add up to the split's (data-parallel validation sums them over the ranks).
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    pub loss_sum: f64,
    pub samples: usize,
    /// The task's sums ([`Task::count`]).
    pub sums: Vec<f64>,
}

impl Tally {
    /// Count over every batch of `loader`, in inference mode.
    pub fn count<D: Dataset>(model: &dyn Classifier, loader: &DataLoader<'_, D>, task: &Task) -> Result<Self> {
        Self::count_seeing(model, loader, task, |_, _| Ok(()))
    }

    /// [`Tally::count`], handing every batch's outputs and targets to `see` as well (the
    /// report keeps a regression's to chart them).
    pub fn count_seeing<D: Dataset>(
        model: &dyn Classifier,
        loader: &DataLoader<'_, D>,
        task: &Task,
        mut see: impl FnMut(&Tensor, &Tensor) -> Result<()>,
    ) -> Result<Self> {
        let mut tally = Self { loss_sum: 0.0, samples: 0, sums: vec![0.0; task.sums_len()] };
        for batch in loader.epoch(0) {
            let (inputs, targets) = batch?;
            let n = targets.dim(0)?;
            if n == 0 {
                continue;
            }
            let outputs = model.forward_t(&inputs, false)?;
            let loss = task.loss(&outputs, &targets)?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
            tally.loss_sum += f64::from(loss) * n as f64;
            task.count(&outputs, &targets, &mut tally.sums)?;
            see(&outputs, &targets)?;
            tally.samples += n;
        }
        Ok(tally)
    }

    /// Every count as one list of numbers (to be summed over processes).
    pub fn to_sums(&self) -> Vec<f64> {
        let mut sums = vec![self.loss_sum, self.samples as f64];
        sums.extend(&self.sums);
        sums
    }

    /// The counts from a list [`Tally::to_sums`] made (and that was summed since).
    pub fn set_sums(&mut self, sums: &[f64]) {
        self.loss_sum = sums[0];
        self.samples = sums[1].round() as usize;
        self.sums.copy_from_slice(&sums[2..]);
    }

    /// The evaluation these counts give.
    pub fn finish(self, task: &Task, seconds: f64) -> Evaluation {
        let mut evaluation = Evaluation {
            loss: self.loss_sum / self.samples.max(1) as f64,
            samples: self.samples,
            seconds,
            ..Default::default()
        };
        task.finish(&self.sums, self.samples, &mut evaluation);
        evaluation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::classification::{class_scores, per_class_accuracy};

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
}
