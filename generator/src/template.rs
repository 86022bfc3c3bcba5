//! A template as a set of files: the one built into this binary, an earlier release built in as a
//! compressed snapshot (generator/releases/), or a folder on disk; its version and content hash;
//! and rendering it with cargo-generate's own engine into an in-memory tree.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use cargo_generate::{GenerateArgs, TemplatePath, Vcs};
use sha2::{Digest, Sha256};

use crate::embedded;
use crate::error::{Error, Result, io};

/// The template's own record of what generated a project, rendered to `.candlecutter.toml`.
pub const MANIFEST_SOURCE: &str = ".candlecutter.toml.liquid";
/// The name the manifest has in a generated project.
pub const MANIFEST: &str = ".candlecutter.toml";
/// The first bytes of a snapshot of a released template (generator/releases/*.template.gz).
const SNAPSHOT_MAGIC: &[u8] = b"candlecutter template snapshot 1\n";

/// A rendered project: relative path (with `/`) → contents.
pub type Tree = BTreeMap<String, Vec<u8>>;

#[derive(Debug, Clone)]
pub struct Template {
    /// The version the template declares in its manifest ("unknown" for templates older than the
    /// manifest).
    pub version: String,
    /// [`content_hash`] of its files.
    pub hash: String,
    /// Where it came from, for messages: "built in", "release 0.1.0 (built in)", a folder.
    pub origin: String,
    files: Vec<(String, Vec<u8>)>,
}

impl Template {
    /// The template this binary was built with.
    pub fn built_in() -> Result<Self> {
        let files = embedded::template_files().iter().map(|(p, b)| (p.to_string(), b.to_vec())).collect();
        Self::from_files(files, "the template built into this candlecutter".into())
    }

    /// The earlier releases built into this binary (generator/releases/), oldest first.
    pub fn releases() -> Result<Vec<Self>> {
        let mut releases = Vec::new();
        for (name, bytes) in embedded::release_snapshots() {
            let files = read_snapshot(bytes).map_err(|e| Error::Template(format!("releases/{name}: {e}")))?;
            releases.push(Self::from_files(files, format!("release snapshot {name} built into this candlecutter"))?);
        }
        releases.sort_by(|a, b| version_order(&a.version, &b.version));
        Ok(releases)
    }

    /// A template folder: `path` itself when it holds `cargo-generate.toml`, else `path/template`
    /// (a checkout of this repository).
    pub fn from_dir(path: &Path) -> Result<Self> {
        let dir = if path.join("cargo-generate.toml").is_file() { path.to_path_buf() } else { path.join("template") };
        if !dir.join("cargo-generate.toml").is_file() {
            return Err(Error::NotATemplate { path: path.to_path_buf() });
        }
        let mut files = Vec::new();
        collect(&dir, &dir, &mut files)?;
        Self::from_files(files, dir.display().to_string())
    }

    fn from_files(mut files: Vec<(String, Vec<u8>)>, origin: String) -> Result<Self> {
        files.sort();
        let hash = content_hash(&files);
        let version = match files.iter().find(|(p, _)| p == MANIFEST_SOURCE) {
            Some((_, bytes)) => declared(bytes, "version")
                .ok_or_else(|| Error::Template(format!("{origin}: {MANIFEST_SOURCE} has no version")))?,
            None => "unknown".to_string(),
        };
        Ok(Self { version, hash, origin, files })
    }

    /// The hash its manifest declares (None for a template older than the manifest, or unstamped).
    pub fn declared_hash(&self) -> Option<String> {
        let (_, bytes) = self.files.iter().find(|(p, _)| p == MANIFEST_SOURCE)?;
        declared(bytes, "hash").filter(|h| !h.is_empty())
    }

    /// Refuse a template whose manifest does not declare its own hash: projects rendered from it
    /// would record a hash that no template has, and could never be updated.
    pub fn check_stamped(&self) -> Result<()> {
        match self.declared_hash() {
            Some(h) if h == self.hash => Ok(()),
            declared => Err(Error::Unstamped {
                origin: self.origin.clone(),
                declared: declared.unwrap_or_else(|| "nothing".into()),
                actual: self.hash.clone(),
            }),
        }
    }

    pub fn files(&self) -> &[(String, Vec<u8>)] {
        &self.files
    }

