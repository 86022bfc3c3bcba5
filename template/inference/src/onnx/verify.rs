//! Numeric verification of an exported graph: tract runs it at several batch sizes on real
//! validation images (random pixels when the data is not there), candle runs the model on the
//! same pixels standardised, and the logits must agree.

use candle_core::{Device, Tensor};
use data_loader::{Channels, Dataset};
use model::{Classifier, DataSpec};
use serde::Serialize;

use onnx_protobuf::{Message, ModelProto};
use tract_onnx::prelude::{Framework, InferenceModelExt, IntoRunnable, IntoTValue, tvec};

use super::{OnnxError, OnnxModel};

/// The largest absolute difference allowed between tract's and candle's logits (for values, this
/// times the largest |value|, at least 1).
pub const TOLERANCE: f32 = 1e-4;

/// The batch sizes checked: one image, a few, and one that no kernel is tuned for.
pub const BATCH_SIZES: [usize; 3] = [1, 3, 17];

/// The candle model an export must agree with.
pub struct Reference<'a> {
    pub model: &'a dyn Classifier,
    pub device: &'a Device,
    /// The standardisation the model was trained with, per channel (the graph has it built in).
    pub normalize: Channels,
    /// The input shape and classes the model was built for.
    pub spec: &'a DataSpec,
    /// The graph with every layer's output as an output, and the layers' names with their
    /// outputs ([`super::Recording::layer_outputs_proto`]): to name the first layer that differs.
    pub layers: Option<(ModelProto, Vec<(String, String)>)>,
}

/// Images to verify with: pixels in [0, 1], `[n, channels, height, width]` row by row, and where
/// they come from.
#[derive(Debug, Clone)]
pub struct Samples {
    pub pixels: Vec<f32>,
    pub source: String,
}

impl Samples {
    /// Enough images of `spec`'s shape for [`BATCH_SIZES`]: the first images of the run's
    /// validation split, or, when the data is not in `data_dir` (or has another shape), random
    /// pixels seeded by `config.seed`.
    pub fn for_verification(config: &experiment::Config, spec: &DataSpec) -> Self {
        let count = BATCH_SIZES.iter().sum();
        match validation_pixels(config, spec, count) {
            Ok(pixels) => Self { pixels, source: format!("validation samples from {}", config.data_loader.source()) },
            Err(why) => Self::random(spec, count, config.seed, &why),
        }
    }

    /// `count` images of `spec`'s shape, uniform pixels in [0, 1]; `why` says why real images
    /// were not used.
    pub fn random(spec: &DataSpec, count: usize, seed: u64, why: &str) -> Self {
        let mut state = seed;
        let pixels = (0..count * spec.sample_len()).map(|_| unit_float(&mut state)).collect();
        Self { pixels, source: format!("random pixels in [0, 1] ({why})") }
    }
}

/// One batch size's comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchCheck {
    pub batch: usize,
    /// max |tract - candle| over all logits.
    pub max_abs_error: f32,
    /// `max_abs_error` relative to the largest |candle logit| of the batch.
    pub max_rel_error: f32,
    /// Every image gets the same class from both (a row whose two best candle logits are closer
    /// than the difference measured is a tie and may go either way).
    pub same_argmax: bool,
}

/// The outcome of [`verify`], saved in the export report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub inputs: String,
    pub tolerance: f32,
    pub batches: Vec<BatchCheck>,
}

/// Runs `onnx` and `reference` on `samples` at each of [`BATCH_SIZES`]; an error when the logits
/// differ by more than [`TOLERANCE`] or a class differs.
pub fn verify(onnx: &OnnxModel, reference: &Reference, samples: &Samples) -> Result<Verification, OnnxError> {
    let per_image = reference.spec.sample_len();
    let available = samples.pixels.len() / per_image;
    if available == 0 {
        return Err(OnnxError::InputLength { expected: per_image, got: samples.pixels.len() });
    }
    let mut batches = Vec::new();
    let mut next = 0;
    for batch in BATCH_SIZES {
        // Cycle through the samples if there are fewer than the batch sizes add up to.
        let pixels: Vec<f32> = (next..next + batch)
            .flat_map(|i| {
                let start = (i % available) * per_image;
                samples.pixels[start..start + per_image].iter().copied()
            })
            .collect();
        next += batch;
        let got = onnx.run(&pixels)?;
        let want = candle_logits(reference, &pixels, batch)?;
        let check = compare(
            batch,
            reference.spec.outputs(),
            reference.spec.task() == model::TaskKind::Classification,
            &got,
            &want,
        );
        // Values in their own units (a price, a count) are as exact relative to their size as
        // logits are absolutely: f32 keeps ~7 significant digits either way.
        let tolerance = match reference.spec.task() {
            model::TaskKind::Regression => TOLERANCE * want.iter().fold(1f32, |m, v| m.max(v.abs())),
            _ => TOLERANCE,
        };
        let reason = if check.max_abs_error.is_nan() || check.max_abs_error > tolerance {
            Some(format!("max |onnx - candle| over the outputs is {} (tolerance {tolerance})", check.max_abs_error))
        } else if !check.same_argmax {
            Some("an image gets a different class from the ONNX graph than from candle".to_owned())
        } else {
            None
        };
        if let Some(reason) = reason {
            let location = locate(reference, &pixels, batch)
                .unwrap_or_else(|e| format!("(the layers could not be compared: {e})"));
            return Err(OnnxError::Mismatch { batch, reason, location });
        }
        batches.push(check);
    }
    Ok(Verification { inputs: samples.source.clone(), tolerance: TOLERANCE, batches })
}

