//! Embeds `template/`, `examples/` and the snapshots of released templates in
//! `generator/releases/` into the binary, so `candlecutter new` and `candlecutter update` need
//! neither the repository nor the network. Each file becomes an `include_bytes!`, which makes cargo rebuild
//! the generator whenever a template file changes; `rerun-if-changed` on the folders catches
//! files that are added or removed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.parent().expect("generator/ sits inside the repository");
    let mut out = String::new();
    let folders = [
        ("TEMPLATE", root.join("template"), ""),
        ("PRESETS", root.join("examples"), ""),
        ("RELEASES", manifest_dir.join("releases"), ".template.gz"),
    ];
    for (name, dir, suffix) in folders {
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files = Vec::new();
        collect(&dir, &dir, &mut files);
        files.retain(|(relative, _)| relative.ends_with(suffix));
        files.sort();
        writeln!(out, "pub static {name}: &[(&str, &[u8])] = &[").expect("writing to a String cannot fail");
        for (relative, absolute) in files {
            writeln!(out, "    ({relative:?}, include_bytes!({absolute:?})),")
                .expect("writing to a String cannot fail");
        }
        writeln!(out, "];").expect("writing to a String cannot fail");
    }
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("embedded.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}

/// Every file below `dir`, as (path relative to `base` with `/` separators, absolute path).
/// Build output (`target/`) is skipped in case someone built inside the template.
fn collect(base: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.file_name().is_some_and(|n| n == "target") {
            continue;
        }
        if path.is_dir() {
            collect(base, &path, files);
        } else {
            let relative = path.strip_prefix(base).expect("below base");
            let relative: Vec<_> = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect();
            files.push((relative.join("/"), path.display().to_string()));
        }
    }
}
