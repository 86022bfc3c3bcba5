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

    #[error("{path} is not a candlecutter template (no cargo-generate.toml in it or in its template/ folder)")]
    NotATemplate { path: PathBuf },

    #[error(
        "the template {origin} declares the hash {declared} but its files hash to {actual}: a project \
         made from it could not be updated later. After editing a template, run \
         `bash scripts/stamp-template.sh` in the candlecutter repository"
    )]
    Unstamped { origin: String, declared: String, actual: String },

    #[error("{path} is not a Cargo project (no Cargo.toml); give the generated project's folder")]
    NotAProject { path: PathBuf },

    #[error("{path} is not valid: {message}")]
    BadManifest { path: PathBuf, message: String },

    #[error(
        "{path} is missing: the project was generated before candlecutter recorded its template. Adopt \
         it by naming the template it came from and the answers it was generated with: \
         candlecutter update --base-template PATH --define backend=... --define model=... --define onnx=... \
         (PATH: a checkout of candlecutter at that version, or its template/ folder)"
    )]
    NoManifest { path: PathBuf },

    #[error(
        "the project was generated from template {version} ({hash}), which this candlecutter does not \
         carry (a development version, or newer than this binary). Pass --base-template PATH: a \
         checkout of candlecutter at that version (git clone https://github.com/candlecutter/candlecutter \
         && git -C candlecutter checkout <commit>), or its template/ folder"
    )]
    UnknownBase { version: String, hash: String },

    #[error(
        "--base-template {path} hashes to {found}, but the project was generated from template \
         {version} with hash {recorded}: check out the commit the project came from"
    )]
    BaseMismatch { path: PathBuf, found: String, recorded: String, version: String },

    #[error("adopting a project without .candlecutter.toml needs the answers it was generated with: {missing}")]
    AdoptNeedsAnswers { missing: String },

    #[error(
        "{path} has uncommitted changes; commit or stash them first, so that `git diff` shows what the \
         update changed and `git checkout .` undoes it (or pass --allow-dirty):\n  {files}"
    )]
    DirtyTree { path: PathBuf, files: String },

    #[error(
        "{path} is not in a git repository (or git is not installed): commit the project first \
         (git init && git add -A && git commit -m \"before update\"), so that `git diff` shows what \
         the update changed and `git checkout .` undoes it, or pass --allow-dirty"
    )]
    NotInGit { path: PathBuf },

    #[error("the update stopped and every file is as it was before it: {source}")]
    UpdateRolledBack { source: Box<Error> },

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
