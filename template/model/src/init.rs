//! PyTorch's default initialisation of `nn.Linear` and `nn.Conv2d`, which the shipped layers use.
//!
//! PyTorch's `reset_parameters` draws a weight with `kaiming_uniform_(a = sqrt(5))`: gain
//! `sqrt(2 / (1 + 5))`, bound `gain * sqrt(3 / fan_in)` = `1 / sqrt(fan_in)`; and the bias uniform
//! in the same `±1 / sqrt(fan_in)`, where `fan_in` is a weight row's size (`in` for a linear layer,
//! `in / groups * kernel * kernel` for a convolution). candle-nn's `linear` and `conv2d` draw the
//! weight Kaiming-normal with the ReLU gain instead (std `sqrt(2 / fan_in)`, 2.45 times PyTorch's
//! `1 / sqrt(3 fan_in)`), so the same model started elsewhere than PyTorch's. Draws stay seeded
//! (`experiment::init`), so resumed runs remain exact.

use candle_core::{Result, Shape, Tensor};
use candle_nn::{Init, VarBuilder};

/// Uniform in `±1 / sqrt(fan_in)`: PyTorch's default for both the weight and the bias.
pub fn pytorch_default(fan_in: usize) -> Init {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    Init::Uniform { lo: -bound, up: bound }
}

/// `<vb>.weight` of `shape` (`[out, ...]`, a row per output) and `<vb>.bias` (`[out]`, when
/// `bias`), created with PyTorch's default initialisation, or loaded.
pub fn weight_and_bias(shape: impl Into<Shape>, bias: bool, vb: &VarBuilder) -> Result<(Tensor, Option<Tensor>)> {
    let shape = shape.into();
    let out = shape.dims().first().copied().unwrap_or(1);
    let init = pytorch_default(shape.elem_count() / out.max(1));
    let weight = vb.get_with_hints(shape, "weight", init)?;
    let bias = if bias { Some(vb.get_with_hints(out, "bias", init)?) } else { None };
    Ok((weight, bias))
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::{Conv2dConfig, VarBuilder, VarMap};

    /// (max |x|, mean, std) of a tensor's values.
    fn stats(t: &Tensor) -> (f64, f64, f64) {
        let v: Vec<f64> = t.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f64::from).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        (v.iter().fold(0.0, |m: f64, x| m.max(x.abs())), mean, var.sqrt())
    }

    /// PyTorch's formulas: weight and bias uniform in +-1/sqrt(fan_in), so std = bound / sqrt(3).
    fn assert_pytorch_default(t: &Tensor, fan_in: usize, what: &str) {
        let bound = 1.0 / (fan_in as f64).sqrt();
        let (max, mean, std) = stats(t);
        let n = t.elem_count() as f64;
        assert!(max <= bound * (1.0 + 1e-6), "{what}: |x| up to {max}, bound {bound} (f32 rounding allowed)");
        assert!(max > 0.9 * bound, "{what}: |x| only up to {max}, bound {bound}");
        // Sampling error of the mean: std / sqrt(n); allow 5 of them.
        assert!(mean.abs() < 5.0 * bound / (3.0 * n).sqrt(), "{what}: mean {mean}");
        let want = bound / 3f64.sqrt();
        let tolerance = if n > 1000.0 { 0.05 } else { 0.25 };
        assert!((std / want - 1.0).abs() < tolerance, "{what}: std {std}, PyTorch's {want}");
    }

    #[test]
    fn linear_and_conv2d_start_as_pytorchs_nn_linear_and_nn_conv2d() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let fc = crate::linear::linear(400, 300, vb.pp("fc")).unwrap();
        assert_pytorch_default(fc.weight(), 400, "linear weight");
        assert_pytorch_default(fc.bias().unwrap(), 400, "linear bias");
        let conv = crate::conv::conv2d(16, 64, 3, Conv2dConfig::default(), vb.pp("conv")).unwrap();
        assert_pytorch_default(conv.weight(), 16 * 9, "conv weight");
        assert_pytorch_default(conv.bias().unwrap(), 16 * 9, "conv bias");
        let depthwise = Conv2dConfig { groups: 256, padding: 3, ..Default::default() };
        let dw = crate::conv::conv2d(256, 256, 7, depthwise, vb.pp("dw")).unwrap();
        assert_pytorch_default(dw.weight(), 49, "depthwise weight");
        assert_pytorch_default(dw.bias().unwrap(), 49, "depthwise bias");
    }

    /// candle-nn's linear weight, for the record: 2.45 times PyTorch's spread.
    #[test]
    fn candle_nn_linear_starts_wider_than_pytorch() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let theirs = candle_nn::linear(400, 300, vb.pp("fc")).unwrap();
        let (_, _, std) = stats(theirs.weight());
        let ratio = std / (1.0 / (3.0f64 * 400.0).sqrt());
        assert!((ratio - 6f64.sqrt()).abs() < 0.1, "{ratio}");
    }
}
