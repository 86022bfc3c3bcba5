//! A sanity check on the real MNIST test split, when it is on disk: `$MNIST_DATA_DIR` if set, else the
//! workspace's `data/` directory. Skipped (with a printed line) when neither holds the t10k files.

use std::path::PathBuf;

use candle_core::Device;
use data_loader::{DataLoader, Dataset, Normalize, Split, TensorDataset, load, mnist};

fn real_data_dir() -> Option<PathBuf> {
    let candidates = std::env::var_os("MNIST_DATA_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data")]);
    for dir in candidates {
        let has = |base: &str| mnist::find_file(&dir, base).is_ok();
        if has(Split::Test.images_file()) && has(Split::Test.labels_file()) {
            return Some(dir);
        }
    }
    None
}

#[test]
fn real_mnist_test_split_looks_like_mnist() {
    let Some(dir) = real_data_dir() else {
        println!("skipped: no MNIST t10k files in $MNIST_DATA_DIR or data/");
        return;
    };
    let test = load(&dir, Split::Test).expect("load the real test split");
    assert_eq!((test.images.count, test.images.rows, test.images.cols), (10_000, 28, 28));
    // The first three test digits are a 7, a 2 and a 1.
    assert_eq!(test.labels[..3], [7, 2, 1]);

    let mut histogram = [0usize; 10];
    for &label in &test.labels {
        histogram[usize::from(label)] += 1;
    }
    // Published class counts of t10k range from 892 (fives) to 1135 (ones).
    assert_eq!(histogram, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);

    let mean = test.images.pixels.iter().map(|&p| f64::from(p)).sum::<f64>() / test.images.pixels.len() as f64 / 255.0;
    assert!((0.12..0.145).contains(&mean), "mean pixel {mean} is not MNIST-like (~0.133)");

    let data = TensorDataset::from_mnist(&test, None, &Normalize::uniform(mnist::MEAN, mnist::STD), &Device::Cpu)
        .expect("stage");
    assert_eq!(data.len(), 10_000);
    let loader = DataLoader::new(&data, 128, true, false, 0).expect("loader");
    assert_eq!(loader.num_batches(), 79);
    let (images, labels) = loader.epoch(0).next().expect("a batch").expect("batch ok");
    assert_eq!(images.dims(), &[128, 1, 28, 28]);
    assert_eq!(labels.dims(), &[128]);
    let batch_mean = images.mean_all().expect("mean").to_scalar::<f32>().expect("f32");
    assert!(batch_mean.abs() < 0.2, "normalised batch mean {batch_mean} should be near 0");
}
