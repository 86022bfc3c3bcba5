//! Integration tests of the data_loader crate, compiled into one binary (one link of candle).

mod download;
mod http_server;
mod idx;
mod image_folder;
mod loader;
mod mnist;
mod real_data;
mod support;
