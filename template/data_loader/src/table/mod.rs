//! CSV tables for the `csv` data type: reading a file into a [`Table`] (delimiter detection,
//! BOM, CRLF, quoting, and the line of every row for messages), fitting an [`Encoding`] of its
//! columns on the training rows (numeric columns standardised, categorical ones one-hot, targets
//! as classes, labels or values), and encoding any table with those columns into `f32` model
//! inputs and [`Targets`]. The encoding is plain data (serde JSON), recorded with the run, so
//! evaluation, prediction and export rebuild the inputs without the training file.
//!
//! Only an empty field is a missing value; `NA`, `nan` or `inf` are not. Every error names the
//! file, and where there is one the line and the column, and says what to change.
//!
//! Where things are: `read` (the [`Table`] and its header) over `rows` (the rows split in
//! parallel pieces, or read by the `csv` crate when quoted: each field's place, number and line);
//! `encoding` (the fitted, serialisable types and their methods); `fit` (columns from the config,
//! targets) over `fit/feature` (each feature's kind and statistics);
//! `encode` (rows and targets into model inputs); `column`, `number` and `moments` (a column's
//! fields and errors, number parsing, mean and variance).

mod column;
mod encode;
mod encoding;
mod fit;
mod moments;
mod number;
mod read;
mod rows;
#[cfg(test)]
mod tests;

pub use encoding::{ColumnKind, Encoding, Feature, FitOptions, TargetEncoding, TargetKind, Targets};
pub use read::Table;

use std::path::Path;

use crate::error::DataError;

/// The most distinct values a categorical feature may have in training: each is one model input,
/// so an identifier column (every value distinct) would make millions of inputs.
pub const MAX_CATEGORIES: usize = 10_000;

/// Rows encoded by one rayon task: large enough to amortise scheduling, small enough to balance.
const ROWS_PER_TASK: usize = 4096;
/// Column names listed in one message before the list is cut short.
const LISTED_NAMES: usize = 40;

/// `"a", "b", "c"`, cut short after [`LISTED_NAMES`].
fn list<S: AsRef<str>>(names: &[S]) -> String {
    let mut out: Vec<String> = names.iter().take(LISTED_NAMES).map(|n| format!("\"{}\"", n.as_ref())).collect();
    if names.len() > LISTED_NAMES {
        out.push(format!("… ({} more)", names.len() - LISTED_NAMES));
    }
    out.join(", ")
}

fn error(path: &Path, line: Option<u64>, column: Option<&str>, message: impl Into<String>) -> DataError {
    DataError::Table { path: path.to_path_buf(), line, column: column.map(str::to_owned), message: message.into() }
}
