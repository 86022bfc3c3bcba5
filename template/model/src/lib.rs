//! The models, the layers they are built from, and the registry that picks one from `config.json`.
//!
//! Every model turns samples `[batch, ...input_shape]` (f32: images `[batch, channels, height,
//! width]`, table rows `[batch, features]`) into outputs `[batch, outputs]` (logits of the classes
//! or labels, or values), with the shape and the target taken from the data ([`DataSpec`]), and is built from a
//! `VarBuilder`, so the same code initialises a fresh model for training and loads a checkpoint for
//! inference; the `.pp("name")` paths are the checkpoint keys. Each model lives in its own file behind
//! the feature of the same name, because a generated project ships exactly one of them.
//!
//! A model's forward pass is written once, as [`Module::run`] over a [`Flow`]: the same code trains
//! with candle and records the ONNX graph (see [`module`]). The layers: [`Linear`](linear::Linear),
//! [`Conv2d`](conv::Conv2d) (stride, padding, depthwise), [`BatchNorm2d`](batch_norm::BatchNorm2d),
//! [`LayerNorm`], [`ChannelNorm`], [`Dropout`], [`Relu`](activation::Relu),
//! [`GeluErf`](activation::GeluErf), [`Silu`](activation::Silu), [`MaxPool2d`](pool::MaxPool2d),
//! [`AvgPool2d`](pool::AvgPool2d), [`GlobalAvgPool`](pool::GlobalAvgPool),
//! [`Flatten`](pool::Flatten), residual addition (`f.add`) and [`Sequential`]. Their fast CPU
//! paths are the `kernels` crate's (framework code that needs no editing).

#[cfg(not(any(feature = "mlp", feature = "cnn", feature = "convnext")))]
compile_error!(
    "the `model` crate needs a model: enable one of its features `mlp`, `cnn` or `convnext` \
     (the generated Cargo.toml enables the shipped model by default)"
);

pub mod activation;
pub mod args;
pub mod batch_norm;
pub mod conv;
mod dropout;
mod error;
pub mod graph;
pub mod init;
pub mod layer_norm;
pub mod linear;
pub mod module;
pub mod output;
pub mod pool;
mod spec;

#[cfg(test)]
mod test_support;

use std::collections::HashMap;

use candle_core::Var;
use candle_nn::{VarBuilder, VarMap};

pub use dropout::{Dropout, set_dropout_stream};
pub use error::ConfigError;
pub use layer_norm::{ChannelNorm, LayerNorm};
pub use module::{Candle, Classifier, Export, Flow, Layer, Module, Network, Sequential};
pub use spec::{DataSpec, Target, TaskKind, Values};

