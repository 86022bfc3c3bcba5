//! `candlecutter update` from the template built in (version N) to a test-made next release
//! (`next_template`: a kernel change, a change at the end of every model file, a new file with a
//! new placeholder, a removed binary file and a moved file). Rendering only, no builds: the test
//! matrix builds and trains a project updated this way (tests/matrix/user_edits.rs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candlecutter_tests::edits::{BATCH_NORM_AFTER_CONV1, insert_after};
use candlecutter_tests::next_template::{self, ADDED, KERNEL_CHANGE, MODEL_CHANGE, REMOVED, RENAMED_FROM, RENAMED_TO};
use candlecutter_tests::{Variant, assert_success, candlecutter, tree, tree_diff};

const MANIFEST: &str = ".candlecutter.toml";
const PENDING: &str = ".candlecutter-update.toml";

/// A generated project (committed to git, as `update` wants it) and the next template.
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    project: PathBuf,
    next: PathBuf,
}

fn setup(variant: &Variant) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let next = next_template::write(&root);
    let name = variant.project_name();
    let mut args = vec!["new".to_string(), name.clone()];
    args.extend(variant.define_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_success("candlecutter new", &candlecutter(&root, &args));
    let project = root.join(&name);
    git(&project, &["init", "-q"]);
    commit(&project);
    Setup { _dir: dir, root, project, next }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert_success(&format!("git {args:?}"), &out);
}

fn commit(dir: &Path) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", "state"]);
}

impl Setup {
    /// `candlecutter update PROJECT --template NEXT EXTRA...`
    fn update(&self, extra: &[&str]) -> Output {
        self.update_with(extra, None)
    }

