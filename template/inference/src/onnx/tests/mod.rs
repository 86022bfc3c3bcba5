//! Tests of the ONNX export: each library layer's emission against its forward pass through tract (`ops`), the
//! structural checker (`check`), exporting the shipped model end to end (`export`), and running
//! the exported file (`run`).

mod check;
mod export;
mod fixture;
mod ops;
mod run;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use onnx_protobuf::{Message, ModelProto, OperatorSetIdProto};
use protobuf::MessageField;
use tract_onnx::prelude::{Framework, InferenceModelExt, IntoRunnable, IntoTValue, Tensor as TractTensor, tvec};

use model::graph::{Dim, Graph, Value};

use super::graph::graph_proto;
use super::{DEFAULT_OPSET, IR_VERSION};

/// A fresh VarMap and a VarBuilder over it, on the CPU.
pub(super) fn varmap() -> (VarMap, VarBuilder<'static>) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    (varmap, vb)
}

/// Adds noise to every variable, `scale` times its root mean square (at least 0.1), so that
/// ones-and-zeros initialisations (LayerNorm) cannot hide a mistake.
pub(super) fn perturb(varmap: &VarMap, scale: f64) {
    for var in varmap.all_vars() {
        let rms =
            var.as_tensor().sqr().and_then(|t| t.mean_all()).and_then(|t| t.to_scalar::<f32>()).expect("rms").sqrt();
        let std = scale * f64::from(rms).max(0.1);
        let noise = Tensor::randn(0f32, 1., var.shape(), &Device::Cpu).expect("noise");
        let value = (var.as_tensor() + (noise * std).expect("scale")).expect("add");
        var.set(&value).expect("same shape");
    }
}

pub(super) fn randn(dims: &[usize]) -> Tensor {
    Tensor::randn(0f32, 1., dims, &Device::Cpu).expect("randn")
}

/// A one-input, one-output model: `input [batch, rest of input_dims]`, what `emit` records,
/// `output [batch, rest of output_dims]`, at IR 8 and the default opset.
pub(super) fn op_model(
    input_dims: &[usize],
    output_dims: &[usize],
    emit: impl FnOnce(&mut Graph, &Value) -> candle_core::Result<Value>,
) -> ModelProto {
    let dims = |d: &[usize]| {
        std::iter::once(Dim::Symbolic("batch".to_owned()))
            .chain(d[1..].iter().map(|&n| Dim::Fixed(n)))
            .collect::<Vec<_>>()
    };
    let mut g = Graph::new();
    let x = g.input("input", dims(input_dims));
    let y = emit(&mut g, &x).expect("the emission succeeds");
    let y = g.rename(&y, "output");
    let graph = graph_proto(&g, "op", &y, &dims(output_dims), false);
    ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: DEFAULT_OPSET, ..Default::default() }],
        graph: MessageField::some(graph),
        ..Default::default()
    }
}

/// Runs a serialized one-input model in tract: the output's shape and values.
pub(super) fn tract_run(model: &ModelProto, x: &Tensor) -> (Vec<usize>, Vec<f32>) {
    let bytes = model.write_to_bytes().expect("serializes");
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .unwrap_or_else(|e| panic!("tract loads the graph: {e:#}"));
    let values = x.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("values");
    let input = TractTensor::from_shape(x.dims(), &values).expect("tract tensor");
    let outputs = plan.run(tvec![input.into_tvalue()]).unwrap_or_else(|e| panic!("tract runs the graph: {e:#}"));
    let view = outputs[0].to_plain_array_view::<f32>().expect("f32 output");
    (view.shape().to_vec(), view.iter().copied().collect())
}

pub(super) use super::verify::max_abs_diff;
