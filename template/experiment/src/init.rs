//! Reproducible weight initialisation. Candle draws initial weights from the device's random
//! generator, which cannot be seeded on the CPU; this VarBuilder backend draws each parameter
//! from its own ChaCha stream keyed by (seed, parameter name) instead, following candle's `Init`
//! rules (Kaiming, uniform, normal, constant). The same seed gives the same weights on every run,
//! whatever order the model creates its parameters in.

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A VarMap that creates missing variables from `seed`.
struct SeededVarMap {
    varmap: VarMap,
    seed: u64,
}

/// A VarBuilder over `varmap` whose new variables are initialised from `seed`.
pub fn seeded_var_builder(varmap: &VarMap, seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
    let backend = SeededVarMap { varmap: varmap.clone(), seed };
    VarBuilder::from_backend(Box::new(backend), dtype, device.clone())
}

/// FNV-1a of the name, so each parameter has its own stream.
fn stream_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn sample(init: Init, shape: &Shape, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n = shape.elem_count();
    let uniform = |rng: &mut ChaCha8Rng, lo: f64, up: f64| (0..n).map(|_| rng.random_range(lo..up) as f32).collect();
    let normal = |rng: &mut ChaCha8Rng, mean: f64, std: f64| {
        (0..n)
            .map(|_| {
                // Box-Muller: u1 in (0, 1] so the logarithm is finite.
                let u1: f64 = 1.0 - rng.random::<f64>();
                let u2: f64 = rng.random();
                (mean + std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
            })
            .collect()
    };
    match init {
        Init::Const(v) => vec![v as f32; n],
        Init::Uniform { lo, up } => uniform(rng, lo, up),
        Init::Randn { mean, stdev } => normal(rng, mean, stdev),
        Init::Kaiming { dist, fan, non_linearity } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => uniform(rng, -(3f64.sqrt()) * std, 3f64.sqrt() * std),
                NormalOrUniform::Normal => normal(rng, 0.0, std),
            }
        }
    }
}

impl SimpleBackend for SeededVarMap {
    fn get(&self, shape: Shape, name: &str, init: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut vars = self.varmap.data().lock().expect("the VarMap lock is never poisoned");
        if let Some(var) = vars.get(name) {
            if var.shape() != &shape {
                candle_core::bail!("parameter {name} exists with shape {:?}, asked for {shape:?}", var.shape());
            }
            return Ok(var.as_tensor().clone());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(stream_of(name));
        let values = sample(init, &shape, &mut rng);
        let var = Var::from_tensor(&Tensor::from_vec(values, shape, dev)?.to_dtype(dtype)?)?;
        let tensor = var.as_tensor().clone();
        vars.insert(name.to_string(), var);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        candle_core::bail!("parameter {name} must be created with a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap.data().lock().expect("the VarMap lock is never poisoned").contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::Module;

    fn weights(seed: u64) -> Vec<Vec<f32>> {
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, seed, DType::F32, &Device::Cpu);
        let layer = candle_nn::linear(100, 50, vb.pp("fc")).unwrap();
        let _ = layer.forward(&Tensor::zeros((1, 100), DType::F32, &Device::Cpu).unwrap()).unwrap();
        layer.weight().to_vec2().unwrap()
    }

    #[test]
    fn same_seed_same_weights_other_seed_other_weights() {
        assert_eq!(weights(7), weights(7));
        assert_ne!(weights(7), weights(8));
    }

    #[test]
    fn kaiming_normal_has_the_right_spread() {
        // candle's linear uses Kaiming normal (fan-in, ReLU gain): std = sqrt(2) / sqrt(100).
        let w: Vec<f32> = weights(1).concat();
        let mean = w.iter().sum::<f32>() / w.len() as f32;
        let var = w.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / w.len() as f32;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 0.02).abs() < 0.002, "{var}");
    }
}