    /// The template's `cargo-generate.toml`, for its placeholders.
    pub fn config(&self) -> Result<&str> {
        let (_, bytes) = self
            .files
            .iter()
            .find(|(p, _)| p == "cargo-generate.toml")
            .ok_or_else(|| Error::Template(format!("{}: no cargo-generate.toml", self.origin)))?;
        std::str::from_utf8(bytes).map_err(|e| Error::Template(format!("{}: cargo-generate.toml: {e}", self.origin)))
    }

    /// Write the files into `dir` (which must exist), for cargo-generate to read.
    pub fn write_to(&self, dir: &Path) -> Result<()> {
        for (relative, bytes) in &self.files {
            let path = dir.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
            }
            std::fs::write(&path, bytes).map_err(io(format!("writing {}", path.display())))?;
        }
        Ok(())
    }

    /// Render the project `name` with placeholder `values` into memory.
    pub fn render(&self, name: &str, values: &BTreeMap<String, String>) -> Result<Tree> {
        let staging = tempfile::Builder::new()
            .prefix("candlecutter-render-")
            .tempdir()
            .map_err(io("creating a temporary folder to render the template in"))?;
        let project = self.render_into(staging.path(), name, values, false)?;
        let mut files = Vec::new();
        collect(&project, &project, &mut files)?;
        Ok(files.into_iter().collect())
    }

    /// Render into a fresh folder below `staging` (on the same file system as the final place, so
    /// that it can be renamed there) and return the project's folder.
    pub(crate) fn render_into(
        &self,
        staging: &Path,
        name: &str,
        values: &BTreeMap<String, String>,
        interactive: bool,
    ) -> Result<PathBuf> {
        let source = tempfile::Builder::new()
            .prefix("candlecutter-template-")
            .tempdir()
            .map_err(io("creating a temporary folder for the template"))?;
        self.write_to(source.path())?;
        let args = GenerateArgs {
            template_path: TemplatePath { path: Some(source.path().display().to_string()), ..TemplatePath::default() },
            name: Some(name.to_string()),
            silent: !interactive,
            vcs: Some(Vcs::None),
            destination: Some(staging.to_path_buf()),
            define: values.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            // The generated project is a workspace of its own; never add it to an enclosing one.
            no_workspace: true,
            lib: false,
            bin: false,
            ..GenerateArgs::default()
        };
        cargo_generate::generate(args).map_err(Error::CargoGenerate)
    }

    /// The compressed snapshot of the files, as generator/releases/ holds them.
    pub fn snapshot(&self) -> Result<Vec<u8>> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let write = |gz: &mut flate2::write::GzEncoder<Vec<u8>>| -> std::io::Result<()> {
            gz.write_all(SNAPSHOT_MAGIC)?;
            for (path, bytes) in &self.files {
                writeln!(gz, "{path}\n{}", bytes.len())?;
                gz.write_all(bytes)?;
            }
            Ok(())
        };
        write(&mut gz).map_err(io("compressing the template"))?;
        gz.finish().map_err(io("compressing the template"))
    }
}

/// Parse a snapshot written by [`Template::snapshot`].
fn read_snapshot(compressed: &[u8]) -> std::result::Result<Vec<(String, Vec<u8>)>, String> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(compressed).read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let mut rest = raw.strip_prefix(SNAPSHOT_MAGIC).ok_or("not a template snapshot")?;
    let mut files = Vec::new();
    let line = |rest: &mut &[u8]| -> std::result::Result<String, String> {
        let end = rest.iter().position(|&b| b == b'\n').ok_or("truncated")?;
        let text = String::from_utf8(rest[..end].to_vec()).map_err(|e| e.to_string())?;
        *rest = &rest[end + 1..];
        Ok(text)
    };
    while !rest.is_empty() {
        let path = line(&mut rest)?;
        let len: usize = line(&mut rest)?.parse().map_err(|_| format!("{path}: bad length"))?;
        let bytes = rest.get(..len).ok_or(format!("{path}: truncated"))?;
        files.push((path, bytes.to_vec()));
        rest = &rest[len..];
    }
    Ok(files)
}

