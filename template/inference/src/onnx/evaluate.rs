//! Predicting and evaluating with an exported ONNX file through tract. The data loaders yield
//! standardised images, but the graph standardises its input itself, so the ONNX path loads the
//! same split with pixels only scaled to [0, 1]; loss and metrics are then computed by training's
//! own `evaluate`, so the numbers compare one to one with `evaluate --checkpoint`.

use std::path::PathBuf;

use candle_core::{D, Device, Tensor};
use data_loader::Normalize;
use model::Classifier;
use experiment::data::DataLoaderConfig;
use experiment::evaluate::{Evaluation, evaluate};

use super::{OnnxError, OnnxModel};
use crate::EvalSplit;
use crate::predict::{Prediction, prepare};

/// An ONNX model seen as a [`Classifier`] over pixels in [0, 1] (not standardised).
struct PixelClassifier<'a>(&'a OnnxModel);

impl Classifier for PixelClassifier<'_> {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        let batch = xs.dim(0)?;
        let pixels = xs.flatten_all()?.to_vec1::<f32>()?;
        let logits = self.0.run(&pixels).map_err(candle_core::Error::wrap)?;
        Tensor::from_vec(logits, (batch, self.0.spec().num_classes()), xs.device())
    }
}

/// Loss and metrics of `onnx` on `split`, with the data, batch size, loss and metrics of `config`
/// (the config saved in the file's metadata, see [`OnnxModel::config`]).
pub fn evaluate_onnx(
    onnx: &OnnxModel,
    config: &experiment::Config,
    split: EvalSplit,
) -> Result<Evaluation, OnnxError> {
    let data = unstandardised(&config.data_loader);
    let device = Device::Cpu;
    let dataset = match split {
        EvalSplit::Val => data.load_train_val(config.seed, &device)?.val,
        EvalSplit::Test => data.load_test(onnx.spec(), &device)?,
    };
    let loader = data.loader(&dataset, false, config.seed)?;
    evaluate(
        &PixelClassifier(onnx),
        &loader,
        &config.loss,
        &config.metrics,
        &onnx.spec().classes,
    )
    .map_err(OnnxError::Evaluate)
}

/// Classifies each image file with `onnx`, prepared as `predict` does for a checkpoint (as the
/// data section of the config in the file's metadata says).
pub fn predict_onnx(onnx: &OnnxModel, files: &[PathBuf]) -> Result<Vec<Prediction>, OnnxError> {
    let mut predictions = Vec::with_capacity(files.len());
    let spec = onnx.spec();
    let invert = onnx.config(&[])?.data_loader.inverts_light_background();
    for file in files {
        let prepared = prepare(file, spec, invert)?;
        let logits = onnx.run(&prepared.pixels)?;
        let logits = Tensor::from_vec(logits, spec.num_classes(), &Device::Cpu)?;
        let probabilities: Vec<f32> = candle_nn::ops::softmax(&logits, D::Minus1)?.to_vec1()?;
        predictions.push(Prediction::new(file, probabilities, prepared.inverted, spec));
    }
    Ok(predictions)
}

/// The same data section with pixels only scaled to [0, 1] (`Normalize::identity()`): the graph
/// standardises them as the data loader does, `(pixel / 255 - mean) / std`.
fn unstandardised(data: &DataLoaderConfig) -> DataLoaderConfig {
    data.with_normalize(Normalize::identity())
}
