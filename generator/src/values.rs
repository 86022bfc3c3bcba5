//! Values files (cargo-generate's `--values-file` format) and the named presets in examples/,
//! which are values files embedded in the binary.

use std::path::Path;

use crate::embedded;
use crate::error::{Error, Result, io};
use crate::placeholders::Given;

/// A named preset: a values file from examples/.
pub struct Preset {
    pub name: String,
    /// The file's first comment line.
    pub summary: String,
    pub values: Vec<Given>,
}

/// Read a values file: a `[values]` table of strings and booleans.
pub fn read_file(path: &Path) -> Result<Vec<Given>> {
    let text =
        std::fs::read_to_string(path).map_err(|source| Error::ValuesFileRead { path: path.to_path_buf(), source })?;
    parse(&text, &path.display().to_string())
        .map_err(|message| Error::ValuesFileParse { path: path.to_path_buf(), message })
}

fn parse(text: &str, source: &str) -> std::result::Result<Vec<Given>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    if let Some(other) = table.keys().find(|k| *k != "values") {
        return Err(format!("unexpected top-level key {other:?}; only a [values] table is allowed"));
    }
    let values = match table.get("values") {
        Some(toml::Value::Table(values)) => values,
        Some(_) => return Err("`values` must be a table: [values]".into()),
        None => return Err("there is no [values] table".into()),
    };
    values
        .iter()
        .map(|(key, value)| {
            let value = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Boolean(b) => b.to_string(),
                other => return Err(format!("{key} = {other}: only strings and true/false are allowed")),
            };
            Ok(Given { key: key.clone(), value, source: source.to_string() })
        })
        .collect()
}

/// Every preset, by name (the file name without `.toml`).
pub fn presets() -> Result<Vec<Preset>> {
    embedded::preset_files()
        .iter()
        .filter_map(|(file, bytes)| file.strip_suffix(".toml").map(|name| (name, bytes)))
        .map(|(name, bytes)| {
            let text = std::str::from_utf8(bytes).map_err(|e| Error::Template(e.to_string()))?;
            let summary =
                text.lines().find_map(|l| l.strip_prefix('#')).map(|l| l.trim().to_string()).unwrap_or_default();
            let values =
                parse(text, &format!("preset {name}")).map_err(|e| Error::Template(format!("preset {name}: {e}")))?;
            Ok(Preset { name: name.to_string(), summary, values })
        })
        .collect()
}

pub fn preset(name: &str) -> Result<Preset> {
    let mut all = presets()?;
    match all.iter().position(|p| p.name == name) {
        Some(i) => Ok(all.swap_remove(i)),
        None => Err(Error::UnknownPreset {
            name: name.to_string(),
            known: all.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Write `values` as a values file that `cargo generate --values-file` accepts.
pub fn write_file(path: &Path, values: &[(String, String)]) -> Result<()> {
    let mut text = String::from("[values]\n");
    for (key, value) in values {
        let literal = match value.as_str() {
            "true" | "false" => value.clone(),
            _ => toml::Value::String(value.clone()).to_string(),
        };
        text.push_str(&format!("{key} = {literal}\n"));
    }
    std::fs::write(path, text).map_err(io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strings_and_booleans() {
        let values = parse("[values]\nmodel = \"mlp\"\nonnx = false\n", "t").unwrap();
        let pairs: Vec<_> = values.iter().map(|g| (g.key.as_str(), g.value.as_str())).collect();
        assert_eq!(pairs, [("model", "mlp"), ("onnx", "false")]);
    }

    #[test]
    fn refuses_what_is_not_a_values_file() {
        assert!(parse("model = \"mlp\"", "t").unwrap_err().contains("unexpected top-level key"));
        assert!(parse("[values]\nmodel = 3", "t").unwrap_err().contains("only strings"));
        assert!(parse("[values\n", "t").is_err());
    }

    #[test]
    fn every_preset_parses_and_names_only_known_placeholders() {
        let placeholders = crate::placeholders::Placeholders::from_template().unwrap();
        let presets = presets().unwrap();
        assert!(presets.len() >= 2);
        for p in presets {
            assert!(!p.summary.is_empty(), "{} needs a first-line comment", p.name);
            placeholders.resolve(&[p.values], true).unwrap();
        }
    }
}
