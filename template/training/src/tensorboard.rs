//! TensorBoard event files in the run folder (`events.out.tfevents.<unix seconds>.<host>`), written
//! without TensorFlow: TFRecord framing over hand-encoded `Event` protobufs. [`TrainingLog`] holds
//! what the trainer logs: the loss and learning rate of every step, the metrics.csv numbers of
//! every epoch, and the resolved config as text. Open a run with `tensorboard --logdir saved`.

pub mod crc32c;
pub mod proto;

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use experiment::config::Config;
use experiment::run_dir::{EpochRecord, RunDir};
use proto::SummaryValue;

/// Per optimiser step (step = global step). Apart from the per-epoch `train/*` tags: TensorBoard
/// keys a series by tag, and one tag on two step axes would draw as one tangled line.
pub const STEP_LOSS: &str = "train_step/loss";
pub const STEP_LR: &str = "train_step/lr";
/// Per epoch (step = epoch), the numbers of the metrics.csv rows, for a classification: other
/// tasks have their headline metric in place of accuracy (`val/rmse`), and `train/` only where
/// training computes it.
pub const EPOCH_TAGS: [&str; 6] =
    ["train/loss", "train/accuracy", "val/loss", "val/accuracy", "epoch/seconds", "epoch/samples_per_sec"];
/// The resolved config, as a JSON code block in Markdown, at step 0.
pub const CONFIG_TAG: &str = "config";
/// The text tag of the data's image shape and class names.
pub const DATA_TAG: &str = "data";

#[derive(Debug, thiserror::Error)]
#[error(
    "writing TensorBoard events to {path}: {source}; check the disk and the folder's permissions, \
     or set trainer.tensorboard=false to train without them"
)]
pub struct TensorBoardError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// An open event file.
pub struct EventWriter {
    path: PathBuf,
    file: BufWriter<File>,
}

impl EventWriter {
    /// Create a new event file in `dir` and write the `file_version` event. An existing file of
    /// the same name (a resume within the same second) is kept: the new one gets a suffix.
    pub fn create(dir: &Path) -> Result<Self, TensorBoardError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let base = file_name(now, &hostname());
        let mut path = dir.join(&base);
        for n in 1.. {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    let mut writer = Self { path, file: BufWriter::new(file) };
                    writer.write_event(&proto::file_version_event(wall_time()))?;
                    writer.flush()?;
                    return Ok(writer);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => path = dir.join(format!("{base}.{n}")),
                Err(source) => return Err(TensorBoardError { path, source }),
            }
        }
        unreachable!("the loop returns or runs until a free name")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One event holding a point for each `(tag, value)`.
    pub fn scalars(&mut self, step: u64, values: &[(&str, f64)]) -> Result<(), TensorBoardError> {
        let values: Vec<SummaryValue<'_>> =
            values.iter().map(|(tag, value)| SummaryValue::Scalar { tag, value: *value as f32 }).collect();
        self.write_event(&proto::summary_event(wall_time(), step as i64, &values))
    }

    /// Markdown for TensorBoard's Text tab.
    pub fn text(&mut self, tag: &str, step: u64, markdown: &str) -> Result<(), TensorBoardError> {
        let values = [SummaryValue::Text { tag, markdown }];
        self.write_event(&proto::summary_event(wall_time(), step as i64, &values))
    }

    /// Push everything written so far to the disk.
    pub fn flush(&mut self) -> Result<(), TensorBoardError> {
        let result = self.file.flush().and_then(|()| self.file.get_ref().sync_data());
        result.map_err(|source| TensorBoardError { path: self.path.clone(), source })
    }

    fn write_event(&mut self, event: &[u8]) -> Result<(), TensorBoardError> {
        // One write per record, so the buffer never holds half of one.
        let result = self.file.write_all(&record(event));
        result.map_err(|source| TensorBoardError { path: self.path.clone(), source })
    }
}

/// TFRecord framing: length (u64 LE), masked CRC-32C of those 8 bytes, the data, masked CRC-32C
/// of the data (both u32 LE).
pub fn record(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&length);
    out.extend_from_slice(&crc32c::masked_crc32c(&length).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32c::masked_crc32c(data).to_le_bytes());
    out
}

/// `events.out.tfevents.<unix seconds>.<host>`: TensorBoard reads any file with "tfevents" in
/// its name and orders a folder's files by name, so a resumed run's file comes after.
pub fn file_name(unix_seconds: u64, host: &str) -> String {
    format!("events.out.tfevents.{unix_seconds}.{host}")
}

