//! `candlecutter update`: bring a newer template into a project the user has edited.
//!
//! The base is the exact template the project was made from, re-rendered offline with the
//! recorded answers (`.candlecutter.toml`); the new version is rendered with the same answers.
//! Then, per file: untouched by the user → the new version; changed by the user only → kept;
//! changed by both → a three-way merge, with git-style conflict markers where the two overlap.
//! Nothing is written until every file is decided, and then all of it or none of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result, io};
use crate::manifest::Manifest;
use crate::placeholders::{Given, Placeholders};
use crate::template::{MANIFEST, Template, Tree};

/// Left in the project while conflicts wait to be resolved: the conflicted files and the
/// manifest to write once they are.
pub const PENDING: &str = ".candlecutter-update.toml";
/// Seeded or not, the lock file is never text-merged.
const LOCK: &str = "Cargo.lock";

#[derive(Debug, Default)]
pub struct Options {
    pub project: PathBuf,
    /// The template to update to (default: the one built in).
    pub template: Option<PathBuf>,
    /// The template the project was generated from, when it is not built in.
    pub base_template: Option<PathBuf>,
    pub define: Vec<Given>,
    pub dry_run: bool,
    pub allow_dirty: bool,
    /// Make the n-th file operation fail (tests prove the rollback with it).
    pub fail_at: Option<usize>,
}

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Untouched by you: now the new template's.
    Updated,
    /// Changed by you and by the template, merged without overlap.
    Merged,
    /// Changed by you and by the template in the same lines: markers written.
    Conflict,
    /// Yours, left as it is.
    Kept,
    /// New in the template.
    Added,
    /// Removed by the template, untouched by you.
    Removed,
    /// Deleted by you; stays deleted.
    DeletedByYou,
}

