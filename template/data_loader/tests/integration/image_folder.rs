//! Image folders: the layout rules, every bad layout with a message naming the folder or file,
//! decoding to the configured channels and size, and streaming that yields exactly the decoded
//! batches in the epoch's order.

use std::path::{Path, PathBuf};

use candle_core::Device;
use data_loader::image_folder::{self, ImageFormat};
use data_loader::{DataError, DataLoader, Dataset, Normalize, StreamedDataset};

/// An RGB PNG of `w`x`h` whose pixels encode `seed`.
fn png(path: &Path, w: u32, h: u32, seed: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([seed, (x * 7) as u8, (y * 11) as u8])).save(path).unwrap();
}

/// `root/split/class/i.png` for each `(class, count)`, of varying sizes.
fn folder(root: &Path, split: &str, classes: &[(&str, usize)]) {
    for (c, (class, count)) in classes.iter().enumerate() {
        for i in 0..*count {
            png(&root.join(split).join(class).join(format!("{i}.png")), 9 + i as u32, 7 + c as u32, (c * 50 + i) as u8);
        }
    }
}

fn layout_problem(err: DataError) -> (PathBuf, String) {
    match err {
        DataError::Layout { path, problem } => (path, problem),
        other => panic!("expected a layout error, got {other}"),
    }
}

#[test]
fn classes_are_the_sorted_folder_names_and_non_images_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), "train", &[("zebra", 2), ("ant", 3), ("10", 1), ("9", 1)]);
    std::fs::write(dir.path().join("train/ant/notes.txt"), "not an image").unwrap();
    std::fs::create_dir_all(dir.path().join("train/.cache")).unwrap();
    let classes = image_folder::classes(dir.path()).unwrap();
    assert_eq!(classes, ["10", "9", "ant", "zebra"]);
    let listing = image_folder::list(dir.path(), "train", &classes, false).unwrap();
    assert_eq!(listing.files.len(), 7);
    assert_eq!(listing.not_images, 1);
    let labels: Vec<u32> = listing.files.iter().map(|(_, l)| *l).collect();
    assert_eq!(labels, [0, 1, 2, 2, 2, 3, 3]);
    // A split may lack a class.
    folder(dir.path(), "test", &[("ant", 1)]);
    assert_eq!(image_folder::list(dir.path(), "test", &classes, false).unwrap().files.len(), 1);
}

#[test]
fn bad_layouts_name_the_folder_and_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (path, problem) = layout_problem(image_folder::classes(dir.path()).unwrap_err());
    assert!(path.ends_with("train") && problem.contains("train/<class>/<image>"), "{problem}");

    std::fs::create_dir_all(dir.path().join("train")).unwrap();
    let (_, problem) = layout_problem(image_folder::classes(dir.path()).unwrap_err());
    assert!(problem.contains("no class folders"), "{problem}");

    folder(dir.path(), "train", &[("cat", 2)]);
    std::fs::create_dir_all(dir.path().join("train/dog")).unwrap();
    let classes = image_folder::classes(dir.path()).unwrap();
    let (path, problem) = layout_problem(image_folder::list(dir.path(), "train", &classes, false).unwrap_err());
    assert!(path.ends_with("train/dog") && problem.contains("no readable"), "{problem}");

    folder(dir.path(), "train", &[("dog", 1)]);
    folder(dir.path(), "test", &[("cat", 1), ("bird", 1)]);
    let classes = image_folder::classes(dir.path()).unwrap();
    let (path, problem) = layout_problem(image_folder::list(dir.path(), "test", &classes, false).unwrap_err());
    assert!(path.ends_with("test/bird") && problem.contains("train/ does not have"), "{problem}");
}

#[test]
fn an_unreadable_image_is_named_or_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), "train", &[("cat", 2), ("dog", 1)]);
    let broken = dir.path().join("train/cat/broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let classes = image_folder::classes(dir.path()).unwrap();
    match image_folder::list(dir.path(), "train", &classes, false).unwrap_err() {
        DataError::Unreadable { path, .. } => assert_eq!(path, broken),
        other => panic!("{other}"),
    }
    let err = image_folder::list(dir.path(), "train", &classes, false).unwrap_err().to_string();
    assert!(err.contains("skip_unreadable"), "{err}");
    let listing = image_folder::list(dir.path(), "train", &classes, true).unwrap();
    assert_eq!((listing.files.len(), listing.unreadable.clone()), (3, vec![broken]));

    // Nothing readable left in a class: an error, even when skipping.
    for i in 0..2 {
        std::fs::write(dir.path().join(format!("train/dog/{i}.png")), b"garbage").unwrap();
    }
    let (path, _) = layout_problem(image_folder::list(dir.path(), "train", &classes, true).unwrap_err());
    assert!(path.ends_with("train/dog"));
}

#[test]
fn images_become_the_configured_channels_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.png");
    image::RgbImage::from_pixel(10, 6, image::Rgb([200, 100, 0])).save(&path).unwrap();
    let rgb = ImageFormat { channels: 3, size: (4, 5) };
    let mut bytes = Vec::new();
    rgb.decode_into(&path, &mut bytes).unwrap();
    assert_eq!(bytes.len(), 3 * 4 * 5);
    assert!(
        bytes[..20].iter().all(|&b| b == 200)
            && bytes[20..40].iter().all(|&b| b == 100)
            && bytes[40..].iter().all(|&b| b == 0)
    );
    let grey = ImageFormat { channels: 1, size: (3, 3) };
    bytes.clear();
    grey.decode_into(&path, &mut bytes).unwrap();
    assert_eq!(bytes.len(), 9);
    assert!(bytes.iter().all(|&b| b == bytes[0] && b > 90 && b < 140), "{bytes:?}");
}

#[test]
fn streaming_yields_the_decoded_batches_in_the_epochs_order_also_when_resuming() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), "train", &[("a", 7), ("b", 6)]);
    let classes = image_folder::classes(dir.path()).unwrap();
    let files = image_folder::list(dir.path(), "train", &classes, false).unwrap().files;
    let format = ImageFormat { channels: 3, size: (5, 6) };
    let streamed = StreamedDataset::new(files, format, &Normalize::identity(), 2, 2, &Device::Cpu).unwrap();
    assert_eq!(streamed.len(), 13);
    let loader = DataLoader::new(&streamed, 4, true, false, 42).unwrap();
    for skip in [0, 2] {
        let order = loader.epoch_order(3);
        let batches: Vec<_> = loader.epoch_from(3, skip).map(|b| b.unwrap()).collect();
        assert_eq!(batches.len(), 4 - skip);
        for (i, (images, labels)) in batches.iter().enumerate() {
            let start = (skip + i) * 4;
            let indices = &order[start..(start + 4).min(13)];
            let (pixels, want_labels) = streamed.decode(indices, None).unwrap();
            assert_eq!(images.dims(), [indices.len(), 3, 5, 6]);
            assert_eq!(images.flatten_all().unwrap().to_vec1::<f32>().unwrap(), pixels);
            assert_eq!(labels.to_vec1::<u32>().unwrap(), want_labels);
        }
    }
    // An epoch abandoned half-way does not disturb the next.
    let _first = loader.epoch(4).next().unwrap().unwrap();
    let again: Vec<_> = loader.epoch(5).map(|b| b.unwrap().1.to_vec1::<u32>().unwrap()).collect();
    let order = loader.epoch_order(5);
    let want: Vec<Vec<u32>> = order.chunks(4).map(|c| streamed.decode(c, None).unwrap().1).collect();
    assert_eq!(again, want);
}
