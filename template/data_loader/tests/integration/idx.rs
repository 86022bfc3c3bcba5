//! IDX reading and writing: round trips in both encodings, and each kind of corrupt file producing
//! its own error that names the file.

use data_loader::idx::{IMAGES_MAGIC, LABELS_MAGIC};
use data_loader::{DataError, read_images, read_labels, write_images};

use crate::support::{Dir, assert_names, gzip_bytes, header, images, labels};

#[test]
fn plain_round_trip_keeps_every_byte() {
    let dir = Dir::new();
    let original = images(7, 4, 5);
    let image_path = dir.images("img", &original);
    let label_path = dir.labels("lbl", &labels(7));
    assert_eq!(std::fs::metadata(&image_path).expect("stat").len(), 16 + 7 * 4 * 5);
    assert_eq!(read_images(&image_path).expect("read images"), original);
    assert_eq!(read_labels(&label_path).expect("read labels"), labels(7));
}

#[test]
fn gzip_round_trip_detected_by_content_not_name() {
    let dir = Dir::new();
    let original = images(5, 3, 3);
    let plain_images = dir.images("img", &original);
    let plain_labels = dir.labels("lbl", &labels(5));
    // Gzip content under names without `.gz`, and plain content under a `.gz` name: both must load.
    let gz_images = dir.gzip_of(&plain_images, "img-compressed");
    let gz_labels = dir.gzip_of(&plain_labels, "lbl-compressed");
    let misnamed_plain = dir.images("plain.gz", &original);
    assert_eq!(std::fs::read(&gz_images).expect("read")[..2], [0x1f, 0x8b]);
    assert_eq!(read_images(&gz_images).expect("gzip images"), original);
    assert_eq!(read_labels(&gz_labels).expect("gzip labels"), labels(5));
    assert_eq!(read_images(&misnamed_plain).expect("plain named .gz"), original);
}

#[test]
fn wrong_magic_says_what_the_file_looks_like() {
    let dir = Dir::new();
    let label_path = dir.labels("train-labels", &labels(3));
    let err = read_images(&label_path).expect_err("labels are not images");
    let message = err.to_string();
    assert!(matches!(err, DataError::BadMagic { expected: IMAGES_MAGIC, found: LABELS_MAGIC, .. }), "{message}");
    assert_names(&message, &label_path);
    assert!(message.contains("0x00000803") && message.contains("labels file"), "{message}");

    let garbage = dir.raw("garbage", b"PK\x03\x04 definitely a zip file");
    let err = read_labels(&garbage).expect_err("not IDX");
    assert!(matches!(err, DataError::BadMagic { .. }), "{err}");
    assert!(err.to_string().contains("not an IDX file"), "{err}");
}

#[test]
fn truncated_file_reports_expected_and_actual_bytes() {
    let dir = Dir::new();
    // Header: 3 images of 2x2 = 12 data bytes, 28 in all; only 10 data bytes follow.
    let mut bytes = header(IMAGES_MAGIC, &[3, 2, 2]);
    bytes.extend([0u8; 10]);
    let path = dir.raw("short", &bytes);
    let err = read_images(&path).expect_err("truncated");
    let message = err.to_string();
    assert!(matches!(err, DataError::Truncated { expected: 28, actual: 26, .. }), "{message}");
    assert_names(&message, &path);
    assert!(message.contains("28") && message.contains("26"), "{message}");

    let gz = dir.raw("short.gz", &gzip_bytes(&bytes));
    let err = read_images(&gz).expect_err("truncated inside gzip");
    assert!(matches!(err, DataError::Truncated { expected: 28, actual: 26, .. }), "{err}");
    assert!(err.to_string().contains("gzip"), "{err}");
}

#[test]
fn trailing_bytes_are_counted() {
    let dir = Dir::new();
    let mut bytes = header(LABELS_MAGIC, &[4]);
    bytes.extend([1u8, 2, 3, 4, 9, 9, 9]);
    let path = dir.raw("long", &bytes);
    let err = read_labels(&path).expect_err("trailing");
    let message = err.to_string();
    assert!(matches!(err, DataError::TrailingBytes { expected: 12, actual: 15, extra: 3, .. }), "{message}");
    assert_names(&message, &path);

    let gz = dir.raw("long.gz", &gzip_bytes(&bytes));
    let err = read_labels(&gz).expect_err("trailing inside gzip");
    assert!(matches!(err, DataError::TrailingBytes { extra: 3, .. }), "{err}");
}

