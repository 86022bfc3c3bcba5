//! A small ConvNeXt (Liu et al., "A ConvNet for the 2020s") for small images.
//!
//! A 4x4 stride-4 "patchify" stem, one ConvNeXt block per stage (depthwise 7x7 conv, LayerNorm, an
//! inverted-bottleneck MLP as 1x1 convs with GELU, and a residual connection), LayerNorm + 2x2 stride-2
//! convs between stages, then global average pooling and a two-layer head. With the default
//! `dims = [8, 16, 32]` on MNIST's digits the spatial size goes from a quarter of the image's side to
//! 1 (7 -> 3 -> 1) and the model has 14,090 parameters. The stem takes the data's channels, the
//! head gives one logit per class, and the image's smaller side decides how many stages fit.

use candle_core::Result;
use candle_nn::{Conv2dConfig, VarBuilder};

use crate::activation::GeluErf;
use crate::conv::{Conv2d, conv2d};
use crate::error::ConfigError;
use crate::layer_norm::{ChannelNorm, LayerNorm};
use crate::linear::{Linear, linear};
use crate::pool::GlobalAvgPool;
use crate::{DataSpec, Flow, Module};

/// `"model": {"type": "convnext", "args": {"dims": [8, 16, 32] } }`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct ConvNextConfig {
    /// Channels of each stage; one block per stage, a downsampling layer between stages. The
    /// image's smaller side decides how many fit: each stage after the first halves the side after
    /// the stem's /4, which must stay at least 1 (three stages for 16 to 31 pixels).
    pub dims: Vec<usize>,
}

crate::optional_args!(ConvNextConfig);

impl Default for ConvNextConfig {
    fn default() -> Self {
        Self { dims: vec![8, 16, 32] }
    }
}

impl ConvNextConfig {
    /// Checks the args without building anything.
    pub fn validate(&self) -> std::result::Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError { model: "convnext", field: "dims", reason };
        if self.dims.is_empty() {
            return Err(invalid("is empty; give each stage's channels, e.g. [8, 16, 32]".to_owned()));
        }
        if let Some(i) = self.dims.iter().position(|&d| d == 0) {
            return Err(invalid(format!("has zero channels at index {i}; use a positive size")));
        }
        Ok(())
    }

    /// Checks that the stages fit images of `spec`'s size.
    pub fn check_fits(&self, spec: &DataSpec) -> std::result::Result<(), ConfigError> {
        let [_, height, width] = spec.require_image("convnext").map_err(|reason| ConfigError {
            model: "convnext",
            field: "type",
            reason,
        })?;
        let max_stages = max_stages(height.min(width));
        if self.dims.len() > max_stages {
            return Err(ConfigError {
                model: "convnext",
                field: "dims",
                reason: format!(
                    "has {} stages but a {height}x{width} image only fits {max_stages} (the stem divides the \
                     side by {STEM_STRIDE}, each stage after the first halves it); remove stages or use larger images",
                    self.dims.len(),
                ),
            });
        }
        Ok(())
    }
}

/// The stem's kernel size and stride ("patchify": non-overlapping 4x4 patches).
const STEM_STRIDE: usize = 4;
/// The depthwise convolution's kernel size; padding keeps the spatial size.
const DW_KERNEL: usize = 7;
/// Hidden width of a block's MLP, relative to the stage's channels.
const EXPANSION: usize = 2;
/// The downsampling convolution's kernel size and stride.
const DOWN_STRIDE: usize = 2;
/// Width of the head's hidden layer.
const HEAD_WIDTH: usize = 64;
/// LayerNorm epsilon, as in the ConvNeXt reference implementation.
const LN_EPS: f64 = 1e-6;

/// How many stages an image whose smaller side is `side` allows: the side after the stem, halved
/// until it would reach zero.
fn max_stages(side: usize) -> usize {
    let mut side = side / STEM_STRIDE;
    let mut stages = 0;
    while side > 0 {
        stages += 1;
        side /= DOWN_STRIDE;
    }
    stages
}

/// x + pwconv2(gelu(pwconv1(norm(dwconv(x))))): shape-preserving, `[batch, d, h, w]`.
#[derive(Debug, Clone)]
struct Block {
    dwconv: Conv2d,
    norm: ChannelNorm,
    pwconv1: Conv2d,
    pwconv2: Conv2d,
}

