//! The multilayer perceptron: flattened pixels through fully connected layers.
//!
//! The baseline every MNIST tutorial starts from (784-256-10 reaches ~98% test accuracy). Checkpoint keys
//! are `fc1.*` for the first layer up to `fc{n+1}.*` for the output layer, where n is the number of hidden
//! layers.

use candle_core::Result;
use candle_nn::VarBuilder;

use crate::activation::Relu;
use crate::dropout::Dropout;
use crate::linear::{Linear, linear};

use crate::error::{ConfigError, check_dropout};
use crate::pool::Flatten;
use crate::{DataSpec, Flow, Module};

/// `"model": {"type": "mlp", "args": {"hidden": [256], "dropout": 0.2 } }`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct MlpConfig {
    /// Width of each hidden layer, input side first; `[]` gives a linear classifier.
    pub hidden: Vec<usize>,
    /// Dropout probability after each hidden layer's ReLU, while training.
    pub dropout: f32,
}

crate::optional_args!(MlpConfig);

impl Default for MlpConfig {
    fn default() -> Self {
        Self { hidden: vec![256], dropout: 0.2 }
    }
}

impl MlpConfig {
    /// Checks the args without building anything.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        check_dropout("mlp", "dropout", self.dropout)?;
        if let Some(i) = self.hidden.iter().position(|&width| width == 0) {
            return Err(ConfigError {
                model: "mlp",
                field: "hidden",
                reason: format!("has a zero width at index {i}; use a positive size or drop the layer"),
            });
        }
        Ok(())
    }
}

/// Linear + ReLU + dropout per hidden layer, then a linear output layer.
#[derive(Debug, Clone)]
pub struct Mlp {
    hidden: Vec<Linear>,
    out: Linear,
    dropout: Dropout,
}

impl Mlp {
    /// Creates or loads the parameters `fc1` ... `fc{n+1}` under `vb`, for images of any shape.
    pub fn new(cfg: &MlpConfig, spec: &DataSpec, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let in_dim = spec.sample_len();
        let dims: Vec<usize> = std::iter::once(in_dim).chain(cfg.hidden.iter().copied()).collect();
        let hidden = dims
            .windows(2)
            .enumerate()
            .map(|(i, pair)| linear(pair[0], pair[1], vb.pp(format!("fc{}", i + 1))))
            .collect::<Result<Vec<_>>>()?;
        let last = *dims.last().expect("dims starts with the input size");
        let out = linear(last, spec.outputs(), vb.pp(format!("fc{}", dims.len())))?;
        Ok(Self { hidden, out, dropout: Dropout::new(cfg.dropout) })
    }
}

impl Module for Mlp {
    fn run<F: Flow>(&self, f: &mut F, x: F::Value) -> Result<F::Value> {
        let mut x = f.layer(&Flatten, &x)?; // [batch, channels * height * width]
        for fc in &self.hidden {
            x = f.layer(fc, &x)?;
            x = f.layer(&Relu, &x)?;
            x = f.layer(&self.dropout, &x)?;
        } // [batch, hidden.last]
        f.layer(&self.out, &x) // [batch, classes]
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
        ModelConfig::Mlp(MlpConfig::default())
    }

    #[test]
    fn logits_are_batch_by_classes() {
        let (_, model) = build(&default_config());
        let classes = test_spec().outputs();
        assert_eq!(output_dims(model.as_ref(), 1), [1, classes]);
        assert_eq!(output_dims(model.as_ref(), 5), [5, classes]);
    }