impl Action {
    pub fn word(self) -> &'static str {
        match self {
            Action::Updated => "updated",
            Action::Merged => "merged",
            Action::Conflict => "conflict",
            Action::Kept => "kept",
            Action::Added => "added",
            Action::Removed => "removed",
            Action::DeletedByYou => "deleted by you",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Line {
    pub path: String,
    pub action: Action,
    /// Why, when the action alone does not say it.
    pub note: Option<String>,
}

#[derive(Debug)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub lines: Vec<Line>,
    /// Files the template did not change, or changed to what you already have.
    pub unchanged: usize,
    pub dry_run: bool,
    /// True when the project was already at the new template (nothing was done).
    pub up_to_date: bool,
    /// True when this run finished an update whose conflicts were resolved.
    pub finished: bool,
}

impl Report {
    pub fn conflicts(&self) -> Vec<&str> {
        self.lines.iter().filter(|l| l.action == Action::Conflict).map(|l| l.path.as_str()).collect()
    }
}

/// `--check`: Some((project's version, available version)) when the template differs from the
/// one the project records.
pub fn check(options: &Options) -> Result<Option<(String, String)>> {
    let project = project_dir(&options.project)?;
    let manifest = Manifest::read(&project)?.ok_or_else(|| no_manifest(&project))?;
    let new = new_template(options)?;
    Ok((manifest.template.hash != new.hash).then(|| (manifest.template.version.clone(), new.version.clone())))
}

pub fn update(options: &Options) -> Result<Report> {
    let project = project_dir(&options.project)?;
    if project.join(PENDING).exists() {
        return finish(&project, options);
    }
    if !options.allow_dirty && !options.dry_run {
        require_clean(&project)?;
    }
    let manifest = Manifest::read(&project)?;
    let new = new_template(options)?;
    let base = base_template(&project, manifest.as_ref(), &new, options)?;

    let (base_answers, new_answers) = answers(&project, manifest.as_ref(), &base, &new, &options.define)?;
    let mut report = Report {
        from: describe(&base),
        to: describe(&new),
        lines: Vec::new(),
        unchanged: 0,
        dry_run: options.dry_run,
        up_to_date: false,
        finished: false,
    };
    if base.hash == new.hash && base_answers == new_answers && manifest.is_some() {
        report.up_to_date = true;
        return Ok(report);
    }
    let name = &new_answers["project-name"];
    let base_tree = base.render(name, &strip_name(&base_answers))?;
    let new_tree = base_is_new_or(&base, &new, &base_answers, &new_answers, &base_tree, name)?;
    let new_manifest =
        new_tree.get(MANIFEST).ok_or_else(|| Error::Template(format!("{} renders no {MANIFEST}", new.origin)))?;
    let new_manifest_parsed = Manifest::parse(new_manifest, Path::new(MANIFEST))?;

    let labels = Labels {
        // A template older than the manifest declares no version: name the folder it came from.
        base: match base.version.as_str() {
            "unknown" => format!("template at {} (what you started from)", base.origin),
            version => format!("template {version} (what you started from)"),
        },
        new: format!("template {}", new.version),
    };
    let mut changes = plan(&project, &base_tree, &new_tree, &new_manifest_parsed, &labels, &mut report)?;
    let conflicts: Vec<String> = report.conflicts().into_iter().map(str::to_string).collect();
    if conflicts.is_empty() {
        changes.push(Change { path: MANIFEST.into(), contents: Some(new_manifest.clone()) });
    } else {
        changes.push(Change { path: PENDING.into(), contents: Some(pending_file(&conflicts, new_manifest)?) });
    }
    if !options.dry_run {
        apply(&project, &changes, options.fail_at)?;
    }
    Ok(report)
}

fn describe(t: &Template) -> String {
    format!("{} ({})", t.version, &t.hash[..t.hash.len().min(19)])
}

/// Render the new template, reusing the base's tree when they are the same template and answers.
fn base_is_new_or(
    base: &Template,
    new: &Template,
    base_answers: &BTreeMap<String, String>,
    new_answers: &BTreeMap<String, String>,
    base_tree: &Tree,
    name: &str,
) -> Result<Tree> {
    if base.hash == new.hash && base_answers == new_answers {
        Ok(base_tree.clone())
    } else {
        new.render(name, &strip_name(new_answers))
    }
}

fn strip_name(answers: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    answers.iter().filter(|(k, _)| *k != "project-name").map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn project_dir(path: &Path) -> Result<PathBuf> {
    let project = std::path::absolute(path).map_err(io(format!("resolving {}", path.display())))?;
    if !project.join("Cargo.toml").is_file() {
        return Err(Error::NotAProject { path: project });
    }
    Ok(project)
}

fn no_manifest(project: &Path) -> Error {
    Error::NoManifest { path: project.join(MANIFEST) }
}

fn new_template(options: &Options) -> Result<Template> {
    let new = match &options.template {
        Some(path) => Template::from_dir(path)?,
        None => Template::built_in()?,
    };
    new.check_stamped()?;
    Ok(new)
}

/// The template the project was generated from: `--base-template`, else the one among the new
/// template, the built-in one and the built-in releases that has the recorded hash.
fn base_template(project: &Path, manifest: Option<&Manifest>, new: &Template, options: &Options) -> Result<Template> {
    if let Some(path) = &options.base_template {
        let base = Template::from_dir(path)?;
        if let Some(m) = manifest
            && m.template.hash != base.hash
        {
            return Err(Error::BaseMismatch {
                path: path.clone(),
                found: base.hash,
                recorded: m.template.hash.clone(),
                version: m.template.version.clone(),
            });
        }
        return Ok(base);
    }
    let manifest = manifest.ok_or_else(|| no_manifest(project))?;
    let recorded = &manifest.template;
    if new.hash == recorded.hash {
        return Ok(new.clone());
    }
    let built_in = Template::built_in()?;
    if built_in.hash == recorded.hash {
        return Ok(built_in);
    }
    Template::releases()?
        .into_iter()
        .find(|t| t.hash == recorded.hash)
        .ok_or_else(|| Error::UnknownBase { version: recorded.version.clone(), hash: recorded.hash.clone() })
}

/// The answers to render the base and the new template with (each with "project-name").
fn answers(
    project: &Path,
    manifest: Option<&Manifest>,
    base: &Template,
    new: &Template,
    define: &[Given],
) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    let (name, recorded) = match manifest {
        Some(m) => {
            let mut answers = m.answers();
            let name = answers.remove("project-name").ok_or_else(|| Error::BadManifest {
                path: project.join(MANIFEST),
                message: "[answers] has no project-name".into(),
            })?;
            (name, answers)
        }
        None => (package_name(project)?, BTreeMap::new()),
    };
    let base_placeholders = Placeholders::parse(base.config()?)?;
    let base_answers = if manifest.is_some() {
        recorded.clone()
    } else {
        // Adopting a project without a manifest: its answers must be given, or the base is a
        // guess; only free-text placeholders may fall back to their defaults.
        let missing: Vec<String> = base_placeholders
            .iter()
            .filter(|p| !matches!(p.kind, crate::placeholders::Kind::Text(_)))
            .filter(|p| !define.iter().any(|g| g.key == p.name))
            .map(|p| format!("--define {}=...", p.name))
            .collect();
        if !missing.is_empty() {
            return Err(Error::AdoptNeedsAnswers { missing: missing.join(" ") });
        }
        base_placeholders.resolve(&[known(&base_placeholders, define)], true)?
    };
    let new_placeholders = Placeholders::parse(new.config()?)?;
    let layers = [known(&new_placeholders, &given(&base_answers, "the recorded answers")), define.to_vec()];
    let mut new_answers = new_placeholders.resolve(&layers, true)?;
    let mut base_answers = base_answers;
    base_answers.insert("project-name".into(), name.clone());
    new_answers.insert("project-name".into(), name);
    Ok((base_answers, new_answers))
}

fn given(values: &BTreeMap<String, String>, source: &str) -> Vec<Given> {
    values.iter().map(|(k, v)| Given { key: k.clone(), value: v.clone(), source: source.into() }).collect()
}

/// The values of `given` that `placeholders` knows (a template's answers outlive its placeholders).
fn known(placeholders: &Placeholders, given: &[Given]) -> Vec<Given> {
    given.iter().filter(|g| placeholders.get(&g.key).is_some()).cloned().collect()
}

/// `[package] name` of the project's root manifest.
fn package_name(project: &Path) -> Result<String> {
    let path = project.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))?;
    let value: toml::Value = toml::from_str(&text)
        .map_err(|e| Error::BadManifest { path: path.clone(), message: e.message().to_string() })?;
    value
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string)
        .ok_or(Error::BadManifest { path, message: "no [package] name".into() })
}

