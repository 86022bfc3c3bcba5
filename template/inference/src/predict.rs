//! Predicting the digit in image files (PNG or JPEG, any size, colour or grey): the image is
//! turned into an MNIST-like input (grayscale, 28x28, light digit on a dark background) and
//! classified.

use std::path::{Path, PathBuf};

use candle_core::{D, Device, Tensor};
use data_loader::Normalize;
use model::Classifier;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error("cannot read image {path}: {source} (PNG and JPEG are supported)")]
    Image { path: PathBuf, source: image::ImageError },
    #[error("prediction failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// One image as the model sees it.
pub struct Prepared {
    /// 784 values in [0, 1], row by row.
    pub pixels: Vec<f32>,
    /// True when the image had a dark digit on a light background and was inverted.
    pub inverted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub file: PathBuf,
    pub class: usize,
    pub probability: f32,
    pub probabilities: Vec<f32>,
    pub inverted: bool,
}

/// Decode, convert to grayscale, resize to 28x28 and, if the border is light, invert.
pub fn prepare(path: &Path) -> Result<Prepared, PredictError> {
    let image = image::open(path).map_err(|source| PredictError::Image { path: path.to_path_buf(), source })?;
    let gray = image.to_luma8();
    let gray = if gray.dimensions() == (28, 28) {
        gray
    } else {
        image::imageops::resize(&gray, 28, 28, image::imageops::FilterType::Triangle)
    };
    let mut pixels: Vec<f32> = gray.pixels().map(|p| f32::from(p.0[0]) / 255.0).collect();
    // MNIST digits are light on dark; photos and drawings are usually the other way round.
    let border: Vec<f32> = (0..28)
        .flat_map(|i| [pixels[i], pixels[27 * 28 + i], pixels[i * 28], pixels[i * 28 + 27]])
        .collect();
    let inverted = border.iter().sum::<f32>() / border.len() as f32 > 0.5;
    if inverted {
        pixels.iter_mut().for_each(|p| *p = 1.0 - *p);
    }
    Ok(Prepared { pixels, inverted })
}

/// Classify each file with `model`, normalising as in training.
pub fn predict(
    model: &dyn Classifier,
    files: &[PathBuf],
    normalize: Normalize,
    device: &Device,
) -> Result<Vec<Prediction>, PredictError> {
    let mut predictions = Vec::with_capacity(files.len());
    for file in files {
        let prepared = prepare(file)?;
        let input = Tensor::from_vec(prepared.pixels, (1, 1, 28, 28), device)?;
        let input = ((input - f64::from(normalize.mean))? / f64::from(normalize.std))?;
        let logits = model.forward_t(&input, false)?;
        let probabilities: Vec<f32> = candle_nn::ops::softmax(&logits, D::Minus1)?.squeeze(0)?.to_vec1()?;
        let (class, probability) = probabilities
            .iter()
            .copied()
            .enumerate()
            .fold((0, f32::MIN), |best, (i, p)| if p > best.1 { (i, p) } else { best });
        predictions.push(Prediction { file: file.clone(), class, probability, probabilities, inverted: prepared.inverted });
    }
    Ok(predictions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, size: u32, dark_on_light: bool) {
        let img = image::GrayImage::from_fn(size, size, |x, _| {
            let stroke = (size * 2 / 5..size * 3 / 5).contains(&x);
            image::Luma([if stroke != dark_on_light { 255 } else { 0 }])
        });
        img.save(path).unwrap();
    }

    #[test]
    fn images_of_any_size_become_28_by_28_light_on_dark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("digit.png");
        write_png(&path, 280, true);
        let prepared = prepare(&path).unwrap();
        assert_eq!(prepared.pixels.len(), 784);
        assert!(prepared.inverted);
        // The stroke is in the middle columns: bright after inversion; the corner is dark.
        assert!(prepared.pixels[14 * 28 + 14] > 0.9, "{}", prepared.pixels[14 * 28 + 14]);
        assert!(prepared.pixels[0] < 0.1);

        write_png(&path, 28, false);
        assert!(!prepare(&path).unwrap().inverted);
    }

    #[test]
    fn a_file_that_is_not_an_image_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.png");
        std::fs::write(&path, "not a png").unwrap();
        let err = prepare(&path).err().unwrap().to_string();
        assert!(err.contains("notes.png") && err.contains("PNG and JPEG"), "{err}");
    }

    #[test]
    fn predictions_are_probabilities_over_ten_classes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("digit.png");
        write_png(&path, 28, false);
        let config = training::Config::from_json(
            include_str!("../../config.json"),
            Path::new("config.json"),
            &["device=cpu".to_string()],
        )
        .unwrap();
        let built = training::build_model(&config, &Device::Cpu).unwrap();
        let out = predict(built.model.as_ref(), &[path], Normalize::default(), &Device::Cpu).unwrap();
        assert_eq!(out[0].probabilities.len(), 10);
        assert!((out[0].probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        assert_eq!(out[0].probability, out[0].probabilities[out[0].class]);
    }
}
