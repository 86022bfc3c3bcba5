//! The optimiser section of `config.json` (`optimizer`): AdamW with decoupled weight decay, or SGD
//! with momentum, Nesterov and weight decay. The `training` crate runs them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "args", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    Adamw(AdamWArgs),
    Sgd(SgdArgs),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWArgs {
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamWArgs {
    fn default() -> Self {
        Self { lr: 1e-3, weight_decay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdArgs {
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
}

impl Default for SgdArgs {
    fn default() -> Self {
        Self { lr: 0.01, momentum: 0.9, nesterov: false, weight_decay: 0.0 }
    }
}

impl OptimizerConfig {
    pub fn lr(&self) -> f64 {
        match self {
            Self::Adamw(a) => a.lr,
            Self::Sgd(s) => s.lr,
        }
    }

    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 { Ok(()) } else { Err(format!("`optimizer.args.{name}` must be > 0, got {v}")) }
        };
        let unit = |name: &str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("`optimizer.args.{name}` must be in [0, 1), got {v}"))
            }
        };
        match self {
            Self::Adamw(a) => {
                positive("lr", a.lr)?;
                positive("eps", a.eps)?;
                unit("beta1", a.beta1)?;
                unit("beta2", a.beta2)?;
                unit("weight_decay", a.weight_decay)
            }
            Self::Sgd(s) => {
                positive("lr", s.lr)?;
                unit("momentum", s.momentum)?;
                if s.nesterov && s.momentum == 0.0 {
                    return Err("`optimizer.args.nesterov` needs a momentum above 0".into());
                }
                if !(s.weight_decay.is_finite() && s.weight_decay >= 0.0) {
                    return Err(format!("`optimizer.args.weight_decay` must be >= 0, got {}", s.weight_decay));
                }
                Ok(())
            }
        }
    }
}
