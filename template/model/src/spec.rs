//! What the data says a model must take and give: one sample's shape and the targets (classes,
//! labels or values, by name). The data loader reports it from the training data, the model is
//! built from it (its input and its head), and every checkpoint and ONNX file carries it, so
//! evaluation, prediction and export rebuild the same model without reading the training data.

use serde::{Deserialize, Serialize};

/// One sample's shape and what the model predicts for it, as the training data reported them.
///
/// In JSON: `{"input_shape": [1, 28, 28], "classes": ["0", ...]}`, `{"input_shape": [12],
/// "labels": [...]}` or `{"input_shape": [8], "values": {"names": [...], "mean": [...], "std": [...]}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    /// One sample's shape, any rank: `[features]`, `[channels, length]`, `[channels, height, width]`;
    /// batches add a first dimension.
    pub input_shape: Vec<usize>,
    #[serde(flatten)]
    pub target: Target,
}

/// What a model predicts for each sample; the width of its output is [`Target::width`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// One class per sample, in label order (label `i` is `classes[i]`): one logit per class.
    Classes(Vec<String>),
    /// Any subset of these labels per sample: one logit per label (sigmoid gives probabilities).
    Labels(Vec<String>),
    /// Real numbers per sample, in their own units.
    Values(Values),
}

/// Real-valued targets: their names and the standardisation the model learns them in. The model
/// learns `(y - mean) / std` and its output layer maps back, so every number a user sees (metrics,
/// predictions, the ONNX output) is in the target's own units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Values {
    pub names: Vec<String>,
    /// Per value; 0 when not standardised.
    pub mean: Vec<f64>,
    /// Per value; 1 when not standardised.
    pub std: Vec<f64>,
}

impl Values {
    /// Values named `names`, learnt as they are (mean 0, std 1).
    pub fn unscaled(names: Vec<String>) -> Self {
        let n = names.len();
        Self { names, mean: vec![0.0; n], std: vec![1.0; n] }
    }

    /// Whether the output layer has anything to undo (a mean other than 0 or a std other than 1).
    pub fn is_scaled(&self) -> bool {
        self.mean.iter().any(|&m| m != 0.0) || self.std.iter().any(|&s| s != 1.0)
    }
}

/// The three kinds of target, as `config.json` and messages name the tasks they make.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// One class per sample ([`Target::Classes`]).
    #[default]
    Classification,
    /// Any subset of labels per sample ([`Target::Labels`]).
    MultiLabel,
    /// Real values per sample ([`Target::Values`]).
    Regression,
}

impl TaskKind {
    pub const ALL: [TaskKind; 3] = [Self::Classification, Self::MultiLabel, Self::Regression];

