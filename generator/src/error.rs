//! Everything that can go wrong before or during generation, each with what to do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid project name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },

    #[error(
        "{path} already exists; candlecutter never overwrites. Pick another name or --destination, \
         or move the existing folder away"
    )]
    DestinationExists { path: PathBuf },

    #[error("unknown placeholder {key:?}; the template's placeholders are: {known}")]
    UnknownPlaceholder { key: String, known: String },

    #[error("{key:?} cannot be set: {why}")]
    BuiltinPlaceholder { key: &'static str, why: &'static str },

    #[error("invalid value {value:?} for {key}; choose one of: {choices}")]
    InvalidChoice { key: String, value: String, choices: String },

    #[error("--define {0:?} is not KEY=VALUE (for example --define model=cnn)")]
    MalformedDefine(String),

    #[error("{key} is given twice, as {first:?} and as {second:?}; keep one")]
    ConflictingValues { key: String, first: String, second: String },

    #[error("cannot read values file {path}: {source}")]
    ValuesFileRead { path: PathBuf, source: std::io::Error },

    #[error(
        "values file {path} is not valid: {message}\n\
         expected TOML like:\n[values]\nbackend = \"cpu\"\nmodel = \"cnn\"\nonnx = true"
    )]
    ValuesFileParse { path: PathBuf, message: String },

    #[error("unknown preset {name:?}; presets are: {known}")]
    UnknownPreset { name: String, known: String },

    #[error("the embedded template is broken ({0}); this is a bug in candlecutter, please report it")]
    Template(String),

    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },

    #[error("cargo-generate failed: {0:#}")]
    CargoGenerate(anyhow::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Attach what was being done to an I/O error.
pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}
