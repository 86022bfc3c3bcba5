//! A run's folder, `saved/<name>/<YYYYMMDD_HHMMSS>/`, and the files written into it as training
//! goes: the resolved config, `metrics.csv` (one row per epoch and split) and `summary.json`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::checkpoint::write_atomically;
use crate::config::Config;

/// metrics.csv's header: `metric` is the task's headline metric (`accuracy` for classification,
/// e.g. `rmse` for a regression), the fourth column.
pub fn metrics_header(metric: &str) -> String {
    format!("epoch,split,loss,{metric},lr,seconds,samples_per_sec")
}

pub struct RunDir {
    path: PathBuf,
}

/// One row of metrics.csv.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub split: &'static str,
    pub loss: f64,
    /// The headline metric (NaN where not computed: a training row of a task without a running metric).
    pub metric: f64,
    pub lr: f64,
    pub seconds: f64,
    pub samples_per_sec: f64,
}

impl RunDir {
    /// Create `save_dir/name/<UTC timestamp>` (with a suffix if that exists already) and save the
    /// resolved config into it.
    pub fn create(config: &Config) -> std::io::Result<Self> {
        let parent = config.trainer.save_dir.join(&config.name);
        std::fs::create_dir_all(&parent)?;
        let stamp = utc_timestamp(SystemTime::now());
        let mut path = parent.join(&stamp);
        let mut n = 1;
        loop {
            match std::fs::create_dir(&path) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    path = parent.join(format!("{stamp}_{n}"));
                    n += 1;
                }
                Err(e) => return Err(e),
            }
        }
        let run = Self { path };
        run.save_config(config)?;
        Ok(run)
    }

    /// Save the resolved config as the run's config.json.
    pub fn save_config(&self, config: &Config) -> std::io::Result<()> {
        write_atomically(&self.file("config.json"), config.to_json().as_bytes())
    }

    /// An existing run folder (for resuming).
    pub fn open(path: &Path) -> Self {
        Self { path: path.to_path_buf() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Append rows to metrics.csv, writing the header (with the headline `metric`'s name) first if
    /// the file is new.
    pub fn append_metrics(&self, metric: &str, rows: &[EpochRecord]) -> std::io::Result<()> {
        let path = self.file("metrics.csv");
        let new = !path.exists();
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        let mut text = String::new();
        if new {
            text.push_str(&metrics_header(metric));
            text.push('\n');
        }
        for r in rows {
            text.push_str(&format!(
                "{},{},{:.6},{:.6},{:.8},{:.3},{:.1}\n",
                r.epoch, r.split, r.loss, r.metric, r.lr, r.seconds, r.samples_per_sec
            ));
        }
        file.write_all(text.as_bytes())?;
        file.sync_data()
    }

    pub fn write_summary(&self, summary: &impl serde::Serialize) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(summary).map_err(std::io::Error::other)?;
        write_atomically(&self.file("summary.json"), json.as_bytes())
    }
}

/// `YYYYMMDD_HHMMSS` in UTC (days-from-civil in reverse, Howard Hinnant's algorithm).
pub fn utc_timestamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}_{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "19700101_000000");
        // 2024-02-29 23:59:59 UTC, a leap day.
        assert_eq!(utc_timestamp(UNIX_EPOCH + Duration::from_secs(1_709_251_199)), "20240229_235959");
    }
}
