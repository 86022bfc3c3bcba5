//! The IDX file format (LeCun's MNIST container): reading images and labels, plain or gzip-compressed,
//! with every header and length check done before any large allocation, and writing plain IDX files.
//!
//! Layout: a big-endian `u32` magic (`0x00000803` images, `0x00000801` labels), one big-endian `u32`
//! per dimension, then the `u8` data in row-major order. Nothing may follow the data.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use crate::error::{DataError, Result};

/// Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Largest item count accepted: MNIST-like sets have tens of thousands; a bigger claim is corruption.
pub const MAX_ITEMS: u64 = 10_000_000;
/// Largest image side accepted.
pub const MAX_SIDE: u64 = 4096;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const IMAGES_HEADER_LEN: usize = 16;
const LABELS_HEADER_LEN: usize = 8;
/// The most a gzip read reserves up front; beyond it the buffer grows only as real data arrives,
/// so a lying header inside a small gzip file cannot make us allocate gigabytes.
const GZIP_PREALLOC_CAP: usize = 64 << 20;
/// Deflate's largest expansion (bytes out per byte in), which bounds what a gzip file of a given
/// size can hold: a 100-byte file never gets more than ~100 KB reserved.
const DEFLATE_MAX_RATIO: u64 = 1032;

/// A stack of greyscale images as stored in an IDX file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    /// Row-major pixels of all images; `pixels.len() == count * rows * cols`.
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// Number of pixels in one image.
    pub fn pixels_per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of image `index`, or `None` past the end.
    pub fn image(&self, index: usize) -> Option<&[u8]> {
        let size = self.pixels_per_image();
        let start = index.checked_mul(size)?;
        self.pixels.get(start..start.checked_add(size)?)
    }
}

/// Reads an IDX images file (plain or gzip; detected from the content, not the file name).
pub fn read_images(path: &Path) -> Result<IdxImages> {
    let mut source = Source::open(path)?;
    let header: [u8; IMAGES_HEADER_LEN] = source.header("images", IMAGES_MAGIC)?;
    let count = dim_at(&header, 4);
    let rows = dim_at(&header, 8);
    let cols = dim_at(&header, 12);
    check_dims(path, &[("images", count, MAX_ITEMS), ("rows", rows, MAX_SIDE), ("cols", cols, MAX_SIDE)])?;
    // At most 1e7 * 4096 * 4096 < 2^48: no overflow in u64.
    let pixels = source.payload(IMAGES_HEADER_LEN as u64, count * rows * cols)?;
    Ok(IdxImages { count: to_usize(count), rows: to_usize(rows), cols: to_usize(cols), pixels })
}

/// Reads an IDX labels file (plain or gzip). Which labels are valid is the data set's business
/// (`MnistSplit::check_classes`).
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let mut source = Source::open(path)?;
    let header: [u8; LABELS_HEADER_LEN] = source.header("labels", LABELS_MAGIC)?;
    let count = dim_at(&header, 4);
    check_dims(path, &[("labels", count, MAX_ITEMS)])?;
    source.payload(LABELS_HEADER_LEN as u64, count)
}

/// Writes `images` as a plain (uncompressed) IDX images file.
pub fn write_images(path: &Path, images: &IdxImages) -> io::Result<()> {
    let expected = images.count.checked_mul(images.rows).and_then(|n| n.checked_mul(images.cols));
    if expected != Some(images.pixels.len()) {
        return Err(invalid_input(format!(
            "IdxImages says {} x {} x {} but holds {} pixels",
            images.count,
            images.rows,
            images.cols,
            images.pixels.len()
        )));
    }
    let mut out = BufWriter::new(File::create(path)?);
    out.write_all(&IMAGES_MAGIC.to_be_bytes())?;
    for dim in [images.count, images.rows, images.cols] {
        out.write_all(&dim_u32(dim)?.to_be_bytes())?;
    }
    out.write_all(&images.pixels)?;
    out.flush()
}

/// Writes `labels` as a plain (uncompressed) IDX labels file. Values are written as given,
/// so tests can produce deliberately bad files.
pub fn write_labels(path: &Path, labels: &[u8]) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    out.write_all(&LABELS_MAGIC.to_be_bytes())?;
    out.write_all(&dim_u32(labels.len())?.to_be_bytes())?;
    out.write_all(labels)?;
    out.flush()
}

/// An opened IDX file: a decompressing or plain reader, plus the on-disk length when plain
/// (so a plain file's length is checked against its header without reading the data).
struct Source {
    path: PathBuf,
    reader: Box<dyn Read>,
    plain_len: Option<u64>,
    /// The file's size on disk (compressed, for gzip).
    file_len: u64,
}

