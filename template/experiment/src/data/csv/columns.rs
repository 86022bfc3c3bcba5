//! How a table's config names its columns and its delimiter: `"target": "price"` or
//! `["a", "b"]`, and `"delimiter": ";"`.

use serde::{Deserialize, Serialize};

/// One column name or several.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Columns {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Columns {
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::None => Vec::new(),
            Self::One(name) => vec![name.clone()],
            Self::Many(names) => names.clone(),
        }
    }
}

/// A field delimiter: `","`, `";"`, `"\t"` or `"tab"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiter(pub u8);

impl Serialize for Delimiter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&char::from(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for Delimiter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "," => Ok(Self(b',')),
            ";" => Ok(Self(b';')),
            "\t" | "tab" => Ok(Self(b'\t')),
            other => Err(serde::de::Error::custom(format!("expected \",\", \";\" or \"tab\", got {other:?}"))),
        }
    }
}
