//! The MNIST dataset as four IDX files in one directory: which file belongs to which split, finding
//! each in plain or `.gz` form, and loading a split with its images and labels checked against each other.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::idx::{self, IdxImages};

/// The base names of the four MNIST files, as published (a download command fetches these, gzipped).
pub const FILES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// The published shape of one MNIST image, `[channels, height, width]`, for commands that build a
/// model without reading the files (`bench`); training takes the shape from the files.
pub const SAMPLE_SHAPE: [usize; 3] = [1, 28, 28];
/// The published number of MNIST classes (the digits 0-9), likewise.
pub const CLASSES: usize = 10;
/// Mean of MNIST training pixels after scaling to [0, 1] (the `mnist` type's default standardisation).
pub const MEAN: f32 = 0.1307;
/// Standard deviation of MNIST training pixels after scaling to [0, 1].
pub const STD: f32 = 0.3081;

/// One of the two published MNIST splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// 60,000 training digits.
    Train,
    /// 10,000 test digits; keep them out of model selection (use a validation split of `Train`).
    Test,
}

impl Split {
    /// Base name of this split's images file.
    pub fn images_file(self) -> &'static str {
        match self {
            Split::Train => FILES[0],
            Split::Test => FILES[2],
        }
    }

    /// Base name of this split's labels file.
    pub fn labels_file(self) -> &'static str {
        match self {
            Split::Train => FILES[1],
            Split::Test => FILES[3],
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// A loaded split: `images.count == labels.len()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MnistSplit {
    pub images: IdxImages,
    pub labels: Vec<u8>,
    /// The labels file, for messages.
    pub labels_path: PathBuf,
}

impl MnistSplit {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split has no samples (never true for a split read from disk).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The class count the labels imply: the largest label plus one (10 for MNIST's digits).
    pub fn implied_classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |&l| usize::from(l) + 1)
    }

    /// Fails, naming the file and the first offending index, if a label is not below `classes`.
    pub fn check_classes(&self, classes: usize) -> Result<()> {
        match self.labels.iter().enumerate().find(|(_, l)| usize::from(**l) >= classes) {
            Some((index, &value)) => {
                Err(DataError::LabelOutOfRange { path: self.labels_path.clone(), index, value, classes })
            }
            None => Ok(()),
        }
    }

    /// `[channels, height, width]` of one image: IDX images are grey.
    pub fn sample_shape(&self) -> [usize; 3] {
        [1, self.images.rows, self.images.cols]
    }
}

/// Loads one split from `data_dir`, reading each file plain or gzipped, whichever is there.
pub fn load(data_dir: &Path, split: Split) -> Result<MnistSplit> {
    let images_path = find_file(data_dir, split.images_file())?;
    let labels_path = find_file(data_dir, split.labels_file())?;
    let images = idx::read_images(&images_path)?;
    let labels = idx::read_labels(&labels_path)?;
    if images.count != labels.len() {
        return Err(DataError::CountMismatch { images_path, images: images.count, labels_path, labels: labels.len() });
    }
    Ok(MnistSplit { images, labels, labels_path })
}

/// The path of `base` in `data_dir`: the plain file if present, else the `.gz` one.
pub fn find_file(data_dir: &Path, base: &str) -> Result<PathBuf> {
    let plain = data_dir.join(base);
    let gz = data_dir.join(format!("{base}.gz"));
    if plain.is_file() {
        Ok(plain)
    } else if gz.is_file() {
        Ok(gz)
    } else {
        Err(DataError::MissingFile { plain, gz, dir: data_dir.to_path_buf() })
    }
}
