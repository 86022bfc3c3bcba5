//! `bench --data`: whether the configured data keeps up with training. It loads the configured
//! training split (real files: the cache, workers, prefetch and augmentation of config.json), then
//! measures the loader alone (images/s: decode, standardise, augment, batch) and training fed by
//! it (samples/s, and the share of each step spent waiting for the next batch).

use std::time::{Duration, Instant};

use data_loader::{DataLoader, SplitData};
use serde::Serialize;
use tracing::info;

use super::{BenchOptions, device_name, peak_rss_mb};
use crate::optim::Optimizer;
use crate::trainer::TrainError;
use experiment::config::Config;
use experiment::{Built, build_model};

/// What `bench --data --json` prints as its last line.
#[derive(Debug, Clone, Serialize)]
pub struct DataBenchReport {
    pub model: String,
    /// `data_loader.type`.
    pub data: &'static str,
    /// "memory" (decoded once, batches sliced from the device) or "stream" (decoded while training).
    pub cache: &'static str,
    pub augment: bool,
    pub image_shape: Vec<usize>,
    pub device: String,
    pub batch_size: usize,
    pub steps: usize,
    pub threads: usize,
    /// The loader alone: images per second it delivers (nothing else running).
    pub loader_images_per_sec: f64,
    /// Training fed by the loader.
    pub train_samples_per_sec: f64,
    /// The part of the training time spent waiting for batches (0: never waited).
    pub data_wait_share: f64,
    pub peak_rss_mb: Option<f64>,
    /// Loading the training and validation splits (for a table: reading, fitting the encoding,
    /// encoding both splits), before the first step.
    pub load_seconds: f64,
    /// Samples in both splits.
    pub samples_loaded: usize,
    /// The size of the training file, for a table.
    pub source_bytes: Option<u64>,
}

impl DataBenchReport {
    pub fn summary(&self) -> String {
        let rate = self.samples_loaded as f64 / self.load_seconds.max(1e-9);
        let bytes = self
            .source_bytes
            .map_or(String::new(), |b| format!(", {:.0} MB/s", b as f64 / 1e6 / self.load_seconds.max(1e-9)));
        let loaded = format!(
            "loaded {} samples in {:.2}s ({rate:.0} samples/s{bytes}); ",
            self.samples_loaded, self.load_seconds
        );
        loaded
            + &format!(
                "{} on {} ({}, {:?}{}): loader {:.0} images/s; training {:.1} samples/s at batch {}, {:.1}% of it waiting for data ({} steps on {}, {} threads)",
                self.model,
                self.data,
                self.cache,
                self.image_shape,
                if self.augment { ", augmented" } else { "" },
                self.loader_images_per_sec,
                self.train_samples_per_sec,
                self.batch_size,
                100.0 * self.data_wait_share,
                self.steps,
                self.device,
                self.threads,
            )
    }
}

/// Batches of `loader`, epoch after epoch, for as long as they are asked for.
fn endless<'a>(
    loader: &'a DataLoader<'a, SplitData>,
) -> impl Iterator<Item = candle_core::Result<(candle_core::Tensor, candle_core::Tensor)>> + 'a {
    (1u64..).flat_map(move |epoch| loader.epoch(epoch))
}

/// Run the data benchmark: `options.warmup` untimed steps, then `options.steps` timed ones.
pub fn bench_data(config: &Config, options: &BenchOptions) -> Result<DataBenchReport, TrainError> {
    let (device, why) = config.device.select()?;
    info!("device: {why}");
    if !device.is_cpu() {
        device.set_seed(config.seed)?;
    }
    let load = Instant::now();
    let splits = config.data_loader.load_train_val(config.seed, &device)?;
    let load_seconds = load.elapsed().as_secs_f64();
    let samples_loaded = data_loader::Dataset::len(&splits.train) + data_loader::Dataset::len(&splits.val);
    let source_bytes = match &config.data_loader {
        experiment::data::DataLoaderConfig::Csv(args) => std::fs::metadata(&args.train).ok().map(|m| m.len()),
        _ => None,
    };
    let loader = DataLoader::new(&splits.train, options.batch_size, true, false, config.seed)?
        .with_augment(config.data_loader.augment());
    if loader.num_batches() == 0 {
        return Err(data_loader::DataError::InvalidLoader("the training split is empty".into()).into());
    }

    // The loader alone.
    let mut images = 0;
    let started = Instant::now();
    for batch in endless(&loader).take(options.warmup + options.steps) {
        images += batch?.1.dim(0)?;
    }
    device.synchronize()?;
    let loader_images_per_sec = images as f64 / started.elapsed().as_secs_f64();

    // Training fed by it: the time in `next()` is time the step waited for data.
    let Built { varmap, model } = build_model(config, &splits.spec, &device)?;
    let task = experiment::task::Task::new(&splits.spec.target, config);
    let mut optimizer = Optimizer::new(&config.optimizer, model::trainable_vars(&varmap));
    let lr = config.optimizer.lr();
    let mut batches = endless(&loader);
    let (mut waited, mut samples) = (Duration::ZERO, 0);
    let mut timed = Instant::now();
    for step in 0..options.warmup + options.steps {
        if step == options.warmup {
            (waited, samples, timed) = (Duration::ZERO, 0, Instant::now());
        }
        let wait = Instant::now();
        let (images, labels) = batches.next().expect("endless")?;
        waited += wait.elapsed();
        model::set_dropout_stream(config.seed, step as u64, 0);
        let logits = model.forward_t(&images, true)?;
        let loss = task.loss(&logits, &labels)?;
        let _ = loss.to_scalar::<f32>()?;
        optimizer.step(&loss.backward()?, lr)?;
        device.synchronize()?;
        samples += labels.dim(0)?;
    }
    let seconds = timed.elapsed().as_secs_f64();
    Ok(DataBenchReport {
        model: config.model.name().to_owned(),
        data: config.data_loader.name(),
        cache: match splits.train {
            SplitData::InMemory(_) => "memory",
            SplitData::Streamed(_) => "stream",
        },
        augment: !config.data_loader.augment().is_off(),
        image_shape: splits.spec.input_shape.clone(),
        device: device_name(&device),
        batch_size: options.batch_size,
        steps: options.steps,
        threads: candle_core::utils::get_num_threads(),
        loader_images_per_sec,
        train_samples_per_sec: samples as f64 / seconds,
        data_wait_share: waited.as_secs_f64() / seconds,
        peak_rss_mb: peak_rss_mb(),
        load_seconds,
        samples_loaded,
        source_bytes,
    })
}
