//! The ONNX twin of model/src/mlp.rs: flatten, then Linear + ReLU per hidden layer (dropout is
//! the identity at inference and left out), then the output Linear.

use model::mlp::MlpConfig;

use crate::onnx::OnnxError;
use crate::onnx::graph::{GraphBuilder, Value};

pub fn export(g: &mut GraphBuilder, cfg: &MlpConfig, x: &Value) -> Result<Value, OnnxError> {
    let mut x = g.flatten(x, 1); // [batch, 784]
    for i in 1..=cfg.hidden.len() {
        x = g.linear(&x, &format!("fc{i}"))?;
        x = g.relu(&x);
    } // [batch, hidden.last]
    g.linear(&x, &format!("fc{}", cfg.hidden.len() + 1)) // [batch, 10]
}