impl Block {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        let depthwise = Conv2dConfig { padding: DW_KERNEL / 2, groups: dim, ..Default::default() };
        let pointwise = Conv2dConfig::default();
        Ok(Self {
            dwconv: conv2d(dim, dim, DW_KERNEL, depthwise, vb.pp("dwconv"))?,
            norm: ChannelNorm::new(dim, LN_EPS, vb.pp("norm"))?,
            pwconv1: conv2d(dim, EXPANSION * dim, 1, pointwise, vb.pp("pwconv1"))?,
            pwconv2: conv2d(EXPANSION * dim, dim, 1, pointwise, vb.pp("pwconv2"))?,
        })
    }
}

impl Module for Block {
    fn run<F: Flow>(&self, f: &mut F, x: F::Value) -> Result<F::Value> {
        let y = f.layer(&self.dwconv, &x)?; // [batch, d, h, w]
        let y = f.layer(&self.norm, &y)?;
        let y = f.layer(&self.pwconv1, &y)?; // [batch, 2d, h, w]
        let y = f.layer(&GeluErf, &y)?;
        let y = f.layer(&self.pwconv2, &y)?; // [batch, d, h, w]
        f.add(&x, &y)
    }
}

/// LayerNorm then a 2x2 stride-2 conv to the next stage's channels: `[batch, d, h, w]` to
/// `[batch, d_next, h/2, w/2]`.
#[derive(Debug, Clone)]
struct Downsample {
    norm: ChannelNorm,
    conv: Conv2d,
}

impl Downsample {
    fn new(dim: usize, next: usize, vb: VarBuilder) -> Result<Self> {
        let cfg = Conv2dConfig { stride: DOWN_STRIDE, ..Default::default() };
        Ok(Self {
            norm: ChannelNorm::new(dim, LN_EPS, vb.pp("norm"))?,
            conv: conv2d(dim, next, DOWN_STRIDE, cfg, vb.pp("conv"))?,
        })
    }
}

impl Module for Downsample {
    fn run<F: Flow>(&self, f: &mut F, x: F::Value) -> Result<F::Value> {
        let x = f.layer(&self.norm, &x)?;
        f.layer(&self.conv, &x) // [batch, d_next, h/2, w/2]
    }
}

/// One stage's block, and the downsampling after it for all stages but the last.
#[derive(Debug, Clone)]
struct Stage {
    block: Block,
    downsample: Option<Downsample>,
}

impl Module for Stage {
    fn run<F: Flow>(&self, f: &mut F, x: F::Value) -> Result<F::Value> {
        let x = self.block.run(f, x)?;
        self.downsample.run(f, x)
    }
}

/// stem -> stages -> global average pool -> LayerNorm -> fc1 -> fc2.
#[derive(Debug, Clone)]
pub struct ConvNext {
    stem_conv: Conv2d,
    stem_norm: ChannelNorm,
    stages: Vec<Stage>,
    head_norm: LayerNorm,
    head_fc1: Linear,
    head_fc2: Linear,
}

impl ConvNext {
    /// Creates or loads the parameters under `vb`: `stem.{conv,norm}`,
    /// `stages.{i}.block.{dwconv,norm,pwconv1,pwconv2}`, `downsample.{i}.{norm,conv}` and
    /// `head.{norm,fc1,fc2}`.
    pub fn new(cfg: &ConvNextConfig, spec: &DataSpec, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        cfg.check_fits(spec)?;
        let dims = &cfg.dims;
        let (Some(&first), Some(&last)) = (dims.first(), dims.last()) else {
            candle_core::bail!("convnext needs at least one stage in `dims`");
        };
        let stem = Conv2dConfig { stride: STEM_STRIDE, ..Default::default() };
        let stages = dims
            .iter()
            .enumerate()
            .map(|(i, &dim)| {
                let downsample =
                    dims.get(i + 1).map(|&next| Downsample::new(dim, next, vb.pp("downsample").pp(i))).transpose()?;
                Ok(Stage { block: Block::new(dim, vb.pp("stages").pp(i).pp("block"))?, downsample })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            stem_conv: conv2d(
                spec.require_image("convnext").map_err(candle_core::Error::Msg)?[0],
                first,
                STEM_STRIDE,
                stem,
                vb.pp("stem").pp("conv"),
            )?,
            stem_norm: ChannelNorm::new(first, LN_EPS, vb.pp("stem").pp("norm"))?,
            stages,
            head_norm: LayerNorm::new(last, LN_EPS, vb.pp("head").pp("norm"))?,
            head_fc1: linear(last, HEAD_WIDTH, vb.pp("head").pp("fc1"))?,
            head_fc2: linear(HEAD_WIDTH, spec.outputs(), vb.pp("head").pp("fc2"))?,
        })
    }
}