    fn update_with(&self, extra: &[&str], fail_at: Option<usize>) -> Output {
        let mut cmd = Command::new(candlecutter_tests::candlecutter_bin());
        cmd.arg("update")
            .arg(&self.project)
            .arg("--template")
            .arg(&self.next)
            .args(extra)
            .env("CARGO_NAME", candlecutter_tests::AUTHOR)
            .env("CARGO_EMAIL", "tests@example.com");
        if let Some(n) = fail_at {
            cmd.env("CANDLECUTTER_UPDATE_FAIL_AT", n.to_string());
        }
        cmd.output().unwrap()
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.project.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn write(&self, path: &str, text: &str) {
        std::fs::write(self.project.join(path), text).unwrap();
    }

    fn model_file(&self) -> String {
        let variant_model =
            ["mlp", "cnn", "convnext"].into_iter().find(|m| self.project.join(format!("model/src/{m}.rs")).exists());
        format!("model/src/{}.rs", variant_model.expect("one model file"))
    }
}

/// Every folder below `root`, `.git` aside.
fn folders(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && path.file_name().is_some_and(|n| n != ".git") {
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_untouched_project_updated_equals_a_fresh_render_of_the_next_template_for_every_variant() {
    for variant in Variant::all() {
        let s = setup(&variant);
        let out = s.update(&[]);
        assert_success("candlecutter update", &out);
        let fresh_root = s.root.join("fresh");
        std::fs::create_dir(&fresh_root).unwrap();
        let mut args =
            vec!["new".to_string(), variant.project_name(), "--template".into(), s.next.display().to_string()];
        args.extend(variant.define_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_success("candlecutter new --template", &candlecutter(&fresh_root, &args));
        let fresh = fresh_root.join(variant.project_name());
        if let Some(diff) = tree_diff(&tree(&s.project), &tree(&fresh)) {
            panic!("{variant:?}: the updated project differs from a fresh render:\n{diff}\n{}", stdout(&out));
        }
        assert_eq!(folders(&s.project), folders(&fresh), "{variant:?}: the folders differ (an emptied one left?)");
        let text = stdout(&out);
        for expected in [
            "updated         kernels/src/lib.rs".to_string(),
            format!("added           {ADDED}"),
            format!("removed         {REMOVED}"),
            format!("updated         {RENAMED_TO}  (moved from {RENAMED_FROM})"),
        ] {
            assert!(text.contains(&expected), "{variant:?}: {expected:?} missing from:\n{text}");
        }
        assert!(s.read(MANIFEST).contains("version = \"0.2.0\"") && s.read(ADDED).contains("MIT OR Apache-2.0"));
        // The same template again: nothing to do.
        commit(&s.project);
        let again = s.update(&[]);
        assert_success("second update", &again);
        assert!(stdout(&again).contains("nothing to do"), "{}", stdout(&again));
    }
}

#[test]
fn edits_in_a_model_file_and_config_survive_beside_the_templates_changes_to_them() {
    let s = setup(&Variant { backend: "cpu", model: "cnn", onnx: true });
    insert_after(&s.project.join("model/src/cnn.rs"), &BATCH_NORM_AFTER_CONV1).unwrap();
    s.write("config.json", &s.read("config.json").replace("\"epochs\": 10,", "\"epochs\": 12,"));
    let license = s.read(RENAMED_FROM) + "My note on the font.\n";
    s.write(RENAMED_FROM, &license);
    std::fs::remove_file(s.project.join("README.md")).unwrap();
    commit(&s.project);

    let out = s.update(&[]);
    assert_success("candlecutter update", &out);
    let text = stdout(&out);
    let cnn = s.read("model/src/cnn.rs");
    assert!(cnn.contains("bn1: batch_norm2d(") && cnn.ends_with(MODEL_CHANGE), "cnn.rs lost an edit:\n{cnn}");
    assert!(text.contains("merged          model/src/cnn.rs"), "{text}");
    assert!(s.read("config.json").contains("\"epochs\": 12,"));
    assert!(s.read("kernels/src/lib.rs").ends_with(KERNEL_CHANGE));
    // The moved file carries the user's line to its new place.
    assert_eq!(s.read(RENAMED_TO), license);
    assert!(!s.project.join(RENAMED_FROM).exists());
    // Deleted by the user, changed by the template: stays deleted, and said.
    assert!(!s.project.join("README.md").exists());
    assert!(text.contains("deleted by you  README.md"), "{text}");
    assert!(s.read(MANIFEST).contains("version = \"0.2.0\""));
}

#[test]
fn a_conflicting_edit_is_marked_named_and_fails_until_resolved() {
    let s = setup(&Variant { backend: "cpu", model: "cnn", onnx: false });
    let model = s.model_file();
    s.write(&model, &(s.read(&model) + "\n// My own last line.\n"));
    commit(&s.project);
    let before = s.read(MANIFEST);

    let out = s.update(&[]);
    assert_eq!(out.status.code(), Some(3), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("conflict        {model}")) && text.contains("NOT finished"), "{text}");
    let merged = s.read(&model);
    for marker in ["<<<<<<< yours", "||||||| template 0.1.0", "=======", ">>>>>>> template 0.2.0"] {
        assert!(merged.contains(marker), "{marker:?} missing:\n{merged}");
    }
    // The manifest still says 0.1.0 until the conflict is resolved; everything else is written.
    assert_eq!(s.read(MANIFEST), before);
    assert!(s.project.join(PENDING).exists() && s.read("kernels/src/lib.rs").ends_with(KERNEL_CHANGE));

    let again = s.update(&[]);
    assert_eq!(again.status.code(), Some(3), "{}", stdout(&again));
    assert!(stdout(&again).contains("markers remain"), "{}", stdout(&again));

    let resolved: String = merged
        .lines()
        .filter(|l| {
            !l.starts_with("<<<<<<<") && !l.starts_with("|||||||") && !l.starts_with(">>>>>>>") && *l != "======="
        })
        .map(|l| format!("{l}\n"))
        .collect();
    s.write(&model, &resolved);
    let done = s.update(&[]);
    assert_success("the update after resolving", &done);
    assert!(s.read(MANIFEST).contains("version = \"0.2.0\"") && !s.project.join(PENDING).exists());
}

#[test]
fn a_dirty_tree_or_no_git_is_refused_and_dry_run_writes_nothing() {
    let s = setup(&Variant { backend: "cpu", model: "mlp", onnx: true });
    s.write("config.json", &(s.read("config.json") + "\n"));
    let before = tree(&s.project);
    let out = s.update(&[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("uncommitted changes")
            && stderr(&out).contains("config.json")
            && stderr(&out).contains("--allow-dirty"),
        "{}",
        stderr(&out)
    );
    let dry = s.update(&["--dry-run"]);
    assert_success("--dry-run", &dry);
    assert!(stdout(&dry).contains("would update") && stdout(&dry).contains("updated         kernels/src/lib.rs"));
    assert!(tree_diff(&before, &tree(&s.project)).is_none(), "--dry-run wrote something");

    std::fs::remove_dir_all(s.project.join(".git")).unwrap();
    let out = s.update(&[]);
    assert!(
        stderr(&out).contains("not in a git repository") && stderr(&out).contains("--allow-dirty"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_failure_midway_leaves_every_file_as_it_was() {
    let s = setup(&Variant { backend: "cpu", model: "convnext", onnx: true });
    let model = s.model_file();
    s.write(&model, &s.read(&model).replacen("//", "// edited\n//", 1));
    commit(&s.project);
    let before = tree(&s.project);
    for fail_at in [0, 2, 5] {
        let out = s.update_with(&[], Some(fail_at));
        assert!(!out.status.success());
        assert!(stderr(&out).contains("every file is as it was"), "{}", stderr(&out));
        if let Some(diff) = tree_diff(&before, &tree(&s.project)) {
            panic!("failing at operation {fail_at} left changes:\n{diff}");
        }
    }
    assert_success("the update without a failure", &s.update(&[]));
}

#[test]
fn an_unknown_base_names_base_template_and_check_reports_a_newer_template() {
    let s = setup(&Variant { backend: "cpu", model: "cnn", onnx: true });
    let check = s.update(&["--check"]);
    assert_eq!(check.status.code(), Some(4), "{}", stdout(&check));
    assert!(stdout(&check).contains("0.2.0 is available"), "{}", stdout(&check));

    // A project from the next template, updated by this candlecutter (which does not carry 0.2.0).
    assert_success("update", &s.update(&[]));
    commit(&s.project);
    let out = candlecutter(&s.project, &["update"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("template 0.2.0") && err.contains("--base-template"), "{err}");
    let out = candlecutter(&s.project, &["update", "--base-template", &s.next.display().to_string()]);
    assert_success("update with --base-template", &out);
    assert!(stdout(&out).contains("updating from template 0.2.0"), "{}", stdout(&out));
}

#[test]
fn a_project_without_a_manifest_is_adopted_with_its_answers() {
    let s = setup(&Variant { backend: "cpu", model: "mlp", onnx: false });
    std::fs::remove_file(s.project.join(MANIFEST)).unwrap();
    commit(&s.project);
    let out = s.update(&[]);
    assert!(stderr(&out).contains("--base-template"), "{}", stderr(&out));
    let base = candlecutter_tests::repo_root().join("template").display().to_string();
    let out = s.update(&["--base-template", &base]);
    assert!(
        stderr(&out).contains("--define backend=...") && stderr(&out).contains("--define model=..."),
        "{}",
        stderr(&out)
    );
    let out = s.update(&["--base-template", &base, "-d", "backend=cpu", "-d", "model=mlp", "-d", "onnx=false"]);
    assert_success("adopt", &out);
    assert!(s.read(MANIFEST).contains("version = \"0.2.0\"") && s.read("kernels/src/lib.rs").ends_with(KERNEL_CHANGE));
}
