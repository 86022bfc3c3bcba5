//! Small constructors for the ONNX protobuf messages the exporter writes (tensors, attributes,
//! typed value declarations), so the graph code reads as ops rather than as protobuf plumbing.

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::Dimension;
use onnx_protobuf::tensor_shape_proto::dimension::Value as DimValue;
use onnx_protobuf::type_proto::{self, Tensor as TensorType};
use onnx_protobuf::{AttributeProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto};
use protobuf::{EnumOrUnknown, MessageField};

/// One dimension of a graph input or output: fixed, or named and chosen at run time (`batch`).
pub use model::graph::Dim;

/// A float32 tensor stored as little-endian `raw_data`, the layout every runtime reads fastest.
pub fn tensor_f32(name: &str, dims: &[usize], data: &[f32]) -> TensorProto {
    let raw_data = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    TensorProto {
        name: name.to_owned(),
        dims: dims.iter().map(|&d| as_i64(d)).collect(),
        data_type: DataType::FLOAT as i32,
        raw_data,
        ..Default::default()
    }
}

/// An `INT` attribute.
pub fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        type_: EnumOrUnknown::new(AttributeType::INT),
        i: value,
        ..Default::default()
    }
}

/// An `INTS` attribute.
pub fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        type_: EnumOrUnknown::new(AttributeType::INTS),
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// A `FLOAT` attribute.
pub fn attr_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        type_: EnumOrUnknown::new(AttributeType::FLOAT),
        f: value,
        ..Default::default()
    }
}

/// A float32 graph input or output of the given shape.
pub fn value_info_f32(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(n) => DimValue::DimValue(as_i64(*n)),
                Dim::Symbolic(s) => DimValue::DimParam(s.clone()),
            }),
            ..Default::default()
        })
        .collect();
    let tensor = TensorType {
        elem_type: DataType::FLOAT as i32,
        shape: MessageField::some(TensorShapeProto { dim, ..Default::default() }),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.to_owned(),
        type_: MessageField::some(TypeProto {
            value: Some(type_proto::Value::TensorType(tensor)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A float32 graph output whose shape tract infers (a layer's output, for diagnosis).
pub fn value_info_f32_any_shape(name: &str) -> ValueInfoProto {
    let tensor = TensorType { elem_type: DataType::FLOAT as i32, ..Default::default() };
    ValueInfoProto {
        name: name.to_owned(),
        type_: MessageField::some(TypeProto {
            value: Some(type_proto::Value::TensorType(tensor)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A metadata entry.
pub fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto { key: key.to_owned(), value: value.to_owned(), ..Default::default() }
}

/// Sizes and indices in an ONNX file are int64; a tensor dimension always fits.
pub fn as_i64(n: usize) -> i64 {
    i64::try_from(n).expect("a tensor dimension fits in i64")
}
