//! The ONNX graph a model records when it is exported: nodes in topological order with ONNX
//! operator names and attributes, initializers named after the checkpoint keys, constants, and the
//! oldest opset the ops need. Plain data, no protobuf: `inference` turns it into an ONNX file.
//! Layers write into it in their `emit` (see [`crate::Layer`]); a model never does by hand.

use std::collections::{HashMap, HashSet};

use candle_core::{DType, Device, Result, Tensor};

/// A tensor of the graph, by name: the input, an initializer or a node's output.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Value(String);

impl Value {
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// A node attribute, as ONNX has them.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
}

/// One operator application with one output.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    /// The ONNX operator (`Conv`, `Gemm`, ...), default domain.
    pub op: String,
    pub inputs: Vec<String>,
    pub output: String,
    pub attributes: Vec<(String, Attr)>,
}

/// A float32 tensor stored in the graph: a parameter (named as in the checkpoint) or a constant.
#[derive(Debug, Clone, PartialEq)]
pub struct Initializer {
    pub name: String,
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

/// A dimension of the graph input: fixed, or named and free (the batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    Symbolic(String),
}

/// The graph being recorded.
#[derive(Debug, Default)]
pub struct Graph {
    inputs: Vec<(String, Vec<Dim>)>,
    nodes: Vec<Node>,
    initializers: Vec<Initializer>,
    taken: HashSet<String>,
    constants: HashMap<String, Value>,
    required_opset: i64,
    /// Each layer's output, by the layer's path, in the order they ran.
    marks: Vec<(String, Value)>,
}

impl Graph {
    pub fn new() -> Self {
        Self { required_opset: 1, ..Default::default() }
    }

    /// Declares a float32 graph input.
    pub fn input(&mut self, name: &str, dims: Vec<Dim>) -> Value {
        let name = self.fresh(name);
        self.inputs.push((name.clone(), dims));
        Value(name)
    }

    /// The parameter `tensor` as an initializer named `name` (its checkpoint key), stored once.
    /// The same name twice is the same parameter (a shared layer); with other values it is an
    /// error naming it (two layers built under one VarBuilder path).
    pub fn param(&mut self, name: &str, tensor: &Tensor) -> Result<Value> {
        let host = tensor.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let data = host.flatten_all()?.to_vec1::<f32>()?;
        if let Some(existing) = self.initializers.iter().find(|i| i.name == name) {
            if existing.dims != host.dims() || existing.data != data {
                candle_core::bail!(
                    "two layers put different parameters under the name `{name}`: build each with its own \
                     VarBuilder path (vb.pp(\"...\"))"
                );
            }
            return Ok(Value(name.to_owned()));
        }
        if !self.taken.insert(name.to_owned()) {
            candle_core::bail!("export: the parameter name `{name}` is already a node's name");
        }
        self.initializers.push(Initializer { name: name.to_owned(), dims: host.dims().to_vec(), data });
        Ok(Value(name.to_owned()))
    }

    /// A float32 constant; `label` says what it is (`gelu/one`) and becomes its name (prefixed
    /// `const/`, so it never equals a checkpoint key). The same label with the same values
    /// returns the same constant; other values get a constant of their own.
    pub fn constant(&mut self, label: &str, dims: &[usize], data: &[f32]) -> Value {
        if let Some(value) = self.constants.get(label) {
            let same = self.initializers.iter().any(|i| i.name == value.name() && i.dims == dims && i.data == data);
            if same {
                return value.clone();
            }
            let name = self.fresh(&format!("const/{label}"));
            self.initializers.push(Initializer { name: name.clone(), dims: dims.to_vec(), data: data.to_vec() });
            return Value(name);
        }
        let name = self.fresh(&format!("const/{label}"));
        self.initializers.push(Initializer { name: name.clone(), dims: dims.to_vec(), data: data.to_vec() });
        let value = Value(name);
        self.constants.insert(label.to_owned(), value.clone());
        value
    }

    /// A scalar float32 constant (broadcast by the elementwise ops).
    pub fn scalar(&mut self, label: &str, value: f32) -> Value {
        self.constant(label, &[], &[value])
    }

    /// Appends a node and returns its output. `since` is the opset in which `op` first has the
    /// semantics used; `label` names the node and its output (made unique).
    pub fn node(
        &mut self,
        op: &str,
        since: i64,
        inputs: &[&Value],
        attributes: Vec<(&str, Attr)>,
        label: &str,
    ) -> Value {
        self.required_opset = self.required_opset.max(since);
        let name = self.fresh(label);
        self.nodes.push(Node {
            name: name.clone(),
            op: op.to_owned(),
            inputs: inputs.iter().map(|v| v.0.clone()).collect(),
            output: name.clone(),
            attributes: attributes.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        });
        Value(name)
    }

    /// Records that `value` is the output of the layer at `path` (for locating a difference).
    pub fn mark(&mut self, path: &str, value: &Value) {
        self.marks.push((path.to_owned(), value.clone()));
    }

    pub fn inputs(&self) -> &[(String, Vec<Dim>)] {
        &self.inputs
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn initializers(&self) -> &[Initializer] {
        &self.initializers
    }

    /// Each layer's output by path, in the order the layers ran.
    pub fn marks(&self) -> &[(String, Value)] {
        &self.marks
    }

    /// The oldest opset that has every op recorded so far.
    pub fn required_opset(&self) -> i64 {
        self.required_opset
    }

    /// Renames `value` (a node's output) to `name` everywhere, for the graph's output.
    pub fn rename(&mut self, value: &Value, name: &str) -> Value {
        if value.0 == name {
            return value.clone();
        }
        let name = self.fresh(name);
        for node in &mut self.nodes {
            for n in node.inputs.iter_mut().chain(std::iter::once(&mut node.output)) {
                if *n == value.0 {
                    n.clone_from(&name);
                }
            }
        }
        for (_, v) in &mut self.marks {
            if v.0 == value.0 {
                v.0.clone_from(&name);
            }
        }
        Value(name)
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

/// `usize` as an ONNX integer attribute.
pub fn int(value: usize) -> i64 {
    i64::try_from(value).expect("a model dimension fits in i64")
}