/// Refuse a project with uncommitted changes, so that the update's own changes are exactly what
/// `git diff` shows and `git checkout .` undoes.
fn require_clean(project: &Path) -> Result<()> {
    let out = Command::new("git")
        .arg("-C")
        .arg(project)
        .args(["status", "--porcelain", "--untracked-files=all", "--", "."])
        .output();
    match out {
        Ok(out) if out.status.success() && out.stdout.is_empty() => Ok(()),
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut files: Vec<&str> = text.lines().take(10).collect();
            if text.lines().count() > 10 {
                files.push("...");
            }
            Err(Error::DirtyTree { path: project.to_path_buf(), files: files.join("\n  ") })
        }
        _ => Err(Error::NotInGit { path: project.to_path_buf() }),
    }
}

struct Labels {
    base: String,
    new: String,
}

/// One file write (`Some`) or removal (`None`).
#[derive(Debug)]
struct Change {
    path: String,
    contents: Option<Vec<u8>>,
}

/// What to do with one path, given its base, the user's and the new version.
struct Decision {
    action: Option<Action>,
    contents: Option<Option<Vec<u8>>>,
    note: Option<String>,
}

impl Decision {
    fn nothing() -> Self {
        Decision { action: None, contents: None, note: None }
    }
    fn report(action: Action, note: Option<String>) -> Self {
        Decision { action: Some(action), contents: None, note }
    }
    fn write(action: Action, bytes: Vec<u8>, note: Option<String>) -> Self {
        Decision { action: Some(action), contents: Some(Some(bytes)), note }
    }
}

