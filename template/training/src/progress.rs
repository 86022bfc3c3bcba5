//! Showing training progress: a bar per epoch with loss, accuracy and samples/s when stderr is a
//! terminal, and plain log lines every `log_every_steps` otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use tracing::info;

pub struct EpochProgress {
    bar: Option<ProgressBar>,
    log_every: u64,
    epoch: usize,
}

impl EpochProgress {
    /// Progress of `epoch`, of `batches` batches, `done` of which were trained before a resume.
    pub fn new(enabled: bool, epoch: usize, epochs: usize, batches: usize, done: usize, log_every: usize) -> Self {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(batches as u64);
            bar.set_style(
                ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
                    .expect("the template is valid")
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{epoch}/{epochs}"));
            bar.set_position(done as u64);
            bar
        });
        Self { bar, log_every: log_every as u64, epoch }
    }

    /// After each step; `accuracy` is the running one (classification only).
    pub fn step(&self, global_step: u64, loss: f64, accuracy: Option<f64>, samples_per_sec: f64, lr: f64) {
        match &self.bar {
            Some(bar) => {
                let accuracy = accuracy.map(|a| format!(" acc {a:.3}")).unwrap_or_default();
                bar.set_message(format!("loss {loss:.4}{accuracy} {samples_per_sec:.0} samples/s"));
                bar.inc(1);
            }
            None if global_step.is_multiple_of(self.log_every) => {
                info!(
                    "epoch {} step {global_step} loss {loss:.4} lr {lr:.2e} {samples_per_sec:.0} samples/s",
                    self.epoch
                );
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
