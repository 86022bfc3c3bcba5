//! Learning-rate schedules (`config.json` `lr_scheduler`), evaluated per optimiser step. A schedule
//! is a pure function of the step number, so resuming needs no scheduler state.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "args", rename_all = "snake_case", deny_unknown_fields)]
pub enum SchedulerConfig {
    Constant(ConstantArgs),
    /// Multiply by `gamma` every `step_size` steps.
    Step(StepArgs),
    /// Cosine decay from the base rate to `min_lr` over the whole run.
    Cosine(CosineArgs),
    /// Linear warm-up from 0 over `warmup_steps`, then cosine decay to `min_lr`.
    WarmupCosine(WarmupCosineArgs),
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self::Constant(ConstantArgs {})
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstantArgs {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StepArgs {
    pub step_size: usize,
    pub gamma: f64,
}

impl Default for StepArgs {
    fn default() -> Self {
        Self { step_size: 1000, gamma: 0.1 }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CosineArgs {
    pub min_lr: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarmupCosineArgs {
    pub warmup_steps: usize,
    pub min_lr: f64,
}

impl Default for WarmupCosineArgs {
    fn default() -> Self {
        Self { warmup_steps: 100, min_lr: 0.0 }
    }
}

impl SchedulerConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        match self {
            Self::Step(s) if s.step_size == 0 => Err("`lr_scheduler.args.step_size` must be at least 1".into()),
            Self::Step(s) if !(s.gamma > 0.0 && s.gamma <= 1.0) => {
                Err(format!("`lr_scheduler.args.gamma` must be in (0, 1], got {}", s.gamma))
            }
            Self::Cosine(CosineArgs { min_lr }) | Self::WarmupCosine(WarmupCosineArgs { min_lr, .. })
                if !(min_lr.is_finite() && *min_lr >= 0.0) =>
            {
                Err(format!("`lr_scheduler.args.min_lr` must be >= 0, got {min_lr}"))
            }
            _ => Ok(()),
        }
    }

    /// The learning rate for optimiser step `step` (0-based) of `total_steps`.
    pub fn lr(&self, base_lr: f64, step: usize, total_steps: usize) -> f64 {
        let cosine = |min_lr: f64, done: usize, span: usize| {
            let progress = if span == 0 { 1.0 } else { (done as f64 / span as f64).min(1.0) };
            min_lr + (base_lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        };
        match self {
            Self::Constant(_) => base_lr,
            Self::Step(s) => base_lr * s.gamma.powi((step / s.step_size) as i32),
            Self::Cosine(c) => cosine(c.min_lr, step, total_steps.saturating_sub(1)),
            Self::WarmupCosine(w) if step < w.warmup_steps => base_lr * (step + 1) as f64 / w.warmup_steps as f64,
            Self::WarmupCosine(w) => {
                cosine(w.min_lr, step - w.warmup_steps, total_steps.saturating_sub(w.warmup_steps + 1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_decay() {
        let s = SchedulerConfig::Step(StepArgs { step_size: 10, gamma: 0.5 });
        assert_eq!(s.lr(1.0, 9, 100), 1.0);
        assert_eq!(s.lr(1.0, 10, 100), 0.5);
        assert_eq!(s.lr(1.0, 25, 100), 0.25);
    }

    #[test]
    fn cosine_runs_from_base_to_min() {
        let s = SchedulerConfig::Cosine(CosineArgs { min_lr: 0.1 });
        assert!((s.lr(1.0, 0, 11) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 5, 11) - 0.55).abs() < 1e-12);
        assert!((s.lr(1.0, 10, 11) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn warmup_then_cosine() {
        let s = SchedulerConfig::WarmupCosine(WarmupCosineArgs { warmup_steps: 4, min_lr: 0.0 });
        assert_eq!(s.lr(1.0, 0, 14), 0.25);
        assert_eq!(s.lr(1.0, 3, 14), 1.0);
        assert!((s.lr(1.0, 4, 14) - 1.0).abs() < 1e-12);
        assert!(s.lr(1.0, 13, 14).abs() < 1e-12);
    }
}
