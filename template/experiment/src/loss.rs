//! The loss (`config.json` `loss`), picked by name from a registry like the models': each loss is
//! one file in `loss/` with its args (defaults, checks) and its [`Loss`] impl, which says which
//! tasks it fits. A loss that does not fit the data's task is a config error that lists the ones
//! that do.
//!
//! Every loss sees the model's outputs `[batch, outputs]` and the batch's targets as the task has
//! them: class indices `[batch]` u32 (classification), 0/1 labels `[batch, labels]` f32
//! (multi-label), or values `[batch, values]` f32 (regression, both sides standardised as the
//! data spec records, so the loss is the same whatever the targets' units).

pub mod binary_cross_entropy;
pub mod cross_entropy;
pub mod regression;

use candle_core::{Result, Tensor};
use model::TaskKind;

/// One loss: its args are the struct implementing it (with `Default`, and serde through
/// `model::optional_args!`, so `"args"` may be left out).
pub trait Loss {
    /// The tasks whose targets this loss takes.
    const TASKS: &'static [TaskKind];

    /// Checks the args before any work starts; the message names the key (`loss.args.delta`).
    fn check(&self) -> std::result::Result<(), String> {
        Ok(())
    }

    /// The mean loss over the batch, a scalar.
    fn compute(&self, outputs: &Tensor, targets: &Tensor) -> Result<Tensor>;
}

/// Declares `LossConfig` (config.json's `"loss": {"type": ..., "args": ...}`), one variant per
/// line: `Variant(module::Args)`, where `module` is the file in `loss/` and `Args` implements [`Loss`].
macro_rules! registry {
    ($( $variant:ident($module:ident::$args:ident) ),+ $(,)?) => {
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "type", content = "args", rename_all = "snake_case", deny_unknown_fields)]
        pub enum LossConfig {
            $( $variant($module::$args), )+
        }

        impl LossConfig {
            /// Every registered loss with its default args, in registry order.
            pub fn all() -> Vec<LossConfig> {
                vec![$( Self::$variant(Default::default()), )+]
            }

            /// The `type` in config.json.
            pub fn name(&self) -> String {
                serde_json::to_value(self).ok().and_then(|v| v["type"].as_str().map(str::to_owned)).unwrap_or_default()
            }

            /// The tasks this loss fits.
            pub fn tasks(&self) -> &'static [TaskKind] {
                match self {
                    $( Self::$variant(_) => <$module::$args as Loss>::TASKS, )+
                }
            }

            fn check_args(&self) -> std::result::Result<(), String> {
                match self {
                    $( Self::$variant(args) => args.check(), )+
                }
            }

            /// The mean loss of the batch (see the module docs for what `outputs` and `targets` are).
            pub fn compute(&self, outputs: &Tensor, targets: &Tensor) -> Result<Tensor> {
                match self {
                    $( Self::$variant(args) => args.compute(outputs, targets), )+
                }
            }
        }
    };
}

// The loss registry: one line per loss. To add your own, write src/loss/my_loss.rs with
// `#[derive(Default, ...)] pub struct MyLossArgs` implementing `Loss`, add `pub mod my_loss;`
// above, and a line here:
//     MyLoss(my_loss::MyLossArgs),
registry! {
    CrossEntropy(cross_entropy::CrossEntropyArgs),
    BinaryCrossEntropy(binary_cross_entropy::BinaryCrossEntropyArgs),
    Mse(regression::MseArgs),
    L1(regression::L1Args),
    Huber(regression::HuberArgs),
}

impl LossConfig {
    /// The loss a task trains with when `config.json` names none.
    pub fn default_for(task: TaskKind) -> Self {
        match task {
            TaskKind::Classification => Self::CrossEntropy(Default::default()),
            TaskKind::MultiLabel => Self::BinaryCrossEntropy(Default::default()),
            TaskKind::Regression => Self::Mse(Default::default()),
        }
    }

    /// The args' own checks, then whether the loss fits `task`: an error naming `loss.type` and
    /// listing the losses that do.
    pub fn check(&self, task: TaskKind) -> std::result::Result<(), String> {
        self.check_args()?;
        if self.tasks().contains(&task) {
            return Ok(());
        }
        let fitting: Vec<String> = Self::all().iter().filter(|l| l.tasks().contains(&task)).map(Self::name).collect();
        Err(format!(
            "`loss.type` is {:?}, which does not fit this data's {task} targets; use one of {fitting:?}",
            self.name()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_that_does_not_fit_the_task_lists_the_ones_that_do() {
        let err = LossConfig::default_for(TaskKind::Classification).check(TaskKind::Regression).unwrap_err();
        assert!(err.contains("`loss.type` is \"cross_entropy\""), "{err}");
        assert!(err.contains(r#"["mse", "l1", "huber"]"#), "{err}");
        for task in TaskKind::ALL {
            LossConfig::default_for(task).check(task).expect("each task's default fits it");
        }
    }

    #[test]
    fn args_may_be_left_out() {
        let loss: LossConfig = serde_json::from_str(r#"{"type": "huber"}"#).unwrap();
        assert_eq!(loss, LossConfig::Huber(Default::default()));
        let loss: LossConfig = serde_json::from_str(r#"{"type": "mse", "args": {}}"#).unwrap();
        assert_eq!(loss.name(), "mse");
    }
}