impl Module for ConvNext {
    fn run<F: Flow>(&self, f: &mut F, x: F::Value) -> Result<F::Value> {
        let x = f.layer(&self.stem_conv, &x)?; // [batch, dims[0], h / 4, w / 4]
        let x = f.layer(&self.stem_norm, &x)?;
        let x = self.stages.run(f, x)?; // [batch, dims.last, h', w'] (halved per stage)
        let x = f.layer(&GlobalAvgPool, &x)?; // [batch, dims.last]
        let x = f.layer(&self.head_norm, &x)?;
        let x = f.layer(&self.head_fc1, &x)?; // [batch, 64]
        f.layer(&self.head_fc2, &x) // [batch, classes]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelConfig;
    use crate::test_support::{
        assert_every_parameter_gets_a_gradient, build, fixed_batch, output_dims, overfit, same_values, test_spec,
    };
    use candle_core::Tensor;

    fn default_config() -> ModelConfig {
        ModelConfig::Convnext(ConvNextConfig::default())
    }

    /// The parameter count for any `dims`, term by term, to check the built model against.
    fn expected_parameters(dims: &[usize]) -> usize {
        let conv = |cin: usize, cout: usize, k: usize| cout * cin * k * k + cout;
        let norm = |c: usize| 2 * c;
        let (first, last) = (dims[0], dims[dims.len() - 1]);
        let stem = conv(test_spec().channels(), first, 4) + norm(first);
        let blocks: usize = dims.iter().map(|&d| d * 49 + d + norm(d) + conv(d, 2 * d, 1) + conv(2 * d, d, 1)).sum();
        let downsamples: usize = dims.windows(2).map(|p| norm(p[0]) + conv(p[0], p[1], 2)).sum();
        let classes = test_spec().outputs();
        let head = norm(last) + (last * 64 + 64) + (64 * classes + classes);
        stem + blocks + downsamples + head
    }

    #[test]
    fn logits_are_batch_by_classes() {
        let (_, model) = build(&default_config());
        let classes = test_spec().outputs();
        assert_eq!(output_dims(model.as_ref(), 1), [1, classes]);
        assert_eq!(output_dims(model.as_ref(), 5), [5, classes]);
    }

    /// 14,090 on MNIST (one channel, ten classes).
    #[test]
    fn default_parameter_count_follows_the_data() {
        let (varmap, _) = build(&default_config());
        assert_eq!(crate::parameter_count(&varmap), expected_parameters(&[8, 16, 32]));
    }

    #[test]
    fn other_dims_build_with_the_expected_count() {
        for dims in [vec![4], vec![6, 12]] {
            let cfg = ModelConfig::Convnext(ConvNextConfig { dims: dims.clone() });
            let (varmap, model) = build(&cfg);
            assert_eq!(crate::parameter_count(&varmap), expected_parameters(&dims), "{dims:?}");
            assert_eq!(output_dims(model.as_ref(), 2), [2, test_spec().outputs()], "{dims:?}");
        }
    }

    #[test]
    fn checkpoint_keys_are_pinned() {
        let (varmap, _) = build(&default_config());
        let mut expected = Vec::new();
        let mut layer = |name: String| {
            expected.push(format!("{name}.bias"));
            expected.push(format!("{name}.weight"));
        };
        for i in 0..2 {
            layer(format!("downsample.{i}.conv"));
            layer(format!("downsample.{i}.norm"));
        }
        for name in ["head.fc1", "head.fc2", "head.norm"] {
            layer(name.to_owned());
        }
        for i in 0..3 {
            for part in ["dwconv", "norm", "pwconv1", "pwconv2"] {
                layer(format!("stages.{i}.block.{part}"));
            }
        }
        for name in ["stem.conv", "stem.norm"] {
            layer(name.to_owned());
        }
        assert_eq!(crate::parameter_names(&varmap), expected);
    }

    #[test]
    fn forward_is_deterministic_in_both_modes() {
        // No dropout in this model: `train` changes nothing.
        let (_, model) = build(&default_config());
        let (xs, _) = fixed_batch(4);
        let eval1 = model.forward_t(&xs, false).expect("forward");
        let eval2 = model.forward_t(&xs, false).expect("forward");
        let train = model.forward_t(&xs, true).expect("forward");
        assert!(same_values(&eval1, &eval2));
        assert!(same_values(&eval1, &train));
    }

    #[test]
    fn channel_norm_normalises_each_pixel_over_channels() {
        let varmap = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &candle_core::Device::Cpu);
        let norm = ChannelNorm::new(3, LN_EPS, vb).expect("norm");
        // [1, 3, 1, 2]: pixel 0 has channels (1, 2, 3), pixel 1 has (10, 10, 40).
        let xs = Tensor::new(&[[[[1f32, 10.]], [[2., 10.]], [[3., 40.]]]], &candle_core::Device::Cpu).expect("xs");
        let ys = xs.apply(&norm).expect("forward");
        assert_eq!(ys.dims(), [1, 3, 1, 2]);
        let ys: Vec<f32> = ys.flatten_all().and_then(|t| t.to_vec1()).expect("values");
        // Channel-major: [c0p0, c0p1, c1p0, c1p1, c2p0, c2p1]; each pixel becomes (-a, 0, a)-like.
        let s = 1.5f32.sqrt();
        let expected = [-s, -1. / 2f32.sqrt(), 0., -1. / 2f32.sqrt(), s, 2. / 2f32.sqrt()];
        for (got, want) in ys.iter().zip(expected) {
            assert!((got - want).abs() < 1e-4, "{ys:?} vs {expected:?}");
        }
    }

