//! A CSV file's data rows: cut into pieces at line ends when no field is quoted, the pieces read
//! in parallel into one buffer of fields, and the line each row starts on counted as they go.

use std::path::Path;

use rayon::prelude::*;

use super::error;
use crate::error::Result;

/// The line ends in a piece of a file: newlines for line numbers; with carriage returns, an upper
/// bound on the rows that end in it (each row but the last ends at one).
#[derive(Clone, Copy, Default)]
pub(super) struct LineEnds {
    newlines: u64,
    returns: u64,
}

impl LineEnds {
    pub(super) fn of(bytes: &[u8]) -> LineEnds {
        LineEnds {
            newlines: count_newlines(bytes),
            returns: count_byte(bytes, b'\r'),
        }
    }

    fn max_rows(&self) -> usize {
        usize::try_from(self.newlines + self.returns + 1).expect("a file under 4 GiB")
    }
}

/// Reads the rows of every piece in parallel, each into its own region of one text buffer and one
/// bounds buffer (a piece's fields are no longer than the piece, and it has at most
/// [`LineEnds::max_rows`] rows), then closes the gaps between the regions. Returns the table's
/// text, bounds and lines.
pub(super) fn read_pieces(
    path: &Path,
    pieces: &[&[u8]],
    ends: &[LineEnds],
    newlines_before: u64,
    delimiter: u8,
    columns: usize,
) -> Result<(String, Vec<u32>, Vec<u32>)> {
    // Zeroed allocations are fresh pages the kernel maps in as they are first written.
    let mut text = vec![0u8; pieces.iter().map(|p| p.len()).sum()];
    let mut bounds = vec![0u32; 1 + ends.iter().map(|e| e.max_rows() * columns).sum::<usize>()];
    let mut jobs = Vec::with_capacity(pieces.len());
    let (mut text_rest, mut bounds_rest) = (&mut text[..], &mut bounds[1..]);
    let mut newlines = newlines_before;
    for (piece, ends) in pieces.iter().zip(ends) {
        let (text_out, t) = std::mem::take(&mut text_rest).split_at_mut(piece.len());
        let (bounds_out, b) =
            std::mem::take(&mut bounds_rest).split_at_mut(ends.max_rows() * columns);
        (text_rest, bounds_rest) = (t, b);
        jobs.push((*piece, newlines, text_out, bounds_out));
        newlines += ends.newlines;
    }
    let read = jobs
        .into_par_iter()
        .map(|(piece, newlines, text_out, bounds_out)| {
            read_rows(
                path, piece, delimiter, columns, newlines, text_out, bounds_out,
            )
        })
        .collect::<Vec<_>>()
        .into_iter()
        .collect::<Result<Vec<_>>>()?;

    // Close the gaps: move each region's text and ends down, the ends offset by the text before.
    let (mut text_len, mut fields) = (0usize, 0usize);
    let (mut text_region, mut bounds_region) = (0usize, 1usize);
    for ((piece, ends), rows) in pieces.iter().zip(ends).zip(&read) {
        text.copy_within(text_region..text_region + rows.text_len, text_len);
        let base = u32::try_from(text_len).expect("the file was checked to be under 4 GiB");
        for i in 0..rows.fields {
            bounds[1 + fields + i] = base + bounds[bounds_region + i];
        }
        text_len += rows.text_len;
        fields += rows.fields;
        text_region += piece.len();
        bounds_region += ends.max_rows() * columns;
    }
    text.truncate(text_len);
    text.shrink_to_fit();
    bounds.truncate(1 + fields);
    bounds.shrink_to_fit();
    let lines = read.into_iter().flat_map(|rows| rows.lines).collect();
    let text = String::from_utf8(text)
        .expect("fields of valid UTF-8, cut and unquoted at ASCII bytes, are valid UTF-8");
    Ok((text, bounds, lines))
}

/// What [`read_rows`] wrote into its region.
struct Rows {
    text_len: usize,
    fields: usize,
    lines: Vec<u32>,
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

/// Reads the rows of `piece`, which starts at a row and after `newlines` line ends of the file:
/// their fields into `text`, the fields' ends (from the start of `text`) into `bounds`.
fn read_rows(
    path: &Path,
    piece: &[u8],
    delimiter: u8,
    columns: usize,
    newlines: u64,
    text: &mut [u8],
    bounds: &mut [u32],
) -> Result<Rows> {
    let mut reader = csv_reader(piece, delimiter);
    let mut record = csv::ByteRecord::new();
    let mut counter = LineCounter {
        offset: 0,
        newlines,
    };
    let (mut text_len, mut fields) = (0usize, 0usize);
    let mut lines = Vec::new();
    while read_record(path, &mut reader, &mut record, newlines)? {
        let line = counter.line_of(piece, &record);
        if record.len() != columns {
            return Err(error(
                path,
                Some(line),
                None,
                format!(
                    "has {} fields, the header has {columns}; check the delimiter ({}) and the quoting on this line",
                    record.len(),
                    describe_delimiter(delimiter),
                ),
            ));
        }
        let untrimmed = |f: &[u8]| {
            f.first().is_some_and(u8::is_ascii_whitespace)
                || f.last().is_some_and(u8::is_ascii_whitespace)
        };
        if record.iter().any(untrimmed) {
            for field in record.iter() {
                let field = field.trim_ascii();
                text[text_len..text_len + field.len()].copy_from_slice(field);
                text_len += field.len();
                bounds[fields] = text_len as u32;
                fields += 1;
            }
        } else {
            // The usual case: the record's fields as they are, in one copy.
            let all = record.as_slice();
            text[text_len..text_len + all.len()].copy_from_slice(all);
            for field in record.iter() {
                text_len += field.len();
                bounds[fields] = text_len as u32;
                fields += 1;
            }
        }
        lines.push(u32::try_from(line).unwrap_or(u32::MAX));
    }
    Ok(Rows {
        text_len,
        fields,
        lines,
    })
}

/// `data` cut after line ends into pieces of about `chunk_bytes`, or whole when a quote could
/// make a line end part of a field.
pub(super) fn split_rows(data: &[u8], chunk_bytes: usize) -> Vec<&[u8]> {
    if data.len() <= chunk_bytes || data.contains(&b'"') {
        return vec![data];
    }
    let mut pieces = Vec::with_capacity(data.len() / chunk_bytes + 1);
    let mut rest = data;
    while rest.len() > chunk_bytes {
        let cut = rest[chunk_bytes..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| chunk_bytes + i + 1);
        let (piece, after) = rest.split_at(cut);
        pieces.push(piece);
        rest = after;
    }
    if !rest.is_empty() {
        pieces.push(rest);
    }
    pieces
}

pub(super) fn count_newlines(bytes: &[u8]) -> u64 {
    count_byte(bytes, b'\n')
}

fn count_byte(bytes: &[u8], byte: u8) -> u64 {
    // Byte-wide sums of up to 255 bytes vectorise far better than a `usize` count.
    bytes
        .chunks(255)
        .map(|chunk| u64::from(chunk.iter().map(|&b| u8::from(b == byte)).sum::<u8>()))
        .sum()
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
        let mut start = record
            .position()
            .map_or(0, |p| p.byte() as usize)
            .min(bytes.len());
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
