//! The real MNIST test set (../shared/data/mnist beside the repository, 10,000 digits) split into
//! 8,000 digits to train on and 2,000 held out, written as a project's IDX files.

use std::io::Read;
use std::path::{Path, PathBuf};

pub const TRAIN: usize = 8_000;
pub const HELD_OUT: usize = 2_000;

/// Where the real data lives, if it is there.
pub fn source_dir() -> Option<PathBuf> {
    let dir = crate::repo_root().join("..").join("shared").join("data").join("mnist");
    dir.join("t10k-images-idx3-ubyte.gz").exists().then_some(dir)
}

fn gunzip(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path)?).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Write the first 8,000 digits as `train-*` and the last 2,000 as `t10k-*` into `dest`.
pub fn write_split(source: &Path, dest: &Path) -> std::io::Result<()> {
    let images = gunzip(&source.join("t10k-images-idx3-ubyte.gz"))?;
    let labels = gunzip(&source.join("t10k-labels-idx1-ubyte.gz"))?;
    assert_eq!((images.len(), labels.len()), (16 + 10_000 * 784, 8 + 10_000), "not the MNIST test set");
    std::fs::create_dir_all(dest)?;
    let (pixels, labels) = (&images[16..], &labels[8..]);
    crate::idx::write_images(&dest.join("train-images-idx3-ubyte"), TRAIN, &pixels[..TRAIN * 784])?;
    crate::idx::write_labels(&dest.join("train-labels-idx1-ubyte"), &labels[..TRAIN])?;
    crate::idx::write_images(&dest.join("t10k-images-idx3-ubyte"), HELD_OUT, &pixels[TRAIN * 784..])?;
    crate::idx::write_labels(&dest.join("t10k-labels-idx1-ubyte"), &labels[TRAIN..])
}
