//! One export function per model, each the ONNX twin of its model's `forward_t` in model/src/,
//! and the dispatch from the config's model to it.
//!
//! To export a model you add: write `models/my_net.rs` with
//! `pub fn export(g: &mut GraphBuilder, cfg: &MyNetConfig, x: &Value) -> Result<Value, OnnxError>`
//! chaining the emitters of `layers.rs` in the order of your `forward_t` (with the same
//! VarBuilder prefixes: they are the checkpoint keys), declare it below and add its arm to
//! [`emit`] (behind the same feature as its registry entry in model/src/lib.rs, if any, which
//! inference/Cargo.toml then declares too). Export verification compares it with your model.

#[cfg(feature = "cnn")]
mod cnn;
#[cfg(feature = "convnext")]
mod convnext;
#[cfg(feature = "mlp")]
mod mlp;

use model::ModelConfig;

use super::OnnxError;
use super::graph::{GraphBuilder, Value};

/// Emits the configured model: `x` is the normalised input `[batch, channels, height, width]`, the
/// result the logits `[batch, classes]`.
pub fn emit(g: &mut GraphBuilder, model: &ModelConfig, x: &Value) -> Result<Value, OnnxError> {
    // A model registered in model/src/lib.rs without an arm here fails to compile on this match:
    // add its export function.
    match model {
        #[cfg(feature = "mlp")]
        ModelConfig::Mlp(cfg) => mlp::export(g, cfg, x),
        #[cfg(feature = "cnn")]
        ModelConfig::Cnn(cfg) => cnn::export(g, cfg, x),
        #[cfg(feature = "convnext")]
        ModelConfig::Convnext(cfg) => convnext::export(g, cfg, x),
    }
}
