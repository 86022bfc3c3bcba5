//! The structural rules `onnx.checker.check_model` enforces, checked in Rust before a file is
//! written: a version and a default opset, a topologically sorted graph where every value is
//! produced once, well-formed initializers and attributes, produced outputs, unique metadata.
//! Each error names the node or tensor at fault.

use std::collections::{HashMap, HashSet};

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{ModelProto, TensorProto};
use protobuf::Enum;

use super::opset::max_opset;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StructureError {
    #[error("ir_version is not set")]
    NoIrVersion,
    #[error("ir_version {0} is unknown to this checker (it knows 3 to 11)")]
    UnknownIrVersion(i64),
    #[error("there is no opset_import for the default domain \"\"")]
    NoDefaultOpset,
    #[error("opset {opset} cannot be used with IR version {ir_version}, which allows at most opset {max}")]
    OpsetTooNew { ir_version: i64, opset: i64, max: i64 },
    #[error("the model has no graph")]
    NoGraph,
    #[error("node {node:?} has no op_type")]
    NoOpType { node: String },
    #[error(
        "node {node:?} ({op}) reads {input:?} before node {producer:?} produces it: the nodes are not topologically sorted"
    )]
    NotTopological { node: String, op: String, input: String, producer: String },
    #[error("node {node:?} ({op}) reads {input:?}, which no input, initializer or node produces")]
    Undefined { node: String, op: String, input: String },
    #[error("{name:?} is produced twice: as {first} and as {second}")]
    Duplicate { name: String, first: String, second: String },
    #[error("{what} has an empty name")]
    EmptyName { what: String },
    #[error("attribute {attribute:?} of node {node:?} has no type")]
    AttributeWithoutType { node: String, attribute: String },
    #[error(
        "initializer {tensor:?} has dims {dims:?} ({elements} elements, {expected} bytes) but {got} bytes of raw_data"
    )]
    RawDataLength { tensor: String, dims: Vec<i64>, elements: i64, expected: i64, got: usize },
    #[error("initializer {tensor:?} has the negative dims {dims:?}")]
    NegativeDim { tensor: String, dims: Vec<i64> },
    #[error("graph output {output:?} is not produced by any node, input or initializer")]
    MissingOutput { output: String },
    #[error("metadata key {key:?} appears more than once")]
    DuplicateMetadataKey { key: String },
}

/// Checks `model` against the rules above; the first violation is the error.
pub fn check_model(model: &ModelProto) -> Result<(), StructureError> {
    if model.ir_version <= 0 {
        return Err(StructureError::NoIrVersion);
    }
    let max = max_opset(model.ir_version).ok_or(StructureError::UnknownIrVersion(model.ir_version))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .ok_or(StructureError::NoDefaultOpset)?;
    if opset.version > max {
        return Err(StructureError::OpsetTooNew { ir_version: model.ir_version, opset: opset.version, max });
    }
    let mut keys = HashSet::new();
    for entry in &model.metadata_props {
        if !keys.insert(entry.key.as_str()) {
            return Err(StructureError::DuplicateMetadataKey { key: entry.key.clone() });
        }
    }
    let graph = model.graph.as_ref().ok_or(StructureError::NoGraph)?;

    // Every value and what produced it, in graph order.
    let mut produced: HashMap<&str, String> = HashMap::new();
    for input in &graph.input {
        produce(&mut produced, &input.name, || format!("graph input {:?}", input.name))?;
    }
    for (i, tensor) in graph.initializer.iter().enumerate() {
        produce(&mut produced, &tensor.name, || format!("initializer #{i} {:?}", tensor.name))?;
        check_tensor_data(tensor)?;
    }
    let producers: HashMap<&str, &str> =
        graph.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n.name.as_str()))).collect();
    for node in &graph.node {
        if node.op_type.is_empty() {
            return Err(StructureError::NoOpType { node: node.name.clone() });
        }
        for input in node.input.iter().filter(|i| !i.is_empty()) {
            if produced.contains_key(input.as_str()) {
                continue;
            }
            return Err(match producers.get(input.as_str()) {
                Some(producer) => StructureError::NotTopological {
                    node: node.name.clone(),
                    op: node.op_type.clone(),
                    input: input.clone(),
                    producer: (*producer).to_owned(),
                },
                None => StructureError::Undefined {
                    node: node.name.clone(),
                    op: node.op_type.clone(),
                    input: input.clone(),
                },
            });
        }
        for attribute in &node.attribute {
            if attribute.type_.enum_value() == Ok(AttributeType::UNDEFINED) {
                return Err(StructureError::AttributeWithoutType {
                    node: node.name.clone(),
                    attribute: attribute.name.clone(),
                });
            }
        }
        for output in node.output.iter().filter(|o| !o.is_empty()) {
            produce(&mut produced, output, || format!("the output of node {:?} ({})", node.name, node.op_type))?;
        }
    }
    for output in &graph.output {
        if !produced.contains_key(output.name.as_str()) {
            return Err(StructureError::MissingOutput { output: output.name.clone() });
        }
    }
    Ok(())
}

/// Records that `by` produces `name`, which must be non-empty and not produced before.
fn produce<'a>(
    produced: &mut HashMap<&'a str, String>,
    name: &'a str,
    by: impl FnOnce() -> String,
) -> Result<(), StructureError> {
    if name.is_empty() {
        return Err(StructureError::EmptyName { what: by() });
    }
    if let Some(first) = produced.get(name) {
        return Err(StructureError::Duplicate { name: name.to_owned(), first: first.clone(), second: by() });
    }
    produced.insert(name, by());
    Ok(())
}

/// Raw data must hold exactly `product(dims)` elements of the tensor's type.
fn check_tensor_data(tensor: &TensorProto) -> Result<(), StructureError> {
    if tensor.dims.iter().any(|&d| d < 0) {
        return Err(StructureError::NegativeDim { tensor: tensor.name.clone(), dims: tensor.dims.clone() });
    }
    let element_size = match DataType::from_i32(tensor.data_type) {
        Some(DataType::FLOAT | DataType::INT32) => 4,
        Some(DataType::DOUBLE | DataType::INT64) => 8,
        // Other types are not written by this exporter; nothing to compare against.
        _ => return Ok(()),
    };
    let elements: i64 = tensor.dims.iter().product();
    if tensor.raw_data.is_empty() && !tensor.float_data.is_empty() {
        // Values stored as float_data instead; this exporter never writes them.
        return Ok(());
    }
    let expected = elements.saturating_mul(element_size);
    if i64::try_from(tensor.raw_data.len()) != Ok(expected) {
        return Err(StructureError::RawDataLength {
            tensor: tensor.name.clone(),
            dims: tensor.dims.clone(),
            elements,
            expected,
            got: tensor.raw_data.len(),
        });
    }
    Ok(())
}
