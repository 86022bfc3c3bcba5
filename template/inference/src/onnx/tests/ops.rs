//! Each layer of the model crate's library alone: a graph of what its `emit` records, run in
//! tract, against its own `forward_t` (inference mode), on random inputs and perturbed weights,
//! at batch sizes 1 and 3.

use candle_core::{Device, Tensor};
use candle_nn::Conv2dConfig;
use data_loader::Normalize;
use data_loader::normalize::PerChannel;
use model::Layer;
use model::activation::{GeluErf, Relu, Silu};
use model::batch_norm::batch_norm2d;
use model::conv::conv2d;
use model::linear::linear;
use model::pool::{AvgPool2d, Flatten, GlobalAvgPool, MaxPool2d};

use super::{max_abs_diff, op_model, perturb, randn, tract_run, varmap};

const TOLERANCE: f32 = 1e-4;

/// Records `emit` as a one-layer graph, runs it in tract on `x` and compares with `want`.
fn assert_matches(
    x: &Tensor,
    want: &Tensor,
    emit: impl FnOnce(&mut model::graph::Graph, &model::graph::Value) -> candle_core::Result<model::graph::Value>,
) {
    let model = op_model(x.dims(), want.dims(), emit);
    crate::onnx::check_model(&model).expect("the one-layer graph is well formed");
    let (shape, got) = tract_run(&model, x);
    assert_eq!(shape, want.dims(), "output shape");
    let want: Vec<f32> = want.flatten_all().and_then(|t| t.to_vec1()).expect("values");
    let diff = max_abs_diff(&got, &want);
    assert!(diff <= TOLERANCE, "max |tract - candle| = {diff}");
}

/// `layer`'s emission against its forward pass, at batch 1 and 3 of `[batch, dims...]` inputs.
fn assert_layer_exports(layer: &dyn Layer, dims: &[usize]) {
    for batch in [1, 3] {
        let x = randn(&[&[batch], dims].concat());
        let want = layer.forward_t(&x, false).expect("forward");
        assert_matches(&x, &want, |g, x| layer.emit(g, x));
    }
}

#[test]
fn linear_exports_as_gemm() {
    let (varmap, vb) = varmap();
    let layer = linear(20, 7, vb.pp("fc")).expect("linear");
    perturb(&varmap, 0.5);
    assert_layer_exports(&layer, &[20]);
}

#[test]
fn conv2d_exports_with_stride_padding_and_depthwise_groups() {
    let configs = [
        (2, 4, 3, Conv2dConfig::default()),
        (2, 4, 3, Conv2dConfig { stride: 2, padding: 1, ..Default::default() }),
        (4, 4, 4, Conv2dConfig { stride: 4, ..Default::default() }),
        // Depthwise, as ConvNeXt's 7x7: one filter per channel, padding keeps the size.
        (6, 6, 7, Conv2dConfig { padding: 3, groups: 6, ..Default::default() }),
    ];
    for (cin, cout, kernel, cfg) in configs {
        let (_, vb) = varmap();
        let layer = conv2d(cin, cout, kernel, cfg, vb.pp("conv")).expect("conv2d");
        assert_layer_exports(&layer, &[cin, 12, 12]);
        // With its ReLU (`with_relu`): Conv then Relu.
        assert_layer_exports(&layer.with_relu(), &[cin, 12, 12]);
    }
}

#[test]
fn batch_norm_exports_its_running_statistics() {
    let (varmap, vb) = varmap();
    let layer = batch_norm2d(5, vb.pp("bn")).expect("batch norm");
    // Running statistics away from (0, 1), as after training; the variance stays positive.
    perturb(&varmap, 0.5);
    let var = layer.running_var().abs().expect("abs");
    let data = varmap.data().lock().expect("not poisoned");
    data["bn.running_var"].set(&var).expect("same shape");
    drop(data);
    assert_layer_exports(&layer, &[5, 6, 7]);
}

