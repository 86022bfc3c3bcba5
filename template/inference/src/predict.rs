//! Predicting with a trained model: the class of image files (PNG or JPEG, any size, colour or
//! grey: each image is turned into the model's input as the data spec says, its channels, resized
//! to its size, and classified; the answer names the class), and the targets of a table's rows
//! (a CSV of the task's answers: class and probability, labels and their probabilities, or values).

use std::path::{Path, PathBuf};

use candle_core::{D, Device, Tensor};
use model::{Classifier, DataSpec};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error("cannot read image {path}: {source} (PNG and JPEG are supported)")]
    Image { path: PathBuf, source: image::ImageError },
    #[error("prediction failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Data(#[from] data_loader::DataError),
    #[error("this model predicts {task} targets from {what}; {advice}")]
    Unsupported { task: model::TaskKind, what: &'static str, advice: &'static str },
}

/// One image as the model sees it.
pub struct Prepared {
    /// channels x height x width values in [0, 1], channel by channel, row by row.
    pub pixels: Vec<f32>,
    /// True when a one-channel image had a dark subject on a light background and was inverted.
    pub inverted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub file: PathBuf,
    /// The most likely class's index and name.
    pub class: usize,
    pub name: String,
    pub probability: f32,
    pub probabilities: Vec<f32>,
    /// Every class, the most likely first (ties: the lower index first); `--top-k K` keeps K.
    pub top: Vec<Ranked>,
    pub inverted: bool,
}

/// One class of a prediction, by name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    pub class: usize,
    pub name: String,
    pub probability: f32,
}

impl Prediction {
    /// The prediction for `file` from its `probabilities` over `spec`'s classes.
    pub fn new(file: &Path, probabilities: Vec<f32>, inverted: bool, spec: &DataSpec) -> Self {
        let name = |class: usize| spec.classes().get(class).cloned().unwrap_or_else(|| class.to_string());
        let mut order: Vec<usize> = (0..probabilities.len()).collect();
        order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]).then(a.cmp(&b)));
        let top: Vec<Ranked> =
            order.iter().map(|&class| Ranked { class, name: name(class), probability: probabilities[class] }).collect();
        let best = top[0].clone();
        Self {
            file: file.to_path_buf(),
            class: best.class,
            name: best.name,
            probability: best.probability,
            probabilities,
            top,
            inverted,
        }
    }
}

/// Image files can be classified: an error for a model of table rows (say to pass a CSV) or of
/// another task.
pub fn check_image_classifier(spec: &DataSpec) -> Result<(), PredictError> {
    if spec.image_shape().is_none() {
        return Err(PredictError::Unsupported {
            task: spec.task(),
            what: "table rows, not images",
            advice: "pass a CSV file of rows with the training columns: predict --checkpoint C rows.csv",
        });
    }
    if spec.task() != model::TaskKind::Classification {
        return Err(PredictError::Unsupported {
            task: spec.task(),
            what: "images",
            advice: "predicting single image files is for classifiers; list the images in a CSV (the column the \
                     model was trained with) and predict that: `predict --checkpoint C rows.csv`",
        });
    }
    Ok(())
}

/// Predictions for the rows of a table: the header and one record per row, the row's line in
/// the file first.
#[derive(Debug, Clone, PartialEq)]
pub struct TablePredictions {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl TablePredictions {
    /// As CSV text (comma-separated, fields quoted where they need it).
    pub fn to_csv(&self) -> String {
        let quote = |field: &String| {
            if field.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", field.replace('"', "\"\""))
            } else {
                field.clone()
            }
        };
        let line = |fields: &[String]| fields.iter().map(quote).collect::<Vec<_>>().join(",") + "\n";
        std::iter::once(line(&self.header)).chain(self.rows.iter().map(|r| line(r))).collect()
    }
}