impl Source {
    fn open(path: &Path) -> Result<Self> {
        let io_err = |source| DataError::Io { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let mut buffered = BufReader::new(file);
        let is_gzip = buffered.fill_buf().map_err(io_err)?.starts_with(&GZIP_MAGIC);
        let (reader, plain_len): (Box<dyn Read>, _) =
            if is_gzip { (Box::new(MultiGzDecoder::new(buffered)), None) } else { (Box::new(buffered), Some(len)) };
        Ok(Self { path: path.to_path_buf(), reader, plain_len, file_len: len })
    }

    fn io_err(&self, source: io::Error) -> DataError {
        DataError::Io { path: self.path.clone(), source }
    }

    fn encoding(&self) -> &'static str {
        match self.plain_len {
            Some(_) => "IDX",
            None => "gzip IDX (sizes after decompression)",
        }
    }

    /// Reads the fixed-size header and checks its magic number.
    fn header<const N: usize>(&mut self, kind: &'static str, magic: u32) -> Result<[u8; N]> {
        let mut header = [0u8; N];
        let got = read_full(&mut self.reader, &mut header).map_err(|e| self.io_err(e))?;
        // The magic is checked first, so a short file of the wrong kind is reported as the wrong kind.
        if got >= 4 {
            let found = be_u32(&header, 0);
            if found != magic {
                return Err(DataError::BadMagic {
                    path: self.path.clone(),
                    kind,
                    expected: magic,
                    found,
                    hint: magic_hint(found),
                });
            }
        }
        if got < N {
            return Err(DataError::ShortHeader { path: self.path.clone(), kind, needed: N as u64, actual: got as u64 });
        }
        Ok(header)
    }

    /// Reads exactly `payload_len` data bytes after a header of `header_len` bytes, and checks
    /// nothing follows them.
    fn payload(&mut self, header_len: u64, payload_len: u64) -> Result<Vec<u8>> {
        let expected = header_len + payload_len;
        if let Some(actual) = self.plain_len {
            self.check_len(expected, actual)?;
        }
        let len = usize::try_from(payload_len).map_err(|_| DataError::AbsurdHeader {
            path: self.path.clone(),
            what: "bytes of data",
            value: payload_len,
            max: usize::MAX as u64,
        })?;
        let most = usize::try_from(self.file_len.saturating_mul(DEFLATE_MAX_RATIO)).unwrap_or(usize::MAX);
        let mut data = Vec::with_capacity(len.min(GZIP_PREALLOC_CAP).min(most));
        (&mut self.reader).take(payload_len).read_to_end(&mut data).map_err(|e| self.io_err(e))?;
        let extra = io::copy(&mut self.reader, &mut io::sink()).map_err(|e| self.io_err(e))?;
        self.check_len(expected, header_len + data.len() as u64 + extra)?;
        Ok(data)
    }

    fn check_len(&self, expected: u64, actual: u64) -> Result<()> {
        let path = self.path.clone();
        let encoding = self.encoding();
        match actual.cmp(&expected) {
            std::cmp::Ordering::Less => Err(DataError::Truncated { path, encoding, expected, actual }),
            std::cmp::Ordering::Greater => {
                Err(DataError::TrailingBytes { path, encoding, expected, actual, extra: actual - expected })
            }
            std::cmp::Ordering::Equal => Ok(()),
        }
    }
}

/// Rejects zero and absurd dimensions, before anything is allocated from them.
fn check_dims(path: &Path, dims: &[(&'static str, u64, u64)]) -> Result<()> {
    if dims.iter().any(|&(_, value, _)| value == 0) {
        let listed: Vec<String> = dims.iter().map(|(what, value, _)| format!("{what} = {value}")).collect();
        return Err(DataError::ZeroDimension { path: path.to_path_buf(), dims: listed.join(", ") });
    }
    match dims.iter().find(|&&(_, value, max)| value > max) {
        Some(&(what, value, max)) => Err(DataError::AbsurdHeader { path: path.to_path_buf(), what, value, max }),
        None => Ok(()),
    }
}

/// Advice for a wrong magic number: says what the file looks like instead.
fn magic_hint(found: u32) -> String {
    match found {
        IMAGES_MAGIC => " (this looks like an IDX images file)".to_string(),
        LABELS_MAGIC => " (this looks like an IDX labels file)".to_string(),
        m if m >> 16 == 0 => {
            format!(" (an IDX file of data type {:#04x} with {} dimensions?)", (m >> 8) & 0xff, m & 0xff)
        }
        _ => " (not an IDX file)".to_string(),
    }
}

/// Fills `buf` as far as the stream allows; returns how many bytes were read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let word: [u8; 4] = bytes[at..at + 4].try_into().expect("headers are fixed-size arrays longer than `at + 4`");
    u32::from_be_bytes(word)
}

/// The header dimension at byte offset `at`, widened so products cannot overflow.
fn dim_at(header: &[u8], at: usize) -> u64 {
    u64::from(be_u32(header, at))
}

fn to_usize(dim: u64) -> usize {
    usize::try_from(dim).expect("dimensions were checked against MAX_ITEMS / MAX_SIDE, which fit in usize")
}

fn dim_u32(dim: usize) -> io::Result<u32> {
    u32::try_from(dim).map_err(|_| invalid_input(format!("dimension {dim} does not fit the IDX u32 header")))
}

fn invalid_input(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
