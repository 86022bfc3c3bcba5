//! Logging set up from logger_config.json: a default level, per-target directives, a console
//! layer (pretty, compact or json; ANSI colours on or off) and a file layer in the run folder.
//! `RUST_LOG`, when set, replaces the level and directives.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use serde::Deserialize;
use tracing_subscriber::{EnvFilter, Layer, Registry, layer::SubscriberExt, util::SubscriberInitExt};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggerConfig {
    /// trace, debug, info, warn or error.
    level: String,
    /// Levels for particular targets (crates or modules), e.g. {"candle_core": "warn"}.
    #[serde(default)]
    directives: BTreeMap<String, String>,
    console: ConsoleConfig,
    file: FileConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsoleConfig {
    format: Format,
    ansi: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    enabled: bool,
    format: Format,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Format {
    Pretty,
    Compact,
    Json,
}

impl LoggerConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("cannot read the logging config {}; restore it or pass --logger-config FILE", path.display())
        })?;
        let mut de = serde_json::Deserializer::from_str(&text);
        let config: Self = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| anyhow::anyhow!("logging config {}: at `{}`: {}", path.display(), e.path(), e.inner()))?;
        config.filter().with_context(|| format!("logging config {}", path.display()))?;
        Ok(config)
    }

    fn filter(&self) -> anyhow::Result<EnvFilter> {
        if let Ok(env) = std::env::var("RUST_LOG") {
            return EnvFilter::try_new(&env).with_context(|| format!("RUST_LOG={env:?} is not a valid filter"));
        }
        let mut spec = self.level.clone();
        for (target, level) in &self.directives {
            spec.push_str(&format!(",{target}={level}"));
        }
        EnvFilter::try_new(&spec).with_context(|| format!("`level`/`directives` give the invalid filter {spec:?}"))
    }
}

/// Install the global subscriber; with `log_file`, also log into that file.
pub fn init(config: &LoggerConfig, log_file: Option<&Path>) -> anyhow::Result<()> {
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> =
        vec![layer(config.console.format, config.console.ansi, Mutex::new(std::io::stderr()))];
    if let (Some(path), true) = (log_file, config.file.enabled) {
        // Appended to, so a resumed run keeps the log of the part before.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        layers.push(layer(config.file.format, false, Mutex::new(file)));
    }
    tracing_subscriber::registry()
        .with(layers)
        .with(config.filter()?)
        .try_init()
        .context("logging was already set up")
}

fn layer<W>(format: Format, ansi: bool, writer: W) -> Box<dyn Layer<Registry> + Send + Sync>
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let base = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(writer);
    match format {
        Format::Pretty => base.pretty().boxed(),
        Format::Compact => base.compact().boxed(),
        Format::Json => base.json().boxed(),
    }
}
