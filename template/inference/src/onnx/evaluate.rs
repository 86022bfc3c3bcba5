//! Predicting and evaluating with an exported ONNX file through tract. The data loaders yield
//! standardised images, but the graph standardises its input itself, so the ONNX path loads the
//! same split with pixels only scaled to [0, 1]; loss and metrics are then computed by training's
//! own `evaluate`, so the numbers compare one to one with `evaluate --checkpoint`.

use std::path::{Path, PathBuf};

use candle_core::{D, Device, Tensor};
use experiment::data::DataLoaderConfig;
use experiment::evaluate::{Evaluation, evaluate};
use model::Classifier;

use super::{OnnxError, OnnxModel};
use crate::EvalSplit;
use crate::predict::{Prediction, TablePredictions, predict_table, prepare};

/// An ONNX model seen as a [`Classifier`] over unstandardised inputs (the graph standardises).
struct PixelClassifier<'a>(&'a OnnxModel);

impl Classifier for PixelClassifier<'_> {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        let batch = xs.dim(0)?;
        let pixels = xs.flatten_all()?.to_vec1::<f32>()?;
        let logits = self.0.run(&pixels).map_err(candle_core::Error::wrap)?;
        Tensor::from_vec(logits, (batch, self.0.spec().outputs()), xs.device())
    }
}

/// Loss and metrics of `onnx` on `split`, with the data, batch size, loss and metrics of `config`
/// (the config saved in the file's metadata, see [`OnnxModel::config`]).
pub fn evaluate_onnx(onnx: &OnnxModel, config: &experiment::Config, split: EvalSplit) -> Result<Evaluation, OnnxError> {
    let data = unstandardised(&config.data_loader);
    let device = Device::Cpu;
    let dataset = match split {
        EvalSplit::Val => data.load_train_val(config.seed, &device)?.val,
        EvalSplit::Test => data.load_test(onnx.spec(), &device)?,
    };
    let loader = data.loader(&dataset, false, config.seed)?;
    let task = experiment::task::Task::new(&onnx.spec().target, config);
    evaluate(&PixelClassifier(onnx), &loader, &task).map_err(OnnxError::Evaluate)
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
        let logits = Tensor::from_vec(logits, spec.outputs(), &Device::Cpu)?;
        let probabilities: Vec<f32> = candle_nn::ops::softmax(&logits, D::Minus1)?.to_vec1()?;
        predictions.push(Prediction::new(file, probabilities, prepared.inverted, spec));
    }
    Ok(predictions)
}

/// Predicts every row of the table at `rows` with `onnx`, each row encoded as `predict` encodes
/// it for a checkpoint (as the config in the file's metadata says), but not standardised: the
/// graph does that.
pub fn predict_onnx_table(onnx: &OnnxModel, rows: &Path) -> Result<TablePredictions, OnnxError> {
    let config = onnx.config(&[])?;
    let task = experiment::task::Task::new(&onnx.spec().target, &config);
    let data = unstandardised(&config.data_loader);
    Ok(predict_table(&PixelClassifier(onnx), onnx.spec(), &task, rows, &data, &Device::Cpu)?)
}

/// The same data section with inputs not standardised (pixels only scaled to [0, 1], table rows
/// only encoded): the graph standardises them as the data loader does.
fn unstandardised(data: &DataLoaderConfig) -> DataLoaderConfig {
    data.unstandardised()
}
