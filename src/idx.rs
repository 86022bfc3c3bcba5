//! Small MNIST-format (IDX) data sets for tests, written from scratch so nothing is downloaded.

use std::path::Path;

/// Write `count` 28x28 images and labels as `<prefix>-images-idx3-ubyte` / `<prefix>-labels-idx1-ubyte`.
/// Each image is a noisy bar whose position depends on its label, so the classes are learnable.
pub fn write_synthetic(dir: &Path, prefix: &str, count: usize, seed: u64) -> std::io::Result<()> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as u32
    };
    let mut images = Vec::with_capacity(count * 784);
    let mut labels = Vec::with_capacity(count);
    for _ in 0..count {
        let label = (next() % 10) as u8;
        labels.push(label);
        for row in 0..28 {
            for col in 0..28 {
                let on = col / 3 == label as usize + 2 && (4..24).contains(&row);
                let noise = (next() % 40) as u8;
                images.push(if on { 215 + noise } else { noise });
            }
        }
    }
    write_images(&dir.join(format!("{prefix}-images-idx3-ubyte")), count, &images)?;
    write_labels(&dir.join(format!("{prefix}-labels-idx1-ubyte")), &labels)
}

pub fn write_images(path: &Path, count: usize, pixels: &[u8]) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(16 + pixels.len());
    for word in [2051u32, count as u32, 28, 28] {
        bytes.extend_from_slice(&word.to_be_bytes());
    }
    bytes.extend_from_slice(pixels);
    std::fs::write(path, bytes)
}

pub fn write_labels(path: &Path, labels: &[u8]) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(8 + labels.len());
    for word in [2049u32, labels.len() as u32] {
        bytes.extend_from_slice(&word.to_be_bytes());
    }
    bytes.extend_from_slice(labels);
    std::fs::write(path, bytes)
}
