//! Training: the trainer loop, the optimisers, progress bars and TensorBoard events. The
//! configuration, data sets, checkpoints and evaluation it uses live in the `experiment` crate,
//! which `inference` shares.

pub mod bench;
pub mod distributed;
pub mod init_from;
pub mod optim;
pub mod progress;
pub mod tensorboard;
pub mod trainer;

pub use trainer::{Summary, TrainError, TrainOptions, train};
