//! `candlecutter`: generate a Cargo workspace that trains with Candle.
//!
//! The template lives in the repository's `template/` folder and is compiled into this crate, so
//! generation works offline. Rendering is cargo-generate's own engine (used as a library), which
//! makes `candlecutter new` and `cargo generate --path template` produce the same files.

pub mod cli;
pub mod embedded;
pub mod error;
pub mod generate;
pub mod manifest;
pub mod name;
pub mod placeholders;
pub mod template;
pub mod update;
pub mod values;

pub use error::{Error, Result};
