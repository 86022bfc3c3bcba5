//! The [`Table`]: a CSV file read whole, its header checked, its delimiter given or detected,
//! and every field's place and value as a number kept beside the text. Reading the rows
//! themselves is `rows`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::rows::{Cells, LineCounter, count_newlines, csv_reader, plain_pieces, read_plain, read_quoted, read_record};
use super::{error, list};
use crate::error::{DataError, Result};

/// The delimiters detected from the header line, in order of preference on a tie.
const DELIMITERS: [u8; 3] = [b',', b';', b'\t'];
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// Bytes of a file read by one rayon task when no field is quoted.
const CHUNK_BYTES: usize = 4 << 20;

/// A CSV file read whole: header names and every row's fields, with the line each row came from
/// and each field read as a number.
///
/// The fields stay in the file's own text (or, for a file with quoted fields, in a text of their
/// unquoted values), with their offsets beside it, so a file of up to 4 GiB; larger ones are
/// refused. Fields are trimmed of surrounding whitespace. A [`Table::select`] of rows shares
/// them: it is a list of row numbers.
#[derive(Clone)]
pub struct Table {
    path: PathBuf,
    header: Arc<[String]>,
    cells: Arc<Cells>,
    /// The rows of `cells` this table has, in order; None for all of them.
    rows: Option<Arc<[u32]>>,
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
        let io = |source| DataError::Io { path: path.to_path_buf(), source };
        // Refuse an oversized file before reading it into memory.
        check_size(path, usize::try_from(std::fs::metadata(path).map_err(io)?.len()).unwrap_or(usize::MAX))?;
        let bytes = std::fs::read(path).map_err(io)?;
        Table::parse(path, bytes, delimiter, Some(CHUNK_BYTES))
    }

    /// [`Table::read`] from bytes in memory; `path` is used in messages only.
    pub fn from_bytes(path: &Path, bytes: &[u8], delimiter: Option<u8>) -> Result<Table> {
        Table::parse(path, bytes.to_vec(), delimiter, Some(CHUNK_BYTES))
    }

    /// Reads the header, then the rows. With `chunk_bytes`, a file without quotes or lone carriage
    /// returns (where every line end ends a row) is cut into pieces of about that size, read in
    /// parallel by our own splitter; otherwise, and with None, the `csv` crate reads the rows in
    /// one piece (the reference the splitter is tested against).
    pub(super) fn parse(
        path: &Path,
        bytes: Vec<u8>,
        delimiter: Option<u8>,
        chunk_bytes: Option<usize>,
    ) -> Result<Table> {
        check_size(path, bytes.len())?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let bytes = e.as_bytes();
            let line = 1 + count_newlines(&bytes[..e.utf8_error().valid_up_to()]);
            error(path, Some(line), None, "is not valid UTF-8 text; save the file as UTF-8 (with or without a BOM)")
        })?;
        let bom = if text.as_bytes().starts_with(UTF8_BOM) { UTF8_BOM.len() } else { 0 };
        let bytes = &text.as_bytes()[bom..];
        let delimiter = match delimiter {
            Some(d) => check_delimiter(path, d)?,
            None => detect_delimiter(bytes),
        };

        let mut reader = csv_reader(bytes, delimiter);
        let mut record = csv::ByteRecord::new();
        if !read_record(path, &mut reader, &mut record, 0)? {
            return Err(error(path, None, None, "is empty; a CSV needs a header row and at least one data row"));
        }
        let header_line = LineCounter::default().line_of(bytes, &record);
        let header = read_header(path, &record, header_line)?;
        let start = bom + usize::try_from(reader.position().byte()).map_or(bytes.len(), |b| b.min(bytes.len()));
        let newlines_before = count_newlines(&text.as_bytes()[..start]);

        let plain = chunk_bytes.and_then(|chunk_bytes| plain_pieces(&text, start, chunk_bytes));
        let cells = match plain {
            Some(pieces) => read_plain(path, text, &pieces, newlines_before, delimiter, header.len())?,
            None => read_quoted(path, &text, start, newlines_before, delimiter, header.len())?,
        };
        if cells.rows() == 0 {
            return Err(error(path, None, None, "has a header row but no data rows; add rows below the header"));
        }
        Ok(Table { path: path.to_path_buf(), header: header.into(), cells: Arc::new(cells), rows: None })
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
        self.rows.as_ref().map_or(self.cells.rows(), |rows| rows.len())
    }

    /// True when the table has no data rows (only a [`Table::select`] of no rows can be).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index of column `name`; an error naming the file and listing the header otherwise.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.header.iter().position(|h| h == name).ok_or_else(|| {
            error(&self.path, None, None, format!("has no column \"{name}\"; its header has {}", list(&self.header)))
        })
    }

    /// The row of `cells` that data row `row` is.
    #[inline]
    fn cell_row(&self, row: usize) -> usize {
        match &self.rows {
            None => row,
            Some(rows) => rows[row] as usize,
        }
    }

    /// Field `column` of data row `row`, trimmed. Panics when either is out of range.
    #[inline]
    pub fn field(&self, row: usize, column: usize) -> &str {
        self.check_column(column);
        self.cells.field(self.cell_row(row), column)
    }

    /// Field `column` of data row `row` as a number when it is one that is finite and within f32
    /// (as [`super::number::parse_number`] reads it, rounded to f32); NaN when the field is empty
    /// or anything else, for the caller to say why from [`Table::field`]. Panics when either
    /// index is out of range.
    #[inline]
    pub(super) fn number(&self, row: usize, column: usize) -> f32 {
        self.check_column(column);
        self.cells.number(self.cell_row(row), column)
    }

    fn check_column(&self, column: usize) {
        assert!(column < self.header.len(), "column {column} of {} in {}", self.header.len(), self.path.display());
    }

    /// The 1-based line in the file of data row `row` (the header is line 1, so the first data row
    /// is line 2 unless a quoted field spans lines, or blank lines come before it).
    pub fn line(&self, row: usize) -> u64 {
        u64::from(self.cells.line(self.cell_row(row)))
    }

    /// The rows at `rows`, in that order (a train/validation split of one file); the fields are
    /// shared, not copied. Panics when an index is out of range.
    pub fn select(&self, rows: &[u32]) -> Table {
        let selected: Arc<[u32]> = rows
            .iter()
            .map(|&row| {
                assert!(
                    (row as usize) < self.len(),
                    "row {row} is out of range for the {} rows of {}",
                    self.len(),
                    self.path.display()
                );
                self.cell_row(row as usize) as u32
            })
            .collect();
        Table { rows: Some(selected), ..self.clone() }
    }
}

/// Offsets are `u32`: refuse what they cannot address.
pub(super) fn check_size(path: &Path, len: usize) -> Result<()> {
    if u32::try_from(len).is_err() {
        return Err(error(
            path,
            None,
            None,
            format!("is {len} bytes, more than the 4 GiB a CSV table may be; split it into several files"),
        ));
    }
    Ok(())
}
fn check_delimiter(path: &Path, delimiter: u8) -> Result<u8> {
    // A digit, point or sign would be read as part of a number; a quote or line end cannot split.
    if !delimiter.is_ascii()
        || delimiter.is_ascii_alphanumeric()
        || matches!(delimiter, b'"' | b'\n' | b'\r' | b'.' | b'+' | b'-')
    {
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
    let first_line = bytes.split(|&b| b == b'\n').find(|line| !line.trim_ascii().is_empty()).unwrap_or_default();
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
