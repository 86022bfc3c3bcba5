//! The structural checker catches what `onnx.checker` would reject, naming the node or tensor.

use model::Layer;
use model::activation::Relu;
use model::linear::linear;
use onnx_protobuf::ModelProto;
use onnx_protobuf::attribute_proto::AttributeType;
use protobuf::EnumOrUnknown;

use super::{op_model, randn, varmap};
use crate::onnx::proto::entry;
use crate::onnx::{StructureError, check_model};

/// input -> fc1 (Gemm) -> Relu -> fc2 (Gemm) -> output: three nodes, four initializers.
fn two_layer_model() -> ModelProto {
    let (varmap, vb) = varmap();
    let fc1 = linear(6, 5, vb.pp("fc1")).expect("fc1");
    let fc2 = linear(5, 3, vb.pp("fc2")).expect("fc2");
    let x = randn(&[2, 6]);
    let want = fc1.forward_t(&x, false).and_then(|h| h.relu()).and_then(|h| fc2.forward_t(&h, false)).expect("forward");
    drop(varmap);
    op_model(x.dims(), want.dims(), |g, x| {
        let h = fc1.emit(g, x)?;
        let h = Relu.emit(g, &h)?;
        fc2.emit(g, &h)
    })
}

fn graph_mut(model: &mut ModelProto) -> &mut onnx_protobuf::GraphProto {
    model.graph.as_mut().expect("the model has a graph")
}

#[test]
fn a_well_formed_graph_passes() {
    check_model(&two_layer_model()).expect("valid");
}

#[test]
fn nodes_out_of_topological_order_are_rejected_naming_the_node() {
    let mut model = two_layer_model();
    graph_mut(&mut model).node.swap(0, 1); // Relu now reads fc1's output before fc1 runs.
    let err = check_model(&model).expect_err("not sorted");
    assert!(
        matches!(&err, StructureError::NotTopological { node, producer, .. }
            if node == "Relu" && producer == "fc1/Gemm"),
        "{err:?}"
    );
    assert!(err.to_string().contains("not topologically sorted"), "{err}");
}

#[test]
fn a_name_produced_twice_is_rejected() {
    let mut model = two_layer_model();
    // The Relu's output takes the name of an initializer.
    let graph = graph_mut(&mut model);
    let relu = graph.node.iter_mut().find(|n| n.op_type == "Relu").expect("relu");
    relu.output[0] = "fc2.weight".to_owned();
    let err = check_model(&model).expect_err("duplicate");
    assert!(matches!(&err, StructureError::Duplicate { name, .. } if name == "fc2.weight"), "{err:?}");

    let mut model = two_layer_model();
    let graph = graph_mut(&mut model);
    let copy = graph.initializer[0].clone();
    graph.initializer.push(copy);
    let err = check_model(&model).expect_err("duplicate initializer");
    assert!(matches!(err, StructureError::Duplicate { .. }), "{err:?}");
}

#[test]
fn raw_data_of_the_wrong_length_is_rejected_naming_the_tensor() {
    let mut model = two_layer_model();
    let graph = graph_mut(&mut model);
    let weight = graph.initializer.iter_mut().find(|t| t.name == "fc1.weight").expect("fc1.weight");
    weight.raw_data.truncate(weight.raw_data.len() - 4);
    let err = check_model(&model).expect_err("short raw_data");
    assert_eq!(
        err,
        StructureError::RawDataLength {
            tensor: "fc1.weight".to_owned(),
            dims: vec![5, 6],
            elements: 30,
            expected: 120,
            got: 116,
        }
    );
}

#[test]
fn an_opset_the_ir_version_cannot_import_is_rejected() {
    let mut model = two_layer_model();
    model.ir_version = 7; // IR 7 stops at opset 14; the model imports 17.
    let err = check_model(&model).expect_err("IR 7 with opset 17");
    assert_eq!(err, StructureError::OpsetTooNew { ir_version: 7, opset: 17, max: 14 });
    model.ir_version = 0;
    assert_eq!(check_model(&model), Err(StructureError::NoIrVersion));
    let mut model = two_layer_model();
    model.opset_import[0].domain = "com.example".to_owned();
    assert_eq!(check_model(&model), Err(StructureError::NoDefaultOpset));
}

#[test]
fn an_attribute_without_type_is_rejected_naming_node_and_attribute() {
    let mut model = two_layer_model();
    let gemm = graph_mut(&mut model).node.iter_mut().find(|n| n.name == "fc2/Gemm").expect("fc2");
    gemm.attribute[0].type_ = EnumOrUnknown::new(AttributeType::UNDEFINED);
    let err = check_model(&model).expect_err("untyped attribute");
    assert_eq!(
        err,
        StructureError::AttributeWithoutType { node: "fc2/Gemm".to_owned(), attribute: "alpha".to_owned() }
    );
}

#[test]
fn an_output_nothing_produces_and_an_undefined_input_are_rejected() {
    let mut model = two_layer_model();
    graph_mut(&mut model).output[0].name = "nowhere".to_owned();
    assert_eq!(check_model(&model), Err(StructureError::MissingOutput { output: "nowhere".to_owned() }));
    let mut model = two_layer_model();
    graph_mut(&mut model).node[0].input[1] = "fc9.weight".to_owned();
    let err = check_model(&model).expect_err("undefined input");
    assert!(matches!(&err, StructureError::Undefined { input, .. } if input == "fc9.weight"), "{err:?}");
}

#[test]
fn duplicate_metadata_keys_are_rejected() {
    let mut model = two_layer_model();
    model.metadata_props = vec![entry("model_type", "a"), entry("model_type", "b")];
    assert_eq!(check_model(&model), Err(StructureError::DuplicateMetadataKey { key: "model_type".to_owned() }));
}