fn plan(
    project: &Path,
    base: &Tree,
    new: &Tree,
    manifest: &Manifest,
    labels: &Labels,
    report: &mut Report,
) -> Result<Vec<Change>> {
    let read = |path: &str| -> Result<Option<Vec<u8>>> {
        let full = project.join(path);
        match std::fs::read(&full) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { context: format!("reading {}", full.display()), source }),
        }
    };
    let mut changes = Vec::new();
    let mut done = BTreeSet::new();
    done.insert(MANIFEST.to_string());

    // Moves first: the user's file at the old path is merged into the new one.
    for rename in &manifest.renamed {
        let (from, to) = (rename.from.as_str(), rename.to.as_str());
        let applies =
            base.contains_key(from) && !base.contains_key(to) && new.contains_key(to) && !new.contains_key(from);
        if !applies || read(to)?.is_some() {
            continue;
        }
        done.insert(from.to_string());
        done.insert(to.to_string());
        let Some(ours) = read(from)? else {
            report.lines.push(Line {
                path: to.into(),
                action: Action::DeletedByYou,
                note: Some(format!("you deleted {from}, which the template moved here")),
            });
            continue;
        };
        let decision = decide(to, Some(&base[from]), Some(&ours), Some(&new[to]), false, labels);
        let contents = match decision.contents {
            Some(Some(bytes)) => bytes,
            _ => ours,
        };
        let action = decision.action.unwrap_or(Action::Updated);
        report.lines.push(Line { path: to.into(), action, note: Some(format!("moved from {from}")) });
        changes.push(Change { path: to.into(), contents: Some(contents) });
        changes.push(Change { path: from.into(), contents: None });
    }

    let paths: BTreeSet<&String> = base.keys().chain(new.keys()).collect();
    for path in paths {
        if done.contains(path.as_str()) {
            continue;
        }
        let ours = read(path)?;
        let seeded = manifest.is_seeded(path);
        let decision = decide(path, base.get(path), ours.as_ref(), new.get(path), seeded, labels);
        match decision.action {
            Some(action) => report.lines.push(Line { path: path.clone(), action, note: decision.note }),
            None => report.unchanged += 1,
        }
        if let Some(contents) = decision.contents {
            changes.push(Change { path: path.clone(), contents });
        }
    }
    Ok(changes)
}

fn decide(
    path: &str,
    base: Option<&Vec<u8>>,
    ours: Option<&Vec<u8>>,
    new: Option<&Vec<u8>>,
    seeded: bool,
    labels: &Labels,
) -> Decision {
    match (base, ours, new) {
        (_, Some(o), Some(n)) if o == n => Decision::nothing(),
        (None, None, Some(n)) => Decision::write(Action::Added, n.clone(), None),
        (_, None, None) => Decision::nothing(),
        (Some(b), None, Some(n)) => {
            let note = if b == n { None } else { Some("the template changed it; your deletion stands".into()) };
            if seeded && b == n { Decision::nothing() } else { Decision::report(Action::DeletedByYou, note) }
        }
        (Some(b), Some(o), None) if b == o && !seeded => {
            Decision { action: Some(Action::Removed), contents: Some(None), note: None }
        }
        (Some(_), Some(_), None) => Decision::report(Action::Kept, Some("yours; the template no longer has it".into())),
        (None, Some(_), None) => Decision::nothing(),
        (b, Some(o), Some(n)) => {
            let base_bytes: &[u8] = b.map_or(&[], |b| b.as_slice());
            if base_bytes == o.as_slice() && !seeded {
                return Decision::write(Action::Updated, n.clone(), None);
            }
            if b.is_some_and(|b| b == n) {
                return if seeded { Decision::nothing() } else { Decision::report(Action::Kept, None) };
            }
            if seeded {
                return Decision::report(Action::Kept, Some(seeded_note(base_bytes, n)));
            }
            if path == LOCK || path.ends_with("/Cargo.lock") {
                return Decision::report(
                    Action::Kept,
                    Some(
                        "yours, not merged: cargo locks what the new manifests need at the next build and \
                         keeps every other version you have; `cargo update` takes the newest"
                            .into(),
                    ),
                );
            }
            if is_binary(base_bytes) || is_binary(o) || is_binary(n) {
                return Decision::report(
                    Action::Kept,
                    Some("yours; a binary file the template also changed, not merged".into()),
                );
            }
            let (base_text, ours_text, new_text) = (text(base_bytes), text(o), text(n));
            match diffy::merge(base_text, ours_text, new_text) {
                Ok(merged) => Decision::write(Action::Merged, merged.into_bytes(), None),
                Err(conflicted) => {
                    let note = if b.is_none() { Some("added by you and by the template".into()) } else { None };
                    Decision::write(Action::Conflict, relabel(&conflicted, labels).into_bytes(), note)
                }
            }
        }
    }
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("checked by is_binary")
}