/// Predicts every row of the table at `rows` with `model` (built for `spec`), each row encoded
/// as `data` (the run's `csv` data section, with the encoding training recorded) encodes it. The
/// table needs the input columns; targets, if present, are not read.
pub fn predict_table(
    model: &dyn Classifier,
    spec: &DataSpec,
    task: &experiment::task::Task,
    rows: &Path,
    data: &experiment::data::DataLoaderConfig,
    device: &Device,
) -> Result<TablePredictions, PredictError> {
    let experiment::data::DataLoaderConfig::Csv(args) = data else {
        return Err(PredictError::Unsupported {
            task: spec.task(),
            what: "images, not table rows",
            advice: "pass image files (PNG or JPEG), not a CSV",
        });
    };
    let table = args.read_rows(rows)?;
    let inputs = args.inputs(&table, device)?;
    let header = std::iter::once("line".to_owned()).chain(task.prediction_header()).collect();
    let mut out = TablePredictions { header, rows: Vec::with_capacity(table.len()) };
    const CHUNK: usize = 4096;
    for start in (0..table.len()).step_by(CHUNK) {
        let n = CHUNK.min(table.len() - start);
        let outputs = model.forward_t(&inputs.narrow(0, start, n)?, false)?.to_vec2::<f32>()?;
        for (i, row) in outputs.iter().enumerate() {
            let fields = task.prediction_fields(row);
            out.rows.push(std::iter::once(table.line(start + i).to_string()).chain(fields).collect());
        }
    }
    Ok(out)
}

/// Decode `path` and make it `spec`'s input: grey (one channel) or RGB (three), resized to the
/// spec's height and width, as the data loaders do. With `invert_light_background` (the `mnist`
/// type's option), a grey image whose border is light is inverted, so that a dark stroke drawn on
/// paper looks like the light-on-dark digits the model learnt.
pub fn prepare(path: &Path, spec: &DataSpec, invert_light_background: bool) -> Result<Prepared, PredictError> {
    check_image_classifier(spec)?;
    let image = image::open(path).map_err(|source| PredictError::Image { path: path.to_path_buf(), source })?;
    let (height, width) = spec.image_size().expect("checked: an image spec");
    let (w, h) = (width as u32, height as u32);
    let filter = image::imageops::FilterType::Triangle;
    let image = if image.width() == w && image.height() == h { image } else { image.resize_exact(w, h, filter) };
    if spec.channels() != 1 {
        let rgb = image.to_rgb8();
        let mut pixels = Vec::with_capacity(spec.sample_len());
        for channel in 0..3 {
            pixels.extend(rgb.pixels().map(|p| f32::from(p.0[channel]) / 255.0));
        }
        return Ok(Prepared { pixels, inverted: false });
    }
    let gray = image.to_luma8();
    let mut pixels: Vec<f32> = gray.pixels().map(|p| f32::from(p.0[0]) / 255.0).collect();
    let border: Vec<f32> = (0..width)
        .flat_map(|x| [pixels[x], pixels[(height - 1) * width + x]])
        .chain((0..height).flat_map(|y| [pixels[y * width], pixels[y * width + width - 1]]))
        .collect();
    let inverted = invert_light_background && border.iter().sum::<f32>() / border.len() as f32 > 0.5;
    if inverted {
        pixels.iter_mut().for_each(|p| *p = 1.0 - *p);
    }
    Ok(Prepared { pixels, inverted })
}

