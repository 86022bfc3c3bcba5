//! `download` against local mirrors (see `http_server`): small fake files with their own
//! `KnownFile` entries, checking what ends up in the data directory, what each mirror was asked
//! for, and what the reports and errors say.

use std::path::Path;

use data_loader::{DataError, KnownFile, Outcome, download};
use sha2::{Digest, Sha256};

use crate::http_server::FileServer;

const SMALL: &[u8] = b"a small fake file standing in for a labels file";

/// Larger than the download buffer, so it arrives in several reads.
fn large() -> Vec<u8> {
    (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// A `KnownFile` for `bytes`, with the hash computed here.
fn known(name: &'static str, bytes: &[u8]) -> KnownFile {
    let sha256: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
    KnownFile { name, sha256: sha256.leak(), size: bytes.len() as u64 }
}

/// The names in `dir`, sorted: a leftover temporary file would show up here.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the data directory")
        .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A mirror URL nobody listens on: a port bound and released again.
fn refused_mirror() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("a bound listener has an address");
    drop(listener);
    format!("http://{addr}/mnist/")
}

/// Runs `download`, returning its result and the progress lines.
fn run(
    dir: &Path,
    mirrors: &[String],
    files: &[KnownFile],
) -> (data_loader::Result<Vec<data_loader::FileReport>>, Vec<String>) {
    let mut lines = Vec::new();
    let result = download(dir, mirrors, files, &mut |line| lines.push(line.to_string()));
    (result, lines)
}

fn downloaded_from(mirror: &str) -> Outcome {
    Outcome::Downloaded { mirror: mirror.to_string() }
}

#[test]
fn fresh_download_fetches_every_file_and_creates_the_directory() {
    let large = large();
    let server = FileServer::start(&[("a.gz", SMALL), ("b.gz", &large)]);
    let files = [known("a.gz", SMALL), known("b.gz", &large)];
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = tmp.path().join("nested").join("data");

    let (result, lines) = run(&dir, &[server.base_url()], &files);
    let reports = result.expect("download from a working mirror");

    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0].name, "a.gz");
    assert_eq!(reports[1].name, "b.gz");
    for report in &reports {
        assert_eq!(report.outcome, downloaded_from(&server.base_url()));
    }
    assert_eq!(std::fs::read(dir.join("a.gz")).expect("a.gz"), SMALL);
    assert_eq!(std::fs::read(dir.join("b.gz")).expect("b.gz"), large);
    assert_eq!(entries(&dir), ["a.gz", "b.gz"]);
    assert_eq!(server.requests(), ["/mnist/a.gz", "/mnist/b.gz"]);
    assert!(lines.iter().any(|l| l.contains("b.gz") && l.contains("downloaded from")), "{lines:?}");
}

#[test]
fn second_call_finds_the_files_valid_and_fetches_nothing() {
    let server = FileServer::start(&[("a.gz", SMALL)]);
    let files = [known("a.gz", SMALL)];
    let tmp = tempfile::tempdir().expect("temporary directory");
    let mirrors = [server.base_url()];

    run(tmp.path(), &mirrors, &files).0.expect("first download");
    let requests_after_first = server.requests().len();
    let (result, lines) = run(tmp.path(), &mirrors, &files);

    let reports = result.expect("second call");
    assert_eq!(reports[0].outcome, Outcome::AlreadyValid);
    assert_eq!(server.requests().len(), requests_after_first);
    assert!(lines.iter().all(|l| !l.contains("trying")), "{lines:?}");
}

#[test]
fn corrupt_file_on_the_first_mirror_is_fetched_from_the_second() {
    let mut corrupt = SMALL.to_vec();
    corrupt[0] ^= 0xff; // same size, different hash
    let bad = FileServer::start(&[("a.gz", &corrupt)]);
    let good = FileServer::start(&[("a.gz", SMALL)]);
    let tmp = tempfile::tempdir().expect("temporary directory");

    let (result, lines) = run(tmp.path(), &[bad.base_url(), good.base_url()], &[known("a.gz", SMALL)]);

    let reports = result.expect("the second mirror is good");
    assert_eq!(reports[0].outcome, downloaded_from(&good.base_url()));
    assert_eq!(std::fs::read(tmp.path().join("a.gz")).expect("a.gz"), SMALL);
    assert_eq!(entries(tmp.path()), ["a.gz"]);
    assert_eq!(bad.requests(), ["/mnist/a.gz"]);
    assert!(lines.iter().any(|l| l.contains(&bad.base_url()) && l.contains("SHA-256 mismatch")), "{lines:?}");
}

