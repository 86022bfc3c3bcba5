//! Every kind of bad input to `candlecutter new`: a clear message, a non-zero exit, and the file
//! system exactly as it was.

use std::path::Path;

use candlecutter_tests::{candlecutter, tree};

/// Run `candlecutter new ARGS` in a fresh folder (holding `setup`'s files) and check that it fails
/// with a message containing every one of `expected`, leaving the folder untouched.
fn refused(args: &[&str], setup: impl FnOnce(&Path), expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let before = tree(dir.path());
    let mut full = vec!["new"];
    full.extend_from_slice(args);
    let out = candlecutter(dir.path(), &full);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail; stderr: {stderr}");
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    for e in expected {
        assert!(stderr.contains(e), "{args:?}: {e:?} not in the message: {stderr}");
    }
    assert_eq!(tree(dir.path()), before, "{args:?} changed the file system");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(leftovers.iter().all(|n| !n.to_string_lossy().starts_with(".candlecutter")), "{leftovers:?}");
}

fn nothing(_: &Path) {}

#[test]
fn invalid_package_names_are_refused_with_the_reason() {
    for (name, reason) in [
        ("", "empty"),
        ("1abc", "start with a letter"),
        ("my mnist", "' ' is not allowed"),
        ("a/b", "--destination"),
        ("..", "'.' is not allowed"),
        ("fn", "keyword"),
        ("self", "keyword"),
        ("test", "cargo reserves"),
        ("build", "cargo reserves"),
        ("deps", "cargo reserves"),
        ("MyMnist", "\"my-mnist\""),
        ("training", "already has a crate"),
        ("candle-core", "already has a crate"),
    ] {
        refused(&[name], nothing, &["invalid project name", reason]);
    }
}

#[test]
fn an_existing_destination_is_never_touched() {
    let existing = |dir: &Path| {
        std::fs::create_dir(dir.join("my-mnist")).unwrap();
        std::fs::write(dir.join("my-mnist/notes.txt"), "mine").unwrap();
    };
    refused(&["my-mnist"], existing, &["already exists", "never overwrites"]);
    let empty = |dir: &Path| std::fs::create_dir(dir.join("my-mnist")).unwrap();
    refused(&["my-mnist"], empty, &["already exists"]);
    let file = |dir: &Path| std::fs::write(dir.join("my-mnist"), "a file").unwrap();
    refused(&["my-mnist"], file, &["already exists"]);
}

#[test]
fn unknown_placeholders_and_choices_list_the_valid_ones() {
    refused(&["p", "-d", "colour=red"], nothing, &["unknown placeholder \"colour\"", "backend, model, onnx"]);
    refused(&["p", "--model", "resnet"], nothing, &["\"resnet\"", "mlp, cnn, convnext"]);
    refused(&["p", "--backend", "rocm"], nothing, &["cpu, cuda"]);
    refused(&["p", "-d", "onnx=yes"], nothing, &["true, false"]);
    refused(&["p", "-d", "model"], nothing, &["KEY=VALUE"]);
    refused(&["p", "--model", "mlp", "-d", "model=cnn"], nothing, &["given twice"]);
    refused(&["p", "-d", "authors=me"], nothing, &["CARGO_NAME"]);
    refused(&["p", "-d", "description=say \"hi\""], nothing, &["description"]);
    refused(&["p", "--preset", "nope"], nothing, &["unknown preset", "mnist-cnn-cpu"]);
}

#[test]
fn values_files_that_do_not_parse_are_refused() {
    let broken = |dir: &Path| std::fs::write(dir.join("v.toml"), "[values\nmodel = ").unwrap();
    refused(&["p", "--values-file", "v.toml"], broken, &["v.toml", "not valid"]);
    let no_table = |dir: &Path| std::fs::write(dir.join("v.toml"), "model = \"mlp\"\n").unwrap();
    refused(&["p", "--values-file", "v.toml"], no_table, &["[values]"]);
    let bad_choice = |dir: &Path| std::fs::write(dir.join("v.toml"), "[values]\nmodel = \"vit\"\n").unwrap();
    refused(&["p", "--values-file", "v.toml"], bad_choice, &["\"vit\"", "mlp, cnn, convnext"]);
    refused(&["p", "--values-file", "missing.toml"], nothing, &["cannot read values file", "missing.toml"]);
}

/// cargo-generate fails half-way when it cannot tell who the author is (no $USER, no git config,
/// no $CARGO_NAME); the folders candlecutter created for --destination must go again.
#[test]
fn a_failure_half_way_removes_what_was_created() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(candlecutter_tests::candlecutter_bin())
        .args(["new", "p", "--destination", "a/b"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "generation should fail without any author information: {stderr}");
    assert!(stderr.contains("USER"), "{stderr}");
    assert!(tree(dir.path()).is_empty() && !dir.path().join("a").exists(), "left behind: {:?}", tree(dir.path()));
}