/// SHA-256 over every file's path and contents, in path order; in the manifest's source the
/// `hash = ...` line counts as `hash = ""`, so that the hash can be written into the template.
pub fn content_hash(files: &[(String, Vec<u8>)]) -> String {
    let mut sha = Sha256::new();
    for (path, bytes) in files {
        let bytes = if path == MANIFEST_SOURCE { with_value(bytes, "hash", "") } else { bytes.clone() };
        sha.update(path.as_bytes());
        sha.update([0]);
        sha.update((bytes.len() as u64).to_le_bytes());
        sha.update(&bytes);
    }
    let digest = sha.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Write `version` and the template's hash into the manifest of the template folder `dir` (what
/// scripts/stamp-template.sh does after a template edit, with this binary's version); returns the hash.
pub fn stamp(dir: &Path, version: &str) -> Result<String> {
    let template = Template::from_dir(dir)?;
    let root = if dir.join("cargo-generate.toml").is_file() { dir.to_path_buf() } else { dir.join("template") };
    let path = root.join(MANIFEST_SOURCE);
    let bytes = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
    let bytes = with_value(&bytes, "version", version);
    // The version line counts in the hash: hash what will be on disk.
    let mut files = template.files.clone();
    if let Some(entry) = files.iter_mut().find(|(p, _)| p == MANIFEST_SOURCE) {
        entry.1 = bytes.clone();
    }
    let hash = content_hash(&files);
    std::fs::write(&path, with_value(&bytes, "hash", &hash)).map_err(io(format!("writing {}", path.display())))?;
    Ok(hash)
}

/// The manifest's source with its `key = "..."` line set to `value`.
pub fn with_value(manifest: &[u8], key: &str, value: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(manifest);
    let prefix = format!("{key} = \"");
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.starts_with(&prefix) {
            out.push_str(&format!("{key} = \"{value}\""));
            if line.ends_with('\n') {
                out.push('\n');
            }
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

/// The quoted value of a top-level `key = "..."` line of the manifest's `[template]` table.
fn declared(manifest: &[u8], key: &str) -> Option<String> {
    let text = std::str::from_utf8(manifest).ok()?;
    let prefix = format!("{key} = \"");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.strip_suffix('"')).map(str::to_string)
}

/// Order versions as semver where both parse, else as text.
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => a.cmp(b),
    }
}

/// Every file below `dir` as (path relative to `base` with `/`, contents); `target/` is skipped.
fn collect(base: &Path, dir: &Path, files: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))?;
    for entry in entries {
        let path = entry.map_err(io(format!("reading {}", dir.display())))?.path();
        if path.file_name().is_some_and(|n| n == "target") {
            continue;
        }
        if path.is_dir() {
            collect(base, &path, files)?;
        } else {
            let relative = path.strip_prefix(base).expect("below base");
            let relative: Vec<_> = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect();
            let bytes = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
            files.push((relative.join("/"), bytes));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_template_declares_its_own_hash() {
        let t = Template::built_in().unwrap();
        t.check_stamped().unwrap();
        assert_eq!(t.version, env!("CARGO_PKG_VERSION"), "stamp the template: bash scripts/stamp-template.sh");
    }

    #[test]
    fn the_manifest_records_every_placeholder() {
        let t = Template::built_in().unwrap();
        let manifest =
            String::from_utf8(t.files.iter().find(|(p, _)| p == MANIFEST_SOURCE).unwrap().1.clone()).unwrap();
        let answers = manifest.split("[answers]").nth(1).unwrap().split("\n[").next().unwrap();
        let placeholders = crate::placeholders::Placeholders::parse(t.config().unwrap()).unwrap();
        for name in placeholders.iter().map(|p| p.name.as_str()).chain(["project-name"]) {
            assert!(
                answers.lines().any(|l| l.starts_with(&format!("{name} = "))),
                "{MANIFEST_SOURCE} does not record the placeholder {name} in [answers]: an update would \
                 re-render with its default instead of the user's answer"
            );
        }
    }

    #[test]
    fn a_snapshot_reads_back_to_the_same_files_and_hash() {
        let t = Template::built_in().unwrap();
        let files = read_snapshot(&t.snapshot().unwrap()).unwrap();
        assert_eq!(files, t.files);
        assert_eq!(content_hash(&files), t.hash);
    }

    #[test]
    fn the_hash_changes_with_any_byte_but_not_with_the_hash_line() {
        let files = vec![("a".to_string(), b"x".to_vec()), (MANIFEST_SOURCE.into(), b"hash = \"\"\n".to_vec())];
        let mut stamped = files.clone();
        stamped[1].1 = with_value(&files[1].1, "hash", "sha256:0");
        assert_eq!(content_hash(&files), content_hash(&stamped));
        let mut edited = files.clone();
        edited[0].1 = b"y".to_vec();
        assert_ne!(content_hash(&files), content_hash(&edited));
    }
}
