//! Data sets for training with Candle: IDX files (MNIST and its relatives: downloading and
//! verifying them, reading them plain or gzipped), image folders (a folder per class: listing,
//! decoding, streaming with prefetch), a seeded train/validation split, per-channel standardisation
//! (fixed or measured), staging a split on the device as one tensor, and batching it with a resumable
//! shuffle and seeded augmentation.
//!
//! ```no_run
//! use data_loader::{DataLoader, Normalize, Split, TensorDataset, ValidationSplit};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let device = candle_core::Device::Cpu;
//! let train = data_loader::load("data".as_ref(), Split::Train)?;
//! let (train_idx, val_idx) = data_loader::train_val_indices(train.len(), ValidationSplit::Fraction(0.1), 42)?;
//! let normalize = Normalize::uniform(data_loader::mnist::MEAN, data_loader::mnist::STD);
//! let train_set = TensorDataset::from_mnist(&train, Some(&train_idx), &normalize, &device)?;
//! let _val_set = TensorDataset::from_mnist(&train, Some(&val_idx), &normalize, &device)?;
//! let loader = DataLoader::new(&train_set, 64, true, false, 42)?;
//! for batch in loader.epoch(0) {
//!     let (images, labels) = batch?; // [64, channels, height, width] f32, [64] u32
//! #   let _ = (images, labels);
//! }
//! # Ok(())
//! # }
//! ```

pub mod augment;
pub mod dataset;
pub mod download;
pub mod error;
pub mod idx;
pub mod image_folder;
pub mod loader;
pub mod mnist;
pub mod normalize;
mod shuffle;
pub mod split;
pub mod streamed;
pub mod table;

pub use augment::{Augment, EpochAugment};
pub use dataset::{Dataset, TensorDataset};
pub use download::{DEFAULT_MIRRORS, FileReport, KnownFile, MNIST_FILES, Outcome, default_mirrors, download};
pub use error::{DataError, MirrorFailure, Result};
pub use idx::{IdxImages, read_images, read_labels, write_images, write_labels};
pub use loader::{DataLoader, shard_range};
pub use mnist::{FILES, MnistSplit, Split, load};
pub use normalize::{ChannelStats, Channels, Normalize, NormalizeSetting};
pub use split::{ValidationSplit, train_val_indices};
pub use streamed::{SplitData, StreamedDataset};
