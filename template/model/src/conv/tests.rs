//! The layer against candle's own convolution (values and gradients), the gradients against finite
//! differences, and the parameters against `candle_nn::conv2d`'s. (Speed is measured by the
//! project's `bench` subcommand, not by tests.)

use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Module, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Conv2dConfig, Init, VarBuilder};

use super::{Conv2d, conv2d};

/// One convolution: input `[batch, channels, side, side]` to `out` channels (`channels` if depthwise).
#[derive(Debug, Clone, Copy)]
struct Case {
    batch: usize,
    channels: usize,
    out: usize,
    side: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    depthwise: bool,
}

/// `[batch, channels, side, side]` to `out` channels.
const fn case(
    batch: usize,
    channels: usize,
    out: usize,
    side: usize,
    (kernel, stride, padding): (usize, usize, usize),
) -> Case {
    let depthwise = false;
    Case { batch, channels, out, side, kernel, stride, padding, depthwise }
}

/// `groups == channels == out`.
const fn depthwise(batch: usize, channels: usize, side: usize, kernel: (usize, usize, usize)) -> Case {
    Case { depthwise: true, ..case(batch, channels, channels, side, kernel) }
}

/// batch, channels, out, side, (kernel, stride, padding).
const CASES: [Case; 12] = [
    case(1, 1, 4, 8, (3, 1, 0)),    // the cnn's conv1
    case(3, 3, 5, 9, (3, 2, 1)),    // stride and padding
    case(3, 3, 2, 12, (4, 4, 0)),   // convnext's stem
    case(1, 3, 4, 7, (2, 2, 0)),    // convnext's downsampling, odd side
    case(3, 3, 6, 5, (1, 1, 0)),    // pointwise: no im2col
    case(3, 1, 2, 6, (1, 2, 1)),    // 1x1 with stride and padding
    case(3, 3, 4, 10, (3, 4, 3)),   // stride > kernel
    depthwise(3, 3, 7, (7, 1, 3)),  // convnext's block
    depthwise(1, 3, 3, (7, 1, 3)),  // kernel wider than the image
    depthwise(4, 4, 1, (7, 1, 3)),  // a 1x1 plane: only the centre tap reads the image
    depthwise(2, 2, 20, (5, 1, 1)), // wider than a vector of outputs, less padding than k / 2
    depthwise(3, 3, 9, (3, 2, 1)),
];

impl Case {
    fn config(&self) -> Conv2dConfig {
        Conv2dConfig {
            padding: self.padding,
            stride: self.stride,
            groups: if self.depthwise { self.channels } else { 1 },
            ..Default::default()
        }
    }

    /// Input, weight and bias with fixed pseudo-random values.
    fn tensors(&self) -> [Tensor; 3] {
        let in_per_group = if self.depthwise { 1 } else { self.channels };
        [
            values(&[self.batch, self.channels, self.side, self.side], 1),
            values(&[self.out, in_per_group, self.kernel, self.kernel], 2),
            values(&[self.out], 3),
        ]
    }
}

/// Values in [-1, 1) from a fixed LCG.
fn values(dims: &[usize], seed: u64) -> Tensor {
    let mut state = seed;
    let len = dims.iter().product();
    let data: Vec<f32> = (0..len)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    Tensor::from_vec(data, dims, &Device::Cpu).expect("length matches")
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().and_then(|t| t.to_vec1()).expect("f32 tensor")
}