fn is_binary(bytes: &[u8]) -> bool {
    bytes.contains(&0) || std::str::from_utf8(bytes).is_err()
}

/// The template's change to a seeded file, as a unified diff for the user to apply or not.
fn seeded_note(base: &[u8], new: &[u8]) -> String {
    if is_binary(base) || is_binary(new) {
        return "yours (seeded); the template's version changed".into();
    }
    let patch = diffy::create_patch(text(base), text(new)).to_string();
    let body: Vec<String> = patch.lines().skip(2).map(|l| format!("      {l}")).collect();
    format!("yours (seeded); the template changed it by:\n{}", body.join("\n"))
}

/// diffy's markers say ours / original / theirs; say whose each side is.
fn relabel(conflicted: &str, labels: &Labels) -> String {
    let mut out = String::with_capacity(conflicted.len() + 256);
    for line in conflicted.split_inclusive('\n') {
        let (body, end) = line.strip_suffix('\n').map_or((line, ""), |b| (b, "\n"));
        match body {
            "<<<<<<< ours" => out.push_str(&format!("<<<<<<< yours{end}")),
            "||||||| original" => out.push_str(&format!("||||||| {}{end}", labels.base)),
            ">>>>>>> theirs" => out.push_str(&format!(">>>>>>> {}{end}", labels.new)),
            _ => out.push_str(line),
        }
    }
    out
}

fn has_markers(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("<<<<<<< ") || l.starts_with(">>>>>>> "))
}

fn pending_file(conflicts: &[String], manifest: &[u8]) -> Result<Vec<u8>> {
    let mut table = toml::map::Map::new();
    table.insert("conflicts".into(), toml::Value::Array(conflicts.iter().cloned().map(toml::Value::String).collect()));
    table.insert("manifest".into(), toml::Value::String(String::from_utf8_lossy(manifest).into_owned()));
    let body = toml::to_string(&toml::Value::Table(table)).map_err(|e| Error::Template(e.to_string()))?;
    Ok(format!(
        "# An update that left conflicts. Resolve the markers in the files below (or undo the update \
         with git), then run `candlecutter update` again to finish it.\n{body}"
    )
    .into_bytes())
}

#[derive(serde::Deserialize)]
struct Pending {
    conflicts: Vec<String>,
    manifest: String,
}

