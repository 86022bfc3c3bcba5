//! Loading an MNIST split from a directory: file names, plain vs gzip lookup, missing files and
//! images/labels files that disagree.

use data_loader::{DataError, FILES, Split, load};

use crate::support::{Dir, assert_names, images, labels};

#[test]
fn split_file_names_match_the_published_ones() {
    assert_eq!(Split::Train.images_file(), "train-images-idx3-ubyte");
    assert_eq!(Split::Train.labels_file(), "train-labels-idx1-ubyte");
    assert_eq!(Split::Test.images_file(), "t10k-images-idx3-ubyte");
    assert_eq!(Split::Test.labels_file(), "t10k-labels-idx1-ubyte");
    for split in [Split::Train, Split::Test] {
        assert!(FILES.contains(&split.images_file()) && FILES.contains(&split.labels_file()));
    }
}

#[test]
fn loads_plain_files() {
    let dir = Dir::new();
    dir.images("train-images-idx3-ubyte", &images(12, 4, 4));
    dir.labels("train-labels-idx1-ubyte", &labels(12));
    let split = load(dir.path(), Split::Train).expect("load train");
    assert_eq!(split.images, images(12, 4, 4));
    assert_eq!(split.labels, labels(12));
    assert_eq!(split.len(), 12);
}

#[test]
fn loads_gzip_files_and_mixes_forms() {
    let dir = Dir::new();
    let plain_images = dir.images("tmp-images", &images(6, 2, 2));
    dir.gzip_of(&plain_images, "t10k-images-idx3-ubyte.gz");
    dir.labels("t10k-labels-idx1-ubyte", &labels(6));
    let split = load(dir.path(), Split::Test).expect("gzip images, plain labels");
    assert_eq!(split.images, images(6, 2, 2));
    assert_eq!(split.labels, labels(6));
}

#[test]
fn plain_file_is_preferred_when_both_exist() {
    let dir = Dir::new();
    dir.images("t10k-images-idx3-ubyte", &images(3, 2, 2));
    dir.raw("t10k-images-idx3-ubyte.gz", b"not read: the plain file wins");
    dir.labels("t10k-labels-idx1-ubyte", &labels(3));
    let split = load(dir.path(), Split::Test).expect("plain preferred");
    assert_eq!(split.images.count, 3);
}

#[test]
fn missing_files_name_both_paths_and_how_to_get_them() {
    let dir = Dir::new();
    let err = load(dir.path(), Split::Train).expect_err("empty directory");
    let message = err.to_string();
    assert!(matches!(err, DataError::MissingFile { .. }), "{message}");
    assert_names(&message, &dir.path().join("train-images-idx3-ubyte"));
    assert_names(&message, &dir.path().join("train-images-idx3-ubyte.gz"));
    assert!(message.contains("download"), "no advice in: {message}");
}

#[test]
fn missing_labels_after_images_found() {
    let dir = Dir::new();
    dir.images("train-images-idx3-ubyte", &images(2, 2, 2));
    let err = load(dir.path(), Split::Train).expect_err("no labels");
    assert_names(&err.to_string(), &dir.path().join("train-labels-idx1-ubyte.gz"));
}

#[test]
fn count_mismatch_names_both_files_and_counts() {
    let dir = Dir::new();
    let image_path = dir.images("train-images-idx3-ubyte", &images(5, 2, 2));
    let label_path = dir.labels("train-labels-idx1-ubyte", &labels(4));
    let err = load(dir.path(), Split::Train).expect_err("5 images, 4 labels");
    let message = err.to_string();
    assert!(matches!(err, DataError::CountMismatch { images: 5, labels: 4, .. }), "{message}");
    assert_names(&message, &image_path);
    assert_names(&message, &label_path);
    assert!(message.contains("5 images") && message.contains("4 labels"), "{message}");
}

#[test]
fn a_label_outside_the_classes_names_the_file_and_the_index() {
    let dir = Dir::new();
    dir.images("train-images-idx3-ubyte", &images(2, 2, 2));
    let label_path = dir.labels("train-labels-idx1-ubyte", &[1, 12]);
    let split = load(dir.path(), Split::Train).expect("any label loads");
    assert_eq!(split.implied_classes(), 13);
    split.check_classes(13).expect("12 < 13");
    let err = split.check_classes(10).expect_err("label 12 of 10 classes");
    assert!(matches!(err, DataError::LabelOutOfRange { index: 1, value: 12, classes: 10, .. }), "{err}");
    assert!(err.to_string().contains("data_loader.args.classes"), "{err}");
    assert_names(&err.to_string(), &label_path);
}
