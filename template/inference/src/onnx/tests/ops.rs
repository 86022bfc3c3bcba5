//! Each layer emitter alone: a graph of that one layer, run in tract, against the candle layer
//! or tensor op it stands for, on random inputs and (perturbed) random weights.

use candle_core::{D, Module, Tensor};
use candle_nn::{Conv2dConfig, conv2d, linear, linear_no_bias};
use data_loader::Normalize;
use data_loader::normalize::PerChannel;

use super::{max_abs_diff, op_model, perturb, randn, tract_run, varmap};
use crate::onnx::OnnxError;
use crate::onnx::graph::{GraphBuilder, Value, Weights};

const TOLERANCE: f32 = 1e-4;

/// Exports `emit` as a one-layer graph, runs it in tract on `x` and compares with `want`.
fn assert_matches(
    weights: &Weights,
    x: &Tensor,
    want: &Tensor,
    emit: impl FnOnce(&mut GraphBuilder, &Value) -> Result<Value, OnnxError>,
) {
    let model = op_model(weights, x.dims(), want.dims(), emit);
    crate::onnx::check_model(&model).expect("the one-layer graph is well formed");
    let (shape, got) = tract_run(&model, x);
    assert_eq!(shape, want.dims(), "output shape");
    let want: Vec<f32> = want
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .expect("values");
    let diff = max_abs_diff(&got, &want);
    assert!(diff <= TOLERANCE, "max |tract - candle| = {diff}");
}

fn weights_of(varmap: &candle_nn::VarMap) -> Weights {
    Weights::from_varmap(varmap).expect("weights on the host")
}

#[test]
fn gemm_matches_candle_linear_at_batch_1_and_3() {
    let (varmap, vb) = varmap();
    let layer = linear(20, 7, vb.pp("fc")).expect("linear");
    let weights = weights_of(&varmap);
    for batch in [1, 3] {
        let x = randn(&[batch, 20]);
        let want = layer.forward(&x).expect("forward");
        assert_matches(&weights, &x, &want, |g, x| g.linear(x, "fc"));
    }
}

#[test]
fn gemm_without_bias_matches_candle_linear_no_bias() {
    let (varmap, vb) = varmap();
    let layer = linear_no_bias(12, 5, vb.pp("head")).expect("linear");
    let x = randn(&[3, 12]);
    let want = layer.forward(&x).expect("forward");
    assert_matches(&weights_of(&varmap), &x, &want, |g, x| g.linear(x, "head"));
}

#[test]
fn conv_matches_candle_with_stride_padding_dilation_and_depthwise_groups() {
    let configs = [
        (2, 4, 3, Conv2dConfig::default()),
        (
            2,
            4,
            3,
            Conv2dConfig {
                stride: 2,
                padding: 1,
                ..Default::default()
            },
        ),
        (
            3,
            6,
            3,
            Conv2dConfig {
                dilation: 2,
                padding: 2,
                ..Default::default()
            },
        ),
        (
            4,
            4,
            4,
            Conv2dConfig {
                stride: 4,
                ..Default::default()
            },
        ),
        // Depthwise, as ConvNeXt's 7x7: one filter per channel, padding keeps the size.
        (
            6,
            6,
            7,
            Conv2dConfig {
                padding: 3,
                groups: 6,
                ..Default::default()
            },
        ),
    ];
    for (cin, cout, kernel, cfg) in configs {
        let (varmap, vb) = varmap();
        let layer = conv2d(cin, cout, kernel, cfg, vb.pp("conv")).expect("conv2d");
        let x = randn(&[3, cin, 12, 12]);
        let want = layer.forward(&x).expect("forward");
        assert_matches(&weights_of(&varmap), &x, &want, |g, x| {
            g.conv2d(x, "conv", &cfg)
        });
    }
}

#[test]
fn relu_matches_candle() {
    let x = randn(&[3, 4, 5, 5]);
    let want = x.relu().expect("relu");
    assert_matches(&Weights::default(), &x, &want, |g, x| Ok(g.relu(x)));
}

#[test]
fn max_pool_matches_candle_with_and_without_overlap() {
    let x = randn(&[3, 4, 13, 13]);
    let want = x.max_pool2d(2).expect("pool");
    assert_matches(&Weights::default(), &x, &want, |g, x| {
        Ok(g.max_pool2d(x, 2, 2))
    });
    let want = x.max_pool2d_with_stride(3, 2).expect("pool");
    assert_matches(&Weights::default(), &x, &want, |g, x| {
        Ok(g.max_pool2d(x, 3, 2))
    });
}

#[test]
fn flatten_matches_candle_flatten_from_1() {
    let x = randn(&[3, 4, 5, 6]);
    let want = x.flatten_from(1).expect("flatten");
    assert_matches(&Weights::default(), &x, &want, |g, x| Ok(g.flatten(x, 1)));
}

