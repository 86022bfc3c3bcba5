//! `cargo generate --path template` and `candlecutter new` produce identical trees, for every
//! combination of choices and for every preset.

use candlecutter_tests::{Variant, candlecutter, cargo_generate, cargo_generate_available, tree, tree_diff};

#[test]
fn both_entry_points_generate_identical_trees_for_every_variant() {
    if let Err(msg) = cargo_generate_available() {
        panic!("{msg}");
    }
    for variant in Variant::all() {
        let name = variant.project_name();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let out = cargo_generate(a.path(), &name, &variant.values());
        candlecutter_tests::assert_success("cargo generate", &out);
        let mut args = vec!["new".to_string(), name.clone()];
        args.extend(variant.define_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = candlecutter(b.path(), &args);
        candlecutter_tests::assert_success("candlecutter new", &out);
        let (ta, tb) = (tree(&a.path().join(&name)), tree(&b.path().join(&name)));
        assert!(ta.len() > 20, "{variant:?}: only {} files", ta.len());
        if let Some(diff) = tree_diff(&ta, &tb) {
            panic!("{variant:?} differs between cargo generate and candlecutter:\n{diff}");
        }
    }
}

#[test]
fn presets_equal_cargo_generate_with_the_same_values_file() {
    if let Err(msg) = cargo_generate_available() {
        panic!("{msg}");
    }
    let examples = candlecutter_tests::repo_root().join("examples");
    let mut presets: Vec<_> = std::fs::read_dir(&examples).unwrap().map(|e| e.unwrap().path()).collect();
    presets.sort();
    assert!(presets.len() >= 2);
    for file in presets {
        let preset = file.file_stem().unwrap().to_string_lossy().to_string();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let out = std::process::Command::new("cargo")
            .args(["generate", "--path"])
            .arg(candlecutter_tests::repo_root().join("template"))
            .args(["--name", "p", "--silent", "--vcs", "none", "--values-file"])
            .arg(&file)
            .arg("--destination")
            .arg(a.path())
            .env("CARGO_NAME", candlecutter_tests::AUTHOR)
            .env("CARGO_EMAIL", "tests@example.com")
            .output()
            .unwrap();
        candlecutter_tests::assert_success("cargo generate --values-file", &out);
        let out = candlecutter(b.path(), &["new", "p", "--preset", &preset]);
        candlecutter_tests::assert_success("candlecutter new --preset", &out);
        if let Some(diff) = tree_diff(&tree(&a.path().join("p")), &tree(&b.path().join("p"))) {
            panic!("preset {preset} differs:\n{diff}");
        }
    }
}
