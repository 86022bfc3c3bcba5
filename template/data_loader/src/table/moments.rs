//! Population mean and variance of a column's values, combinable block by block so that they are
//! the same whatever the thread count.

/// Population mean and variance of some values, with their range (a column is constant when
/// min == max, which a rounded variance cannot tell).
#[derive(Clone, Copy, Debug)]
pub(super) struct Moments {
    pub(super) n: u64,
    pub(super) mean: f64,
    /// Sum of squared deviations from the mean.
    m2: f64,
    pub(super) min: f64,
    pub(super) max: f64,
}

impl Default for Moments {
    fn default() -> Self {
        Moments { n: 0, mean: 0.0, m2: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY }
    }
}

impl Moments {
    /// Two passes over `values`.
    pub(super) fn of(values: &[f64]) -> Moments {
        if values.is_empty() {
            return Moments::default();
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        Moments {
            n: values.len() as u64,
            mean,
            m2: values.iter().map(|x| (x - mean) * (x - mean)).sum(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }

    /// The moments of `self`'s values followed by `later`'s (Chan et al.'s pairwise update).
    pub(super) fn then(self, later: Moments) -> Moments {
        if self.n == 0 {
            return later;
        }
        if later.n == 0 {
            return self;
        }
        let (a, b) = (self.n as f64, later.n as f64);
        let delta = later.mean - self.mean;
        Moments {
            n: self.n + later.n,
            mean: self.mean + delta * b / (a + b),
            m2: self.m2 + later.m2 + delta * delta * a * b / (a + b),
            min: self.min.min(later.min),
            max: self.max.max(later.max),
        }
    }

    pub(super) fn is_constant(&self) -> bool {
        self.min == self.max
    }

    pub(super) fn std(&self) -> f64 {
        (self.m2 / self.n as f64).sqrt()
    }
}
