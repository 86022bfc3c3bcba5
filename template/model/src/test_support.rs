//! Helpers the models' unit tests share: building, a fixed batch, gradient checks and the overfit loop.

use candle_core::{DType, Device, Tensor};
use candle_nn::loss::cross_entropy;
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};

use crate::{Classifier, DataSpec, ModelConfig};

/// The data the models' tests build for: colour images, not square, in five classes, so that no
/// model can pass by assuming one channel, square images or ten classes.
pub(crate) fn test_spec() -> DataSpec {
    DataSpec::new([3, 20, 16], DataSpec::numbered_classes(5)).expect("a valid spec")
}

/// A freshly initialised model for [`test_spec`] and the map that owns its parameters.
pub(crate) fn build(cfg: &ModelConfig) -> (VarMap, Box<dyn Classifier>) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = cfg.build(&test_spec(), vb).expect("a valid config builds");
    (varmap, model)
}

/// The same `batch` images every call (a fixed LCG, not the global RNG), values in [0, 1) like scaled
/// pixels, with labels cycling through the classes of [`test_spec`].
pub(crate) fn fixed_batch(batch: usize) -> (Tensor, Tensor) {
    let spec = test_spec();
    let [c, h, w] = spec.image_shape().expect("test images");
    let len = batch * spec.sample_len();
    let mut state: u64 = 0x5eed;
    let pixels: Vec<f32> = (0..len)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    let xs = Tensor::from_vec(pixels, (batch, c, h, w), &Device::Cpu).expect("length matches the shape");
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % spec.outputs() as u32).collect();
    let ys = Tensor::from_vec(labels, batch, &Device::Cpu).expect("length matches the shape");
    (xs, ys)
}

/// The logits' dims for a batch of `batch` images.
pub(crate) fn output_dims(model: &dyn Classifier, batch: usize) -> Vec<usize> {
    let (xs, _) = fixed_batch(batch);
    model.forward_t(&xs, false).expect("forward").dims().to_vec()
}

/// Whether two tensors hold exactly the same values.
pub(crate) fn same_values(a: &Tensor, b: &Tensor) -> bool {
    let a: Vec<f32> = a.flatten_all().and_then(|t| t.to_vec1()).expect("f32 tensor");
    let b: Vec<f32> = b.flatten_all().and_then(|t| t.to_vec1()).expect("f32 tensor");
    a == b
}

/// Asserts that every parameter gets a non-zero gradient from the loss on one batch in training mode: a
/// layer whose op has no backward pass (or that the forward pass skips) would silently never train.
pub(crate) fn assert_every_parameter_gets_a_gradient(varmap: &VarMap, model: &dyn Classifier) {
    let (xs, ys) = fixed_batch(8);
    let loss = model.forward_t(&xs, true).and_then(|logits| cross_entropy(&logits, &ys)).expect("loss");
    let grads = loss.backward().expect("backward");
    let data = varmap.data().lock().expect("var map lock");
    // Layer state (batch-norm running statistics) is updated, not trained: it has no gradient.
    for (name, var) in data.iter().filter(|(name, _)| !crate::is_state(name)) {
        let grad = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm: f32 = grad.abs().and_then(|g| g.sum_all()).and_then(|s| s.to_scalar()).expect("grad norm");
        assert!(norm > 0.0, "zero gradient for {name}");
    }
}

/// The outcome of [`overfit`]: the loss on the batch before training and after the last step taken.
#[derive(Debug)]
pub(crate) struct Overfit {
    pub initial_loss: f32,
    pub final_loss: f32,
}

/// Trains a fresh model on one fixed batch of 32 with AdamW until the loss has fallen by 90% or
/// `max_steps` have run. Dropout stays off, so the loss each step is the eval-mode loss and memorising
/// takes few steps (the dropout path's gradients are checked by
/// [`assert_every_parameter_gets_a_gradient`]).
pub(crate) fn overfit(cfg: &ModelConfig, lr: f64, max_steps: usize) -> Overfit {
    let (varmap, model) = build(cfg);
    let (xs, ys) = fixed_batch(32);
    let params = ParamsAdamW { lr, ..Default::default() };
    let mut opt = AdamW::new(varmap.all_vars(), params).expect("optimizer");
    let mut losses = Vec::new();
    for _ in 0..=max_steps {
        let loss = model.forward_t(&xs, false).and_then(|logits| cross_entropy(&logits, &ys)).expect("loss");
        let value: f32 = loss.to_scalar().expect("scalar loss");
        losses.push(value);
        if value <= 0.1 * losses[0] || losses.len() > max_steps {
            break;
        }
        opt.backward_step(&loss).expect("step");
    }
    let (initial_loss, final_loss) = (losses[0], losses[losses.len() - 1]);
    eprintln!("overfit: loss {initial_loss} -> {final_loss} in {} steps", losses.len() - 1);
    Overfit { initial_loss, final_loss }
}
