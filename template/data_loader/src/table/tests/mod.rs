//! Tests of the table module, a file per part: reading, number parsing, features, targets, and
//! the configuration and the recorded encoding. The helpers below build tables and encodings
//! from text and check messages.

mod config;
mod features;
mod number;
mod read;
mod targets;

use std::path::Path;

use super::{Encoding, FitOptions, Table, TargetKind};

const PATH: &str = "data/t.csv";

fn table(text: &str) -> Table {
    Table::from_bytes(Path::new(PATH), text.as_bytes(), None).expect("a valid test table")
}

fn read_error(text: &[u8]) -> String {
    Table::from_bytes(Path::new(PATH), text, None).expect_err("the table should be refused").to_string()
}

fn options(target: &[&str], target_kind: TargetKind) -> FitOptions {
    FitOptions { target: target.iter().map(|s| s.to_string()).collect(), target_kind, ..Default::default() }
}

fn fit(text: &str, options: &FitOptions) -> Encoding {
    Encoding::fit(&table(text), options).expect("the encoding should fit")
}

fn fit_error(text: &str, options: &FitOptions) -> String {
    Encoding::fit(&table(text), options).expect_err("fitting should fail").to_string()
}

/// Asserts that `message` contains every one of `parts`.
fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{message:?} should mention {part:?}");
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}
