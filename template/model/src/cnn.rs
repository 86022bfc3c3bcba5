//! The convolutional network of PyTorch's `examples/mnist` (`Net`), layer for layer.
//!
//! Two 3x3 convolutions, a 2x2 max-pool and two fully connected layers with dropout (on MNIST:
//! 1,199,882 parameters and ~99% test accuracy). The first convolution takes the data's channels,
//! `fc1` the pooled size of the data's images and `fc2` gives one logit per class. Checkpoint keys match the PyTorch state dict (`conv1`, `conv2`,
//! `fc1`, `fc2`), so weights can move between the two.

use candle_core::Result;
use candle_nn::{Conv2dConfig, VarBuilder};

use crate::activation::Relu;
use crate::conv::{Conv2d, conv2d};
use crate::dropout::Dropout;
use crate::linear::{Linear, linear};
use crate::pool::{Flatten, MaxPool2d};

use crate::error::{ConfigError, check_dropout};
use crate::{DataSpec, Flow, Module};

/// `"model": {"type": "cnn", "args": {"dropout1": 0.25, "dropout2": 0.5 } }`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct CnnConfig {
    /// Dropout after the max-pool, while training.
    pub dropout1: f32,
    /// Dropout after `fc1`, while training.
    pub dropout2: f32,
}

crate::optional_args!(CnnConfig);

impl Default for CnnConfig {
    fn default() -> Self {
        Self { dropout1: 0.25, dropout2: 0.5 }
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
    /// Creates or loads the parameters `conv1`, `conv2`, `fc1`, `fc2` under `vb`, for images of
    /// any channel count and of at least 6x6 pixels.
    pub fn new(cfg: &CnnConfig, spec: &DataSpec, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let conv = Conv2dConfig::default();
        // Two unpadded 3x3 convolutions take each side from s to s - 4, the pool halves it (floor).
        let shrink = 2 * (KERNEL - 1);
        let [channels, height, width] = spec.require_image("cnn").map_err(candle_core::Error::Msg)?;
        let smallest = shrink + POOL;
        if height < smallest || width < smallest {
            candle_core::bail!(
                "the cnn needs images of at least {smallest}x{smallest} pixels (two 3x3 convolutions and a \
                 2x2 max-pool), got {height}x{width}: use a larger image_size, or the mlp"
            );
        }
        let pooled = ((height - shrink) / POOL) * ((width - shrink) / POOL);
        Ok(Self {
            conv1: conv2d(channels, CONV1_CHANNELS, KERNEL, conv, vb.pp("conv1"))?.with_relu(),
            conv2: conv2d(CONV1_CHANNELS, CONV2_CHANNELS, KERNEL, conv, vb.pp("conv2"))?.with_relu(),
            dropout1: Dropout::new(cfg.dropout1),
            fc1: linear(CONV2_CHANNELS * pooled, FC1_WIDTH, vb.pp("fc1"))?,
            dropout2: Dropout::new(cfg.dropout2),
            fc2: linear(FC1_WIDTH, spec.outputs(), vb.pp("fc2"))?,
        })
    }
}

impl Module for Cnn {
    fn run<F: Flow>(&self, f: &mut F, x: F::Value) -> Result<F::Value> {
        // Each convolution with its ReLU (`with_relu`): one op, whose backward pass keeps no
        // gradient for the output before the ReLU.
        let x = f.layer(&self.conv1, &x)?; // [batch, 32, h - 2, w - 2]
        let x = f.layer(&self.conv2, &x)?; // [batch, 64, h - 4, w - 4]
        let x = f.layer(&MaxPool2d(POOL), &x)?; // [batch, 64, (h - 4) / 2, (w - 4) / 2]
        let x = f.layer(&self.dropout1, &x)?;
        let x = f.layer(&Flatten, &x)?; // [batch, 64 * (h - 4) / 2 * (w - 4) / 2]
        let x = f.layer(&self.fc1, &x)?; // [batch, 128]
        let x = f.layer(&Relu, &x)?;
        let x = f.layer(&self.dropout2, &x)?;
        f.layer(&self.fc2, &x) // [batch, classes]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelConfig;
    use crate::test_support::{
        assert_every_parameter_gets_a_gradient, build, fixed_batch, output_dims, overfit, same_values, test_spec,
    };

    fn default_config() -> ModelConfig {
        ModelConfig::Cnn(CnnConfig::default())
    }

    #[test]
    fn logits_are_batch_by_classes() {
        let (_, model) = build(&default_config());
        let classes = test_spec().outputs();
        assert_eq!(output_dims(model.as_ref(), 1), [1, classes]);
        assert_eq!(output_dims(model.as_ref(), 5), [5, classes]);
    }

    #[test]
    fn images_too_small_for_the_convolutions_are_refused_saying_the_minimum() {
        let spec = DataSpec::new([3, 5, 40], DataSpec::numbered_classes(4)).unwrap();
        let varmap = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &candle_core::Device::Cpu);
        let err = default_config().build(&spec, vb).err().expect("5 rows are too few").to_string();
        assert!(err.contains("at least 6x6") && err.contains("got 5x40"), "{err}");
    }

    /// 1,199,882 on MNIST, as PyTorch's `Net`.
    #[test]
    fn has_pytorch_nets_parameters_for_the_datas_shape() {
        let (varmap, _) = build(&default_config());
        let spec = test_spec();
        let [c, h, w] = spec.image_shape().unwrap();
        let classes = spec.outputs();
        let fc1_in = 64 * ((h - 4) / 2) * ((w - 4) / 2);
        let expected = (32 * c * 9 + 32) + (64 * 32 * 9 + 64) + (fc1_in * 128 + 128) + (128 * classes + classes);
        assert_eq!(crate::parameter_count(&varmap), expected);
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
            serde_json::from_str(r#"{"type": "cnn", "args": { "dropout2": 0.3 } }"#).expect("valid config");
        assert_eq!(cfg, ModelConfig::Cnn(CnnConfig { dropout1: 0.25, dropout2: 0.3 }));
    }

    #[test]
    fn dropout_out_of_range_is_rejected_naming_the_field() {
        let err = CnnConfig { dropout1: -0.1, ..Default::default() }.validate().expect_err("negative");
        assert_eq!(err.field, "dropout1");
        let err = CnnConfig { dropout2: 1.0, ..Default::default() }.validate().expect_err("one");
        assert_eq!(err.field, "dropout2");
        assert!(err.to_string().contains("must be in [0, 1), got 1"), "{err}");
    }
}
