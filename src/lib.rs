//! Support for the end-to-end tests in `tests/`: running the `candlecutter` binary and
//! `cargo generate`, building and testing generated workspaces with one shared target folder,
//! writing small MNIST-format and image-folder data sets, and comparing generated trees.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod edits;
pub mod idx;
pub mod images;
pub mod next_template;
pub mod real_data;
pub mod tables;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `candlecutter` binary that `cargo test` built beside this test executable.
pub fn candlecutter_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let dir = exe.parent().and_then(Path::parent).expect("tests run from target/<profile>/deps");
    let bin = dir.join(format!("candlecutter{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is missing: run `cargo test` at the repository root, which builds it", bin.display());
    bin
}

/// Environment every generation runs with, so that `authors` is the same for both entry points.
pub const AUTHOR: &str = "Candlecutter Tests";

/// `candlecutter ARGS` in `dir`.
pub fn candlecutter(dir: &Path, args: &[&str]) -> Output {
    Command::new(candlecutter_bin())
        .args(args)
        .current_dir(dir)
        .env("CARGO_NAME", AUTHOR)
        .env("CARGO_EMAIL", "tests@example.com")
        .output()
        .expect("candlecutter runs")
}

/// The installed `cargo generate`, or a message saying how to install it.
pub fn cargo_generate_available() -> Result<(), String> {
    let out = Command::new("cargo").args(["generate", "--version"]).output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("`cargo generate` is not installed: run `cargo install cargo-generate --version 0.23.7 \
                  --locked`, or `bash .ci/run`, which installs it"
            .into()),
    }
}

/// `cargo generate --path template --name NAME --silent --vcs none --destination DEST -d K=V...`
pub fn cargo_generate(dest: &Path, name: &str, values: &[(&str, &str)]) -> Output {
    let template = repo_root().join("template");
    let mut cmd = Command::new("cargo");
    cmd.arg("generate")
        .arg("--path")
        .arg(&template)
        .args(["--name", name, "--silent", "--vcs", "none", "--destination"])
        .arg(dest)
        .env("CARGO_NAME", AUTHOR)
        .env("CARGO_EMAIL", "tests@example.com");
    for (k, v) in values {
        cmd.args(["-d", &format!("{k}={v}")]);
    }
    cmd.output().expect("cargo generate runs")
}

/// Every file below `root` (relative path -> contents), `.git` aside.
pub fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("readable folder") {
            let path = entry.expect("entry").path();
            if path.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("below root").to_string_lossy().replace('\\', "/");
                out.insert(rel, std::fs::read(&path).expect("readable file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A description of how two trees differ, or None if they are identical.
pub fn tree_diff(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) -> Option<String> {
    let mut lines = Vec::new();
    for (path, contents) in a {
        match b.get(path) {
            None => lines.push(format!("only in the first: {path}")),
            Some(other) if other != contents => lines.push(format!("contents differ: {path}")),
            _ => {}
        }
    }
    lines.extend(b.keys().filter(|p| !a.contains_key(*p)).map(|p| format!("only in the second: {p}")));
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Print a progress line past libtest's output capture, so long runs show where they are.
pub fn progress(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Panic with the command's output unless it succeeded.
pub fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `nvcc` is on the PATH (CUDA variants are then built with the `cuda` feature).
pub fn nvcc_available() -> bool {
    Command::new("nvcc").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// One combination of the template's choices.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub backend: &'static str,
    pub model: &'static str,
    pub onnx: bool,
}

impl Variant {
    /// Every combination: backend x model x onnx.
    pub fn all() -> Vec<Variant> {
        let mut all = Vec::new();
        for backend in ["cpu", "cuda"] {
            for model in ["mlp", "cnn", "convnext"] {
                for onnx in [true, false] {
                    all.push(Variant { backend, model, onnx });
                }
            }
        }
        all
    }

    /// A project name unique to the variant, e.g. `cc-cnn-cpu-onnx`.
    pub fn project_name(&self) -> String {
        format!("cc-{}-{}-{}", self.model, self.backend, if self.onnx { "onnx" } else { "plain" })
    }

    pub fn values(&self) -> Vec<(&'static str, &'static str)> {
        vec![("backend", self.backend), ("model", self.model), ("onnx", if self.onnx { "true" } else { "false" })]
    }

    /// The same as `--define` arguments for candlecutter.
    pub fn define_args(&self) -> Vec<String> {
        self.values().iter().flat_map(|(k, v)| ["-d".to_string(), format!("{k}={v}")]).collect()
    }
}
