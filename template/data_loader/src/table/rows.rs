//! A CSV file's data rows into [`Cells`]: the place of every field and its value as a number.
//!
//! A file in which every line end ends a row (no quotes) is cut into pieces at line ends, and
//! the pieces are split at delimiters in parallel: the fields stay in the file's text, which
//! [`Cells`] keeps. Any other file is read by the `csv` crate in one piece, its unquoted fields
//! copied into a text of their own. Both give the same cells (a test compares them), and both
//! count the line each row starts on.

use std::ops::Range;
use std::path::Path;

use rayon::prelude::*;

use super::error;
use super::number::{EXACT_POWERS_OF_TEN, parse_number};
use crate::error::{DataError, Result};

/// Every data row's fields: where each one is in `text`, its value as a number, and the line its
/// row starts on.
pub(super) struct Cells {
    /// The fields' text: the file itself, or the unquoted fields with one byte between them.
    text: String,
    columns: usize,
    /// `columns + 1` offsets into `text` per row: where the row's first field starts, then where
    /// each field ends. Field `j > 0` starts one byte after field `j - 1` ends (at its delimiter).
    bounds: Vec<u32>,
    /// `columns` per row: each field as [`parse_number`] reads it, rounded to f32; NaN for an
    /// empty field or anything that is not a finite number within f32.
    numbers: Vec<f32>,
    /// The 1-based line each row starts on.
    lines: Vec<u32>,
}

impl Cells {
    pub(super) fn rows(&self) -> usize {
        self.lines.len()
    }

    /// Field `column` of row `row`, trimmed of surrounding whitespace.
    #[inline]
    pub(super) fn field(&self, row: usize, column: usize) -> &str {
        let at = row * (self.columns + 1) + column;
        let start = if column == 0 { self.bounds[at] } else { self.bounds[at] + 1 };
        self.text[start as usize..self.bounds[at + 1] as usize].trim_ascii()
    }

    #[inline]
    pub(super) fn number(&self, row: usize, column: usize) -> f32 {
        self.numbers[row * self.columns + column]
    }

    pub(super) fn line(&self, row: usize) -> u32 {
        self.lines[row]
    }
}

/// A field's value for [`Cells::numbers`].
#[inline]
fn number(field: &str) -> f32 {
    let field = field.trim_ascii();
    if field.is_empty() {
        return f32::NAN;
    }
    parse_number(field).map_or(f32::NAN, |x| x as f32)
}

/// A piece of a file in which every line end ends a row: where it is, its rows (lines that are
/// not empty) and its line ends.
pub(super) struct PlainPiece {
    range: Range<usize>,
    rows: usize,
    newlines: u64,
}

/// `text[start..]` cut after line ends into pieces of about `chunk_bytes`, each with its rows
/// and line ends counted (in parallel); None when a quote or a lone carriage return means a line
/// end may not end a row, for the `csv` crate to read.
pub(super) fn plain_pieces(text: &str, start: usize, chunk_bytes: usize) -> Option<Vec<PlainPiece>> {
    let bytes = text.as_bytes();
    split_rows(&bytes[start..], chunk_bytes)
        .into_par_iter()
        .map(|piece| {
            let range = start + piece.start..start + piece.end;
            let (mut rows, mut newlines, mut line_start) = (0, 0, range.start);
            for i in memchr::memchr3_iter(b'\n', b'\r', b'"', &bytes[range.clone()]) {
                let i = range.start + i;
                match bytes[i] {
                    b'\n' => {
                        let line = &bytes[line_start..i];
                        rows += usize::from(!line.is_empty() && line != b"\r");
                        newlines += 1;
                        line_start = i + 1;
                    }
                    b'\r' if bytes.get(i + 1) == Some(&b'\n') => {}
                    _ => return None,
                }
            }
            rows += usize::from(line_start < range.end);
            Some(PlainPiece { range, rows, newlines })
        })
        .collect()
}