/// The largest absolute difference, relative to the largest magnitude in `want` (at least 1).
fn relative_error(got: &Tensor, want: &Tensor) -> f32 {
    assert_eq!(got.dims(), want.dims());
    let (got, want) = (flat(got), flat(want));
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

fn ours(w: &Tensor, b: &Tensor, cfg: Conv2dConfig) -> Conv2d {
    Conv2d::new(w.clone(), Some(b.clone()), cfg).expect("supported config")
}

fn candles(w: &Tensor, b: &Tensor, cfg: Conv2dConfig) -> candle_nn::Conv2d {
    candle_nn::Conv2d::new(w.clone(), Some(b.clone()), cfg)
}

#[test]
fn forward_matches_candle_conv2d() {
    for case in CASES {
        let [x, w, b] = case.tensors();
        let got = x.apply(&ours(&w, &b, case.config())).expect("forward");
        let want = x.apply(&candles(&w, &b, case.config())).expect("candle forward");
        assert!(relative_error(&got, &want) < 1e-5, "{case:?}");
    }
}

/// The gradients of `sum(conv(x) * r)` for x, weight and bias.
fn gradients(case: Case, layer: impl Fn(&Tensor, &Tensor) -> Box<dyn Module>) -> [Tensor; 3] {
    let vars = case.tensors().map(|t| Var::from_tensor(&t).expect("var"));
    let [x, w, b] = vars.each_ref().map(|v| v.as_tensor().clone());
    let ys = layer(&w, &b).forward(&x).expect("forward");
    let r = values(ys.dims(), 4);
    let grads = (ys * r).and_then(|t| t.sum_all()).and_then(|l| l.backward()).expect("backward");
    [x, w, b].map(|t| grads.get(&t).expect("every input gets a gradient").clone())
}

#[test]
fn gradients_match_candle_conv2d() {
    for case in CASES {
        let got = gradients(case, |w, b| Box::new(ours(w, b, case.config())));
        let want = gradients(case, |w, b| Box::new(candles(w, b, case.config())));
        for (name, (got, want)) in ["input", "weight", "bias"].iter().zip(got.iter().zip(&want)) {
            assert!(relative_error(got, want) < 1e-4, "{name} gradient, {case:?}");
        }
    }
}

/// candle's convolution then its ReLU: what [`Conv2d::with_relu`] must compute.
struct CandleConvRelu(candle_nn::Conv2d);

impl Module for CandleConvRelu {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        xs.apply(&self.0)?.relu()
    }
}

#[test]
fn with_relu_matches_candle_conv2d_then_relu_in_value_and_gradients() {
    for case in CASES {
        let [x, w, b] = case.tensors();
        let layer = ours(&w, &b, case.config()).with_relu();
        let want = CandleConvRelu(candles(&w, &b, case.config()));
        let (got_ys, want_ys) = (x.apply(&layer).expect("forward"), x.apply(&want).expect("candle forward"));
        assert!(relative_error(&got_ys, &want_ys) < 1e-5, "{case:?}");
        assert!(
            flat(&got_ys).contains(&0.0) && flat(&got_ys).iter().any(|&y| y > 0.0),
            "{case:?}: the probe should cut some values"
        );
        let got = gradients(case, |w, b| Box::new(ours(w, b, case.config()).with_relu()));
        let want = gradients(case, |w, b| Box::new(CandleConvRelu(candles(w, b, case.config()))));
        for (name, (got, want)) in ["input", "weight", "bias"].iter().zip(got.iter().zip(&want)) {
            assert!(relative_error(got, want) < 1e-4, "{name} gradient, {case:?}");
        }
    }
}

/// `t` with `delta` added to its flat element `index`.
fn bump(t: &Tensor, index: usize, delta: f32) -> Tensor {
    let mut data = flat(t);
    data[index] += delta;
    Tensor::from_vec(data, t.dims(), &Device::Cpu).expect("same length")
}

#[test]
fn gradients_match_finite_differences() {
    // One im2col case and one depthwise case, both with stride and padding.
    for case in [CASES[1], CASES[9]] {
        let [x, w, b] = case.tensors();
        let grads = gradients(case, |w, b| Box::new(ours(w, b, case.config())));
        let r = values(x.apply(&ours(&w, &b, case.config())).expect("forward").dims(), 4);
        let loss = |x: &Tensor, w: &Tensor| -> f32 {
            let ys = x.apply(&ours(w, &b, case.config())).expect("forward");
            (ys * &r).and_then(|t| t.sum_all()).and_then(|l| l.to_scalar()).expect("loss")
        };
        let eps = 1e-2;
        for (which, grad) in grads[..2].iter().enumerate() {
            let grad = flat(grad);
            let n = grad.len();
            for index in [0, n / 3, n / 2 + 1, n - 1] {
                let numeric = if which == 0 {
                    loss(&bump(&x, index, eps), &w) - loss(&bump(&x, index, -eps), &w)
                } else {
                    loss(&x, &bump(&w, index, eps)) - loss(&x, &bump(&w, index, -eps))
                } / (2. * eps);
                let tolerance = 1e-3 * grad[index].abs().max(1.);
                assert!(
                    (numeric - grad[index]).abs() < tolerance,
                    "{case:?} arg {which}[{index}]: {numeric} vs {}",
                    grad[index]
                );
            }
        }
    }
}

