//! Small builders for the integration tests: synthetic IDX content, files in a temporary directory,
//! gzip copies, and hand-made headers for corrupt files.

use std::io::Write;
use std::path::{Path, PathBuf};

use data_loader::{IdxImages, MnistSplit};
use flate2::Compression;
use flate2::write::GzEncoder;
use tempfile::TempDir;

/// `count` images of `rows` x `cols` where every pixel of image `i` is `i % 256`, so a test can tell
/// from any pixel which sample it is looking at.
pub fn images(count: usize, rows: usize, cols: usize) -> IdxImages {
    let pixels = (0..count).flat_map(|i| std::iter::repeat_n((i % 256) as u8, rows * cols)).collect();
    IdxImages { count, rows, cols, pixels }
}

/// Labels `i % 10`.
pub fn labels(count: usize) -> Vec<u8> {
    (0..count).map(|i| (i % 10) as u8).collect()
}

/// A split of `count` 3x2 images built by [`images`] and [`labels`].
pub fn split(count: usize) -> MnistSplit {
    MnistSplit { images: images(count, 3, 2), labels: labels(count), labels_path: "in-memory-labels".into() }
}

/// An IDX header: big-endian magic and dimensions.
pub fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
    let mut bytes = magic.to_be_bytes().to_vec();
    for dim in dims {
        bytes.extend(dim.to_be_bytes());
    }
    bytes
}

pub fn gzip_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("writing to a Vec cannot fail");
    encoder.finish().expect("finishing into a Vec cannot fail")
}

/// A temporary directory that files are written into by name.
pub struct Dir(TempDir);

impl Dir {
    pub fn new() -> Self {
        Dir(tempfile::tempdir().expect("create a temporary directory"))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn raw(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, bytes).expect("write test file");
        path
    }

    pub fn images(&self, name: &str, images: &IdxImages) -> PathBuf {
        let path = self.0.path().join(name);
        data_loader::write_images(&path, images).expect("write test images");
        path
    }

    pub fn labels(&self, name: &str, labels: &[u8]) -> PathBuf {
        let path = self.0.path().join(name);
        data_loader::write_labels(&path, labels).expect("write test labels");
        path
    }

    /// Writes a gzip of the file `from` (already in this directory) under `name`.
    pub fn gzip_of(&self, from: &Path, name: &str) -> PathBuf {
        let plain = std::fs::read(from).expect("read file to compress");
        self.raw(name, &gzip_bytes(&plain))
    }
}

/// Asserts that an error message names the file it is about.
pub fn assert_names(message: &str, path: &Path) {
    let shown = path.display().to_string();
    assert!(message.contains(&shown), "error does not name {shown}: {message}");
}