#[test]
fn oversized_file_on_the_first_mirror_is_rejected_by_size() {
    let padded = [SMALL, b"extra"].concat();
    let bad = FileServer::start(&[("a.gz", &padded)]);
    let good = FileServer::start(&[("a.gz", SMALL)]);
    let tmp = tempfile::tempdir().expect("temporary directory");

    let (result, lines) = run(tmp.path(), &[bad.base_url(), good.base_url()], &[known("a.gz", SMALL)]);

    assert_eq!(result.expect("the second mirror is good")[0].outcome, downloaded_from(&good.base_url()));
    assert!(lines.iter().any(|l| l.contains("size mismatch")), "{lines:?}");
}

#[test]
fn file_missing_on_every_mirror_is_an_error_naming_each_mirror() {
    let first = FileServer::start(&[("other.gz", SMALL)]);
    let second = FileServer::start(&[]);
    let tmp = tempfile::tempdir().expect("temporary directory");

    let (result, _) = run(tmp.path(), &[first.base_url(), second.base_url()], &[known("a.gz", SMALL)]);

    let err = result.expect_err("no mirror has a.gz");
    assert!(matches!(err, DataError::DownloadFailed { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("a.gz"), "{message}");
    assert!(message.contains(&format!("{}a.gz: HTTP 404", first.base_url())), "{message}");
    assert!(message.contains(&format!("{}a.gz: HTTP 404", second.base_url())), "{message}");
    assert!(message.contains("data_loader.args.mirrors"), "{message}");
    assert!(message.contains("by hand"), "{message}");
    assert_eq!(entries(tmp.path()), Vec::<String>::new());
}

#[test]
fn invalid_existing_file_is_replaced_by_the_verified_download() {
    let mut same_size = SMALL.to_vec();
    same_size[3] ^= 0x01;
    // Caught by its size, then by its hash.
    for stale in [&b"truncated"[..], &same_size] {
        let server = FileServer::start(&[("a.gz", SMALL)]);
        let tmp = tempfile::tempdir().expect("temporary directory");
        std::fs::write(tmp.path().join("a.gz"), stale).expect("write a stale file");

        let (result, lines) = run(tmp.path(), &[server.base_url()], &[known("a.gz", SMALL)]);

        assert_eq!(result.expect("download over a stale file")[0].outcome, downloaded_from(&server.base_url()));
        assert_eq!(std::fs::read(tmp.path().join("a.gz")).expect("a.gz"), SMALL);
        assert_eq!(entries(tmp.path()), ["a.gz"]);
        assert!(lines.iter().any(|l| l.contains("invalid")), "{lines:?}");
    }
}

#[test]
fn invalid_existing_file_is_kept_when_every_mirror_fails() {
    let server = FileServer::start(&[]);
    let tmp = tempfile::tempdir().expect("temporary directory");
    std::fs::write(tmp.path().join("a.gz"), b"stale").expect("write a stale file");

    let (result, _) = run(tmp.path(), &[server.base_url()], &[known("a.gz", SMALL)]);

    assert!(result.is_err());
    assert_eq!(std::fs::read(tmp.path().join("a.gz")).expect("a.gz"), b"stale");
    assert_eq!(entries(tmp.path()), ["a.gz"]);
}

#[test]
fn mirror_refusing_connections_is_skipped() {
    let dead = refused_mirror();
    let server = FileServer::start(&[("a.gz", SMALL)]);
    let tmp = tempfile::tempdir().expect("temporary directory");

    let (result, lines) = run(tmp.path(), &[dead.clone(), server.base_url()], &[known("a.gz", SMALL)]);

    assert_eq!(result.expect("the second mirror is up")[0].outcome, downloaded_from(&server.base_url()));
    assert_eq!(std::fs::read(tmp.path().join("a.gz")).expect("a.gz"), SMALL);
    assert!(lines.iter().any(|l| l.contains(&dead) && l.contains("failed")), "{lines:?}");
}

#[test]
fn no_mirrors_is_an_error_naming_the_file_and_the_config_key() {
    let tmp = tempfile::tempdir().expect("temporary directory");

    let (result, _) = run(tmp.path(), &[], &[known("a.gz", SMALL)]);

    let err = result.expect_err("nothing to download from");
    assert!(matches!(err, DataError::NoMirrors { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("a.gz") && message.contains("data_loader.args.mirrors"), "{message}");
}
