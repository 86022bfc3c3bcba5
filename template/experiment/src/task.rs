//! The task: what the data's targets are, the loss that trains them, the metrics that score them
//! and how a model's output reads as a prediction. It is one home: the trainer, evaluation,
//! `predict` and export reach it through [`Task`], and each kind of target keeps its own code in
//! one file here (`classification`, `multi_label`, `regression`).
//!
//! A task's numbers are sums over samples ([`Task::count`] adds a batch to them, [`Task::finish`]
//! turns them into an [`Evaluation`]), so the sums of a split's shards add up to the split's:
//! data-parallel validation sums them over the ranks.

pub mod classification;
pub mod multi_label;
pub mod regression;

use candle_core::{Result, Tensor};
use model::{Target, TaskKind};

use crate::evaluate::Evaluation;
use crate::loss::LossConfig;
use crate::metrics::Metric;

/// A run's task: the data's target, with the configured loss, metrics and threshold.
#[derive(Debug, Clone)]
pub struct Task {
    target: Target,
    loss: LossConfig,
    metrics: Vec<Metric>,
    /// Multi-label: a label is predicted when its probability is at least this.
    threshold: f64,
}

impl Task {
    /// The task of `target` as `config` trains and scores it.
    pub fn new(target: &Target, config: &crate::Config) -> Self {
        Self::with(target, config.loss(), config.metrics(), config.threshold)
    }

    pub fn with(target: &Target, loss: LossConfig, metrics: Vec<Metric>, threshold: f64) -> Self {
        Self { target: target.clone(), loss, metrics, threshold }
    }

    pub fn kind(&self) -> TaskKind {
        self.target.kind()
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn metrics(&self) -> &[Metric] {
        &self.metrics
    }

    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The batch's mean loss, differentiable: `outputs` `[batch, outputs]` from the model,
    /// `targets` as the data set gives them. Values are compared standardised (the model learns
    /// them so; see `model::output`).
    pub fn loss(&self, outputs: &Tensor, targets: &Tensor) -> Result<Tensor> {
        match &self.target {
            Target::Values(values) => {
                let (outputs, targets) = regression::standardised(values, outputs, targets)?;
                self.loss.compute(&outputs, &targets)
            }
            _ => self.loss.compute(outputs, targets),
        }
    }

    /// The metric metrics.csv, TensorBoard and the progress line show beside the loss:
    /// `accuracy` for classification, else the first of `metrics` (`loss` when there is none).
    pub fn headline(&self) -> String {
        match (self.kind(), self.metrics.first()) {
            (TaskKind::Classification, _) => Metric::Accuracy.name(),
            (_, Some(first)) => first.name(),
            (_, None) => "loss".to_owned(),
        }
    }

    /// The metric counted at every training step beside the loss, by name: classification's
    /// correct predictions (`train_accuracy`); the other tasks count none (their metrics need
    /// whole passes, which validation makes).
    pub fn running_metric(&self) -> Option<&'static str> {
        (self.kind() == TaskKind::Classification).then_some("accuracy")
    }

    /// How many samples of the batch count for [`Task::running_metric`] (0 when it has none).
    pub fn count_running(&self, outputs: &Tensor, targets: &Tensor) -> Result<f64> {
        match self.kind() {
            TaskKind::Classification => classification::correct(outputs, targets, 1),
            _ => Ok(0.0),
        }
    }

    /// The length of the sums [`Task::count`] adds to.
    pub fn sums_len(&self) -> usize {
        match &self.target {
            Target::Classes(classes) => classification::sums_len(&self.metrics, classes.len()),
            Target::Labels(labels) => multi_label::sums_len(labels.len()),
            Target::Values(values) => regression::sums_len(values.names.len()),
        }
    }

    /// Adds a batch (outputs of the model in inference mode, and the targets) to `sums`.
    pub fn count(&self, outputs: &Tensor, targets: &Tensor, sums: &mut [f64]) -> Result<()> {
        match &self.target {
            Target::Classes(classes) => classification::count(&self.metrics, classes.len(), outputs, targets, sums),
            Target::Labels(_) => multi_label::count(self.threshold, outputs, targets, sums),
            Target::Values(values) => regression::count(values, outputs, targets, sums),
        }
    }

    /// The columns `predict` writes for each row of a table, after the row's line: the class and
    /// its probability; the predicted labels and each label's probability; or the values.
    pub fn prediction_header(&self) -> Vec<String> {
        match &self.target {
            Target::Classes(_) => vec!["class".into(), "probability".into()],
            Target::Labels(labels) => {
                std::iter::once("labels".to_owned()).chain(labels.iter().map(|l| format!("p({l})"))).collect()
            }
            Target::Values(values) => values.names.clone(),
        }
    }

    /// One sample's [`Task::prediction_header`] fields from its outputs (logits, or values).
    pub fn prediction_fields(&self, outputs: &[f32]) -> Vec<String> {
        match &self.target {
            Target::Classes(classes) => {
                let probabilities = classification::softmax(outputs);
                let best =
                    (0..probabilities.len()).fold(0, |b, i| if probabilities[i] > probabilities[b] { i } else { b });
                vec![classes[best].clone(), format!("{:.6}", probabilities[best])]
            }
            Target::Labels(labels) => {
                let predicted = multi_label::predicted(outputs, self.threshold);
                let names: Vec<&str> =
                    labels.iter().zip(&predicted).filter(|(_, p)| **p).map(|(l, _)| l.as_str()).collect();
                let probabilities = outputs.iter().map(|&x| format!("{:.6}", 1.0 / (1.0 + (-x).exp())));
                std::iter::once(names.join("|")).chain(probabilities).collect()
            }
            Target::Values(_) => outputs.iter().map(|v| v.to_string()).collect(),
        }
    }

    /// Fills `evaluation`'s metrics and per-class, per-label or per-target tables from the sums
    /// of `samples` samples.
    pub fn finish(&self, sums: &[f64], samples: usize, evaluation: &mut Evaluation) {
        evaluation.task = self.kind();
        evaluation.classes = self.target.names().to_vec();
        match &self.target {
            Target::Classes(classes) => classification::finish(&self.metrics, classes.len(), sums, samples, evaluation),
            Target::Labels(labels) => multi_label::finish(&self.metrics, labels.len(), sums, samples, evaluation),
            Target::Values(values) => regression::finish(&self.metrics, values, sums, samples, evaluation),
        }
    }
}
