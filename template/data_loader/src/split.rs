//! The seeded train/validation split of one dataset: how big the validation part is (a fraction or a
//! count, as written in the config) and which sample indices go where, the same on every run and machine.

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::shuffle;

/// How much of the training set to hold out for validation.
///
/// In JSON, a number with a fraction part (`0.1`) is a [`ValidationSplit::Fraction`] and a whole
/// number (`6000`) is a [`ValidationSplit::Count`]. (`Count` is declared first because serde tries
/// untagged variants in order and an integer would also parse as `f64`.)
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq)]
#[serde(untagged)]
pub enum ValidationSplit {
    /// This many samples, `0 <= count < n`.
    Count(usize),
    /// This share of the samples, rounded to the nearest sample; `0 <= fraction < 1`.
    Fraction(f64),
}

impl Default for ValidationSplit {
    /// 10% held out, the usual choice for MNIST's 60,000 training digits.
    fn default() -> Self {
        ValidationSplit::Fraction(0.1)
    }
}

impl ValidationSplit {
    /// True when no validation set is asked for.
    pub fn is_zero(self) -> bool {
        matches!(self, Self::Fraction(f) if f == 0.0) || matches!(self, Self::Count(0))
    }

    /// Whether the setting itself can work, before the data's size is known: a fraction must lie in
    /// [0, 1). The message names `data_loader.args.validation_split`.
    pub fn check(self) -> std::result::Result<(), String> {
        match self {
            Self::Fraction(fraction) if !(0.0..1.0).contains(&fraction) => Err(format!(
                "`data_loader.args.validation_split` is {fraction}: a fraction must be in [0, 1) (0.1 holds out 10%), \
                 or give a whole number of samples (6000)"
            )),
            _ => Ok(()),
        }
    }

    /// The number of validation samples out of `n`, or why this split is impossible.
    /// At least one sample always remains for training.
    pub fn validation_len(self, n: usize) -> Result<usize> {
        if n == 0 {
            return Err(DataError::InvalidSplit("the dataset has no samples to split".into()));
        }
        let len = match self {
            ValidationSplit::Count(count) => count,
            ValidationSplit::Fraction(fraction) => {
                if !(0.0..1.0).contains(&fraction) {
                    return Err(DataError::InvalidSplit(format!(
                        "fraction {fraction} is outside [0, 1); use e.g. 0.1 for 10%, or a whole number of samples"
                    )));
                }
                (fraction * n as f64).round() as usize
            }
        };
        if len >= n {
            return Err(DataError::InvalidSplit(format!(
                "{self} of {n} samples leaves none for training; the validation part must be smaller than {n}"
            )));
        }
        Ok(len)
    }
}

impl std::fmt::Display for ValidationSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValidationSplit::Count(count) => write!(f, "{count} validation samples"),
            ValidationSplit::Fraction(fraction) => write!(f, "validation fraction {fraction}"),
        }
    }
}

/// Splits sample indices `0..n` into `(train, validation)`.
///
/// The samples are shuffled with ChaCha8 seeded by `seed`, the first `validation_len` go to
/// validation, the rest to training; each part is then sorted so datasets built from them keep
/// file order (the data loader shuffles per epoch). Same `(n, split, seed)`, same result, everywhere.
pub fn train_val_indices(n: usize, split: ValidationSplit, seed: u64) -> Result<(Vec<u32>, Vec<u32>)> {
    if n > u32::MAX as usize {
        return Err(DataError::InvalidSplit(format!("{n} samples is more than u32 indices can address")));
    }
    let val_len = split.validation_len(n)?;
    let mut order = shuffle::permutation(n, &mut shuffle::rng(seed, shuffle::SPLIT_STREAM));
    let mut train = order.split_off(val_len);
    let mut val = order;
    train.sort_unstable();
    val.sort_unstable();
    Ok((train, val))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> std::result::Result<ValidationSplit, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn json_fraction_and_count_forms() {
        assert_eq!(json("0.1").expect("fraction"), ValidationSplit::Fraction(0.1));
        assert_eq!(json("6000").expect("count"), ValidationSplit::Count(6000));
        assert_eq!(json("0").expect("zero"), ValidationSplit::Count(0));
        assert!(json("\"10%\"").is_err());
        // A negative whole number is not a usize, so it lands in Fraction, where validation refuses it.
        let negative = json("-5").expect("parses as a fraction");
        assert_eq!(negative, ValidationSplit::Fraction(-5.0));
        assert!(negative.validation_len(100).is_err());
        let round_trip = serde_json::to_string(&ValidationSplit::Count(5)).expect("serialize");
        assert_eq!(round_trip, "5");
    }

    #[test]
    fn sizes_disjoint_and_complete() {
        for (split, expected_val) in [(ValidationSplit::Fraction(0.1), 100), (ValidationSplit::Count(37), 37)] {
            let (train, val) = train_val_indices(1000, split, 5).expect("valid split");
            assert_eq!(val.len(), expected_val);
            assert_eq!(train.len(), 1000 - expected_val);
            let mut all: Vec<u32> = train.iter().chain(&val).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..1000).collect::<Vec<u32>>(), "union must be every index exactly once");
        }
    }

    #[test]
    fn deterministic_per_seed() {
        let a = train_val_indices(500, ValidationSplit::Count(50), 9).expect("split");
        let b = train_val_indices(500, ValidationSplit::Count(50), 9).expect("split");
        let c = train_val_indices(500, ValidationSplit::Count(50), 10).expect("split");
        assert_eq!(a, b);
        assert_ne!(a.1, c.1, "another seed should pick other validation samples");
    }

    #[test]
    fn validation_is_not_just_the_tail() {
        let (_, val) = train_val_indices(1000, ValidationSplit::Count(100), 1).expect("split");
        assert!(val.iter().any(|&i| i < 900), "validation indices {val:?} look unshuffled");
    }

    #[test]
    fn zero_validation_keeps_everything_for_training() {
        let (train, val) = train_val_indices(10, ValidationSplit::Fraction(0.0), 1).expect("split");
        assert!(val.is_empty());
        assert_eq!(train, (0..10).collect::<Vec<u32>>());
    }

    #[test]
    fn invalid_values_are_rejected_with_what_is_allowed() {
        for (n, split) in [
            (100, ValidationSplit::Fraction(1.0)),
            (100, ValidationSplit::Fraction(-0.1)),
            (100, ValidationSplit::Fraction(f64::NAN)),
            (100, ValidationSplit::Count(100)),
            (100, ValidationSplit::Count(1000)),
            (1, ValidationSplit::Fraction(0.9)),
            (0, ValidationSplit::Count(0)),
        ] {
            let err = train_val_indices(n, split, 0).expect_err("must be rejected");
            let message = err.to_string();
            assert!(matches!(err, DataError::InvalidSplit(_)), "{split:?}: {message}");
            assert!(
                message.contains("[0, 1)") || message.contains("smaller than") || message.contains("no samples"),
                "{split:?} of {n}: message does not say what is allowed: {message}"
            );
        }
    }
}
