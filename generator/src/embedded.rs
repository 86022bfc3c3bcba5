//! The template and presets compiled into the binary (see build.rs), and writing them out.

use std::path::Path;

use crate::error::{Result, io};

mod files {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// The template's files: (relative path, contents).
pub fn template_files() -> &'static [(&'static str, &'static [u8])] {
    files::TEMPLATE
}

/// The contents of one template file, if it exists.
pub fn template_file(path: &str) -> Option<&'static [u8]> {
    files::TEMPLATE.iter().find(|(p, _)| *p == path).map(|(_, bytes)| *bytes)
}

/// The preset values files from examples/: (file name, contents).
pub fn preset_files() -> &'static [(&'static str, &'static [u8])] {
    files::PRESETS
}

/// Write the embedded template into `dir` (which must exist), for cargo-generate to read.
pub fn write_template(dir: &Path) -> Result<()> {
    for (relative, bytes) in template_files() {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&path, bytes).map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(())
}

/// The names the generated workspace uses for its own crates and dependencies (the keys of
/// `[workspace.dependencies]` in the template's manifest), which a project cannot be called.
pub fn workspace_names() -> Result<Vec<String>> {
    let manifest = template_file("Cargo.toml.liquid")
        .ok_or_else(|| crate::Error::Template("Cargo.toml.liquid is missing".into()))?;
    let manifest = String::from_utf8_lossy(manifest);
    let section = manifest
        .split("[workspace.dependencies]")
        .nth(1)
        .ok_or_else(|| crate::Error::Template("no [workspace.dependencies] in Cargo.toml.liquid".into()))?;
    Ok(section
        .lines()
        .take_while(|line| !line.starts_with('['))
        .filter_map(|line| line.split_once('=').map(|(key, _)| key.trim().to_string()))
        .filter(|key| !key.is_empty() && !key.starts_with('#'))
        .collect())
}