/// A second `update` after conflicts: once no markers remain, record the new template.
fn finish(project: &Path, options: &Options) -> Result<Report> {
    let path = project.join(PENDING);
    let bytes = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
    let pending: Pending = toml::from_str(&String::from_utf8_lossy(&bytes))
        .map_err(|e| Error::BadManifest { path: path.clone(), message: e.message().to_string() })?;
    let new = Manifest::parse(pending.manifest.as_bytes(), &path)?;
    let mut report = Report {
        from: "an update with conflicts".into(),
        to: format!("{} ({})", new.template.version, &new.template.hash[..new.template.hash.len().min(19)]),
        lines: Vec::new(),
        unchanged: 0,
        dry_run: options.dry_run,
        up_to_date: false,
        finished: true,
    };
    for file in &pending.conflicts {
        let text = std::fs::read_to_string(project.join(file)).unwrap_or_default();
        if has_markers(&text) {
            report.lines.push(Line {
                path: file.clone(),
                action: Action::Conflict,
                note: Some("markers remain".into()),
            });
        }
    }
    if report.lines.is_empty() && !options.dry_run {
        let changes = [
            Change { path: MANIFEST.into(), contents: Some(pending.manifest.into_bytes()) },
            Change { path: PENDING.into(), contents: None },
        ];
        apply(project, &changes, options.fail_at)?;
    }
    Ok(report)
}

/// Write every change or none: each file goes through a temporary sibling and a rename, and the
/// originals are copied aside first so that a failure restores them all.
fn apply(project: &Path, changes: &[Change], fail_at: Option<usize>) -> Result<()> {
    let backup = tempfile::Builder::new()
        .prefix(".candlecutter-update-")
        .tempdir_in(project)
        .map_err(io(format!("creating a backup folder in {}", project.display())))?;
    let mut done: Vec<(usize, bool)> = Vec::new();
    let mut created: Vec<PathBuf> = Vec::new();
    let mut result = Ok(());
    for (i, change) in changes.iter().enumerate() {
        let target = project.join(&change.path);
        let existed = target.exists();
        if existed && let Err(e) = std::fs::copy(&target, backup.path().join(i.to_string())) {
            result = Err(Error::Io { context: format!("backing up {}", target.display()), source: e });
            break;
        }
        done.push((i, existed));
        if fail_at == Some(i) {
            result = Err(Error::Io {
                context: format!("writing {}", target.display()),
                source: std::io::Error::other("injected failure"),
            });
            break;
        }
        if let Err(e) = apply_one(&target, change.contents.as_deref(), &mut created) {
            result = Err(e);
            break;
        }
    }
    if let Err(err) = result {
        for (i, existed) in done.into_iter().rev() {
            let target = project.join(&changes[i].path);
            if existed {
                if let Some(parent) = target.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                let _ = std::fs::copy(backup.path().join(i.to_string()), &target);
            } else {
                let _ = std::fs::remove_file(&target);
            }
            let _ = std::fs::remove_file(temporary(&target));
        }
        for dir in created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
        return Err(Error::UpdateRolledBack { source: Box::new(err) });
    }
    // Folders the removals emptied go too, as they would in a fresh render.
    for change in changes.iter().filter(|c| c.contents.is_none()) {
        let target = project.join(&change.path);
        for dir in target.ancestors().skip(1).take_while(|d| *d != project) {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
    Ok(())
}

fn temporary(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.candlecutter-new"))
}

fn apply_one(target: &Path, contents: Option<&[u8]>, created: &mut Vec<PathBuf>) -> Result<()> {
    let Some(bytes) = contents else {
        return std::fs::remove_file(target).map_err(io(format!("removing {}", target.display())));
    };
    if let Some(parent) = target.parent() {
        let mut missing: Vec<PathBuf> =
            parent.ancestors().take_while(|d| d.symlink_metadata().is_err()).map(Path::to_path_buf).collect();
        missing.reverse();
        for dir in missing {
            std::fs::create_dir(&dir).map_err(io(format!("creating {}", dir.display())))?;
            created.push(dir);
        }
    }
    let tmp = temporary(target);
    std::fs::write(&tmp, bytes).map_err(io(format!("writing {}", tmp.display())))?;
    if let Ok(meta) = std::fs::metadata(target) {
        std::fs::set_permissions(&tmp, meta.permissions()).map_err(io(format!("writing {}", tmp.display())))?;
    }
    std::fs::rename(&tmp, target).map_err(io(format!("writing {}", target.display())))
}
