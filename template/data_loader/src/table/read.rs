//! The [`Table`]: a CSV file read whole into one string of fields, its header checked, its
//! delimiter given or detected. Reading the rows themselves is `rows`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::rows::{
    LineCounter, LineEnds, count_newlines, csv_reader, read_pieces, read_record, split_rows,
};
use super::{error, list};
use crate::error::{DataError, Result};

/// The delimiters detected from the header line, in order of preference on a tie.
const DELIMITERS: [u8; 3] = [b',', b';', b'\t'];
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// Bytes of a file read by one rayon task when no field is quoted.
const CHUNK_BYTES: usize = 4 << 20;

/// A CSV file read whole: header names and every row's fields, with the line each row came from.
///
/// Fields live in one string, row after row, with their end offsets beside it (so a file of up to
/// 4 GiB; larger ones are refused). Fields are trimmed of surrounding whitespace.
#[derive(Clone)]
pub struct Table {
    path: PathBuf,
    header: Vec<String>,
    /// Every field, row-major, back to back.
    text: String,
    /// Field `i` (row-major) is `text[bounds[i]..bounds[i + 1]]`; `rows * columns + 1` entries.
    bounds: Vec<u32>,
    /// The 1-based line each row starts on.
    lines: Vec<u32>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("path", &self.path)
            .field("header", &self.header)
            .field("rows", &self.len())
            .finish()
    }
}

impl Table {
    /// Reads `path`: header row required; delimiter `,` `;` or tab, detected from the header line
    /// when `delimiter` is None (the one of the three that occurs most in it; `,` when none does);
    /// UTF-8 with or without BOM; LF or CRLF; quoted fields.
    pub fn read(path: &Path, delimiter: Option<u8>) -> Result<Table> {
        let io = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Refuse an oversized file before reading it into memory.
        check_size(
            path,
            usize::try_from(std::fs::metadata(path).map_err(io)?.len()).unwrap_or(usize::MAX),
        )?;
        let bytes = std::fs::read(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Table::from_bytes(path, &bytes, delimiter)
    }

    /// [`Table::read`] from bytes in memory; `path` is used in messages only.
    pub fn from_bytes(path: &Path, bytes: &[u8], delimiter: Option<u8>) -> Result<Table> {
        Table::parse(path, bytes, delimiter, CHUNK_BYTES)
    }

    /// Reads the header, then the rows: in pieces of about `chunk_bytes` in parallel when no field
    /// is quoted (then every line end ends a row), in one piece otherwise.
    pub(super) fn parse(
        path: &Path,
        bytes: &[u8],
        delimiter: Option<u8>,
        chunk_bytes: usize,
    ) -> Result<Table> {
        let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
        check_size(path, bytes.len())?;
        if let Err(e) = std::str::from_utf8(bytes) {
            let line = 1 + count_newlines(&bytes[..e.valid_up_to()]);
            return Err(error(
                path,
                Some(line),
                None,
                "is not valid UTF-8 text; save the file as UTF-8 (with or without a BOM)",
            ));
        }
        let delimiter = match delimiter {
            Some(d) => check_delimiter(path, d)?,
            None => detect_delimiter(bytes),
        };

        let mut reader = csv_reader(bytes, delimiter);
        let mut record = csv::ByteRecord::new();
        if !read_record(path, &mut reader, &mut record, 0)? {
            return Err(error(
                path,
                None,
                None,
                "is empty; a CSV needs a header row and at least one data row",
            ));
        }
        let header_line = LineCounter::default().line_of(bytes, &record);
        let header = read_header(path, &record, header_line)?;
        let start =
            usize::try_from(reader.position().byte()).map_or(bytes.len(), |b| b.min(bytes.len()));
        let (before, data) = bytes.split_at(start);

        let pieces = split_rows(data, chunk_bytes);
        let ends: Vec<LineEnds> = pieces.par_iter().map(|piece| LineEnds::of(piece)).collect();
        let (text, bounds, lines) = read_pieces(
            path,
            &pieces,
            &ends,
            count_newlines(before),
            delimiter,
            header.len(),
        )?;
        if lines.is_empty() {
            return Err(error(
                path,
                None,
                None,
                "has a header row but no data rows; add rows below the header",
            ));
        }
        Ok(Table {
            path: path.to_path_buf(),
            header,
            text,
            bounds,
            lines,
        })
    }

    /// The file the table came from (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The column names, in file order.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The number of data rows.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// True when the table has no data rows (only a [`Table::select`] of no rows can be).
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The index of column `name`; an error naming the file and listing the header otherwise.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.header.iter().position(|h| h == name).ok_or_else(|| {
            error(
                &self.path,
                None,
                None,
                format!(
                    "has no column \"{name}\"; its header has {}",
                    list(&self.header)
                ),
            )
        })
    }

