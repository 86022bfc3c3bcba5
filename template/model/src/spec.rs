//! What the data says a model must take and give: one sample's shape and the class names. The
//! data loader reports it from the training data, the model is built from it, and every
//! checkpoint carries it, so evaluation, prediction and export rebuild the same model without
//! reading the training data again.

use serde::{Deserialize, Serialize};

/// One sample's shape and the classes, as the training data reported them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// `[channels, height, width]` of one image; batches are `[batch, channels, height, width]`.
    pub input_shape: [usize; 3],
    /// The class names, in label order: label `i` is `classes[i]`.
    pub classes: Vec<String>,
}

impl DataSpec {
    /// A spec, checked: every dimension at least 1, at least two classes, no name twice.
    pub fn new(input_shape: [usize; 3], classes: Vec<String>) -> Result<Self, String> {
        let spec = Self { input_shape, classes };
        spec.check()?;
        Ok(spec)
    }

    /// Class names `"0"`, `"1"`, ... for data sets whose labels are numbers.
    pub fn numbered_classes(count: usize) -> Vec<String> {
        (0..count).map(|c| c.to_string()).collect()
    }

    /// The number of classes: the width of the logits.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    pub fn channels(&self) -> usize {
        self.input_shape[0]
    }

    /// `(height, width)`.
    pub fn image_size(&self) -> (usize, usize) {
        (self.input_shape[1], self.input_shape[2])
    }

    /// Values per sample: channels x height x width.
    pub fn sample_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.input_shape.contains(&0) {
            return Err(format!("input shape {:?} has a zero dimension", self.input_shape));
        }
        if self.classes.len() < 2 {
            return Err(format!("a classifier needs at least two classes, got {:?}", self.classes));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(twice) = self.classes.iter().find(|c| !seen.insert(c.as_str())) {
            return Err(format!("class {twice:?} is named twice"));
        }
        Ok(())
    }

    /// Fails with the expected shape when `xs` is not a batch of this spec's images, instead of a
    /// shape error from deep inside the first layer.
    pub fn check_input(&self, xs: &candle_core::Tensor) -> candle_core::Result<()> {
        match xs.dims() {
            [_, c, h, w] if [*c, *h, *w] == self.input_shape => Ok(()),
            dims => {
                let [c, h, w] = self.input_shape;
                candle_core::bail!("expected images [batch, {c}, {h}, {w}], got {dims:?}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        assert!(DataSpec::new([3, 0, 8], DataSpec::numbered_classes(3)).unwrap_err().contains("zero"));
        assert!(DataSpec::new([3, 8, 8], vec!["cat".into()]).unwrap_err().contains("two classes"));
        let twice = DataSpec::new([1, 8, 8], vec!["cat".into(), "dog".into(), "cat".into()]).unwrap_err();
        assert!(twice.contains("\"cat\" is named twice"), "{twice}");
        let spec = DataSpec::new([3, 5, 7], vec!["a".into(), "b".into()]).unwrap();
        assert_eq!((spec.sample_len(), spec.num_classes(), spec.image_size()), (105, 2, (5, 7)));
    }

    #[test]
    fn input_of_another_shape_is_rejected_with_the_expected_shape() {
        let spec = DataSpec::new([3, 5, 7], DataSpec::numbered_classes(4)).unwrap();
        let xs = candle_core::Tensor::zeros((2, 1, 5, 7), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let err = spec.check_input(&xs).unwrap_err().to_string();
        assert!(err.contains("expected images [batch, 3, 5, 7], got [2, 1, 5, 7]"), "{err}");
    }
}
