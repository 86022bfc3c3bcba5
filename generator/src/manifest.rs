//! `.candlecutter.toml` in a generated project: which template made it (version and content
//! hash), with which answers, which files are seeded (the user's from the start) and which files
//! the template has moved. The template writes it (template/.candlecutter.toml.liquid), so that
//! `cargo generate` and `candlecutter new` record the same; `candlecutter update` reads it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub template: Recorded,
    pub answers: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub files: Files,
    #[serde(default)]
    pub renamed: Vec<Rename>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Recorded {
    pub version: String,
    pub hash: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Files {
    /// Paths, or `folder/**` for everything below a folder.
    #[serde(default)]
    pub seeded: Vec<String>,
}

/// A file the template moved from `from` to `to` (both paths in the generated project).
#[derive(Debug, Clone, Deserialize)]
pub struct Rename {
    pub from: String,
    pub to: String,
}

impl Manifest {
    pub fn parse(bytes: &[u8], origin: &Path) -> Result<Self> {
        let bad = |message: String| Error::BadManifest { path: origin.to_path_buf(), message };
        let text = std::str::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
        toml::from_str(text).map_err(|e| bad(e.message().to_string()))
    }

    /// The project's manifest, or None when it has none (generated before candlecutter 0.1.0
    /// recorded one).
    pub fn read(project: &Path) -> Result<Option<Self>> {
        let path = project.join(crate::template::MANIFEST);
        match std::fs::read(&path) {
            Ok(bytes) => Self::parse(&bytes, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { context: format!("reading {}", path.display()), source }),
        }
    }

    /// The answers as the strings cargo-generate takes.
    pub fn answers(&self) -> BTreeMap<String, String> {
        self.answers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            .collect()
    }

    pub fn is_seeded(&self, path: &str) -> bool {
        self.files.seeded.iter().any(|pattern| match pattern.strip_suffix("/**") {
            Some(folder) => path.strip_prefix(folder).is_some_and(|rest| rest.starts_with('/')),
            None => pattern == path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> Manifest {
        Manifest::parse(text.as_bytes(), Path::new("m.toml")).unwrap()
    }

    #[test]
    fn seeded_patterns_match_a_path_or_everything_below_a_folder() {
        let m = manifest(
            "[template]\nversion = \"1\"\nhash = \"h\"\n[answers]\nonnx = true\n\
             [files]\nseeded = [\"config.json\", \"data/**\"]\n",
        );
        assert!(m.is_seeded("config.json") && m.is_seeded("data/.gitkeep") && m.is_seeded("data/a/b"));
        assert!(!m.is_seeded("config.json.bak") && !m.is_seeded("data") && !m.is_seeded("database/x"));
        assert_eq!(m.answers()["onnx"], "true");
    }

    #[test]
    fn a_broken_manifest_names_its_file() {
        let err = Manifest::parse(b"[template]\nversion = 1\n", Path::new("p/.candlecutter.toml")).unwrap_err();
        assert!(err.to_string().contains("p/.candlecutter.toml"), "{err}");
    }
}
