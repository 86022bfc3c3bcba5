//! The graph under construction: nodes in topological order, initializers named after the
//! checkpoint keys, constants with names that cannot clash with them, and the oldest opset the ops
//! used so far need. The layer emitters (`layers.rs`) and the per-model export functions
//! (`models/`) are written against this.

use std::collections::{BTreeMap, HashMap, HashSet};

use candle_core::{DType, Device};
use candle_nn::VarMap;
use onnx_protobuf::{AttributeProto, GraphProto, NodeProto, TensorProto, ValueInfoProto};

use super::OnnxError;
use super::proto::{self, Dim};

/// A tensor of the graph, by name: a graph input, an initializer or a node's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value(String);

impl Value {
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// One parameter, on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

/// The model's parameters by checkpoint key (`conv1.weight`), copied to the host as f32.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights(BTreeMap<String, HostTensor>);

impl Weights {
    /// Every variable of a built or restored model.
    pub fn from_varmap(varmap: &VarMap) -> Result<Self, OnnxError> {
        // A poisoned lock only means another thread panicked while holding it; the values are intact.
        let vars = varmap
            .data()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut weights = BTreeMap::new();
        for (name, var) in vars.iter() {
            let tensor = var
                .as_tensor()
                .to_device(&Device::Cpu)?
                .to_dtype(DType::F32)?;
            let dims = tensor.dims().to_vec();
            let data = tensor.flatten_all()?.to_vec1::<f32>()?;
            weights.insert(name.clone(), HostTensor { dims, data });
        }
        Ok(Self(weights))
    }

    pub fn get(&self, name: &str) -> Option<&HostTensor> {
        self.0.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Builds one ONNX graph. Node and constant names are made unique here, and never equal a
/// checkpoint key, so initializers keep exactly the checkpoint's names.
pub struct GraphBuilder<'w> {
    /// Whose export this is, for error messages (`cnn`).
    model: String,
    weights: &'w Weights,
    inputs: Vec<ValueInfoProto>,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// Every name in use: values produced so far and all checkpoint keys.
    taken: HashSet<String>,
    /// Checkpoint keys already turned into initializers.
    params: HashSet<String>,
    /// Constants by what they hold, so each is stored once.
    constants: HashMap<String, Value>,
    /// The oldest default-domain opset that has every op emitted so far.
    required_opset: i64,
}

impl<'w> GraphBuilder<'w> {
    pub fn new(model: &str, weights: &'w Weights) -> Self {
        Self {
            model: model.to_owned(),
            weights,
            inputs: Vec::new(),
            nodes: Vec::new(),
            initializers: Vec::new(),
            taken: weights.names().map(str::to_owned).collect(),
            params: HashSet::new(),
            constants: HashMap::new(),
            required_opset: 1,
        }
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Declares a float32 graph input.
    pub fn input(&mut self, name: &str, dims: &[Dim]) -> Value {
        let name = self.fresh(name);
        self.inputs.push(proto::value_info_f32(&name, dims));
        Value(name)
    }

    /// The checkpoint tensor `key` as an initializer of the same name, with its shape.
    pub fn param(&mut self, key: &str) -> Result<(Value, Vec<usize>), OnnxError> {
        let tensor = self
            .weights
            .get(key)
            .ok_or_else(|| OnnxError::MissingWeight {
                model: self.model.clone(),
                name: key.to_owned(),
            })?;
        if self.params.insert(key.to_owned()) {
            self.initializers
                .push(proto::tensor_f32(key, &tensor.dims, &tensor.data));
        }
        Ok((Value(key.to_owned()), tensor.dims.clone()))
    }

    /// Whether the checkpoint has the tensor `key` (a layer built without bias has no `.bias`).
    pub fn has_param(&self, key: &str) -> bool {
        self.weights.get(key).is_some()
    }

    /// A float32 constant; `label` says what it is (`gelu/one`) and becomes its name unless taken.
    /// The same label always returns the same constant.
    pub fn constant(&mut self, label: &str, dims: &[usize], data: &[f32]) -> Value {
        if let Some(value) = self.constants.get(label) {
            return value.clone();
        }
        let name = self.fresh(&format!("const/{label}"));
        self.initializers.push(proto::tensor_f32(&name, dims, data));
        let value = Value(name);
        self.constants.insert(label.to_owned(), value.clone());
        value
    }

    /// A scalar float32 constant (broadcast by the elementwise ops).
    pub fn scalar(&mut self, label: &str, value: f32) -> Value {
        self.constant(label, &[], &[value])
    }

    /// Appends a node with one output and returns it. `since` is the opset in which `op` first
    /// has the semantics used here; `label` names the node and its output (made unique).
    pub fn node(
        &mut self,
        op: &str,
        since: i64,
        inputs: &[&Value],
        attributes: Vec<AttributeProto>,
        label: &str,
    ) -> Value {
        self.required_opset = self.required_opset.max(since);
        let name = self.fresh(label);
        self.nodes.push(NodeProto {
            name: name.clone(),
            op_type: op.to_owned(),
            input: inputs.iter().map(|v| v.0.clone()).collect(),
            output: vec![name.clone()],
            attribute: attributes,
            ..Default::default()
        });
        Value(name)
    }

    /// The oldest opset that has every op emitted so far.
    pub fn required_opset(&self) -> i64 {
        self.required_opset
    }

    /// Checkpoint tensors no op has read: the export function misses a layer.
    pub fn unused_params(&self) -> Vec<String> {
        self.weights
            .names()
            .filter(|name| !self.params.contains(*name))
            .map(str::to_owned)
            .collect()
    }

    /// The finished graph, with `value` renamed to `output` and declared as the graph's output.
    pub fn finish(
        mut self,
        graph_name: &str,
        value: &Value,
        output: &str,
        dims: &[Dim],
    ) -> Result<GraphProto, OnnxError> {
        let unused = self.unused_params();
        if !unused.is_empty() {
            return Err(OnnxError::UnusedWeights {
                model: self.model,
                names: unused,
            });
        }
        let output = if self.taken.contains(output) && value.0 != output {
            // Only a checkpoint key or an input can already be called this; keep the graph valid.
            self.fresh(output)
        } else {
            output.to_owned()
        };
        for node in &mut self.nodes {
            for name in node.input.iter_mut().chain(node.output.iter_mut()) {
                if *name == value.0 {
                    name.clone_from(&output);
                }
            }
        }
        Ok(GraphProto {
            name: graph_name.to_owned(),
            node: self.nodes,
            initializer: self.initializers,
            input: self.inputs,
            output: vec![proto::value_info_f32(&output, dims)],
            ..Default::default()
        })
    }

    /// `base`, or `base_1`, `base_2`... whichever is not taken yet; then taken.
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_owned();
        let mut n = 0;
        while self.taken.contains(&name) {
            n += 1;
            name = format!("{base}_{n}");
        }
        self.taken.insert(name.clone());
        name
    }
}