/// Reads the rows of `pieces` of `text` (from [`plain_pieces`]) in parallel, each into its own
/// region of the cells. `newlines_before` are the line ends before the first piece.
pub(super) fn read_plain(
    path: &Path,
    text: String,
    pieces: &[PlainPiece],
    newlines_before: u64,
    delimiter: u8,
    columns: usize,
) -> Result<Cells> {
    let rows: usize = pieces.iter().map(|p| p.rows).sum();
    // Zeroed allocations are fresh pages, mapped in by the tasks that first write them.
    let mut bounds = vec![0u32; rows * (columns + 1)];
    let mut numbers = vec![0f32; rows * columns];
    let mut lines = vec![0u32; rows];
    let mut jobs = Vec::with_capacity(pieces.len());
    let (mut b, mut n, mut l) = (&mut bounds[..], &mut numbers[..], &mut lines[..]);
    let mut newlines = newlines_before;
    for piece in pieces {
        let (bounds_out, b_rest) = std::mem::take(&mut b).split_at_mut(piece.rows * (columns + 1));
        let (numbers_out, n_rest) = std::mem::take(&mut n).split_at_mut(piece.rows * columns);
        let (lines_out, l_rest) = std::mem::take(&mut l).split_at_mut(piece.rows);
        (b, n, l) = (b_rest, n_rest, l_rest);
        jobs.push((
            piece.range.clone(),
            newlines,
            Region { bounds: bounds_out, numbers: numbers_out, lines: lines_out },
        ));
        newlines += piece.newlines;
    }
    let read: Vec<std::result::Result<(), (u64, usize)>> = jobs
        .into_par_iter()
        .map(|(range, newlines, region)| plain_rows(&text, range, newlines, delimiter, region))
        .collect();
    if let Some((line, fields)) = read.into_iter().find_map(|r| r.err()) {
        return Err(ragged(path, line, fields, columns, delimiter));
    }
    Ok(Cells { text, columns, bounds, numbers, lines })
}

/// Where one piece's rows go in [`Cells`].
struct Region<'a> {
    bounds: &'a mut [u32],
    numbers: &'a mut [f32],
    lines: &'a mut [u32],
}

/// Splits the rows of `text[piece]` (after `newlines` line ends of the file; every line end in it
/// ends a row) at `delimiter`, reading each field as a number as it goes. Empty lines are skipped,
/// as the `csv` crate skips them. A ragged row is `Err((line, fields))`.
fn plain_rows(
    text: &str,
    piece: Range<usize>,
    newlines: u64,
    delimiter: u8,
    region: Region,
) -> std::result::Result<(), (u64, usize)> {
    let bytes = text.as_bytes();
    let columns = region.numbers.len() / region.lines.len().max(1);
    let (end, mut at, mut line, mut row) = (piece.end, piece.start, newlines + 1, 0);
    while at < end {
        let line_end = memchr::memchr(b'\n', &bytes[at..end]).map_or(end, |i| at + i);
        let stop = if line_end > at && bytes[line_end - 1] == b'\r' { line_end - 1 } else { line_end };
        if stop > at {
            let bounds = &mut region.bounds[row * (columns + 1)..(row + 1) * (columns + 1)];
            let numbers = &mut region.numbers[row * columns..(row + 1) * columns];
            bounds[0] = at as u32;
            let (mut field, mut start) = (0, at);
            loop {
                let (value, field_end) = scan_field(text, start, stop, delimiter);
                if field == columns {
                    let more = memchr::memchr_iter(delimiter, &bytes[start..stop]).count();
                    return Err((line, columns + 1 + more));
                }
                numbers[field] = value;
                bounds[field + 1] = field_end as u32;
                field += 1;
                if field_end == stop {
                    break;
                }
                start = field_end + 1;
            }
            if field != columns {
                return Err((line, field));
            }
            region.lines[row] = u32::try_from(line).unwrap_or(u32::MAX);
            row += 1;
        }
        line += 1;
        at = line_end + 1;
    }
    Ok(())
}

/// The field that starts at `start` and ends at the next delimiter or `stop`: its value for
/// [`Cells::numbers`], and where it ends. A plain decimal (`-12.375`, at most 15 digits) is read
/// as it is scanned, exactly as [`super::number::parse_f64`] reads it; anything else is found
/// with `memchr` and read by [`number`].
#[inline]
fn scan_field(text: &str, start: usize, stop: usize, delimiter: u8) -> (f32, usize) {
    let bytes = text.as_bytes();
    let mut i = start;
    let negative = i < stop && bytes[i] == b'-';
    i += usize::from(negative || (i < stop && bytes[i] == b'+'));
    let (mut mantissa, mut digits, mut point) = (0u64, 0usize, None);
    while i < stop {
        let b = bytes[i];
        let digit = b.wrapping_sub(b'0');
        if digit < 10 && digits + 1 < EXACT_POWERS_OF_TEN.len() {
            mantissa = mantissa * 10 + u64::from(digit);
            digits += 1;
        } else if b == b'.' && point.is_none() {
            point = Some(digits);
        } else {
            break;
        }
        i += 1;
    }
    if digits > 0 && (i == stop || bytes[i] == delimiter) {
        let x = mantissa as f64 / EXACT_POWERS_OF_TEN[point.map_or(0, |whole| digits - whole)];
        return ((if negative { -x } else { x }) as f32, i);
    }
    let end = memchr::memchr(delimiter, &bytes[i..stop]).map_or(stop, |j| i + j);
    (number(&text[start..end]), end)
}

