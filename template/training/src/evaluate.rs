//! One pass over a dataset without gradients: mean loss and metrics.

use std::collections::BTreeMap;

use candle_core::Result;
use data_loader::{DataLoader, Dataset};
use model::Classifier;

use crate::loss::LossConfig;
use crate::metrics::Metric;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Evaluation {
    pub loss: f64,
    /// Metric name -> fraction correct, e.g. "accuracy" -> 0.98.
    pub metrics: BTreeMap<String, f64>,
    pub samples: usize,
    pub seconds: f64,
}

impl Evaluation {
    pub fn accuracy(&self) -> f64 {
        self.metrics.get("accuracy").copied().unwrap_or(f64::NAN)
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
    for batch in loader.epoch(0) {
        let (images, labels) = batch?;
        let n = labels.dims1()?;
        let logits = model.forward_t(&images, false)?;
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
    })
}