#[test]
fn strided_and_offset_inputs_give_the_same_output() {
    for case in [CASES[1], CASES[7]] {
        let [x, w, b] = case.tensors();
        let layer = ours(&w, &b, case.config());
        let want = x.apply(&layer).expect("forward");
        let transposed = x.transpose(2, 3).and_then(|t| t.contiguous()).and_then(|t| t.transpose(2, 3)).expect("view");
        assert!(!transposed.is_contiguous());
        assert_eq!(flat(&transposed.apply(&layer).expect("forward")), flat(&want), "{case:?}");
        let tail = x.narrow(0, 1, 2).expect("view"); // contiguous, with a start offset
        let want_tail = want.narrow(0, 1, 2).expect("view");
        assert_eq!(flat(&tail.apply(&layer).expect("forward")), flat(&want_tail), "{case:?}");
    }
}

#[test]
fn unsupported_configurations_are_rejected_saying_what_is_supported() {
    let w = values(&[4, 2, 3, 3], 1);
    let err = |w: &Tensor, cfg: Conv2dConfig| Conv2d::new(w.clone(), None, cfg).expect_err("rejected").to_string();
    let dilated = Conv2dConfig { dilation: 2, ..Default::default() };
    assert!(err(&w, dilated).contains("dilation 2 is not supported, only 1"));
    let grouped = Conv2dConfig { groups: 2, ..Default::default() };
    assert!(err(&w, grouped).contains("groups = 2 is not supported, only 1 or depthwise"));

    let layer = Conv2d::new(w, None, Conv2dConfig::default()).expect("plain conv");
    let forward_err = |x: Tensor| layer.forward(&x).expect_err("rejected").to_string();
    let f64_input = values(&[1, 2, 5, 5], 1).to_dtype(DType::F64).expect("f64");
    assert!(forward_err(f64_input).contains("supports only f32 input, got F64"));
    assert!(forward_err(values(&[1, 3, 5, 5], 1)).contains("has 3 channels, the layer expects 2"));
    assert!(forward_err(values(&[1, 2, 2, 5], 1)).contains("kernel is larger than the padded input"));
}

/// Records each parameter a `VarBuilder` asks for (name and shape, initialisation) and answers zeros.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(String, String)>>>);

impl SimpleBackend for Recorder {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.0.lock().expect("not poisoned").push((format!("{name} {s:?}"), format!("{h:?}")));
        Tensor::zeros(s, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name} must be created with a shape")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        false
    }
}

#[test]
fn parameters_are_named_and_shaped_like_candle_nn_conv2d_and_initialised_like_pytorch() {
    let requests = |build: &dyn Fn(VarBuilder)| {
        let recorder = Recorder::default();
        build(VarBuilder::from_backend(Box::new(recorder.clone()), DType::F32, Device::Cpu));
        recorder.0.lock().expect("not poisoned").clone()
    };
    for case in [CASES[1], CASES[7]] {
        let (c, o, k, cfg) = (case.channels, case.out, case.kernel, case.config());
        let got = requests(&|vb| drop(conv2d(c, o, k, cfg, vb.pp("conv")).expect("builds")));
        let want = requests(&|vb| drop(candle_nn::conv2d(c, o, k, cfg, vb.pp("conv")).expect("builds")));
        assert_eq!(got.len(), 2);
        let names = |r: &[(String, String)]| r.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&got), names(&want));
        // PyTorch: weight and bias both uniform in +-1/sqrt(in / groups * k * k).
        let pytorch = format!("{:?}", crate::init::pytorch_default(c / cfg.groups * k * k));
        assert!(got.iter().all(|(_, init)| *init == pytorch), "{got:?}");
    }
}
