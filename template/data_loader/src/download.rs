//! Fetching the MNIST files into the data directory: which files (names, sizes, SHA-256), from which
//! mirrors, and the download itself, which verifies every byte before a file appears under its name.
//!
//! ```no_run
//! use data_loader::download::{MNIST_FILES, default_mirrors, download};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mirrors = default_mirrors();
//! let _reports = download("data".as_ref(), &mirrors, &MNIST_FILES, &mut |line| println!("{line}"))?;
//! # Ok(())
//! # }
//! ```

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::error::{DataError, MirrorFailure, Result};

/// A file as published: a download is accepted only if it has exactly this size and SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownFile {
    /// File name, both on the mirror (appended to its base URL) and in the data directory.
    pub name: &'static str,
    /// Lowercase hex SHA-256 of the whole file.
    pub sha256: &'static str,
    /// Size in bytes.
    pub size: u64,
}

/// The four MNIST files as published (gzip), in the order of [`crate::FILES`]. The loader reads
/// the `.gz` files directly, so nothing needs unpacking after a download.
pub const MNIST_FILES: [KnownFile; 4] = [
    KnownFile {
        name: "train-images-idx3-ubyte.gz",
        sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        size: 9_912_422,
    },
    KnownFile {
        name: "train-labels-idx1-ubyte.gz",
        sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        size: 28_881,
    },
    KnownFile {
        name: "t10k-images-idx3-ubyte.gz",
        sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        size: 1_648_877,
    },
    KnownFile {
        name: "t10k-labels-idx1-ubyte.gz",
        sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        size: 4_542,
    },
];

/// Base URLs that serve the MNIST files (the file name is appended). The original
/// yann.lecun.com site no longer serves them reliably, so these are the mirrors torchvision uses.
pub const DEFAULT_MIRRORS: [&str; 2] =
    ["https://storage.googleapis.com/cvdf-datasets/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"];

/// How long to wait for a mirror to resolve and accept a connection before trying the next.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a single read may wait for bytes, so a stalled mirror cannot hang the download.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// [`DEFAULT_MIRRORS`] as owned strings, the form a config file deserializes into.
pub fn default_mirrors() -> Vec<String> {
    DEFAULT_MIRRORS.iter().map(|m| m.to_string()).collect()
}

/// What [`download`] did for one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The file was already there with the right size and SHA-256; nothing was fetched.
    AlreadyValid,
    /// The file was fetched and verified; `mirror` is the base URL it came from, as given.
    Downloaded { mirror: String },
}

/// One line of [`download`]'s result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    pub name: String,
    pub outcome: Outcome,
}

/// Makes sure every file in `files` is in `data_dir` with its published SHA-256, fetching the
/// missing or invalid ones from `mirrors`, tried in order.
///
/// A download streams into a temporary file in `data_dir` and is renamed to its final name only
/// after its size and SHA-256 match, so an interrupted or corrupt download never leaves a file
/// that looks valid, and an existing (invalid) file is replaced only by a verified one.
/// A mirror that fails (HTTP status, connection, timeout, wrong size or hash) is noted and the
/// next one is tried; when all fail the error lists each mirror with its reason. Local failures
/// (cannot create or write in `data_dir`) stop at once, since no mirror can fix them.
///
/// `progress` receives one short human-readable line per event (file ok, trying a mirror, ...).
pub fn download(
    data_dir: &Path,
    mirrors: &[String],
    files: &[KnownFile],
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<FileReport>> {
    fs::create_dir_all(data_dir).map_err(|source| DataError::Write { path: data_dir.to_path_buf(), source })?;
    let agent = agent();
    let mut reports = Vec::with_capacity(files.len());
    for file in files {
        let path = data_dir.join(file.name);
        match check_existing(&path, file)? {
            Existing::Valid => {
                progress(&format!("{}: present, SHA-256 ok", file.name));
                reports.push(FileReport { name: file.name.to_string(), outcome: Outcome::AlreadyValid });
                continue;
            }
            Existing::Missing => progress(&format!("{}: missing, downloading", file.name)),
            Existing::Invalid(why) => progress(&format!("{}: present but invalid ({why}), downloading", file.name)),
        }
        if mirrors.is_empty() {
            return Err(DataError::NoMirrors { file: file.name.to_string(), dir: data_dir.to_path_buf() });
        }
        let mut attempts = Vec::new();
        let mut verified = None;
        for mirror in mirrors {
            let url = mirror_url(mirror, file.name);
            progress(&format!("{}: trying {url}", file.name));
            match fetch(&agent, &url, data_dir, file)? {
                Fetched::Verified(temp) => {
                    verified = Some((mirror, temp));
                    break;
                }
                Fetched::Failed(reason) => {
                    progress(&format!("{}: {url} failed: {reason}", file.name));
                    attempts.push(MirrorFailure { url, reason });
                }
            }
        }
        let Some((mirror, temp)) = verified else {
            return Err(DataError::DownloadFailed {
                file: file.name.to_string(),
                sha256: file.sha256.to_string(),
                dir: data_dir.to_path_buf(),
                attempts,
            });
        };
        // On failure the PersistError drops the temporary file, which deletes it.
        temp.persist(&path).map_err(|e| DataError::Write { path: path.clone(), source: e.error })?;
        sync_dir(data_dir);
        progress(&format!("{}: downloaded from {mirror} ({} bytes, SHA-256 ok)", file.name, file.size));
        reports
            .push(FileReport { name: file.name.to_string(), outcome: Outcome::Downloaded { mirror: mirror.clone() } });
    }
    Ok(reports)
}

/// The state of a file already in the data directory.
enum Existing {
    Missing,
    Valid,
    /// Why it is invalid, for the progress line.
    Invalid(String),
}

fn check_existing(path: &Path, file: &KnownFile) -> Result<Existing> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Existing::Missing),
        Err(source) => {
            return Err(DataError::Io { path: path.to_path_buf(), source });
        }
    };
    if !meta.is_file() {
        return Ok(Existing::Invalid("not a regular file".to_string()));
    }
    if meta.len() != file.size {
        return Ok(Existing::Invalid(format!("{} bytes, expected {}", meta.len(), file.size)));
    }
    let io_err = |source| DataError::Io { path: path.to_path_buf(), source };
    let mut hasher = Sha256::new();
    io::copy(&mut fs::File::open(path).map_err(io_err)?, &mut hasher).map_err(io_err)?;
    let got = hex(&hasher.finalize());
    if got.eq_ignore_ascii_case(file.sha256) {
        Ok(Existing::Valid)
    } else {
        Ok(Existing::Invalid(format!("SHA-256 {got}, expected {}", file.sha256)))
    }
}

