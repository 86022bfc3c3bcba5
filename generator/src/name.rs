//! Project names: what cargo accepts as a package name, what cargo-generate keeps unchanged, and
//! what does not clash with the crates inside the generated workspace.

use heck::{ToKebabCase, ToSnakeCase};

use crate::error::{Error, Result};

/// Rust keywords, strict and reserved: a package named after one has no valid crate name.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate", "do", "dyn", "else",
    "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "macro", "match", "mod",
    "move", "mut", "override", "priv", "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true",
    "try", "type", "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Names cargo refuses for packages (build-directory names and the standard library's crates),
/// and names Windows cannot use for a folder.
const RESERVED: &[&str] = &[
    "build",
    "deps",
    "examples",
    "incremental",
    "test",
    "std",
    "core",
    "alloc",
    "proc_macro",
    "proc-macro",
    "con",
    "prn",
    "aux",
    "nul",
    "com1",
    "com2",
    "com3",
    "com4",
    "com5",
    "com6",
    "com7",
    "com8",
    "com9",
    "lpt1",
    "lpt2",
    "lpt3",
    "lpt4",
    "lpt5",
    "lpt6",
    "lpt7",
    "lpt8",
    "lpt9",
];

const MAX_LEN: usize = 64;

/// Check `name` for use as the generated workspace's package and folder name. `taken` are the
/// names of the generated workspace's own crates and dependencies, which the project cannot share.
pub fn validate(name: &str, taken: &[String]) -> Result<()> {
    let invalid = |reason: String| Err(Error::InvalidName { name: name.to_string(), reason });
    let Some(first) = name.chars().next() else {
        return invalid("the name is empty; pass a name such as my-mnist".into());
    };
    if name.len() > MAX_LEN {
        return invalid(format!("it is {} characters long; use at most {MAX_LEN}", name.len()));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return invalid(format!(
            "{bad:?} is not allowed; use ASCII letters, digits, '-' and '_' (the name is also a folder, \
             so no paths: use --destination for where it goes)"
        ));
    }
    if !first.is_ascii_alphabetic() {
        return invalid("package names must start with a letter".into());
    }
    let crate_name = name.to_snake_case();
    if KEYWORDS.contains(&crate_name.as_str()) {
        return invalid(format!("{crate_name} is a Rust keyword and cannot name a crate"));
    }
    if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        return invalid("cargo reserves this name".into());
    }
    if taken.iter().any(|t| t.to_snake_case() == crate_name) {
        return invalid(format!(
            "the generated workspace already has a crate or dependency called {crate_name}; \
             pick a name such as {name}-mnist"
        ));
    }
    // cargo-generate renames anything that is neither snake_case nor kebab-case; refusing here
    // keeps the folder name exactly what was typed.
    if crate_name != name && name.to_kebab_case() != name {
        return invalid(format!("cargo-generate would rename it; use {:?}", name.to_kebab_case()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str) -> Result<()> {
        validate(name, &["model".to_string(), "candle-core".to_string()])
    }

    #[test]
    fn accepts_kebab_and_snake_case() {
        for name in ["my-mnist", "my_mnist", "mnist2", "a"] {
            assert!(check(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn refuses_what_cargo_or_cargo_generate_would_refuse_or_rename() {
        for name in [
            "",
            "1abc",
            "my mnist",
            "a/b",
            "..",
            "fn",
            "test",
            "build",
            "deps",
            "self",
            "MyMnist",
            "my--mnist",
            "trailing-",
            "model",
            "candle_core",
            "naïve",
            "-lead",
        ] {
            assert!(check(name).is_err(), "{name:?} should be refused");
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        let msg = check("MyMnist").unwrap_err().to_string();
        assert!(msg.contains("\"my-mnist\""), "{msg}");
        let msg = check("a/b").unwrap_err().to_string();
        assert!(msg.contains("--destination"), "{msg}");
    }
}