/// The machine's name as a file-name part, or "localhost".
fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let name: String =
        name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).collect();
    if name.is_empty() { "localhost".into() } else { name }
}

fn wall_time() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// What the trainer logs to TensorBoard; does nothing when `trainer.tensorboard` is false.
pub struct TrainingLog {
    writer: Option<EventWriter>,
}

impl TrainingLog {
    /// Writes nothing (the other ranks of a data-parallel run).
    pub fn off() -> Self {
        Self { writer: None }
    }

    /// Open a new event file in the run folder (a resumed run adds one; TensorBoard merges the
    /// files of a folder) and log the config.
    pub fn start(config: &Config, spec: &model::DataSpec, run: &RunDir) -> Result<Self, TensorBoardError> {
        if !config.trainer.tensorboard {
            return Ok(Self { writer: None });
        }
        let mut writer = EventWriter::create(run.path())?;
        writer.text(CONFIG_TAG, 0, &format!("```json\n{}\n```", config.to_json()))?;
        let names: Vec<String> = spec.target.names().iter().enumerate().map(|(i, c)| format!("{i}: {c}")).collect();
        let what = match spec.task() {
            model::TaskKind::Classification => "classes",
            model::TaskKind::MultiLabel => "labels",
            model::TaskKind::Regression => "values",
        };
        let shape = if spec.image_shape().is_some() { "images" } else { "samples" };
        let data = format!("{shape} {:?}\n\n{what}:\n\n{}", spec.input_shape, names.join("\n\n"));
        writer.text(DATA_TAG, 0, &data)?;
        writer.flush()?;
        Ok(Self { writer: Some(writer) })
    }

    /// The training loss of one optimiser step and the learning rate it used.
    pub fn step(&mut self, global_step: u64, loss: f64, lr: f64) -> Result<(), TensorBoardError> {
        match &mut self.writer {
            Some(w) => w.scalars(global_step, &[(STEP_LOSS, loss), (STEP_LR, lr)]),
            None => Ok(()),
        }
    }

    /// The epoch's metrics.csv rows (`metric`: the headline metric's name), then a flush: a run
    /// stopped later keeps a readable file.
    pub fn epoch(&mut self, epoch: usize, metric: &str, rows: &[EpochRecord]) -> Result<(), TensorBoardError> {
        let Some(writer) = &mut self.writer else { return Ok(()) };
        let (train_metric, val_metric) = (format!("train/{metric}"), format!("val/{metric}"));
        let mut values: Vec<(&str, f64)> = Vec::new();
        for row in rows {
            match row.split {
                "train" => values.extend([
                    ("train/loss", row.loss),
                    (train_metric.as_str(), row.metric),
                    ("epoch/seconds", row.seconds),
                    ("epoch/samples_per_sec", row.samples_per_sec),
                ]),
                "val" => values.extend([("val/loss", row.loss), (val_metric.as_str(), row.metric)]),
                _ => {}
            }
        }
        // A metric training does not compute (NaN) is left out rather than drawn as a gap.
        values.retain(|(_, v)| !v.is_nan());
        writer.scalars(epoch as u64, &values)?;
        writer.flush()
    }

    /// Flush what the last steps wrote.
    pub fn finish(&mut self) -> Result<(), TensorBoardError> {
        self.writer.as_mut().map_or(Ok(()), EventWriter::flush)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_length_crc_data_crc() {
        let framed = record(b"abc");
        assert_eq!(framed.len(), 8 + 4 + 3 + 4);
        assert_eq!(framed[..8], 3u64.to_le_bytes());
        assert_eq!(framed[8..12], crc32c::masked_crc32c(&3u64.to_le_bytes()).to_le_bytes());
        assert_eq!(&framed[12..15], b"abc");
        assert_eq!(framed[15..], crc32c::masked_crc32c(b"abc").to_le_bytes());
    }

    #[test]
    fn file_names_are_what_tensorboard_looks_for() {
        assert_eq!(file_name(1_700_000_000, "box"), "events.out.tfevents.1700000000.box");
        let host = hostname();
        assert!(!host.is_empty() && !host.contains(['/', '\\', ' ']), "{host:?}");
    }

    #[test]
    fn a_second_file_in_the_same_second_does_not_overwrite_the_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = EventWriter::create(dir.path()).unwrap();
        let b = EventWriter::create(dir.path()).unwrap();
        assert_ne!(a.path(), b.path());
        assert!(b.path().file_name().unwrap().to_string_lossy().contains("tfevents"));
    }
}
