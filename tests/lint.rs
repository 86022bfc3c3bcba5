//! The repository's own code is formatted with its `rustfmt.toml` and clippy-clean at `-D warnings`.
//! The generated projects are held to the same, variant by variant, in tests/matrix.rs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use candlecutter_tests::{progress, repo_root};

/// Every `.rs` file below `dir`, build output and hidden folders aside.
fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name == "target" || name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, files);
        } else if name.ends_with(".rs") {
            files.push(path);
        }
    }
}

/// The template's sources and the test fixtures belong to no cargo workspace here, so `cargo fmt`
/// alone would not see them: rustfmt checks every file, each against its nearest `rustfmt.toml`
/// (`template/rustfmt.toml`, which the repository's root links to).
#[test]
fn every_rust_file_is_formatted() {
    let root = repo_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 100, "found only {} .rs files below {}", files.len(), root.display());
    let out = Command::new("rustfmt").arg("--check").args(&files).current_dir(&root).output().expect("run rustfmt");
    let diff = String::from_utf8_lossy(&out.stdout);
    let unformatted: Vec<&str> = diff.lines().filter_map(|l| l.strip_prefix("Diff in ")).collect();
    assert!(
        out.status.success(),
        "rustfmt --check: {} place(s) differ from the rustfmt.toml style, first {:?}; run `cargo fmt` (the \
         repository's crates) and `rustfmt $(git ls-files 'template/*.rs' 'tests/fixtures/*.rs')`\n{}{}",
        unformatted.len(),
        unformatted.first(),
        diff.chars().take(4000).collect::<String>(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cargo clippy --workspace --all-targets -- -D warnings` on the repository (the generator and
/// these tests), in a target folder of its own: cargo holds the test run's folder while tests run.
#[test]
fn the_workspace_is_clippy_clean() {
    let start = Instant::now();
    let out = Command::new(env!("CARGO"))
        .args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])
        .current_dir(repo_root())
        .env("CARGO_TARGET_DIR", repo_root().join("target").join("clippy"))
        .env("CARGO_TERM_COLOR", "never")
        .output()
        .expect("run cargo clippy");
    assert!(
        out.status.success(),
        "cargo clippy --workspace --all-targets -- -D warnings fails on the repository:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    progress(&format!("repository: clippy-clean ({:.0}s)", start.elapsed().as_secs_f64()));
}