    /// The name in `config.json` (`"classification"`, `"multi_label"`, `"regression"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Classification => "classification",
            Self::MultiLabel => "multi_label",
            Self::Regression => "regression",
        }
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Target {
    /// The width of the model's output: classes, labels or values.
    pub fn width(&self) -> usize {
        self.names().len()
    }

    /// The names of the outputs: class names, label names or value names.
    pub fn names(&self) -> &[String] {
        match self {
            Self::Classes(names) | Self::Labels(names) => names,
            Self::Values(values) => &values.names,
        }
    }

    pub fn kind(&self) -> TaskKind {
        match self {
            Self::Classes(_) => TaskKind::Classification,
            Self::Labels(_) => TaskKind::MultiLabel,
            Self::Values(_) => TaskKind::Regression,
        }
    }

    /// One line for logs and messages: `10 classes`, `3 labels`, `2 values`.
    pub fn describe(&self) -> String {
        let (n, one, many) = match self {
            Self::Classes(c) => (c.len(), "class", "classes"),
            Self::Labels(l) => (l.len(), "label", "labels"),
            Self::Values(v) => (v.names.len(), "value", "values"),
        };
        format!("{n} {}", if n == 1 { one } else { many })
    }

    fn check(&self) -> Result<(), String> {
        let names = self.names();
        match self {
            Self::Classes(c) if c.len() < 2 => {
                return Err(format!("a classifier needs at least two classes, got {c:?}"));
            }
            Self::Labels(l) if l.is_empty() => return Err("a multi-label target needs at least one label".into()),
            Self::Values(v) if v.names.is_empty() => return Err("a regression target needs at least one value".into()),
            Self::Values(v) if v.mean.len() != v.names.len() || v.std.len() != v.names.len() => {
                return Err(format!("{} values but {} means and {} stds", v.names.len(), v.mean.len(), v.std.len()));
            }
            Self::Values(v)
                if v.std.iter().chain(&v.mean).any(|s| !s.is_finite()) || v.std.iter().any(|&s| s <= 0.0) =>
            {
                return Err(format!(
                    "the values' standardisation must be finite with std > 0, got mean {:?} std {:?}",
                    v.mean, v.std
                ));
            }
            _ => {}
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(twice) = names.iter().find(|c| !seen.insert(c.as_str())) {
            return Err(format!("{twice:?} is named twice"));
        }
        Ok(())
    }
}

impl DataSpec {
    /// A classification spec, checked: every dimension at least 1, at least two classes, no name twice.
    pub fn new(input_shape: impl Into<Vec<usize>>, classes: Vec<String>) -> Result<Self, String> {
        Self::with_target(input_shape, Target::Classes(classes))
    }

    /// A spec of any target, checked.
    pub fn with_target(input_shape: impl Into<Vec<usize>>, target: Target) -> Result<Self, String> {
        let spec = Self { input_shape: input_shape.into(), target };
        spec.check()?;
        Ok(spec)
    }

    /// Class names `"0"`, `"1"`, ... for data sets whose labels are numbers.
    pub fn numbered_classes(count: usize) -> Vec<String> {
        (0..count).map(|c| c.to_string()).collect()
    }

    /// The width of the model's output (classes, labels or values).
    pub fn outputs(&self) -> usize {
        self.target.width()
    }

    /// [`DataSpec::outputs`], under the name models written for earlier versions of this
    /// template (when every target was a class) use.
    pub fn num_classes(&self) -> usize {
        self.outputs()
    }

    /// The class names of a classification spec; empty for the other targets.
    pub fn classes(&self) -> &[String] {
        match &self.target {
            Target::Classes(classes) => classes,
            _ => &[],
        }
    }

    pub fn task(&self) -> TaskKind {
        self.target.kind()
    }

    /// `[channels, height, width]` when the samples are images (rank 3).
    pub fn image_shape(&self) -> Option<[usize; 3]> {
        match self.input_shape[..] {
            [c, h, w] => Some([c, h, w]),
            _ => None,
        }
    }

    /// `[channels, height, width]`, or an error for a `model` that needs images, which says what
    /// the data gives instead and what to do.
    pub fn require_image(&self, model: &str) -> Result<[usize; 3], String> {
        self.image_shape().ok_or_else(|| {
            format!(
                "the {model} model takes images [channels, height, width], but the data gives samples of shape {:?} \
                 ({}); use the mlp (\"model\": {{\"type\": \"mlp\"}}), which takes any shape",
                self.input_shape,
                if self.input_shape.len() == 1 { "a table's feature vectors" } else { "not images" }
            )
        })
    }

    /// Channels of an image spec (1 for any other).
    pub fn channels(&self) -> usize {
        self.image_shape().map_or(1, |[c, _, _]| c)
    }

    /// `(height, width)` of an image spec.
    pub fn image_size(&self) -> Option<(usize, usize)> {
        self.image_shape().map(|[_, h, w]| (h, w))
    }

    /// Values per sample: the product of the input shape.
    pub fn sample_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// `[batch, ...input_shape]` for `batch` samples.
    pub fn batch_dims(&self, batch: usize) -> Vec<usize> {
        std::iter::once(batch).chain(self.input_shape.iter().copied()).collect()
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.input_shape.is_empty() || self.input_shape.contains(&0) {
            return Err(format!(
                "input shape {:?} must have at least one dimension, none of them zero",
                self.input_shape
            ));
        }
        self.target.check()
    }

    /// Fails with the expected shape when `xs` is not a batch of this spec's samples, instead of a
    /// shape error from deep inside the first layer.
    pub fn check_input(&self, xs: &candle_core::Tensor) -> candle_core::Result<()> {
        match xs.dims() {
            [_, sample @ ..] if sample == self.input_shape.as_slice() => Ok(()),
            dims => {
                let what = if self.image_shape().is_some() { "images" } else { "samples" };
                let expected: Vec<String> =
                    std::iter::once("batch".to_owned()).chain(self.input_shape.iter().map(|d| d.to_string())).collect();
                candle_core::bail!("expected {what} [{}], got {dims:?}", expected.join(", "))
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
        assert_eq!((spec.sample_len(), spec.outputs(), spec.image_size()), (105, 2, Some((5, 7))));
        let zero_std = Values { names: vec!["y".into()], mean: vec![1.0], std: vec![0.0] };
        assert!(DataSpec::with_target([4], Target::Values(zero_std)).unwrap_err().contains("std > 0"));
        assert!(DataSpec::with_target([4], Target::Labels(vec![])).unwrap_err().contains("at least one label"));
    }

    #[test]
    fn input_of_another_shape_is_rejected_with_the_expected_shape() {
        let spec = DataSpec::new([3, 5, 7], DataSpec::numbered_classes(4)).unwrap();
        let xs = candle_core::Tensor::zeros((2, 1, 5, 7), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let err = spec.check_input(&xs).unwrap_err().to_string();
        assert!(err.contains("expected images [batch, 3, 5, 7], got [2, 1, 5, 7]"), "{err}");
        let table = DataSpec::with_target([6], Target::Values(Values::unscaled(vec!["price".into()]))).unwrap();
        let err = table.check_input(&xs).unwrap_err().to_string();
        assert!(err.contains("expected samples [batch, 6]"), "{err}");
    }

    /// Checkpoints written before targets other than classes keep reading as classification specs.
    #[test]
    fn json_names_the_target_kind_and_reads_older_class_specs() {
        let old: DataSpec = serde_json::from_str(r#"{"input_shape":[1,28,28],"classes":["0","1"]}"#).unwrap();
        assert_eq!(old, DataSpec::new([1, 28, 28], DataSpec::numbered_classes(2)).unwrap());
        let values = DataSpec::with_target(
            [3],
            Target::Values(Values { names: vec!["y".into()], mean: vec![10.0], std: vec![2.0] }),
        )
        .unwrap();
        let json = serde_json::to_string(&values).unwrap();
        assert_eq!(json, r#"{"input_shape":[3],"values":{"names":["y"],"mean":[10.0],"std":[2.0]}}"#);
        assert_eq!(serde_json::from_str::<DataSpec>(&json).unwrap(), values);
        assert_eq!(values.task(), TaskKind::Regression);
        assert!(values.require_image("cnn").unwrap_err().contains("use the mlp"));
    }
}
