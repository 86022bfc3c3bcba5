//! Dropout with reproducible masks. Candle's dropout draws from the CPU's random generator, which
//! cannot be seeded, so two runs with the same seed would differ and a resumed run could not match
//! an uninterrupted one. Here the masks on the CPU are a function of the seed, the optimiser step,
//! the dropout layer's place in the forward pass and each sample's position in the global batch
//! ([`set_dropout_stream`]): a process that runs only part of a batch (one rank of a
//! data-parallel run) draws exactly the masks the whole batch would give those samples. On a GPU
//! they come from the device's own generator (seeded once by the trainer), so no mask is copied
//! from the host at each step.

use std::cell::RefCell;

use candle_core::{Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Dropout layers one forward pass may run (each gets its own ChaCha stream of the step).
const MAX_LAYERS: u64 = 256;

/// Where the next dropout mask of this thread comes from.
#[derive(Debug, Clone, Copy, Default)]
struct Stream {
    seed: u64,
    step: u64,
    /// The first sample's position in the global batch.
    first_sample: u64,
    /// Dropout layers run since the stream was set.
    layers: u64,
}

thread_local! {
    static STREAM: RefCell<Stream> = RefCell::new(Stream::default());
}

/// Make the dropout masks of this thread's next forward passes a function of `(seed, step)`, of
/// each dropout layer's order in the pass and of each sample's position in the global batch, the
/// first sample of the batch the pass runs being at `first_sample` (0 unless the batch is a shard).
pub fn set_dropout_stream(seed: u64, step: u64, first_sample: u64) {
    STREAM.with(|s| *s.borrow_mut() = Stream { seed, step, first_sample, layers: 0 });
}

/// The keep-and-scale mask of the next dropout layer for `samples` samples of `per_sample` elements:
/// sample `k`'s elements are the words from `(first_sample + k) * per_sample` on of the layer's
/// stream, so any contiguous part of a batch draws what the whole batch would for those samples.
fn next_mask(samples: usize, per_sample: usize, p: f32, scale: f32) -> Result<Vec<f32>> {
    let stream = STREAM.with(|s| {
        let mut s = s.borrow_mut();
        let current = *s;
        s.layers += 1;
        current
    });
    if stream.layers >= MAX_LAYERS {
        candle_core::bail!(
            "a forward pass ran more than {MAX_LAYERS} dropout layers; raise MAX_LAYERS in model/src/dropout.rs"
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(stream.seed);
    rng.set_stream(stream.step.wrapping_mul(MAX_LAYERS).wrapping_add(stream.layers));
    rng.set_word_pos(u128::from(stream.first_sample) * per_sample as u128);
    Ok((0..samples * per_sample).map(|_| if rng.random::<f32>() >= p { scale } else { 0.0 }).collect())
}

/// Zeroes each element with probability `p` and scales the rest by `1 / (1 - p)`, in training only.
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    p: f32,
}

impl Dropout {
    pub fn new(p: f32) -> Self {
        Self { p }
    }
}

impl crate::Layer for Dropout {
    fn kind(&self) -> &'static str {
        "dropout"
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        candle_nn::ModuleT::forward_t(self, xs, train)
    }

    /// The identity: dropout is off at inference.
    fn emit(&self, _g: &mut crate::graph::Graph, x: &crate::graph::Value) -> Result<crate::graph::Value> {
        Ok(x.clone())
    }
}

impl candle_nn::ModuleT for Dropout {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(xs.clone());
        }
        if !(0.0..1.0).contains(&self.p) {
            candle_core::bail!("dropout probability must be in [0, 1), got {}", self.p);
        }
        let scale = 1.0 / (1.0 - self.p);
        let mask = if xs.device().is_cpu() {
            // The first dimension is the batch.
            let samples = xs.dims().first().copied().unwrap_or(1).max(1);
            let values = next_mask(samples, xs.elem_count() / samples, self.p, scale)?;
            Tensor::from_vec(values, xs.shape(), xs.device())?.to_dtype(xs.dtype())?
        } else {
            let keep = Tensor::rand(0f32, 1f32, xs.shape(), xs.device())?.ge(f64::from(self.p))?;
            (keep.to_dtype(xs.dtype())? * f64::from(scale))?
        };
        xs * mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::ModuleT;

    fn mask(seed: u64, step: u64) -> Vec<f32> {
        set_dropout_stream(seed, step, 0);
        let xs = Tensor::ones(1000, candle_core::DType::F32, &Device::Cpu).unwrap();
        Dropout::new(0.25).forward_t(&xs, true).unwrap().to_vec1().unwrap()
    }

    /// Two dropout layers over `samples` samples of 6 features, the first at `first`.
    fn two_layers(step: u64, first: u64, samples: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        set_dropout_stream(7, step, first);
        let xs = Tensor::ones((samples, 6), candle_core::DType::F32, &Device::Cpu).unwrap();
        let a = Dropout::new(0.5).forward_t(&xs, true).unwrap().to_vec2().unwrap();
        let b = Dropout::new(0.5).forward_t(&xs, true).unwrap().to_vec2().unwrap();
        (a, b)
    }

    #[test]
    fn a_shard_of_the_batch_draws_the_masks_the_whole_batch_gives_its_samples() {
        let (whole_a, whole_b) = two_layers(3, 0, 5);
        let (head_a, head_b) = two_layers(3, 0, 2);
        let (tail_a, tail_b) = two_layers(3, 2, 3);
        assert_eq!([head_a, tail_a].concat(), whole_a);
        assert_eq!([head_b, tail_b].concat(), whole_b);
        // Each layer and each sample gets its own mask.
        assert_ne!(whole_a, whole_b);
        assert_ne!(whole_a[0], whole_a[1]);
    }

    #[test]
    fn masks_depend_only_on_seed_and_step() {
        assert_eq!(mask(1, 5), mask(1, 5));
        assert_ne!(mask(1, 5), mask(1, 6));
        assert_ne!(mask(1, 5), mask(2, 5));
    }

    #[test]
    fn drops_about_p_and_scales_the_rest() {
        let m = mask(3, 0);
        let dropped = m.iter().filter(|v| **v == 0.0).count();
        assert!((200..300).contains(&dropped), "{dropped} of 1000 dropped at p = 0.25");
        assert!(m.iter().all(|v| *v == 0.0 || (*v - 4.0 / 3.0).abs() < 1e-6));
    }

    #[test]
    fn evaluation_is_the_identity() {
        let xs = Tensor::new(&[1.0f32, 2.0, 3.0], &Device::Cpu).unwrap();
        let ys = Dropout::new(0.5).forward_t(&xs, false).unwrap();
        assert_eq!(ys.to_vec1::<f32>().unwrap(), [1.0, 2.0, 3.0]);
    }
}
