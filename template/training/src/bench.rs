//! `bench`: how fast the configured model trains (or infers) on this machine, on random in-memory
//! data, with exactly the code `train` runs for a step: dropout stream, forward, loss, reading the
//! loss, backward and the optimiser update. No disk I/O, no validation, no checkpoints.
//! `bench --data` ([`data`]) measures the configured data feeding that step instead.

pub mod data;

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use serde::Serialize;
use tracing::info;

use crate::optim::Optimizer;
use crate::trainer::TrainError;
use experiment::config::Config;
use experiment::{Built, build_model};

/// Training steps (forward, backward, update) or inference batches (forward only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchMode {
    Train,
    Eval,
}

impl BenchMode {
    fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Eval => "eval",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub mode: BenchMode,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps first (allocator and caches warm up, lazy initialisation happens).
    pub warmup: usize,
    pub batch_size: usize,
}

/// What `bench --json` prints as its last line.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub mode: &'static str,
    pub device: String,
    pub batch_size: usize,
    pub steps: usize,
    /// Compute threads (candle's CPU kernels; `RAYON_NUM_THREADS` sets it).
    pub threads: usize,
    pub samples_per_sec: f64,
    pub step_ms_p50: f64,
    pub step_ms_p90: f64,
    /// The process's peak resident memory (Linux `VmHWM`); `null` where the OS does not say.
    pub peak_rss_mb: Option<f64>,
}

impl BenchReport {
    pub fn summary(&self) -> String {
        let rss = self.peak_rss_mb.map_or("n/a".to_owned(), |mb| format!("{mb:.0} MB"));
        format!(
            "{} {}: {:.1} samples/s at batch {} ({} steps on {}, {} threads); step p50 {:.2} ms, p90 {:.2} ms; peak RSS {rss}",
            self.model,
            self.mode,
            self.samples_per_sec,
            self.batch_size,
            self.steps,
            self.device,
            self.threads,
            self.step_ms_p50,
            self.step_ms_p90,
        )
    }
}

/// Run the benchmark on the configured device with the configured model, optimiser and loss.
pub fn bench(config: &Config, options: &BenchOptions) -> Result<BenchReport, TrainError> {
    let (device, why) = config.device.select()?;
    info!("device: {why}");
    if !device.is_cpu() {
        device.set_seed(config.seed)?;
    }
    // The shape and classes of the configured data (its published ones when the files are absent).
    let spec = config.data_loader.spec()?;
    let Built { varmap, model } = build_model(config, &spec, &device)?;
    let (images, labels) = random_batch(&spec, options.batch_size, config.seed, &device)?;
    let task = experiment::task::Task::new(&spec.target, config);
    let mut optimizer = Optimizer::new(&config.optimizer, model::trainable_vars(&varmap));
    let lr = config.optimizer.lr();

    let mut step = |global_step: u64| -> Result<(), TrainError> {
        match options.mode {
            BenchMode::Train => {
                model::set_dropout_stream(config.seed, global_step, 0);
                let logits = model.forward_t(&images, true)?;
                let loss = task.loss(&logits, &labels)?;
                let _ = loss.to_scalar::<f32>()?;
                optimizer.step(&loss.backward()?, lr)?;
            }
            BenchMode::Eval => {
                let logits = model.forward_t(&images, false)?;
                let _ = logits.argmax(1)?;
            }
        }
        device.synchronize()?;
        Ok(())
    };
    for global_step in 0..options.warmup {
        step(global_step as u64)?;
    }
    let mut step_ms = Vec::with_capacity(options.steps);
    let wall = Instant::now();
    for i in 0..options.steps {
        let start = Instant::now();
        step((options.warmup + i) as u64)?;
        step_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let seconds = wall.elapsed().as_secs_f64();
    Ok(BenchReport {
        model: config.model.name().to_owned(),
        mode: options.mode.name(),
        device: device_name(&device),
        batch_size: options.batch_size,
        steps: options.steps,
        threads: candle_core::utils::get_num_threads(),
        samples_per_sec: (options.batch_size * options.steps) as f64 / seconds,
        step_ms_p50: percentile(&step_ms, 0.5),
        step_ms_p90: percentile(&step_ms, 0.9),
        peak_rss_mb: peak_rss_mb(),
    })
}

/// Uniform samples of `spec`'s shape in [0, 1) and targets of its kind (classes, 0/1 labels,
/// values around the recorded means), drawn once from the seed.
fn random_batch(
    spec: &model::DataSpec,
    batch_size: usize,
    seed: u64,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let images: Vec<f32> = (0..batch_size * spec.sample_len()).map(|_| rng.random::<f32>()).collect();
    let outputs = spec.outputs();
    let targets = match &spec.target {
        model::Target::Classes(_) => {
            let classes: Vec<u32> = (0..batch_size).map(|_| rng.random_range(0..outputs as u32)).collect();
            Tensor::from_vec(classes, batch_size, device)?
        }
        model::Target::Labels(_) => {
            let labels: Vec<f32> =
                (0..batch_size * outputs).map(|_| f32::from(u8::from(rng.random::<bool>()))).collect();
            Tensor::from_vec(labels, (batch_size, outputs), device)?
        }
        model::Target::Values(v) => {
            let values: Vec<f32> = (0..batch_size * outputs)
                .map(|i| (v.mean[i % outputs] + v.std[i % outputs] * (rng.random::<f64>() - 0.5)) as f32)
                .collect();
            Tensor::from_vec(values, (batch_size, outputs), device)?
        }
    };
    Ok((Tensor::from_vec(images, spec.batch_dims(batch_size), device)?.to_dtype(DType::F32)?, targets))
}

fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_owned(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// The `q` quantile (0..=1) of `values` by the nearest-rank method; 0 for no values.
fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Peak resident set size in MB, from `/proc/self/status` (`VmHWM`, in kB). `None` elsewhere.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 5.0);
        assert_eq!(percentile(&values, 0.9), 9.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn random_batch_is_seeded_and_in_range() {
        let spec = model::DataSpec::new([3, 9, 5], model::DataSpec::numbered_classes(4)).unwrap();
        let (a, labels) = random_batch(&spec, 3, 7, &Device::Cpu).unwrap();
        let (b, _) = random_batch(&spec, 3, 7, &Device::Cpu).unwrap();
        assert_eq!(a.dims(), [3, 3, 9, 5]);
        assert_eq!(
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        assert!(labels.to_vec1::<u32>().unwrap().iter().all(|l| *l < 4));
    }
}
