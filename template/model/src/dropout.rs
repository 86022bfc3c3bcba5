//! Dropout with reproducible masks. Candle's dropout draws from the CPU's random generator, which
//! cannot be seeded, so two runs with the same seed would differ and a resumed run could not match
//! an uninterrupted one. Here the masks on the CPU come from a ChaCha stream that the trainer sets
//! per optimiser step ([`set_dropout_stream`]); on a GPU they come from the device's own generator
//! (seeded once by the trainer), so no mask is copied from the host at each step.

use std::cell::RefCell;

use candle_core::{Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

thread_local! {
    static STREAM: RefCell<ChaCha8Rng> = RefCell::new(ChaCha8Rng::seed_from_u64(0));
}

/// Make the dropout masks of this thread's next forward passes a function of `(seed, step)` only.
pub fn set_dropout_stream(seed: u64, step: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(step);
    STREAM.with(|s| *s.borrow_mut() = rng);
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
            let n = xs.elem_count();
            let values: Vec<f32> = STREAM.with(|s| {
                let mut rng = s.borrow_mut();
                (0..n).map(|_| if rng.random::<f32>() >= self.p { scale } else { 0.0 }).collect()
            });
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
        set_dropout_stream(seed, step);
        let xs = Tensor::ones(1000, candle_core::DType::F32, &Device::Cpu).unwrap();
        Dropout::new(0.25).forward_t(&xs, true).unwrap().to_vec1().unwrap()
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
