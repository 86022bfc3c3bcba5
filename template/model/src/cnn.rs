//! The convolutional network of PyTorch's `examples/mnist` (`Net`), layer for layer.
//!
//! Two 3x3 convolutions, a 2x2 max-pool and two fully connected layers with dropout: 1,199,882
//! parameters and ~99% test accuracy. Checkpoint keys match the PyTorch state dict (`conv1`, `conv2`,
//! `fc1`, `fc2`), so weights can move between the two.

use candle_core::{Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use crate::activation::Relu;
use crate::conv::{Conv2d, conv2d};
use crate::dropout::Dropout;
use crate::linear::{Linear, linear};
use crate::pool::MaxPool2d;

use crate::error::{ConfigError, check_dropout};
use crate::{Classifier, INPUT_SHAPE, NUM_CLASSES};

/// `"model": {"type": "cnn", "args": {"dropout1": 0.25, "dropout2": 0.5 } }`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct CnnConfig {
    /// Dropout after the max-pool, while training.
    pub dropout1: f32,
    /// Dropout after `fc1`, while training.
    pub dropout2: f32,
}

crate::args::optional_args!(CnnConfig);

impl Default for CnnConfig {
    fn default() -> Self {
        Self {
            dropout1: 0.25,
            dropout2: 0.5,
        }
    }
}

impl CnnConfig {
    /// Checks the args without building anything.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        check_dropout("cnn", "dropout1", self.dropout1)?;
        check_dropout("cnn", "dropout2", self.dropout2)
    }
}

const CONV1_CHANNELS: usize = 32;
const CONV2_CHANNELS: usize = 64;
const KERNEL: usize = 3;
const POOL: usize = 2;
const FC1_WIDTH: usize = 128;

/// conv1 -> ReLU -> conv2 -> ReLU -> max-pool -> dropout -> fc1 -> ReLU -> dropout -> fc2.
#[derive(Debug, Clone)]
pub struct Cnn {
    conv1: Conv2d,
    conv2: Conv2d,
    dropout1: Dropout,
    fc1: Linear,
    dropout2: Dropout,
    fc2: Linear,
}

impl Cnn {
    /// Creates or loads the parameters `conv1`, `conv2`, `fc1`, `fc2` under `vb`.
    pub fn new(cfg: &CnnConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let conv = Conv2dConfig::default();
        // Two unpadded 3x3 convolutions take 28 to 24, the pool halves it.
        let side = (INPUT_SHAPE[1] - 2 * (KERNEL - 1)) / POOL;
        Ok(Self {
            conv1: conv2d(INPUT_SHAPE[0], CONV1_CHANNELS, KERNEL, conv, vb.pp("conv1"))?,
            conv2: conv2d(CONV1_CHANNELS, CONV2_CHANNELS, KERNEL, conv, vb.pp("conv2"))?,
            dropout1: Dropout::new(cfg.dropout1),
            fc1: linear(CONV2_CHANNELS * side * side, FC1_WIDTH, vb.pp("fc1"))?,
            dropout2: Dropout::new(cfg.dropout2),
            fc2: linear(FC1_WIDTH, NUM_CLASSES, vb.pp("fc2"))?,
        })
    }
}

impl Classifier for Cnn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        crate::check_input(xs)?;
        xs.apply(&self.conv1)? // [batch, 32, 26, 26]
            .apply(&Relu)?
            .apply(&self.conv2)? // [batch, 64, 24, 24]
            // Pooling before the ReLU is the same function (ReLU is monotonic, so it commutes
            // with max), on a quarter of the values.
            .apply(&MaxPool2d(POOL))? // [batch, 64, 12, 12]
            .apply(&Relu)?
            .apply_t(&self.dropout1, train)?
            .flatten_from(1)? // [batch, 9216]
            .apply(&self.fc1)? // [batch, 128]
            .apply(&Relu)?
            .apply_t(&self.dropout2, train)?
            .apply(&self.fc2) // [batch, 10]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelConfig;
    use crate::test_support::{
        assert_every_parameter_gets_a_gradient, build, fixed_batch, output_dims, overfit,
        same_values,
    };

    fn default_config() -> ModelConfig {
        ModelConfig::Cnn(CnnConfig::default())
    }

    #[test]
    fn logits_are_batch_by_ten() {
        let (_, model) = build(&default_config());
        assert_eq!(output_dims(model.as_ref(), 1), [1, 10]);
        assert_eq!(output_dims(model.as_ref(), 5), [5, 10]);
    }

    #[test]
    fn has_1_199_882_parameters_like_pytorch_net() {
        let (varmap, _) = build(&default_config());
        // conv1 32*1*9+32, conv2 64*32*9+64, fc1 9216*128+128, fc2 128*10+10
        assert_eq!(crate::parameter_count(&varmap), 1_199_882);
    }

    #[test]
    fn checkpoint_keys_match_the_pytorch_state_dict() {
        let (varmap, _) = build(&default_config());
        assert_eq!(
            crate::parameter_names(&varmap),
            [
                "conv1.bias",
                "conv1.weight",
                "conv2.bias",
                "conv2.weight",
                "fc1.bias",
                "fc1.weight",
                "fc2.bias",
                "fc2.weight"
            ]
        );
    }

    #[test]
    fn eval_is_deterministic_and_training_applies_dropout() {
        let (_, model) = build(&default_config());
        let (xs, _) = fixed_batch(4);
        let eval1 = model.forward_t(&xs, false).expect("forward");
        let eval2 = model.forward_t(&xs, false).expect("forward");
        let train = model.forward_t(&xs, true).expect("forward");
        assert!(same_values(&eval1, &eval2));
        assert!(!same_values(&eval1, &train));
    }

    #[test]
    fn every_parameter_gets_a_gradient() {
        let (varmap, model) = build(&default_config());
        assert_every_parameter_gets_a_gradient(&varmap, model.as_ref());
    }

    #[test]
    fn overfits_one_batch() {
        let run = overfit(&default_config(), 1e-3, 150);
        assert!(run.final_loss <= 0.1 * run.initial_loss, "{run:?}");
    }

    #[test]
    fn partial_args_keep_the_other_defaults() {
        let cfg: ModelConfig =
            serde_json::from_str(r#"{"type": "cnn", "args": { "dropout2": 0.3 } }"#)
                .expect("valid config");
        assert_eq!(
            cfg,
            ModelConfig::Cnn(CnnConfig {
                dropout1: 0.25,
                dropout2: 0.3
            })
        );
    }

    #[test]
    fn dropout_out_of_range_is_rejected_naming_the_field() {
        let err = CnnConfig {
            dropout1: -0.1,
            ..Default::default()
        }
        .validate()
        .expect_err("negative");
        assert_eq!(err.field, "dropout1");
        let err = CnnConfig {
            dropout2: 1.0,
            ..Default::default()
        }
        .validate()
        .expect_err("one");
        assert_eq!(err.field, "dropout2");
        assert!(
            err.to_string().contains("must be in [0, 1), got 1"),
            "{err}"
        );
    }
}