fn ragged(path: &Path, line: u64, fields: usize, columns: usize, delimiter: u8) -> DataError {
    error(
        path,
        Some(line),
        None,
        format!(
            "has {fields} fields, the header has {columns}; check the delimiter ({}) and the quoting on this line",
            describe_delimiter(delimiter),
        ),
    )
}

/// Reads the rows of `text[start..]` with the `csv` crate (quoted fields, lone carriage returns),
/// in one piece: their unquoted fields into a text of their own.
pub(super) fn read_quoted(
    path: &Path,
    text: &str,
    start: usize,
    newlines_before: u64,
    delimiter: u8,
    columns: usize,
) -> Result<Cells> {
    let piece = &text.as_bytes()[start..];
    let mut reader = csv_reader(piece, delimiter);
    let mut record = csv::ByteRecord::new();
    let mut counter = LineCounter { offset: 0, newlines: newlines_before };
    let mut fields = Vec::with_capacity(piece.len());
    let (mut bounds, mut numbers, mut lines) = (Vec::new(), Vec::new(), Vec::new());
    while read_record(path, &mut reader, &mut record, newlines_before)? {
        let line = counter.line_of(piece, &record);
        if record.len() != columns {
            return Err(ragged(path, line, record.len(), columns, delimiter));
        }
        bounds.push(fields.len() as u32);
        for (j, field) in record.iter().enumerate() {
            if j > 0 {
                fields.push(delimiter);
            }
            fields.extend_from_slice(field);
            bounds.push(fields.len() as u32);
            let field = std::str::from_utf8(field)
                .expect("fields of valid UTF-8, cut and unquoted at ASCII bytes, are valid UTF-8");
            numbers.push(number(field));
        }
        fields.push(b'\n');
        lines.push(u32::try_from(line).unwrap_or(u32::MAX));
    }
    super::read::check_size(path, fields.len())?;
    let text =
        String::from_utf8(fields).expect("fields of valid UTF-8, cut and unquoted at ASCII bytes, are valid UTF-8");
    Ok(Cells { text, columns, bounds, numbers, lines })
}

pub(super) fn csv_reader(bytes: &[u8], delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .buffer_capacity(1 << 16)
        .from_reader(bytes)
}

/// The next record; `newlines` (before the reader's first byte) places `csv`'s line in the file.
pub(super) fn read_record(
    path: &Path,
    reader: &mut csv::Reader<&[u8]>,
    record: &mut csv::ByteRecord,
    newlines: u64,
) -> Result<bool> {
    reader.read_byte_record(record).map_err(|e| {
        let line = e.position().map(|p| newlines + p.line());
        error(path, line, None, format!("cannot be read as CSV: {e}"))
    })
}

/// `data` cut after line ends into pieces of about `chunk_bytes` (offsets into `data`).
pub(super) fn split_rows(data: &[u8], chunk_bytes: usize) -> Vec<Range<usize>> {
    let chunk_bytes = chunk_bytes.max(1);
    let mut pieces = Vec::with_capacity(data.len() / chunk_bytes + 1);
    let mut at = 0;
    while data.len() - at > chunk_bytes {
        let cut = memchr::memchr(b'\n', &data[at + chunk_bytes..]).map_or(data.len(), |i| at + chunk_bytes + i + 1);
        pieces.push(at..cut);
        at = cut;
    }
    if at < data.len() {
        pieces.push(at..data.len());
    }
    pieces
}

pub(super) fn count_newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// The line each record starts on, counted from the records' byte offsets. (`csv`'s own line
/// numbers lag by one after a CRLF line end.)
#[derive(Default)]
pub(super) struct LineCounter {
    /// How far into `bytes` newlines are counted.
    offset: usize,
    /// Newlines before `offset`, counting those in the file before `bytes`.
    newlines: u64,
}

impl LineCounter {
    /// The 1-based line of `record`'s first byte; records come in file order.
    pub(super) fn line_of(&mut self, bytes: &[u8], record: &csv::ByteRecord) -> u64 {
        let mut start = record.position().map_or(0, |p| p.byte() as usize).min(bytes.len());
        // After a CRLF the record's offset may point at the line end before it.
        while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        let start = start.max(self.offset);
        self.newlines += count_newlines(&bytes[self.offset..start]);
        self.offset = start;
        self.newlines + 1
    }
}

fn describe_delimiter(delimiter: u8) -> String {
    match delimiter {
        b'\t' => "a tab".into(),
        d => format!("\"{}\"", d as char),
    }
}
