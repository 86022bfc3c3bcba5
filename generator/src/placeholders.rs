//! The template's placeholders, read from its own `cargo-generate.toml` (the single source of the
//! names, choices and defaults), and the checking of user-given values against them.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::embedded;
use crate::error::{Error, Result};

/// Variables that cargo-generate fills in itself; a value given for them would be ignored, so it
/// is refused with the way to set them instead.
const BUILTINS: &[(&str, &str)] = &[
    ("project-name", "it is the NAME argument"),
    ("crate_name", "it is derived from the NAME argument"),
    (
        "authors",
        "cargo-generate takes it from $CARGO_NAME and $CARGO_EMAIL (or git config user.name and \
         user.email); set those instead",
    ),
];

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Choice(Vec<String>),
    Bool,
    /// Free text, optionally constrained by a regular expression.
    Text(Option<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Placeholder {
    pub name: String,
    pub prompt: String,
    pub kind: Kind,
    pub default: String,
}

impl Placeholder {
    /// Check one value, returning it in the form cargo-generate expects.
    fn check(&self, value: &str) -> Result<String> {
        let invalid =
            |choices: String| Error::InvalidChoice { key: self.name.clone(), value: value.to_string(), choices };
        match &self.kind {
            Kind::Choice(choices) if choices.iter().any(|c| c == value) => Ok(value.to_string()),
            Kind::Choice(choices) => Err(invalid(choices.join(", "))),
            Kind::Bool => match value {
                "true" | "false" => Ok(value.to_string()),
                _ => Err(invalid("true, false".into())),
            },
            Kind::Text(Some(pattern)) => {
                let regex =
                    regex::Regex::new(pattern).map_err(|e| Error::Template(format!("regex of {}: {e}", self.name)))?;
                if regex.is_match(value) {
                    Ok(value.to_string())
                } else {
                    Err(invalid(format!("any text matching {pattern}")))
                }
            }
            Kind::Text(None) => Ok(value.to_string()),
        }
    }

    /// The choices in words, for listings.
    pub fn describe_choices(&self) -> String {
        match &self.kind {
            Kind::Choice(choices) => choices.join(" | "),
            Kind::Bool => "true | false".into(),
            Kind::Text(_) => "text".into(),
        }
    }
}

/// A value given by the user, and where it came from (for conflict messages).
#[derive(Debug, Clone, PartialEq)]
pub struct Given {
    pub key: String,
    pub value: String,
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct Placeholders(Vec<Placeholder>);

#[derive(Deserialize)]
struct ConfigFile {
    placeholders: BTreeMap<String, RawPlaceholder>,
}

#[derive(Deserialize)]
struct RawPlaceholder {
    #[serde(rename = "type")]
    kind: String,
    prompt: String,
    choices: Option<Vec<String>>,
    default: toml::Value,
    regex: Option<String>,
}

impl Placeholders {
    /// The placeholders of the embedded template.
    pub fn from_template() -> Result<Self> {
        let bytes = embedded::template_file("cargo-generate.toml")
            .ok_or_else(|| Error::Template("cargo-generate.toml is missing".into()))?;
        let text = std::str::from_utf8(bytes).map_err(|e| Error::Template(e.to_string()))?;
        Self::parse(text)
    }

    pub fn parse(text: &str) -> Result<Self> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| Error::Template(e.to_string()))?;
        let mut list = Vec::new();
        for (name, raw) in file.placeholders {
            let kind = match (raw.kind.as_str(), raw.choices) {
                ("string", Some(choices)) => Kind::Choice(choices),
                ("string", None) => Kind::Text(raw.regex),
                ("bool", None) => Kind::Bool,
                (other, _) => {
                    return Err(Error::Template(format!("placeholder {name} has type {other}")));
                }
            };
            let default = match raw.default {
                toml::Value::String(s) => s,
                toml::Value::Boolean(b) => b.to_string(),
                other => return Err(Error::Template(format!("default of {name}: {other}"))),
            };
            list.push(Placeholder { name, prompt: raw.prompt, kind, default });
        }
        // A stable, meaningful order: the variant choices first, free text last.
        list.sort_by_key(|p| (matches!(p.kind, Kind::Text(_)), p.name.clone()));
        Ok(Self(list))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Placeholder> {
        self.0.iter()
    }

    pub fn get(&self, name: &str) -> Option<&Placeholder> {
        self.0.iter().find(|p| p.name == name)
    }

    /// Check `layers` of given values (later layers override earlier ones; within one layer a key
    /// may appear twice only with the same value) and return the values to generate with: every
    /// placeholder when `with_defaults`, else only the given ones.
    pub fn resolve(&self, layers: &[Vec<Given>], with_defaults: bool) -> Result<BTreeMap<String, String>> {
        let mut values = BTreeMap::new();
        if with_defaults {
            for p in &self.0 {
                values.insert(p.name.clone(), p.default.clone());
            }
        }
        for layer in layers {
            let mut seen: BTreeMap<&str, &Given> = BTreeMap::new();
            for given in layer {
                let placeholder = self.lookup(&given.key)?;
                let value = placeholder.check(&given.value)?;
                if let Some(first) = seen.get(given.key.as_str())
                    && first.value != given.value
                {
                    return Err(Error::ConflictingValues {
                        key: given.key.clone(),
                        first: format!("{} ({})", first.value, first.source),
                        second: format!("{} ({})", given.value, given.source),
                    });
                }
                seen.insert(&given.key, given);
                values.insert(placeholder.name.clone(), value);
            }
        }
        Ok(values)
    }

    fn lookup(&self, key: &str) -> Result<&Placeholder> {
        if let Some((key, why)) = BUILTINS.iter().find(|(name, _)| *name == key) {
            return Err(Error::BuiltinPlaceholder { key, why });
        }
        self.get(key).ok_or_else(|| Error::UnknownPlaceholder {
            key: key.to_string(),
            known: self.0.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(key: &str, value: &str) -> Given {
        Given { key: key.into(), value: value.into(), source: "test".into() }
    }

    #[test]
    fn embedded_template_declares_the_variant_placeholders() {
        let p = Placeholders::from_template().unwrap();
        assert_eq!(p.get("backend").unwrap().kind, Kind::Choice(vec!["cpu".into(), "cuda".into()]));
        assert_eq!(p.get("model").unwrap().default, "cnn");
        assert_eq!(p.get("onnx").unwrap().kind, Kind::Bool);
        assert!(p.get("description").is_some());
    }

    #[test]
    fn later_layers_override_earlier_ones() {
        let p = Placeholders::from_template().unwrap();
        let values = p.resolve(&[vec![given("model", "mlp")], vec![given("model", "convnext")]], true).unwrap();
        assert_eq!(values["model"], "convnext");
        assert_eq!(values["backend"], "cpu");
    }

    #[test]
    fn conflicting_values_in_one_layer_are_refused() {
        let p = Placeholders::from_template().unwrap();
        let err = p.resolve(&[vec![given("model", "mlp"), given("model", "cnn")]], true).unwrap_err();
        assert!(matches!(err, Error::ConflictingValues { .. }), "{err}");
    }

    #[test]
    fn unknown_choice_lists_the_valid_ones() {
        let p = Placeholders::from_template().unwrap();
        let err = p.resolve(&[vec![given("model", "resnet")]], true).unwrap_err().to_string();
        assert!(err.contains("mlp, cnn, convnext"), "{err}");
    }

    #[test]
    fn description_with_a_quote_is_refused() {
        let p = Placeholders::from_template().unwrap();
        assert!(p.resolve(&[vec![given("description", "say \"hi\"")]], true).is_err());
        assert!(p.resolve(&[vec![given("description", "digits, 28x28")]], true).is_ok());
    }

    #[test]
    fn builtins_say_how_to_set_them() {
        let p = Placeholders::from_template().unwrap();
        let err = p.resolve(&[vec![given("authors", "me")]], true).unwrap_err().to_string();
        assert!(err.contains("CARGO_NAME"), "{err}");
    }
}
