//! The ONNX twin of model/src/cnn.rs: conv1 -> ReLU -> conv2 -> ReLU -> max-pool -> flatten ->
//! fc1 -> ReLU -> fc2 (the two dropouts are the identity at inference and left out).

use candle_nn::Conv2dConfig;
use model::cnn::CnnConfig;

use crate::onnx::OnnxError;
use crate::onnx::graph::{GraphBuilder, Value};

/// The max-pool's kernel and stride, as `POOL` in model/src/cnn.rs.
const POOL: usize = 2;

pub fn export(g: &mut GraphBuilder, _cfg: &CnnConfig, x: &Value) -> Result<Value, OnnxError> {
    let conv = Conv2dConfig::default();
    let x = g.conv2d(x, "conv1", &conv)?; // [batch, 32, 26, 26]
    let x = g.relu(&x);
    let x = g.conv2d(&x, "conv2", &conv)?; // [batch, 64, 24, 24]
    let x = g.relu(&x);
    let x = g.max_pool2d(&x, POOL, POOL); // [batch, 64, 12, 12]
    let x = g.flatten(&x, 1); // [batch, 9216]
    let x = g.linear(&x, "fc1")?; // [batch, 128]
    let x = g.relu(&x);
    g.linear(&x, "fc2") // [batch, 10]
}