/// Whether the VarMap entry `name` is layer state (a batch norm's running statistics), which
/// checkpoints save but no gradient or optimiser touches.
pub fn is_state(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

/// The trainable parameters of a built model (every VarMap entry but [`is_state`] ones), by name.
pub fn trainable_vars(varmap: &VarMap) -> HashMap<String, Var> {
    let data = varmap.data().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    data.iter().filter(|(name, _)| !is_state(name)).map(|(n, v)| (n.clone(), v.clone())).collect()
}

/// Declares the model registry: the model modules, `ModelConfig` (config.json's
/// `"model": {"type": ..., "args": ...}`) and its `name`, `validate` and `build`. Each entry reads
/// `Variant(module::Config => Model)`: `module` is the file `src/module.rs` and also the `"type"`
/// in config.json (so `Variant` must be `module` in CamelCase); `Config` needs `Default` and
/// `validate()`, and `Model::new(&Config, &DataSpec, VarBuilder)` builds a [`Module`] for the
/// data's shape and classes (or says which shapes it cannot take).
macro_rules! registry {
    ($( $(#[$attr:meta])* $variant:ident($module:ident::$config:ident => $model:ident) ),+ $(,)?) => {
        $( $(#[$attr])* pub mod $module; )+

        /// The model registry: config.json's `"model": {"type": "cnn", "args": {}}`.
        ///
        /// `args` may be `{}`, `null` or left out for the defaults; a key a model does not know is an
        /// error that names it, and so is a `type` this project does not ship.
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "type", content = "args", rename_all = "snake_case", deny_unknown_fields)]
        pub enum ModelConfig {
            $( $(#[$attr])* $variant($module::$config), )+
        }

        impl Default for ModelConfig {
            /// The first registered model, with its default args.
            #[allow(unreachable_code)] // with several models, only the first return is reached
            fn default() -> Self {
                $( $(#[$attr])* { return Self::$variant(Default::default()); } )+
            }
        }

        impl ModelConfig {
            /// The `type` string in `config.json`; also a good run-directory or file name.
            pub fn name(&self) -> &'static str {
                match self {
                    $( $(#[$attr])* Self::$variant(_) => stringify!($module), )+
                }
            }

            /// Checks the args without building anything, so a bad config fails before data is loaded.
            pub fn validate(&self) -> Result<(), ConfigError> {
                match self {
                    $( $(#[$attr])* Self::$variant(cfg) => cfg.validate(), )+
                }
            }

            /// Builds the model for `spec`'s samples and targets. With a `VarBuilder` over a fresh
            /// `VarMap` this creates and initialises the parameters; over a loaded checkpoint it
            /// reads them by name.
            pub fn build(&self, spec: &DataSpec, vb: VarBuilder) -> candle_core::Result<Box<dyn Classifier>> {
                spec.check().map_err(candle_core::Error::Msg)?;
                Ok(match self {
                    $( $(#[$attr])* Self::$variant(cfg) => Box::new(Network::new(spec, $module::$model::new(cfg, spec, vb)?)), )+
                })
            }
        }
    };
}

// The registry: one line per model. To add your own, write src/my_net.rs and add
//     MyNet(my_net::MyNetConfig => MyNet),
registry! {
    #[cfg(feature = "mlp")]
    Mlp(mlp::MlpConfig => Mlp),
    #[cfg(feature = "cnn")]
    Cnn(cnn::CnnConfig => Cnn),
    #[cfg(feature = "convnext")]
    Convnext(convnext::ConvNextConfig => ConvNext),
}

/// The number of trainable scalars, for the log line a user compares against the paper or the seed.
pub fn parameter_count(varmap: &VarMap) -> usize {
    trainable_vars(varmap).values().map(|var| var.elem_count()).sum()
}

/// The checkpoint keys (safetensors names) of a built model, sorted.
pub fn parameter_names(varmap: &VarMap) -> Vec<String> {
    // A poisoned lock only means another thread panicked while holding it; the names are still valid.
    let data = varmap.data().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut names: Vec<String> = data.keys().cloned().collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::test_spec;
    use candle_core::{DType, Device, Tensor};

    #[test]
    fn input_of_the_wrong_shape_is_rejected_with_the_expected_shape() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let spec = test_spec();
        let model = ModelConfig::default().build(&spec, vb).expect("default model builds");
        let [c, h, w] = spec.image_shape().expect("the test spec is images");
        let xs = Tensor::zeros((2, h, w), DType::F32, &Device::Cpu).expect("zeros");
        let err = model.forward_t(&xs, false).expect_err("3-d input must be rejected");
        assert!(
            err.to_string().contains(&format!("expected images [batch, {c}, {h}, {w}], got [2, {h}, {w}]")),
            "{err}"
        );
    }

    /// `name()` comes from the module name, serde's `type` from the variant: they must agree.
    #[test]
    fn the_registered_name_is_the_config_type() {
        let config = ModelConfig::default();
        let json = serde_json::to_value(&config).expect("serializes");
        assert_eq!(json["type"], config.name());
    }

    #[test]
    fn parameter_names_are_sorted_and_match_the_count() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        ModelConfig::default().build(&test_spec(), vb).expect("default model builds");
        let names = parameter_names(&varmap);
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), varmap.all_vars().len());
        assert!(names.iter().all(|n| n.ends_with(".weight") || n.ends_with(".bias") || is_state(n)), "{names:?}");
    }
}
