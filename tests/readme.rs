//! The README's quick start, run as written. Every ```sh block that follows the marker comment in
//! README.md is run by `bash -eu`, without a terminal, in an empty folder of its own, with the
//! repository's URL (Cargo.toml's `repository`) pointing at a local git repository made from
//! this working tree (`file://`). Afterwards: every clone a block made is unchanged
//! (`git status` is clean), every block made the same `my-mnist/` tree, and that project builds.
//!
//! `cargo install` in a block installs into the test's scratch folder and builds in
//! `target/readme` without optimisation (CARGO_PROFILE_RELEASE_OPT_LEVEL=0): the command is the
//! README's, only quicker to build.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use candlecutter_tests::{AUTHOR, assert_success, cargo_generate_available, progress, repo_root, tree, tree_diff};

const MARKER: &str = "<!-- tests/readme.rs runs each block marked like this one in an empty folder -->";
/// The project every quick-start block generates.
const PROJECT: &str = "my-mnist";

/// The `repository` URL of the workspace's packages, which the README's commands use.
fn repository_url() -> String {
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap()).unwrap();
    manifest["workspace"]["package"]["repository"].as_str().expect("workspace.package.repository is set").to_string()
}

/// The shell blocks of README.md that follow the marker, in order.
fn quick_start_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() != MARKER {
            continue;
        }
        let fence = lines.next().unwrap_or_default();
        assert_eq!(fence.trim(), "```sh", "README.md: the line after the marker must open a ```sh block");
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        blocks.push(body.join("\n"));
    }
    blocks
}

fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(["-c", "user.name=Candlecutter Tests", "-c", "user.email=tests@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs")
}

/// A git repository at `dest` holding this working tree as one commit: what a fresh clone of the
/// repository would be, uncommitted changes included. Returns its `file://` URL.
fn snapshot_of_working_tree(dest: &Path) -> String {
    let root = repo_root();
    let listed = git(&root, &["ls-files", "-z", "--cached", "--others", "--exclude-standard"]);
    assert_success("git ls-files", &listed);
    for rel in listed.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).expect("UTF-8 paths"));
        let source = root.join(rel);
        if !source.is_file() {
            continue; // deleted in the working tree
        }
        let target = dest.join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&source, &target).unwrap();
    }
    assert_success("git init", &git(dest, &["init", "-q", "-b", "main"]));
    assert_success("git add", &git(dest, &["add", "-A"]));
    assert_success("git commit", &git(dest, &["commit", "-q", "-m", "working tree"]));
    format!("file://{}", dest.display())
}

/// `git status --porcelain` of `clone`: empty when nothing was changed or added; a new folder is
/// one line (`?? dir/`).
fn status(clone: &Path) -> String {
    let out = git(clone, &["status", "--porcelain"]);
    assert_success("git status", &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("candlecutter-readme-").tempdir().unwrap()
}

#[test]
fn the_readme_quick_start_runs_as_written_and_leaves_the_clone_unchanged() {
    if let Err(msg) = cargo_generate_available() {
        panic!("{msg}");
    }
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let blocks = quick_start_blocks(&readme);
    assert!(blocks.len() >= 3, "README.md has {} marked blocks; expected the --git, clone and CLI forms", blocks.len());
    let url = repository_url();
    for (form, needle) in
        [("--git", "cargo generate --git"), ("--path", "cargo generate --path"), ("CLI", "candlecutter new")]
    {
        assert!(blocks.iter().any(|b| b.contains(needle)), "no marked README block uses the {form} form ({needle})");
    }

    let scratch = scratch();
    // Named as the URL's last segment, so that `git clone URL` makes the same folder name.
    let repo_name = url.rsplit('/').next().expect("a URL with a path");
    let origin = snapshot_of_working_tree(&scratch.path().join("origin").join(repo_name));
    let install_root = scratch.path().join("installed");
    let path = format!("{}:{}", install_root.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let mut projects: Vec<PathBuf> = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        assert!(block.contains(&url) || !block.contains("github.com"), "block {i} names another repository:\n{block}");
        let dir = scratch.path().join(format!("block-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        progress(&format!("readme: block {i}:\n{block}"));
        let out = Command::new("bash")
            .args(["-eu", "-c", &block.replace(&url, &origin)])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .env("CARGO_NAME", AUTHOR)
            .env("CARGO_EMAIL", "tests@example.com")
            .env("CARGO_INSTALL_ROOT", &install_root)
            .env("CARGO_TARGET_DIR", repo_root().join("target").join("readme"))
            .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0")
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
            .env("PATH", &path)
            .output()
            .expect("bash runs");
        assert_success(&format!("README block {i}:\n{block}\n"), &out);
        let project = dir.join(PROJECT);
        assert!(project.join("Cargo.toml").is_file(), "README block {i} made no {PROJECT}/:\n{block}");
        let clone = dir.join(repo_name);
        if clone.exists() {
            let status = status(&clone);
            assert!(status.is_empty(), "README block {i} changed its clone:\n{status}");
        }
        projects.push(project);
    }

    let first = tree(&projects[0]);
    for (i, project) in projects.iter().enumerate().skip(1) {
        if let Some(diff) = tree_diff(&first, &tree(project)) {
            panic!("README blocks 0 and {i} generate different projects:\n{diff}");
        }
    }
    let out = Command::new("cargo")
        .arg("build")
        .current_dir(&projects[0])
        .env("CARGO_TARGET_DIR", repo_root().join("target").join("generated"))
        .output()
        .expect("cargo runs");
    assert_success("cargo build of the quick start's project", &out);
}

/// The old README's command, run in the clone's root: cargo-generate must find no workspace
/// `members` list to add the project to, so the clone's manifest and workspace stay intact.
#[test]
fn generating_inside_a_clone_leaves_its_workspace_alone() {
    if let Err(msg) = cargo_generate_available() {
        panic!("{msg}");
    }
    let scratch = scratch();
    let origin = snapshot_of_working_tree(&scratch.path().join("origin"));
    assert_success("git clone", &git(scratch.path(), &["clone", "-q", &origin, "clone"]));
    let clone = scratch.path().join("clone");
    let out = Command::new("cargo")
        .args(["generate", "--path", "template", "--name", PROJECT, "--silent"])
        .current_dir(&clone)
        .stdin(Stdio::null())
        .env("CARGO_NAME", AUTHOR)
        .env("CARGO_EMAIL", "tests@example.com")
        .output()
        .expect("cargo generate runs");
    assert_success("cargo generate --path template in the clone's root", &out);
    assert_eq!(status(&clone), format!("?? {PROJECT}/\n"), "the clone's own files must be unchanged");
    let out = Command::new("cargo")
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(&clone)
        .output()
        .unwrap();
    assert_success("cargo metadata in the clone after generating inside it", &out);
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let members: Vec<&str> =
        metadata["packages"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(members, ["candlecutter-tests", "candlecutter"], "the clone's workspace members");
}