/// The result of trying one mirror: a verified, fsynced temporary file, or why not.
enum Fetched {
    Verified(NamedTempFile),
    Failed(String),
}

/// Streams `url` into a temporary file in `dir`, hashing as it goes. Mirror problems come back as
/// `Ok(Fetched::Failed(reason))`; only local I/O failures are errors.
fn fetch(agent: &ureq::Agent, url: &str, dir: &Path, file: &KnownFile) -> Result<Fetched> {
    let mut response = match agent.get(url).call() {
        Ok(response) => response,
        Err(e) => return Ok(Fetched::Failed(e.to_string())),
    };
    let status = response.status();
    if status != ureq::http::StatusCode::OK {
        return Ok(Fetched::Failed(format!("HTTP {}", status.as_u16())));
    }
    let announced = response
        .headers()
        .get(ureq::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = announced.filter(|&len| len != file.size) {
        return Ok(Fetched::Failed(format!("size mismatch: the server announces {len} bytes, expected {}", file.size)));
    }

    // Dropping `temp` on any early return deletes it.
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{}.", file.name))
        .suffix(".part")
        .tempfile_in(dir)
        .map_err(|source| DataError::Write { path: dir.to_path_buf(), source })?;
    let write_err = |path: &Path, source| DataError::Write { path: path.to_path_buf(), source };
    let mut body = response.body_mut().as_reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut received: u64 = 0;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Ok(Fetched::Failed(format!("connection failed after {received} bytes: {e}")));
            }
        };
        received += n as u64;
        if received > file.size {
            return Ok(Fetched::Failed(format!("size mismatch: more than the expected {} bytes", file.size)));
        }
        hasher.update(&buf[..n]);
        temp.write_all(&buf[..n]).map_err(|e| write_err(temp.path(), e))?;
    }
    if received != file.size {
        return Ok(Fetched::Failed(format!("size mismatch: expected {} bytes, got {received}", file.size)));
    }
    let got = hex(&hasher.finalize());
    if !got.eq_ignore_ascii_case(file.sha256) {
        return Ok(Fetched::Failed(format!("SHA-256 mismatch: expected {}, got {got}", file.sha256)));
    }
    temp.as_file().sync_all().map_err(|e| write_err(temp.path(), e))?;
    Ok(Fetched::Verified(temp))
}

/// An HTTP agent with timeouts, reporting HTTP error statuses as responses (to name them).
fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_resolve(Some(CONNECT_TIMEOUT))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT))
        .http_status_as_error(false)
        .build();
    ureq::Agent::new_with_config(config)
}

/// `base` and `name` joined with exactly one `/`.
fn mirror_url(base: &str, name: &str) -> String {
    format!("{}/{name}", base.trim_end_matches('/'))
}

/// Makes the rename durable. Best effort: some filesystems cannot sync a directory, and the
/// file itself is already synced and verified.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes.iter().flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]]).map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnist_files_are_the_gzipped_mnist_names_in_order() {
        let names: Vec<&str> = MNIST_FILES.iter().map(|f| f.name).collect();
        let expected: Vec<String> = crate::FILES.iter().map(|f| format!("{f}.gz")).collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn mnist_hashes_are_lowercase_sha256_hex() {
        for file in MNIST_FILES {
            assert_eq!(file.sha256.len(), 64, "{}", file.name);
            assert!(
                file.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{}: {}",
                file.name,
                file.sha256
            );
        }
    }

    #[test]
    fn hex_matches_the_known_sha256_of_abc() {
        let digest = Sha256::digest(b"abc");
        assert_eq!(hex(&digest), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hex(&[0x00, 0x0f, 0xf0, 0xff]), "000ff0ff");
    }

    #[test]
    fn mirror_url_joins_with_one_slash() {
        assert_eq!(mirror_url("http://h/m/", "f.gz"), "http://h/m/f.gz");
        assert_eq!(mirror_url("http://h/m", "f.gz"), "http://h/m/f.gz");
        assert_eq!(mirror_url("http://h/m//", "f.gz"), "http://h/m/f.gz");
    }
}
