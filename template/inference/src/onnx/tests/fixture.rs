//! The fixture of the end-to-end tests: a run folder with a checkpoint of the shipped model
//! (whichever this project was generated with) for grey 20x24 images in seven classes, fake IDX
//! files of that shape, and readers for the written model.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use data_loader::{IdxImages, Split};
use model::{Classifier, DataSpec};
use onnx_protobuf::tensor_shape_proto::dimension::Value as DimValue;
use onnx_protobuf::type_proto::Value as TypeValue;
use onnx_protobuf::{Message, ModelProto, ValueInfoProto};
use tempfile::TempDir;

use super::perturb;
use crate::onnx::Samples;

/// A run folder with a checkpoint of the shipped model (random weights, perturbed so that no
/// parameter keeps a trivial initial value) and its config.json.
pub(super) struct Run {
    pub dir: TempDir,
    pub checkpoint: PathBuf,
    pub config: experiment::Config,
    pub model: Box<dyn Classifier>,
    pub varmap: candle_nn::VarMap,
    pub spec: DataSpec,
}

/// The data the fixture's model is built for: not MNIST's shape, so that nothing passes by
/// assuming it.
pub(super) fn spec() -> DataSpec {
    DataSpec::new([1, 20, 24], DataSpec::numbered_classes(7)).expect("a valid spec")
}

impl Run {
    pub fn new(with_data: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        if with_data {
            write_fake_idx(&data_dir, 200, 50);
        }
        let config = experiment::Config::from_json(
            include_str!("../../../../config.json"),
            Path::new("config.json"),
            &["device=cpu".to_owned(), format!("data_loader.args.data_dir={}", data_dir.display())],
        )
        .expect("the project's config.json is valid");
        let spec = spec();
        let built = experiment::build_model(&config, &spec, &Device::Cpu).expect("the model builds");
        perturb(&built.varmap, 0.1);
        let run = dir.path().join("run");
        std::fs::create_dir(&run).expect("run folder");
        std::fs::write(run.join("config.json"), config.to_json()).expect("config.json");
        let checkpoint = run.join("model_best.safetensors");
        experiment::checkpoint::save(&checkpoint, &built.varmap, &spec, None, None).expect("checkpoint");
        Self { dir, checkpoint, config, model: built.model, varmap: built.varmap, spec }
    }

    pub fn run_dir(&self) -> &Path {
        self.checkpoint.parent().expect("the checkpoint is in the run folder")
    }

    pub fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.run_dir())
            .expect("run folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    pub fn candle_logits(&self, pixels: &[f32], batch: usize) -> Vec<f32> {
        let [c, h, w] = self.spec.image_shape().expect("an image fixture");
        let normalize = self.config.data_loader.channel_normalize(c).expect("fixed numbers");
        let x = Tensor::from_slice(pixels, (batch, c, h, w), &Device::Cpu).expect("pixels");
        let x = normalize.apply_tensor(&x).expect("standardised");
        let logits = self.model.forward_t(&x, false).expect("forward");
        logits.flatten_all().and_then(|t| t.to_vec1()).expect("logits")
    }
}

/// IDX files of random images of [`spec`]'s shape and classes in `dir`: `train` training and
/// `test` test images.
pub(super) fn write_fake_idx(dir: &Path, train: usize, test: usize) {
    let spec = spec();
    let [_, rows, cols] = spec.image_shape().expect("an image fixture");
    std::fs::create_dir_all(dir).expect("data folder");
    let mut state = 7u32;
    let mut byte = move || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 24) as u8
    };
    for (split, count) in [(Split::Train, train), (Split::Test, test)] {
        let pixels = (0..count * rows * cols).map(|_| byte()).collect();
        let images = IdxImages { count, rows, cols, pixels };
        // Every class appears: the training labels decide the class count.
        let labels: Vec<u8> = (0..count).map(|i| (i % spec.outputs()) as u8).collect();
        data_loader::write_images(&dir.join(split.images_file()), &images).expect("images");
        data_loader::write_labels(&dir.join(split.labels_file()), &labels).expect("labels");
    }
}

pub(super) fn read_model(path: &Path) -> ModelProto {
    let bytes = std::fs::read(path).expect("the model file");
    ModelProto::parse_from_bytes(&bytes).expect("an ONNX model")
}

/// `name: float32 [dims]` of a graph input or output, with symbolic dims as their names.
pub(super) fn signature(info: &ValueInfoProto) -> String {
    let Some(TypeValue::TensorType(tensor)) = &info.type_.value else {
        return format!("{}: not a tensor", info.name);
    };
    let dims: Vec<String> = tensor
        .shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(DimValue::DimValue(n)) => n.to_string(),
            Some(DimValue::DimParam(p)) => p.clone(),
            _ => "?".to_owned(),
        })
        .collect();
    format!("{}: {} [{}]", info.name, tensor.elem_type, dims.join(", "))
}

pub(super) fn random_pixels(count: usize, seed: u64) -> Vec<f32> {
    Samples::random(&spec(), count, seed, "test").pixels
}
