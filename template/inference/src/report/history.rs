//! Reading back what training wrote: `metrics.csv` (tolerating the half-written last line of a
//! killed run) and `summary.json` (absent until a run ends).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ReportError;

/// One row of metrics.csv.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRow {
    pub epoch: usize,
    pub split: String,
    pub loss: f64,
    /// The headline metric ([`History::metric`]), NaN where the run did not compute it.
    pub metric: f64,
    pub lr: f64,
    pub seconds: f64,
    pub samples_per_sec: f64,
}

/// The rows of metrics.csv.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub rows: Vec<EpochRow>,
    /// The name of the headline metric (metrics.csv's fourth column): `accuracy`, `rmse`, ...
    pub metric: String,
    /// The last line was cut off (a run killed while writing it) and left out.
    pub truncated: bool,
}

impl History {
    /// Read `path`; a missing file is an empty history (no epoch has finished).
    pub fn read(path: &Path) -> Result<Self, ReportError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(ReportError::Read { path: path.to_path_buf(), source }),
        };
        Self::parse(&text, path)
    }

    /// Parse metrics.csv text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ReportError> {
        let mut lines = text.lines().enumerate();
        let metric = match lines.next() {
            None => return Ok(Self::default()),
            Some((_, header)) => {
                let metric = header.trim().split(',').nth(3).unwrap_or_default().to_owned();
                let expected = experiment::run_dir::metrics_header("METRIC");
                if metric.is_empty() || header.trim() != experiment::run_dir::metrics_header(&metric) {
                    return Err(ReportError::Metrics {
                        path: path.to_path_buf(),
                        line: 1,
                        message: format!("the header is {header:?}, expected {expected:?}"),
                    });
                }
                metric
            }
        };
        let mut lines: Vec<(usize, &str)> = lines.filter(|(_, l)| !l.trim().is_empty()).collect();
        let mut history = Self { metric, ..Self::default() };
        // Every row ends with a newline: a last line without one was cut off by a killed write,
        // even where what is left happens to parse.
        if !text.ends_with('\n') && lines.pop().is_some() {
            history.truncated = true;
        }
        for (index, line) in lines {
            let row = parse_row(line).map_err(|message| ReportError::Metrics {
                path: path.to_path_buf(),
                line: index + 1,
                message,
            })?;
            history.rows.push(row);
        }
        Ok(history)
    }

    /// (epoch, value) of the rows of `split`, skipping values that are not finite.
    pub fn series(&self, split: &str, value: impl Fn(&EpochRow) -> f64) -> Vec<(usize, f64)> {
        self.rows
            .iter()
            .filter(|r| r.split == split)
            .map(|r| (r.epoch, value(r)))
            .filter(|(_, v)| v.is_finite())
            .collect()
    }

    /// The last epoch with a row of `split`.
    pub fn last(&self, split: &str) -> Option<&EpochRow> {
        self.rows.iter().rev().find(|r| r.split == split)
    }

    /// The row of `split` with the best headline metric (the highest, or the lowest for an error
    /// such as `rmse`; the earliest on ties).
    pub fn best_metric(&self, split: &str) -> Option<&EpochRow> {
        let lower_is_better = self.metric.parse::<experiment::metrics::Metric>().is_ok_and(|m| !m.higher_is_better());
        let better = |a: f64, b: f64| if lower_is_better { a < b } else { a > b };
        self.rows.iter().filter(|r| r.split == split && r.metric.is_finite()).fold(
            None,
            |best: Option<&EpochRow>, r| match best {
                Some(b) if !better(r.metric, b.metric) => Some(b),
                _ => Some(r),
            },
        )
    }
}

fn parse_row(line: &str) -> Result<EpochRow, String> {
    let cells: Vec<&str> = line.trim().split(',').collect();
    if cells.len() != 7 {
        return Err(format!("expected 7 comma-separated values, got {}: {line:?}", cells.len()));
    }
    let number = |i: usize| cells[i].parse::<f64>().map_err(|_| format!("{:?} is not a number in {line:?}", cells[i]));
    Ok(EpochRow {
        epoch: cells[0].parse().map_err(|_| format!("epoch {:?} is not a whole number in {line:?}", cells[0]))?,
        split: cells[1].to_string(),
        loss: number(2)?,
        metric: number(3)?,
        lr: number(4)?,
        seconds: number(5)?,
        samples_per_sec: number(6)?,
    })
}

