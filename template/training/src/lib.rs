//! Training: the typed configuration, the optimisers, schedules, loss and metrics it names, the
//! trainer loop, and checkpoints.

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
pub mod evaluate;
pub mod init;
pub mod init_from;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod progress;
pub mod resume;
pub mod retention;
pub mod run_dir;
pub mod schedule;
pub mod tensorboard;
pub mod trainer;

pub use config::{Config, ConfigError};
pub use run_dir::RunDir;
pub use trainer::{Summary, TrainError, TrainOptions, build_model, train};
