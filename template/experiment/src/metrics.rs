//! Metrics (`config.json` `metrics`), by name. Which ones a run may ask for depends on its task
//! (a metric that does not fit is a config error listing those that do); each task computes
//! them from the sums of a whole pass (see `task`), so a split's numbers do not depend on how it
//! was batched or sharded.
//!
//! - classification: `"accuracy"`, `"top<K>_accuracy"`, `"macro_f1"` (mean over classes of F1);
//! - multi-label (at `threshold`): `"subset_accuracy"` (every label right), `"hamming_score"`
//!   (the fraction of labels right), `"micro_f1"` (F1 of all label decisions pooled), `"macro_f1"`
//!   (mean over labels of F1);
//! - regression, in the targets' units, averaged over the targets (per target in `evaluate`):
//!   `"mse"`, `"rmse"`, `"mae"`, `"r2"`.

use model::TaskKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Accuracy,
    TopK(usize),
    /// The unweighted mean of the classes' (or labels') F1 scores, those without samples and
    /// without predictions left out.
    MacroF1,
    SubsetAccuracy,
    HammingScore,
    MicroF1,
    Mse,
    Rmse,
    Mae,
    R2,
}

/// The names `FromStr` takes, besides `top<K>_accuracy`.
const NAMED: [(&str, Metric); 9] = [
    ("accuracy", Metric::Accuracy),
    ("macro_f1", Metric::MacroF1),
    ("subset_accuracy", Metric::SubsetAccuracy),
    ("hamming_score", Metric::HammingScore),
    ("micro_f1", Metric::MicroF1),
    ("mse", Metric::Mse),
    ("rmse", Metric::Rmse),
    ("mae", Metric::Mae),
    ("r2", Metric::R2),
];

impl Metric {
    pub fn name(&self) -> String {
        match self {
            Self::TopK(k) => format!("top{k}_accuracy"),
            other => NAMED
                .iter()
                .find(|(_, m)| m == other)
                .map(|(n, _)| (*n).to_owned())
                .expect("every other metric is named"),
        }
    }

    /// The tasks that compute this metric.
    pub fn tasks(&self) -> &'static [TaskKind] {
        match self {
            Self::Accuracy | Self::TopK(_) => &[TaskKind::Classification],
            Self::MacroF1 => &[TaskKind::Classification, TaskKind::MultiLabel],
            Self::SubsetAccuracy | Self::HammingScore | Self::MicroF1 => &[TaskKind::MultiLabel],
            Self::Mse | Self::Rmse | Self::Mae | Self::R2 => &[TaskKind::Regression],
        }
    }

    /// Whether a higher value is better (what `trainer.monitor` defaults to watching).
    pub fn higher_is_better(&self) -> bool {
        !matches!(self, Self::Mse | Self::Rmse | Self::Mae)
    }

    /// The metrics a task reports when `config.json` names none.
    pub fn defaults(task: TaskKind) -> Vec<Metric> {
        match task {
            TaskKind::Classification => vec![Self::Accuracy],
            TaskKind::MultiLabel => vec![Self::MicroF1, Self::MacroF1, Self::SubsetAccuracy, Self::HammingScore],
            TaskKind::Regression => vec![Self::Rmse, Self::Mae, Self::R2, Self::Mse],
        }
    }

    /// Every metric `task` computes, by name (`top<K>_accuracy` stands for any K).
    pub fn names_for(task: TaskKind) -> Vec<String> {
        let mut names: Vec<String> =
            NAMED.iter().filter(|(_, m)| m.tasks().contains(&task)).map(|(n, _)| (*n).to_owned()).collect();
        if task == TaskKind::Classification {
            names.insert(1, "top<K>_accuracy".into());
        }
        names
    }

    /// An error naming `metrics` and listing the valid names when some do not fit `task`.
    pub fn check_all(metrics: &[Metric], task: TaskKind) -> Result<(), String> {
        match metrics.iter().find(|m| !m.tasks().contains(&task)) {
            None => Ok(()),
            Some(m) => Err(format!(
                "`metrics` has {:?}, which {task} targets do not have; use any of {:?}",
                m.name(),
                Self::names_for(task)
            )),
        }
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Some((_, metric)) = NAMED.iter().find(|(n, _)| *n == s) {
            return Ok(*metric);
        }
        s.strip_prefix("top")
            .and_then(|r| r.strip_suffix("_accuracy"))
            .and_then(|k| k.parse().ok())
            .filter(|k| *k >= 1)
            .map(Self::TopK)
            .ok_or_else(|| {
                let names: Vec<&str> = NAMED.iter().map(|(n, _)| *n).collect();
                format!("expected one of {names:?} or \"top<K>_accuracy\" such as \"top3_accuracy\", got {s:?}")
            })
    }
}

impl serde::Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!("top5_accuracy".parse::<Metric>().unwrap(), Metric::TopK(5));
        assert_eq!(Metric::TopK(5).name(), "top5_accuracy");
        for (name, metric) in NAMED {
            assert_eq!(name.parse::<Metric>().unwrap(), metric);
            assert_eq!(metric.name(), name);
        }
        for bad in ["acc", "top0_accuracy", "topx_accuracy"] {
            assert!(bad.parse::<Metric>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_metric_of_another_task_is_refused_with_the_valid_names() {
        let err = Metric::check_all(&[Metric::Rmse, Metric::Accuracy], TaskKind::Regression).unwrap_err();
        assert!(err.contains("\"accuracy\", which regression targets do not have"), "{err}");
        assert!(err.contains(r#"["mse", "rmse", "mae", "r2"]"#), "{err}");
        for task in TaskKind::ALL {
            Metric::check_all(&Metric::defaults(task), task).expect("each task's defaults fit it");
        }
    }
}
