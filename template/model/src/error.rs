//! The error a model's args can fail validation with.

/// A value in `"model": {"args": ...}` that parses but cannot build a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid model config: `model.args.{field}` of `{model}` {reason}")]
pub struct ConfigError {
    /// The model `type`, e.g. `"cnn"`.
    pub model: &'static str,
    /// The key under `args`, e.g. `"dropout"`.
    pub field: &'static str,
    /// What is wrong and what to do instead, e.g. `"must be in [0, 1), got 1.5"`.
    pub reason: String,
}

impl From<ConfigError> for candle_core::Error {
    fn from(err: ConfigError) -> Self {
        candle_core::Error::wrap(err)
    }
}

/// Dropout probabilities must lie in `[0, 1)`: 1 would zero every activation.
#[cfg(any(feature = "mlp", feature = "cnn"))]
pub(crate) fn check_dropout(model: &'static str, field: &'static str, p: f32) -> Result<(), ConfigError> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(ConfigError { model, field, reason: format!("must be in [0, 1), got {p}") })
    }
}
