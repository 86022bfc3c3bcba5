//! The graph a model records ([`model::graph::Graph`], plain data) as ONNX protobuf messages.

use model::graph::{Attr, Dim, Graph, Value};
use onnx_protobuf::{GraphProto, NodeProto};

use super::proto::{self, attr_float, attr_int, attr_ints};

/// The recorded graph as a `GraphProto` whose output is `output` (of shape `dims`). With
/// `extra_outputs`, the values marked for each layer become outputs too (for locating the first
/// layer whose output differs), declared as float32 of unknown shape.
pub fn graph_proto(g: &Graph, name: &str, output: &Value, dims: &[Dim], extra_outputs: bool) -> GraphProto {
    let node = g
        .nodes()
        .iter()
        .map(|n| NodeProto {
            name: n.name.clone(),
            op_type: n.op.clone(),
            input: n.inputs.clone(),
            output: vec![n.output.clone()],
            attribute: n
                .attributes
                .iter()
                .map(|(key, value)| match value {
                    Attr::Int(i) => attr_int(key, *i),
                    Attr::Ints(i) => attr_ints(key, i),
                    Attr::Float(f) => attr_float(key, *f),
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    let mut outputs = vec![proto::value_info_f32(output.name(), dims)];
    if extra_outputs {
        let mut seen = std::collections::HashSet::from([output.name().to_owned()]);
        for (_, value) in g.marks() {
            if seen.insert(value.name().to_owned()) && g.nodes().iter().any(|n| n.output == value.name()) {
                outputs.push(proto::value_info_f32_any_shape(value.name()));
            }
        }
    }
    GraphProto {
        name: name.to_owned(),
        node,
        initializer: g.initializers().iter().map(|i| proto::tensor_f32(&i.name, &i.dims, &i.data)).collect(),
        input: g.inputs().iter().map(|(name, dims)| proto::value_info_f32(name, dims)).collect(),
        output: outputs,
        ..Default::default()
    }
}

/// The model's variables that no layer put into the graph: a layer the model builds but its
/// `run` never calls.
pub fn unused_variables(g: &Graph, names: &[String]) -> Vec<String> {
    names.iter().filter(|name| !g.initializers().iter().any(|i| &i.name == *name)).cloned().collect()
}