    #[test]
    fn every_parameter_gets_a_gradient() {
        let (varmap, model) = build(&default_config());
        assert_every_parameter_gets_a_gradient(&varmap, model.as_ref());
    }

    #[test]
    fn overfits_one_batch() {
        let run = overfit(&default_config(), 3e-3, 300);
        assert!(run.final_loss <= 0.1 * run.initial_loss, "{run:?}");
    }

    #[test]
    fn partial_args_are_accepted() {
        let cfg: ModelConfig =
            serde_json::from_str(r#"{"type": "convnext", "args": { "dims": [16, 32] } }"#).expect("valid config");
        assert_eq!(cfg, ModelConfig::Convnext(ConvNextConfig { dims: vec![16, 32] }));
    }

    #[test]
    fn invalid_dims_are_rejected_saying_what_to_do() {
        let err = ConvNextConfig { dims: vec![] }.validate().expect_err("empty");
        assert!(err.to_string().contains("model.args.dims") && err.to_string().contains("is empty"), "{err}");
        let err = ConvNextConfig { dims: vec![8, 0] }.validate().expect_err("zero");
        assert!(err.to_string().contains("zero channels at index 1"), "{err}");
        let spec = test_spec();
        let (h, w) = spec.image_size().unwrap();
        let fits = max_stages(h.min(w));
        let err = ConvNextConfig { dims: vec![8; fits + 1] }.check_fits(&spec).expect_err("too deep");
        assert!(err.to_string().contains(&format!("a {h}x{w} image only fits {fits}")), "{err}");
        assert_eq!((max_stages(16), max_stages(31), max_stages(32), max_stages(3)), (3, 3, 4, 0));

        let varmap = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &candle_core::Device::Cpu);
        let cfg = ModelConfig::Convnext(ConvNextConfig { dims: vec![] });
        let err = cfg.build(&spec, vb).err().expect("build validates the config");
        assert!(err.to_string().contains("is empty"), "{err}");
    }
}