/// Where the graph and the model first part: each layer's output from tract (the graph with
/// every layer's output exposed) against the same layer's output in candle, in the order the
/// layers ran.
fn locate(reference: &Reference, pixels: &[f32], batch: usize) -> Result<String, String> {
    let Some((proto, marks)) = &reference.layers else {
        return Ok("compare the model's layers with their `emit` (model/src/)".to_owned());
    };
    let dims = reference.spec.batch_dims(batch);
    let bytes = proto.write_to_bytes().map_err(|e| e.to_string())?;
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| format!("{e:#}"))?;
    let input = tract_onnx::prelude::Tensor::from_shape(&dims, pixels).map_err(|e| format!("{e:#}"))?;
    let outputs = plan.run(tvec![input.into_tvalue()]).map_err(|e| format!("{e:#}"))?;
    let names: Vec<String> = proto.graph.output.iter().map(|o| o.name.clone()).collect();
    let x = Tensor::from_slice(pixels, dims.as_slice(), reference.device).map_err(|e| e.to_string())?;
    let x = reference.normalize.apply_tensor(&x).map_err(|e| e.to_string())?;
    let traced = reference.model.trace(&x).map_err(|e| e.to_string())?;
    let candle_names: Vec<&String> = traced.iter().map(|(name, _)| name).collect();
    let onnx_names: Vec<&String> = marks.iter().map(|(name, _)| name).collect();
    if candle_names != onnx_names {
        return Ok(format!(
            "the layers could not be compared: the export recorded {} layers and the candle trace {} (a layer whose \
             `emit` and `forward_t` run different sub-layers?)",
            onnx_names.len(),
            candle_names.len()
        ));
    }
    for ((layer, value), (_, candle_out)) in marks.iter().zip(&traced) {
        let Some(index) = names.iter().position(|n| n == value) else { continue };
        let got: Vec<f32> =
            outputs[index].to_plain_array_view::<f32>().map_err(|e| format!("{e:#}"))?.iter().copied().collect();
        let want = candle_out.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(|e| e.to_string())?;
        // Relative to the layer's own scale: large activations differ by more in f32 alone.
        let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
        let diff = max_abs_diff(&got, &want);
        if diff.is_nan() || diff > TOLERANCE * scale {
            return Ok(format!(
                "the first layer whose output differs is `{layer}` (max |onnx - candle| {diff} at batch {batch}, \
                 its largest value {scale}); check its `emit` against its `forward_t`"
            ));
        }
    }
    Ok("every layer's output agrees within the tolerance, yet the logits differ".to_owned())
}

/// The candle model's logits on `pixels` standardised as in training.
fn candle_logits(reference: &Reference, pixels: &[f32], batch: usize) -> Result<Vec<f32>, OnnxError> {
    let x = Tensor::from_slice(pixels, reference.spec.batch_dims(batch).as_slice(), reference.device)?;
    let x = reference.normalize.apply_tensor(&x)?;
    let logits = reference.model.forward_t(&x, false)?;
    Ok(logits.flatten_all()?.to_vec1::<f32>()?)
}

/// The largest |a - b|; NaN if any value is NaN or the lengths differ.
pub(crate) fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::NAN;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, |m, d| if d.is_nan() || m.is_nan() { f32::NAN } else { m.max(d) })
}

/// Compares two `[batch, outputs]` matrices; for classes, also each row's argmax.
fn compare(batch: usize, classes: usize, argmax_matters: bool, got: &[f32], want: &[f32]) -> BatchCheck {
    let max_abs_error = max_abs_diff(got, want);
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let same_argmax = !argmax_matters
        || got.chunks(classes).zip(want.chunks(classes)).all(|(g, w)| {
            let (g_best, w_best) = (argmax(g), argmax(w));
            // A tie: candle's own top two are closer than the two runtimes differ on this row.
            g_best == w_best || (w[w_best] - w[g_best]).abs() <= 2.0 * max_abs_diff(g, w)
        });
    BatchCheck { batch, max_abs_error, max_rel_error: max_abs_error / scale.max(f32::MIN_POSITIVE), same_argmax }
}

/// The index of the largest value (the first one on ties).
pub(crate) fn argmax(values: &[f32]) -> usize {
    values.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0
}

/// The first `count` images of the validation split (repeated if it is smaller), scaled to [0, 1],
/// whatever the data type: loaded as training loads them, without the standardisation.
fn validation_pixels(config: &experiment::Config, spec: &DataSpec, count: usize) -> Result<Vec<f32>, String> {
    let data = config.data_loader.unstandardised();
    let splits = data.load_train_val(config.seed, &Device::Cpu).map_err(|e| format!("no training data: {e}"))?;
    if splits.spec.input_shape != spec.input_shape {
        return Err(format!(
            "the training images are {:?}, not the model's {:?}",
            splits.spec.input_shape, spec.input_shape
        ));
    }
    let available = splits.val.len();
    if available == 0 {
        return Err("the validation split is empty".to_owned());
    }
    let indices: Vec<u32> = (0..count).map(|i| (i % available) as u32).collect();
    let indices = Tensor::new(indices.as_slice(), &Device::Cpu).map_err(|e| e.to_string())?;
    let (images, _) = splits.val.batch(&indices, None).map_err(|e| e.to_string())?;
    images.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(|e| e.to_string())
}

/// splitmix64, mapped to [0, 1): reproducible random pixels without a dependency.
fn unit_float(state: &mut u64) -> f32 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // The top 24 bits are exactly representable in an f32.
    (z >> 40) as f32 / (1u64 << 24) as f32
}