    /// Table rows `[batch, features]` in, values in their own units out: the head is the
    /// target's width and the output layer undoes the targets' standardisation.
    #[test]
    fn takes_feature_vectors_and_gives_values_in_their_units() {
        use crate::{Target, Values};
        use candle_core::{DType, Device, Tensor};
        let values =
            Values { names: vec!["price".into(), "rent".into()], mean: vec![100.0, 5.0], std: vec![10.0, 1.0] };
        let spec = DataSpec::with_target([6], Target::Values(values)).unwrap();
        let varmap = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = default_config().build(&spec, vb).unwrap();
        let xs = Tensor::zeros((4, 6), DType::F32, &Device::Cpu).unwrap();
        let ys = model.forward_t(&xs, false).unwrap();
        assert_eq!(ys.dims(), [4, 2]);
        // Zero inputs give the biases' output, scaled: near the targets' means, not near 0.
        let first = ys.to_vec2::<f32>().unwrap()[0].clone();
        assert!((first[0] - 100.0).abs() < 30.0 && (first[1] - 5.0).abs() < 3.0, "{first:?}");
        let wrong = Tensor::zeros((4, 7), DType::F32, &Device::Cpu).unwrap();
        assert!(model.forward_t(&wrong, false).unwrap_err().to_string().contains("expected samples [batch, 6]"));
    }

    #[test]
    fn default_parameter_count_follows_the_data() {
        let (varmap, _) = build(&default_config());
        let (inputs, classes) = (test_spec().sample_len(), test_spec().outputs());
        // 203,530 on MNIST.
        assert_eq!(crate::parameter_count(&varmap), inputs * 256 + 256 + 256 * classes + classes);
    }

    #[test]
    fn checkpoint_keys_are_pinned() {
        let (varmap, _) = build(&default_config());
        assert_eq!(crate::parameter_names(&varmap), ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]);
    }

    #[test]
    fn several_hidden_layers_get_one_linear_each() {
        let cfg = ModelConfig::Mlp(MlpConfig { hidden: vec![64, 32], dropout: 0.1 });
        let (varmap, model) = build(&cfg);
        assert_eq!(
            crate::parameter_names(&varmap),
            ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight", "fc3.bias", "fc3.weight"]
        );
        let (inputs, classes) = (test_spec().sample_len(), test_spec().outputs());
        assert_eq!(crate::parameter_count(&varmap), inputs * 64 + 64 + 64 * 32 + 32 + 32 * classes + classes);
        assert_eq!(output_dims(model.as_ref(), 3), [3, classes]);
    }

    #[test]
    fn no_hidden_layers_is_a_linear_classifier() {
        let cfg = ModelConfig::Mlp(MlpConfig { hidden: vec![], dropout: 0.0 });
        let (varmap, _) = build(&cfg);
        assert_eq!(crate::parameter_names(&varmap), ["fc1.bias", "fc1.weight"]);
        let (inputs, classes) = (test_spec().sample_len(), test_spec().outputs());
        assert_eq!(crate::parameter_count(&varmap), inputs * classes + classes);
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
        let run = overfit(&default_config(), 1e-3, 200);
        assert!(run.final_loss <= 0.1 * run.initial_loss, "{run:?}");
    }

    #[test]
    fn partial_args_keep_the_other_defaults() {
        let cfg: ModelConfig =
            serde_json::from_str(r#"{"type": "mlp", "args": { "hidden": [128, 64] } }"#).expect("valid config");
        assert_eq!(cfg, ModelConfig::Mlp(MlpConfig { hidden: vec![128, 64], dropout: 0.2 }));
    }

    #[test]
    fn invalid_args_are_rejected_naming_the_field() {
        let bad_dropout = MlpConfig { dropout: 1.0, ..Default::default() };
        let err = bad_dropout.validate().expect_err("dropout 1 zeroes everything");
        assert_eq!(err.field, "dropout");
        assert!(err.to_string().contains("model.args.dropout"), "{err}");

        let zero_width = MlpConfig { hidden: vec![16, 0], ..Default::default() };
        let err = zero_width.validate().expect_err("a zero-width layer cannot work");
        assert_eq!(err.field, "hidden");

        let varmap = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &candle_core::Device::Cpu);
        let err = ModelConfig::Mlp(zero_width).build(&test_spec(), vb).err().expect("build validates the config");
        assert!(err.to_string().contains("model.args.hidden"), "{err}");
    }
}
