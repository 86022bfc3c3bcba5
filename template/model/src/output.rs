//! What follows a model's last layer, derived from the data's target: for real-valued targets
//! learnt standardised, the map back to their own units, `y = h * std + mean`. It runs in
//! training (the loss standardises again, see `experiment::task`), in inference and in the ONNX
//! graph alike, so no caller ever sees standardised values.

use candle_core::{Result, Tensor};

use crate::graph::{Graph, Value};
use crate::spec::{Target, Values};

/// `y = h * std + mean` per output column (`[batch, values]`).
#[derive(Debug, Clone)]
pub struct Unstandardize {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Unstandardize {
    /// The output layer `target` needs, if any (scaled values only).
    pub fn for_target(target: &Target) -> Option<Self> {
        match target {
            Target::Values(values) if values.is_scaled() => Some(Self::new(values)),
            _ => None,
        }
    }

    pub fn new(values: &Values) -> Self {
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect();
        Self { mean: f32s(&values.mean), std: f32s(&values.std) }
    }
}

impl crate::Layer for Unstandardize {
    fn kind(&self) -> &'static str {
        "unstandardize"
    }

    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        let n = self.mean.len();
        let mean = Tensor::from_slice(&self.mean, (1, n), xs.device())?.to_dtype(xs.dtype())?;
        let std = Tensor::from_slice(&self.std, (1, n), xs.device())?.to_dtype(xs.dtype())?;
        xs.broadcast_mul(&std)?.broadcast_add(&mean)
    }

    fn emit(&self, g: &mut Graph, x: &Value) -> Result<Value> {
        let n = self.mean.len();
        let std = g.constant("target/std", &[1, n], &self.std);
        let mean = g.constant("target/mean", &[1, n], &self.mean);
        let scaled = g.node("Mul", 7, &[x, &std], vec![], "target/Mul");
        Ok(g.node("Add", 7, &[&scaled, &mean], vec![], "target/Add"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Layer;
    use candle_core::Device;

    #[test]
    fn maps_standardised_outputs_back_to_the_targets_units() {
        let values = Values { names: vec!["a".into(), "b".into()], mean: vec![10.0, -1.0], std: vec![2.0, 0.5] };
        let layer = Unstandardize::for_target(&Target::Values(values)).expect("scaled values need it");
        let h = Tensor::new(&[[0f32, 1.0], [-1.0, 2.0]], &Device::Cpu).unwrap();
        let y = layer.forward_t(&h, false).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(y, [[10.0, -0.5], [8.0, 0.0]]);
        assert!(Unstandardize::for_target(&Target::Values(Values::unscaled(vec!["y".into()]))).is_none());
        assert!(Unstandardize::for_target(&Target::Classes(vec!["a".into(), "b".into()])).is_none());
    }
}
