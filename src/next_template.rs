//! A "next release" of the template, made by the tests from a copy of `template/`: one change of
//! each kind `candlecutter update` must carry into a project, each in a file the tests know.

use std::path::{Path, PathBuf};

/// The version the copy declares.
pub const VERSION: &str = "0.2.0";
/// Appended to `kernels/src/lib.rs`: a kernel change that builds.
pub const KERNEL_CHANGE: &str = "\n/// The template's release this project was last updated to (a test's change).\npub const UPDATED_TO: &str = \"0.2.0\";\n";
/// Appended to every model file: a change in the same file as the user's edit, elsewhere in it.
pub const MODEL_CHANGE: &str = "\n// Template 0.2.0: a change at the end of the model file.\n";
/// A new file, rendered with the new placeholder.
pub const ADDED: &str = "UPDATING.md";
/// A file the copy no longer has (binary, the only one in its folder), and the README line that
/// showed it.
pub const REMOVED: &str = "docs/accuracy.png";
/// A file the copy moves, with a `[[renamed]]` entry in its manifest.
pub const RENAMED_FROM: &str = "inference/assets/LICENSE-DejaVu.txt";
pub const RENAMED_TO: &str = "inference/assets/DejaVu-LICENSE.txt";
/// The new placeholder and its default.
pub const PLACEHOLDER: &str = "license";
pub const PLACEHOLDER_DEFAULT: &str = "MIT OR Apache-2.0";

/// Copy this repository's template to `dir/template`, make the changes above, stamp it as
/// [`VERSION`] with the `candlecutter` binary, and return the copy's folder.
pub fn write(dir: &Path) -> PathBuf {
    let template = dir.join("template");
    copy_dir(&crate::repo_root().join("template"), &template);
    let edit = |path: &str, f: &dyn Fn(String) -> String| {
        let file = template.join(path);
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        std::fs::write(&file, f(text)).unwrap();
    };
    edit("kernels/src/lib.rs", &|t| t + KERNEL_CHANGE);
    for model in ["mlp", "cnn", "convnext"] {
        edit(&format!("model/src/{model}.rs"), &|t| t + MODEL_CHANGE);
    }
    std::fs::write(
        template.join(format!("{ADDED}.liquid")),
        format!("# Updating\n\nThis project is licensed {{{{{PLACEHOLDER}}}}}.\n"),
    )
    .unwrap();
    std::fs::remove_file(template.join(REMOVED)).unwrap();
    edit("README.md.liquid", &|t| t.lines().filter(|l| !l.contains(REMOVED)).map(|l| format!("{l}\n")).collect());
    std::fs::rename(template.join(RENAMED_FROM), template.join(RENAMED_TO)).unwrap();
    edit("cargo-generate.toml", &|t| {
        t + &format!(
            "\n[placeholders.{PLACEHOLDER}]\ntype = \"string\"\nprompt = \"Licence\"\ndefault = \"{PLACEHOLDER_DEFAULT}\"\n"
        )
    });
    edit(".candlecutter.toml.liquid", &|t| {
        let t = t.replace("[files]\n", &format!("{PLACEHOLDER} = \"{{{{{PLACEHOLDER}}}}}\"\n\n[files]\n"));
        t + &format!("\n[[renamed]]\nfrom = \"{RENAMED_FROM}\"\nto = \"{RENAMED_TO}\"\nsince = \"{VERSION}\"\n")
    });
    let out = crate::candlecutter(dir, &["template", "stamp", "--version", VERSION, &template.display().to_string()]);
    crate::assert_success("candlecutter template stamp", &out);
    template
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_name() == "target" {
            continue;
        }
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}