    /// Field `column` of data row `row`. Panics when either is out of range.
    pub fn field(&self, row: usize, column: usize) -> &str {
        assert!(
            column < self.header.len(),
            "column {column} of {} in {}",
            self.header.len(),
            self.path.display()
        );
        let i = row * self.header.len() + column;
        &self.text[self.bounds[i] as usize..self.bounds[i + 1] as usize]
    }

    /// The 1-based line in the file of data row `row` (the header is line 1, so the first data row
    /// is line 2 unless a quoted field spans lines, or blank lines come before it).
    pub fn line(&self, row: usize) -> u64 {
        u64::from(self.lines[row])
    }

    /// The rows at `rows`, in that order (a train/validation split of one file). Panics when an
    /// index is out of range.
    pub fn select(&self, rows: &[u32]) -> Table {
        let columns = self.header.len();
        let span = |row: u32| {
            let row = row as usize;
            assert!(
                row < self.len(),
                "row {row} is out of range for the {} rows of {}",
                self.len(),
                self.path.display()
            );
            (
                self.bounds[row * columns] as usize,
                self.bounds[(row + 1) * columns] as usize,
            )
        };
        let mut text =
            String::with_capacity(rows.iter().map(|&row| span(row)).map(|(a, b)| b - a).sum());
        let mut bounds = Vec::with_capacity(rows.len() * columns + 1);
        bounds.push(0u32);
        let mut lines = Vec::with_capacity(rows.len());
        for &row in rows {
            let (start, end) = span(row);
            let row = row as usize;
            let base = u32::try_from(text.len()).expect("a selection of under 4 GiB of fields");
            text.push_str(&self.text[start..end]);
            let ends = &self.bounds[row * columns + 1..=(row + 1) * columns];
            bounds.extend(ends.iter().map(|&end| base + (end - start as u32)));
            lines.push(self.lines[row]);
        }
        Table {
            path: self.path.clone(),
            header: self.header.clone(),
            text,
            bounds,
            lines,
        }
    }
}

/// Offsets are `u32`: refuse what they cannot address.
pub(super) fn check_size(path: &Path, len: usize) -> Result<()> {
    if u32::try_from(len).is_err() {
        return Err(error(
            path,
            None,
            None,
            format!(
                "is {len} bytes, more than the 4 GiB a CSV table may be; split it into several files"
            ),
        ));
    }
    Ok(())
}

fn check_delimiter(path: &Path, delimiter: u8) -> Result<u8> {
    if !delimiter.is_ascii() || matches!(delimiter, b'"' | b'\n' | b'\r') {
        return Err(error(
            path,
            None,
            None,
            format!(
                "cannot be split at byte {delimiter:#04x} (`data_loader.args.delimiter`); use \",\", \";\" or a tab"
            ),
        ));
    }
    Ok(delimiter)
}

/// The one of `,` `;` tab that occurs most in the first line that is not blank; `,` when none does.
fn detect_delimiter(bytes: &[u8]) -> u8 {
    let first_line = bytes
        .split(|&b| b == b'\n')
        .find(|line| !line.trim_ascii().is_empty())
        .unwrap_or_default();
    let count = |d: u8| first_line.iter().filter(|&&b| b == d).count();
    let mut best = (b',', 0);
    for d in DELIMITERS {
        let n = count(d);
        if n > best.1 {
            best = (d, n);
        }
    }
    best.0
}

/// The header's names: none empty, none twice.
fn read_header(path: &Path, record: &csv::ByteRecord, line: u64) -> Result<Vec<String>> {
    let mut header = Vec::with_capacity(record.len());
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, field) in record.iter().enumerate() {
        let name = std::str::from_utf8(field.trim_ascii())
            .expect("fields of valid UTF-8, cut at ASCII bytes, are valid UTF-8");
        if name.is_empty() {
            return Err(error(
                path,
                Some(line),
                None,
                format!(
                    "column {} of the header is empty; name every column (a delimiter at the end of the header makes an empty last column)",
                    i + 1
                ),
            ));
        }
        if let Some(first) = seen.insert(name, i) {
            return Err(error(
                path,
                Some(line),
                Some(name),
                format!(
                    "the header names columns {} and {} both \"{name}\"; rename one, column names must be unique",
                    first + 1,
                    i + 1
                ),
            ));
        }
        header.push(name.to_owned());
    }
    Ok(header)
}
