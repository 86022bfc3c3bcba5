//! The template, presets and released templates compiled into the binary (see build.rs).

use crate::error::Result;

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

/// The snapshots of released templates from generator/releases/: (file name, compressed bytes).
pub fn release_snapshots() -> &'static [(&'static str, &'static [u8])] {
    files::RELEASES
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