/// Classify each file with `model` (built for `spec`), prepared and normalised as `data` (the
/// training config's data section) prepares its images.
pub fn predict(
    model: &dyn Classifier,
    spec: &DataSpec,
    files: &[PathBuf],
    data: &experiment::data::DataLoaderConfig,
    device: &Device,
) -> Result<Vec<Prediction>, PredictError> {
    check_image_classifier(spec)?;
    let normalize = data.channel_normalize(spec.channels())?;
    let mut predictions = Vec::with_capacity(files.len());
    for file in files {
        let prepared = prepare(file, spec, data.inverts_light_background())?;
        let input = Tensor::from_vec(prepared.pixels, spec.batch_dims(1), device)?;
        let input = normalize.apply_tensor(&input)?;
        let logits = model.forward_t(&input, false)?;
        let probabilities: Vec<f32> = candle_nn::ops::softmax(&logits, D::Minus1)?.squeeze(0)?.to_vec1()?;
        predictions.push(Prediction::new(file, probabilities, prepared.inverted, spec));
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

    fn grey(height: usize, width: usize) -> DataSpec {
        DataSpec::new([1, height, width], DataSpec::numbered_classes(10)).unwrap()
    }

    #[test]
    fn images_of_any_size_become_the_specs_size_light_on_dark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("digit.png");
        write_png(&path, 280, true);
        let spec = grey(20, 30);
        let prepared = prepare(&path, &spec, true).unwrap();
        assert_eq!(prepared.pixels.len(), 20 * 30);
        assert!(prepared.inverted);
        // The stroke is in the middle columns: bright after inversion; the corner is dark.
        assert!(prepared.pixels[10 * 30 + 15] > 0.9, "{}", prepared.pixels[10 * 30 + 15]);
        assert!(prepared.pixels[0] < 0.1);

        write_png(&path, 20, false);
        assert!(!prepare(&path, &spec, true).unwrap().inverted);
        // Without the option (any data type but mnist), images are used as they are.
        write_png(&path, 20, true);
        let as_is = prepare(&path, &spec, false).unwrap();
        assert!(!as_is.inverted && as_is.pixels[0] > 0.9);
    }

    #[test]
    fn colour_models_get_three_channels_in_channel_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("red.png");
        image::RgbImage::from_pixel(9, 7, image::Rgb([255, 0, 128])).save(&path).unwrap();
        let spec = DataSpec::new([3, 4, 5], vec!["red".into(), "blue".into()]).unwrap();
        let prepared = prepare(&path, &spec, true).unwrap();
        assert_eq!(prepared.pixels.len(), 3 * 4 * 5);
        let (r, g, b) = (prepared.pixels[0], prepared.pixels[20], prepared.pixels[40]);
        assert!(r > 0.99 && g < 0.01 && (b - 128.0 / 255.0).abs() < 0.01, "{r} {g} {b}");
        assert!(!prepared.inverted);
    }

    #[test]
    fn a_file_that_is_not_an_image_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.png");
        std::fs::write(&path, "not a png").unwrap();
        let err = prepare(&path, &grey(8, 8), true).err().unwrap().to_string();
        assert!(err.contains("notes.png") && err.contains("PNG and JPEG"), "{err}");
    }

    #[test]
    fn predictions_are_probabilities_over_the_named_classes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("digit.png");
        write_png(&path, 40, false);
        let config = experiment::Config::from_json(
            include_str!("../../config.json"),
            Path::new("config.json"),
            &["device=cpu".to_string()],
        )
        .unwrap();
        let names = ["ant", "bee", "cat", "dog"].map(String::from).to_vec();
        let spec = DataSpec::new([3, 16, 16], names.clone()).unwrap();
        let built = experiment::build_model(&config, &spec, &Device::Cpu).unwrap();
        let out = predict(built.model.as_ref(), &spec, &[path], &config.data_loader, &Device::Cpu).unwrap();
        assert_eq!(out[0].probabilities.len(), 4);
        assert_eq!(out[0].name, names[out[0].class]);
        assert!((out[0].probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        assert_eq!(out[0].probability, out[0].probabilities[out[0].class]);
        assert_eq!(out[0].top.len(), 4);
        assert_eq!((out[0].top[0].class, &out[0].top[0].name), (out[0].class, &out[0].name));
        assert!(out[0].top.windows(2).all(|w| w[0].probability >= w[1].probability));
        assert!(out[0].top.iter().all(|r| r.name == names[r.class] && r.probability == out[0].probabilities[r.class]));
    }
}
