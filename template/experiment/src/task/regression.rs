//! Real values per sample: outputs and targets `[batch, values]`, both in the targets' own units
//! (the model's output layer undoes the standardisation it learns in). Counts, per target, the
//! sums of squared and absolute errors and of the (shifted) targets and their squares; MSE, RMSE,
//! MAE and R² per target, and their means over the targets, come from those.

use candle_core::{Result, Tensor};
use model::Values;

use crate::evaluate::{Evaluation, TargetScores};
use crate::metrics::Metric;

/// `(outputs - mean) / std` and `(targets - mean) / std`, per value column: what the loss compares.
pub(super) fn standardised(values: &Values, outputs: &Tensor, targets: &Tensor) -> Result<(Tensor, Tensor)> {
    if !values.is_scaled() {
        return Ok((outputs.clone(), targets.clone()));
    }
    let n = values.names.len();
    let column = |v: &[f64]| {
        let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        Tensor::from_vec(v, (1, n), outputs.device())?.to_dtype(outputs.dtype())
    };
    let (mean, std) = (column(&values.mean)?, column(&values.std)?);
    let scale = |t: &Tensor| t.broadcast_sub(&mean)?.broadcast_div(&std);
    Ok((scale(outputs)?, scale(&targets.to_dtype(outputs.dtype())?)?))
}

/// Per target: Σ e², Σ |e|, Σ (y - μ), Σ (y - μ)² (μ the training mean, which keeps R²'s sums
/// accurate for targets far from zero).
pub(super) fn sums_len(values: usize) -> usize {
    4 * values
}

pub(super) fn count(values: &Values, outputs: &Tensor, targets: &Tensor, sums: &mut [f64]) -> Result<()> {
    let n = values.names.len();
    let predicted = outputs.flatten_all()?.to_vec1::<f32>()?;
    let truths = targets.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    for (row_p, row_y) in predicted.chunks(n).zip(truths.chunks(n)) {
        for (v, (&p, &y)) in row_p.iter().zip(row_y).enumerate() {
            let (p, y) = (f64::from(p), f64::from(y));
            let e = p - y;
            let shifted = y - values.mean[v];
            let s = &mut sums[4 * v..4 * v + 4];
            s[0] += e * e;
            s[1] += e.abs();
            s[2] += shifted;
            s[3] += shifted * shifted;
        }
    }
    Ok(())
}

pub(super) fn finish(metrics: &[Metric], values: &Values, sums: &[f64], samples: usize, e: &mut Evaluation) {
    let n = samples as f64;
    e.per_target = values
        .names
        .iter()
        .zip(sums.chunks(4))
        .map(|(name, s)| {
            let mse = s[0] / n;
            // The targets' own spread: Σ (y - ȳ)² from the shifted sums.
            let total = s[3] - s[2] * s[2] / n;
            // A constant target (within rounding) has no variance to explain: R² is undefined.
            let r2 = if total > 1e-12 * s[3].max(f64::MIN_POSITIVE) { 1.0 - s[0] / total } else { f64::NAN };
            TargetScores { name: name.clone(), mse, rmse: mse.sqrt(), mae: s[1] / n, r2 }
        })
        .collect();
    let mean = |f: fn(&TargetScores) -> f64| e.per_target.iter().map(f).sum::<f64>() / e.per_target.len().max(1) as f64;
    for metric in metrics {
        let value = match metric {
            Metric::Mse => mean(|t| t.mse),
            Metric::Rmse => mean(|t| t.rmse),
            Metric::Mae => mean(|t| t.mae),
            Metric::R2 => mean(|t| t.r2),
            _ => f64::NAN,
        };
        e.metrics.insert(metric.name(), if samples == 0 { f64::NAN } else { value });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// y = [1, 2, 3, 6], predictions [1.5, 2, 2, 6]: errors 0.5, 0, -1, 0; ȳ = 3, Σ(y - ȳ)² = 14,
    /// SSE = 1.25, so R² = 1 - 1.25 / 14; MSE 0.3125, MAE 0.375. Shifting by a training mean of
    /// 100 must not change anything.
    #[test]
    fn mse_rmse_mae_and_r2_match_hand_computed_values() {
        let outputs = Tensor::new(&[[1.5f32], [2.0], [2.0], [6.0]], &Device::Cpu).unwrap();
        let targets = Tensor::new(&[[1.0f32], [2.0], [3.0], [6.0]], &Device::Cpu).unwrap();
        for mean in [0.0, 100.0] {
            let values = Values { names: vec!["y".into()], mean: vec![mean], std: vec![1.0] };
            let mut sums = vec![0.0; sums_len(1)];
            // Two batches of two.
            count(&values, &outputs.narrow(0, 0, 2).unwrap(), &targets.narrow(0, 0, 2).unwrap(), &mut sums).unwrap();
            count(&values, &outputs.narrow(0, 2, 2).unwrap(), &targets.narrow(0, 2, 2).unwrap(), &mut sums).unwrap();
            let mut e = Evaluation::default();
            finish(&Metric::defaults(model::TaskKind::Regression), &values, &sums, 4, &mut e);
            assert!((e.metrics["mse"] - 0.3125).abs() < 1e-12);
            assert!((e.metrics["rmse"] - 0.3125f64.sqrt()).abs() < 1e-12);
            assert!((e.metrics["mae"] - 0.375).abs() < 1e-12);
            assert!((e.metrics["r2"] - (1.0 - 1.25 / 14.0)).abs() < 1e-9, "mean {mean}: {}", e.metrics["r2"]);
            assert_eq!(e.per_target[0].name, "y");
        }
    }

    #[test]
    fn r2_of_a_constant_target_is_undefined() {
        let values = Values::unscaled(vec!["y".into()]);
        let outputs = Tensor::new(&[[1.0f32], [2.0]], &Device::Cpu).unwrap();
        let targets = Tensor::new(&[[5.0f32], [5.0]], &Device::Cpu).unwrap();
        let mut sums = vec![0.0; sums_len(1)];
        count(&values, &outputs, &targets, &mut sums).unwrap();
        let mut e = Evaluation::default();
        finish(&[Metric::R2], &values, &sums, 2, &mut e);
        assert!(e.metrics["r2"].is_nan());
    }

    #[test]
    fn the_loss_compares_standardised_values() {
        let values = Values { names: vec!["a".into(), "b".into()], mean: vec![10.0, 0.0], std: vec![2.0, 4.0] };
        let outputs = Tensor::new(&[[12.0f32, 4.0]], &Device::Cpu).unwrap();
        let (o, _) = standardised(&values, &outputs, &outputs).unwrap();
        assert_eq!(o.to_vec2::<f32>().unwrap(), [[1.0, 1.0]]);
    }
}
