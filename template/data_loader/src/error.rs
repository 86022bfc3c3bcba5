//! The crate's error type: every way downloading, loading, splitting or batching MNIST can fail,
//! each variant carrying the file or URL (where there is one) and what a user needs to fix it.

use std::path::PathBuf;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read (includes corrupt gzip streams).
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The first four bytes are not the IDX magic number expected for this kind of file.
    #[error("{path}: not an IDX {kind} file: magic number is {found:#010x}, expected {expected:#010x}{hint}")]
    BadMagic {
        path: PathBuf,
        kind: &'static str,
        expected: u32,
        found: u32,
        /// Extra advice, e.g. "(this looks like an IDX labels file)"; empty when there is none.
        hint: String,
    },

    /// The file ends before its header does.
    #[error("{path}: too short for an IDX {kind} header: {actual} bytes, the header alone is {needed}")]
    ShortHeader { path: PathBuf, kind: &'static str, needed: u64, actual: u64 },

    /// A header dimension is zero.
    #[error("{path}: IDX header has a zero dimension ({dims}); every dimension must be at least 1")]
    ZeroDimension { path: PathBuf, dims: String },

    /// A header dimension is beyond what this loader accepts; refused before allocating anything.
    #[error(
        "{path}: IDX header claims {value} {what}, more than the {max} this loader accepts; the file is corrupt or not MNIST-like"
    )]
    AbsurdHeader { path: PathBuf, what: &'static str, value: u64, max: u64 },

    /// The data is shorter than the header says.
    #[error("{path}: truncated {encoding} file: the header implies {expected} bytes, found only {actual}")]
    Truncated {
        path: PathBuf,
        /// "IDX" or "gzip IDX (sizes after decompression)".
        encoding: &'static str,
        expected: u64,
        actual: u64,
    },

    /// The data is longer than the header says.
    #[error(
        "{path}: {extra} trailing bytes after the data: the header implies {expected} bytes, found {actual} ({encoding})"
    )]
    TrailingBytes { path: PathBuf, encoding: &'static str, expected: u64, actual: u64, extra: u64 },

    /// A label is not one of the classes.
    #[error(
        "{path}: the label at index {index} is {value}, but there are {classes} classes (labels 0..={}); \
         name every class in `data_loader.args.classes`, in label order",
        classes.saturating_sub(1)
    )]
    LabelOutOfRange { path: PathBuf, index: usize, value: u8, classes: usize },

    /// Neither the plain nor the gzip form of a dataset file exists.
    #[error(
        "MNIST file not found: tried {plain} and {gz}; run the project's `download` subcommand, \
         or copy the IDX files (plain or .gz) into {dir}"
    )]
    MissingFile { plain: PathBuf, gz: PathBuf, dir: PathBuf },

    /// The images and labels files of one split disagree on the number of samples.
    #[error("{images_path} has {images} images but {labels_path} has {labels} labels; they must be the same split")]
    CountMismatch { images_path: PathBuf, images: usize, labels_path: PathBuf, labels: usize },

    /// A train/validation split that cannot be made (`data_loader.args.validation_split`).
    #[error("invalid `data_loader.args.validation_split`: {0}")]
    InvalidSplit(String),

    /// A data loader setting that cannot work (e.g. batch size 0).
    #[error("invalid data loader setting: {0}")]
    InvalidLoader(String),

    /// Normalisation constants that would produce NaN or infinity.
    #[error("invalid normalisation: {0}")]
    InvalidNormalize(String),

    /// Tensors handed to a dataset whose shapes, dtypes or devices do not fit together.
    #[error("dataset tensors do not fit: {0}")]
    Shape(String),

    /// A sample index outside the split.
    #[error("sample index {index} is out of range for a split of {len} samples")]
    IndexOutOfRange { index: u32, len: usize },

    /// A file in the data directory could not be created, written or renamed.
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file needs downloading but the mirror list is empty.
    #[error(
        "{file} is missing or invalid in {dir} and no download mirror is configured; add one to \
         config.json `data_loader.args.mirrors`, or copy the file into {dir} by hand"
    )]
    NoMirrors { file: String, dir: PathBuf },

    /// Every mirror failed for one file; nothing was written under its name.
    #[error(
        "{file}: download failed from every mirror:{}\nCheck the network connection, add a working \
         mirror to config.json `data_loader.args.mirrors`, or copy {file} (SHA-256 {sha256}) into {dir} by hand",
        list_failures(attempts)
    )]
    DownloadFailed { file: String, sha256: String, dir: PathBuf, attempts: Vec<MirrorFailure> },

    /// An image-folder data set laid out in a way that cannot be trained on.
    #[error("{path}: {problem}")]
    Layout { path: PathBuf, problem: String },

    /// An image file that cannot be decoded.
    #[error(
        "{path}: not a readable image: {reason}; fix or remove the file, or set \
         `data_loader.args.skip_unreadable` to skip such files (they are counted in the log)"
    )]
    Unreadable { path: PathBuf, reason: String },

    /// A CSV table that cannot be read, a value in it that cannot be encoded, or a
    /// `data_loader.args` setting that does not fit the table. Reads as
    /// `data/houses.csv, line 17, column "rooms": "abc" is not a number; ...`.
    #[error("{path}{}: {message}", at(line, column))]
    Table {
        path: PathBuf,
        /// The 1-based line of the row at fault, where one row is.
        line: Option<u64>,
        /// The column at fault, where there is one.
        column: Option<String>,
        /// What is wrong and what to do about it.
        message: String,
    },

    /// Candle failed while staging tensors.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Why one mirror could not deliver one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorFailure {
    /// The full URL that was tried.
    pub url: String,
    /// E.g. `HTTP 404`, `SHA-256 mismatch: expected .., got ..`, or the connection error.
    pub reason: String,
}

fn list_failures(attempts: &[MirrorFailure]) -> String {
    attempts.iter().map(|a| format!("\n  - {}: {}", a.url, a.reason)).collect()
}

/// `, line 17, column "rooms"`, or the parts of it that are known.
fn at(line: &Option<u64>, column: &Option<String>) -> String {
    let mut at = String::new();
    if let Some(line) = line {
        at.push_str(&format!(", line {line}"));
    }
    if let Some(column) = column {
        at.push_str(&format!(", column \"{column}\""));
    }
    at
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, DataError>;