#[test]
fn layer_norm_matches_the_model_layer_norm() {
    let (varmap, vb) = varmap();
    let norm = model::LayerNorm::new(16, 1e-6, vb.pp("norm")).expect("norm");
    perturb(&varmap, 0.5);
    let x = randn(&[3, 16]).affine(3.0, 1.0).expect("scaled");
    let want = norm.forward(&x).expect("forward");
    assert_matches(&weights_of(&varmap), &x, &want, |g, x| {
        g.layer_norm(x, "norm", 1e-6)
    });
}

#[test]
fn layer_norm_over_channels_matches_the_model_channel_norm() {
    let (varmap, vb) = varmap();
    let norm = model::ChannelNorm::new(8, 1e-6, vb.pp("norm")).expect("norm");
    perturb(&varmap, 0.5);
    let x = randn(&[3, 8, 5, 5]);
    let want = norm.forward(&x).expect("forward");
    assert_matches(&weights_of(&varmap), &x, &want, |g, x| {
        g.channel_norm(x, "norm", 1e-6)
    });
}

#[test]
fn gelu_matches_candle_gelu_erf_not_the_tanh_approximation() {
    // -6 to 6 in steps of 0.05, where the two GELUs differ by up to ~5e-4.
    let x = Tensor::arange_step(-6f32, 6., 0.05, &candle_core::Device::Cpu)
        .and_then(|t| t.unsqueeze(0))
        .expect("range");
    let want = x.gelu_erf().expect("gelu");
    assert_matches(&Weights::default(), &x, &want, |g, x| Ok(g.gelu_erf(x)));
    // The tanh approximation differs by more than the tolerance in this range, so the comparison
    // above tells the two apart.
    let tanh = x.gelu().expect("gelu");
    let diff = max_abs_diff(
        &tanh
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("values"),
        &want
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("values"),
    );
    assert!(diff > TOLERANCE, "{diff}");
}

#[test]
fn global_average_pool_matches_candle_mean_over_height_and_width() {
    let x = randn(&[3, 6, 4, 4]);
    let want = x
        .mean_keepdim(D::Minus1)
        .and_then(|t| t.mean_keepdim(2))
        .expect("mean");
    assert_matches(&Weights::default(), &x, &want, |g, x| {
        Ok(g.global_average_pool(x))
    });
    let want = x.mean((2, 3)).expect("mean");
    assert_matches(&Weights::default(), &x, &want, |g, x| Ok(g.mean_hw(x)));
}

#[test]
fn residual_add_matches_candle() {
    let (varmap, vb) = varmap();
    let cfg = Conv2dConfig {
        padding: 1,
        ..Default::default()
    };
    let layer = conv2d(3, 3, 3, cfg, vb.pp("conv")).expect("conv2d");
    let x = randn(&[3, 3, 6, 6]);
    let want = (&x + layer.forward(&x).expect("forward")).expect("add");
    assert_matches(&weights_of(&varmap), &x, &want, |g, x| {
        let y = g.conv2d(x, "conv", &cfg)?;
        Ok(g.add(x, &y))
    });
}

#[test]
fn normalization_matches_the_data_loader_standardisation_per_channel() {
    let normalize = Normalize {
        mean: PerChannel(vec![0.1307, 0.5, 0.9]),
        std: PerChannel(vec![0.3081, 0.25, 2.0]),
    }
    .for_channels(3)
    .expect("three channels");
    // Every byte value in each of three channels: x is [1, 3, 16, 16].
    let pixels: Vec<u8> = (0..3).flat_map(|_| 0..=255u8).collect();
    let x = Tensor::from_vec(
        pixels.iter().map(|&p| f32::from(p) / 255.0).collect::<Vec<_>>(),
        (1, 3, 16, 16),
        &candle_core::Device::Cpu,
    )
    .expect("pixels");
    let tables = normalize.tables();
    let want = Tensor::from_vec(
        pixels.iter().enumerate().map(|(i, &p)| tables[i / 256][usize::from(p)]).collect::<Vec<_>>(),
        (1, 3, 16, 16),
        &candle_core::Device::Cpu,
    )
    .expect("standardised");
    assert_matches(&Weights::default(), &x, &want, |g, x| Ok(g.normalize(x, &normalize)));
}

#[test]
fn transpose_matches_candle_permute() {
    let x = randn(&[3, 2, 4, 5]);
    let want = x
        .permute((0, 2, 3, 1))
        .and_then(|t| t.contiguous())
        .expect("permute");
    assert_matches(&Weights::default(), &x, &want, |g, x| {
        Ok(g.transpose(x, &[0, 2, 3, 1], "perm"))
    });
}
