//! Logging set up from logger_config.json: a default level, per-target directives, a console
//! layer (pretty, compact or json; ANSI colours on or off) and a file layer in the run folder.
//! `RUST_LOG`, when set, replaces the level and directives.

use std::collections::BTreeMap;
use std::io::IsTerminal;
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
    /// Colours, when stderr is a terminal.
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
        const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
        for (key, level) in std::iter::once(("level".to_string(), &config.level))
            .chain(config.directives.iter().map(|(t, l)| (format!("directives.{t}"), l)))
        {
            if !LEVELS.contains(&level.as_str()) {
                anyhow::bail!("logging config {}: `{key}` is {level:?}; use one of {LEVELS:?}", path.display());
            }
        }
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
    // Colours only where a terminal shows them, never as escape codes in a piped log.
    let ansi = config.console.ansi && std::io::stderr().is_terminal();
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> =
        vec![layer(config.console.format, ansi, Mutex::new(std::io::stderr()))];
    if let (Some(path), true) = (log_file, config.file.enabled) {
        // Appended to, so a resumed run keeps the log of the part before.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        layers.push(layer(config.file.format, false, Mutex::new(file)));
    }
    tracing_subscriber::registry().with(layers).with(config.filter()?).try_init().context("logging was already set up")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> anyhow::Result<LoggerConfig> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("logger_config.json");
        std::fs::write(&path, text)?;
        LoggerConfig::load(&path)
    }

    #[test]
    fn the_shipped_file_loads() {
        let config = load_text(include_str!("../logger_config.json")).unwrap();
        assert!(config.file.enabled);
    }

    #[test]
    fn missing_broken_or_invalid_files_are_clear_errors() {
        let err = LoggerConfig::load(Path::new("/nonexistent/logger_config.json")).unwrap_err();
        assert!(format!("{err:#}").contains("--logger-config"), "{err:#}");
        let shipped = include_str!("../logger_config.json");
        for (text, needle) in [
            ("{", "logger_config.json"),
            (&shipped.replace("\"compact\"", "\"fancy\"") as &str, "console.format"),
            (&shipped.replace("\"ansi\"", "\"colour\""), "colour"),
        ] {
            let err = format!("{:#}", load_text(text).unwrap_err());
            assert!(err.contains(needle), "{needle}: {err}");
        }
        if std::env::var_os("RUST_LOG").is_none() {
            let err = format!("{:#}", load_text(&shipped.replace("\"info\"", "\"loud\"")).unwrap_err());
            assert!(err.contains("`level` is \"loud\""), "{err}");
        }
    }
}
