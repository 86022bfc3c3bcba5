//! A tiny training setup for tests: a learnable synthetic MNIST-format data set and a config that
//! trains on it in a few seconds.

use std::path::Path;

use data_loader::{IdxImages, write_images, write_labels};
use experiment::Config;

/// Write `count` training and 32 test images: a bright column whose position is the label.
pub fn write_data(dir: &Path, count: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut pixels = Vec::with_capacity(count * 784);
    let labels: Vec<u8> = (0..count).map(|i| (i * 7 % 10) as u8).collect();
    for (i, label) in labels.iter().enumerate() {
        for p in 0..784 {
            let on = (p % 28) / 3 == *label as usize + 2;
            pixels.push(if on { 200 + (i % 50) as u8 } else { ((i + p) % 30) as u8 });
        }
    }
    for (prefix, n) in [("train", count), ("t10k", 32)] {
        let images = IdxImages { count: n, rows: 28, cols: 28, pixels: pixels[..n * 784].to_vec() };
        write_images(&dir.join(format!("{prefix}-images-idx3-ubyte")), &images).unwrap();
        write_labels(&dir.join(format!("{prefix}-labels-idx1-ubyte")), &labels[..n]).unwrap();
    }
}

/// The shipped config, pointed at `dir` for data and runs, with `set` overrides.
pub fn config(dir: &Path, set: &[&str]) -> Config {
    let mut overrides = vec![
        format!("data_loader.args.data_dir={:?}", dir.join("data").display().to_string()),
        format!("trainer.save_dir={:?}", dir.join("saved").display().to_string()),
        "device=cpu".to_string(),
        "data_loader.args.batch_size=16".to_string(),
        "trainer.epochs=2".to_string(),
    ];
    overrides.extend(set.iter().map(|s| s.to_string()));
    Config::from_json(include_str!("../../../config.json"), Path::new("config.json"), &overrides).unwrap()
}