/// The parts of `summary.json` the report shows. Numbers are optional: JSON has no NaN, so a NaN
/// was written as null.
#[derive(Debug, Clone, Deserialize)]
pub struct RunSummary {
    pub model: String,
    pub parameters: Option<usize>,
    pub monitor: String,
    pub best_metric: Option<f64>,
    pub best_epoch: Option<usize>,
    pub epochs_run: usize,
    pub global_steps: u64,
    pub stopped_by: String,
    pub final_train: Option<FinalNumbers>,
    pub final_val: Option<FinalNumbers>,
    pub wall_seconds: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FinalNumbers {
    pub loss: Option<f64>,
    #[serde(default)]
    pub metrics: BTreeMap<String, Option<f64>>,
    pub samples: usize,
}

impl FinalNumbers {
    pub fn accuracy(&self) -> Option<f64> {
        self.metric("accuracy")
    }

    /// The metric `name`, where it was computed.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.get(name).copied().flatten()
    }
}

impl RunSummary {
    /// Read `path`, or `None` when it does not exist (the run has not ended).
    pub fn read(path: &Path) -> Result<Option<Self>, ReportError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ReportError::Read { path: path.to_path_buf(), source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| ReportError::Summary { path: PathBuf::from(path), source })
    }

    /// Whether training ran to its end (all epochs, or early stopping).
    pub fn finished(&self) -> bool {
        matches!(self.stopped_by.as_str(), "completed" | "early_stop")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "epoch,split,loss,accuracy,lr,seconds,samples_per_sec\n\
                       1,train,0.5,0.8,0.001,1.0,100.0\n\
                       1,val,0.4,0.9,0.001,0.1,1000.0\n\
                       2,train,0.3,0.95,0.0005,1.0,100.0\n";

    #[test]
    fn reads_rows_and_series() {
        let history = History::parse(CSV, Path::new("metrics.csv")).unwrap();
        assert_eq!(history.rows.len(), 3);
        assert!(!history.truncated);
        assert_eq!(history.series("train", |r| r.lr), vec![(1, 0.001), (2, 0.0005)]);
        assert_eq!(history.series("val", |r| r.loss), vec![(1, 0.4)]);
        assert_eq!(history.last("train").map(|r| r.epoch), Some(2));
        assert_eq!(history.best_metric("val").map(|r| r.epoch), Some(1));
        assert_eq!(history.metric, "accuracy");
    }

    /// A regression's headline is an error: the best row is the lowest.
    #[test]
    fn the_best_rmse_is_the_lowest() {
        let csv = "epoch,split,loss,rmse,lr,seconds,samples_per_sec\n1,val,0.5,3.0,0.1,1,1\n2,val,0.4,2.0,0.1,1,1\n1,train,0.5,NaN,0.1,1,1\n";
        let history = History::parse(csv, Path::new("metrics.csv")).unwrap();
        assert_eq!(history.best_metric("val").map(|r| r.epoch), Some(2));
        assert!(history.series("train", |r| r.metric).is_empty());
        let err = History::parse("epoch,split,loss\n", Path::new("m.csv")).unwrap_err().to_string();
        assert!(err.contains("expected"), "{err}");
    }

    #[test]
    fn a_cut_off_last_line_is_left_out() {
        // Cut inside the last number: what is left parses, but is not what was meant.
        let cut = &CSV[..CSV.len() - 3];
        let history = History::parse(cut, Path::new("metrics.csv")).unwrap();
        assert_eq!(history.rows.len(), 2);
        assert!(history.truncated);
    }

    #[test]
    fn a_bad_line_in_the_middle_is_an_error_naming_the_line() {
        let bad = CSV.replace("1,val,0.4", "1,val,zero");
        let err = History::parse(&bad, Path::new("run/metrics.csv")).unwrap_err().to_string();
        assert!(err.contains("run/metrics.csv") && err.contains("line 3") && err.contains("\"zero\""), "{err}");
    }

    #[test]
    fn a_foreign_header_is_refused() {
        let err = History::parse("a,b\n1,2\n", Path::new("metrics.csv")).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("epoch,split"), "{err}");
    }
}