#[test]
fn norms_export_as_layer_normalization() {
    let (varmap, vb) = varmap();
    let norm = model::LayerNorm::new(16, 1e-6, vb.pp("norm")).expect("norm");
    let channels = model::ChannelNorm::new(8, 1e-6, vb.pp("cnorm")).expect("norm");
    perturb(&varmap, 0.5);
    assert_layer_exports(&norm, &[16]);
    assert_layer_exports(&channels, &[8, 5, 5]);
}

#[test]
fn activations_export() {
    assert_layer_exports(&Relu, &[4, 5, 5]);
    assert_layer_exports(&Silu, &[4, 5, 5]);
    // -6 to 6 in steps of 0.05, where the exact GELU and the tanh approximation differ by up to
    // ~5e-4: more than the tolerance, so the comparison tells the two apart.
    let x = Tensor::arange_step(-6f32, 6., 0.05, &Device::Cpu).and_then(|t| t.unsqueeze(0)).expect("range");
    let want = GeluErf.forward_t(&x, false).expect("gelu");
    assert_matches(&x, &want, |g, x| GeluErf.emit(g, x));
    let tanh = x.gelu().and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1::<f32>()).expect("gelu");
    let exact = want.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("values");
    assert!(max_abs_diff(&tanh, &exact) > TOLERANCE);
}

#[test]
fn pooling_and_flatten_export() {
    // Odd sizes: the floor drops a row and a column.
    assert_layer_exports(&MaxPool2d(2), &[4, 13, 13]);
    assert_layer_exports(&AvgPool2d(2), &[4, 13, 13]);
    assert_layer_exports(&GlobalAvgPool, &[6, 4, 5]);
    assert_layer_exports(&Flatten, &[4, 5, 6]);
}

#[test]
fn dropout_exports_as_the_identity() {
    let mut g = model::graph::Graph::new();
    let x = g.input("input", vec![model::graph::Dim::Fixed(3)]);
    let y = model::Dropout::new(0.5).emit(&mut g, &x).expect("emit");
    assert_eq!((y, g.nodes().len()), (x, 0), "no node: dropout is off at inference");
}

#[test]
fn residual_add_exports() {
    let (_, vb) = varmap();
    let cfg = Conv2dConfig { padding: 1, ..Default::default() };
    let layer = conv2d(3, 3, 3, cfg, vb.pp("conv")).expect("conv2d");
    let x = randn(&[3, 3, 6, 6]);
    let want = (&x + layer.forward_t(&x, false).expect("forward")).expect("add");
    assert_matches(&x, &want, |g, x| {
        let y = layer.emit(g, x)?;
        Ok(g.node("Add", 7, &[x, &y], vec![], "Add"))
    });
}

#[test]
fn standardisation_matches_the_data_loader_per_channel() {
    let normalize = Normalize { mean: PerChannel(vec![0.1307, 0.5, 0.9]), std: PerChannel(vec![0.3081, 0.25, 2.0]) }
        .for_channels(3)
        .expect("three channels");
    // Every byte value in each of three channels: x is [1, 3, 16, 16].
    let pixels: Vec<u8> = (0..3).flat_map(|_| 0..=255u8).collect();
    let x = Tensor::from_vec(
        pixels.iter().map(|&p| f32::from(p) / 255.0).collect::<Vec<_>>(),
        (1, 3, 16, 16),
        &Device::Cpu,
    )
    .expect("pixels");
    let tables = normalize.tables();
    let want = Tensor::from_vec(
        pixels.iter().enumerate().map(|(i, &p)| tables[i / 256][usize::from(p)]).collect::<Vec<_>>(),
        (1, 3, 16, 16),
        &Device::Cpu,
    )
    .expect("standardised");
    assert_matches(&x, &want, |g, x| Ok(crate::onnx::build::standardise(g, x, &normalize, 4)));
}