#[test]
fn header_shorter_than_its_fixed_size() {
    let dir = Dir::new();
    let path = dir.raw("stub", &IMAGES_MAGIC.to_be_bytes()[..3]);
    let err = read_images(&path).expect_err("3 bytes");
    assert!(matches!(err, DataError::ShortHeader { needed: 16, actual: 3, .. }), "{err}");
    assert_names(&err.to_string(), &path);
}

#[test]
fn absurd_header_is_refused_before_allocating() {
    let dir = Dir::new();
    // 4 billion images claimed in a 20-byte file: must fail on the header, not try to allocate 3 TB.
    let mut bytes = header(IMAGES_MAGIC, &[4_000_000_000, 28, 28]);
    bytes.extend([0u8; 4]);
    let path = dir.raw("huge", &bytes);
    let err = read_images(&path).expect_err("absurd count");
    let message = err.to_string();
    assert!(matches!(err, DataError::AbsurdHeader { what: "images", value: 4_000_000_000, .. }), "{message}");
    assert_names(&message, &path);

    let path = dir.raw("wide", &header(IMAGES_MAGIC, &[1, 28, 5000]));
    let err = read_images(&path).expect_err("absurd side");
    assert!(matches!(err, DataError::AbsurdHeader { what: "cols", value: 5000, .. }), "{err}");

    let path = dir.raw("many-labels", &header(LABELS_MAGIC, &[20_000_000]));
    let err = read_labels(&path).expect_err("absurd label count");
    assert!(matches!(err, DataError::AbsurdHeader { what: "labels", .. }), "{err}");
}

#[test]
fn large_but_allowed_claim_in_a_tiny_gzip_fails_fast() {
    // 10M images of 28x28 (7.8 GB) within the limits, but the gzip holds 8 data bytes: the reader
    // must report truncation from what it actually decompressed, not reserve 7.8 GB first.
    let dir = Dir::new();
    let mut bytes = header(IMAGES_MAGIC, &[10_000_000, 28, 28]);
    bytes.extend([0u8; 8]);
    let path = dir.raw("liar.gz", &gzip_bytes(&bytes));
    let err = read_images(&path).expect_err("truncated");
    assert!(matches!(err, DataError::Truncated { expected: 7_840_000_016, actual: 24, .. }), "{err}");
}

#[test]
fn zero_dimension_is_rejected() {
    let dir = Dir::new();
    let path = dir.raw("empty", &header(IMAGES_MAGIC, &[0, 28, 28]));
    let err = read_images(&path).expect_err("zero images");
    let message = err.to_string();
    assert!(matches!(err, DataError::ZeroDimension { .. }), "{message}");
    assert!(message.contains("images = 0"), "{message}");
    assert_names(&message, &path);
}

#[test]
fn labels_of_any_value_are_read() {
    let dir = Dir::new();
    let path = dir.labels("labels", &[3, 9, 0, 10, 200]);
    assert_eq!(read_labels(&path).expect("any u8 is a label"), [3, 9, 0, 10, 200]);
}

#[test]
fn corrupt_gzip_stream_is_an_io_error_naming_the_file() {
    let dir = Dir::new();
    let path = dir.raw("broken.gz", &[0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x13]);
    let err = read_labels(&path).expect_err("corrupt gzip");
    assert!(matches!(err, DataError::Io { .. } | DataError::ShortHeader { .. }), "{err}");
    assert_names(&err.to_string(), &path);
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let dir = Dir::new();
    let path = dir.path().join("nope");
    let err = read_images(&path).expect_err("missing");
    assert!(matches!(err, DataError::Io { .. }), "{err}");
    assert_names(&err.to_string(), &path);
}

#[test]
fn writing_inconsistent_images_is_refused() {
    let dir = Dir::new();
    let mut bad = images(2, 2, 2);
    bad.pixels.pop();
    let err = write_images(&dir.path().join("bad"), &bad).expect_err("7 pixels for 2x2x2");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn gzip_cut_off_mid_stream_names_the_file() {
    // What an interrupted download leaves behind.
    let dir = Dir::new();
    let plain = dir.images("img", &images(200, 28, 28));
    let whole = std::fs::read(dir.gzip_of(&plain, "whole.gz")).expect("read gzip");
    let path = dir.raw("cut.gz", &whole[..whole.len() / 2]);
    let err = read_images(&path).expect_err("half a gzip");
    assert!(matches!(err, DataError::Io { .. } | DataError::Truncated { .. }), "{err}");
    assert_names(&err.to_string(), &path);
}
