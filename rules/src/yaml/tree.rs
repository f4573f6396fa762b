//! A spanned YAML tree: every node and mapping key with its line, column and
//! byte span, and numbers kept as their source text.
//!
//! Readers that must report every problem at once (rather than serde's first
//! one), or whose keys take several shapes, walk this tree instead of
//! deserializing into typed structs. `serde-saphyr` still does the parsing: it
//! rejects duplicate keys, enforces the nesting budget and reports positions.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Where a node starts in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
    /// Byte offset of the node's first character (the opening quote of a quoted scalar).
    pub byte: Option<usize>,
    /// Byte length of the node's source text, when known.
    pub byte_len: Option<usize>,
}

/// A parsed YAML node with its position.
#[derive(Debug, Clone)]
pub struct Yaml {
    pub value: YamlValue,
    pub at: Pos,
}

/// A mapping key with its position.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub at: Pos,
}

#[derive(Debug, Clone)]
pub enum YamlValue {
    Null,
    Bool(bool),
    Int(i64),
    /// A non-integer number, kept as its source text so decimals stay exact.
    Number(String),
    Str(String),
    Seq(Vec<Yaml>),
    Map(Vec<(Key, Yaml)>),
}

impl YamlValue {
    /// What the node is, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            YamlValue::Null => "nothing (null)",
            YamlValue::Bool(_) => "a boolean",
            YamlValue::Int(_) | YamlValue::Number(_) => "a number",
            YamlValue::Str(_) => "a string",
            YamlValue::Seq(_) => "a list",
            YamlValue::Map(_) => "a mapping",
        }
    }
}

/// What the parser may spend on one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest accepted nesting of mappings and sequences; `None` keeps the
    /// parser's default budget.
    pub max_depth: Option<usize>,
}

/// Parses one YAML document into a spanned tree. An empty document is a null
/// node at 1:1. The error is the parser's own, for the caller to classify
/// (e.g. a nesting breach) or render with [`super::SourceError::from_yaml`].
pub fn read(src: &str, limits: Limits) -> Result<Yaml, serde_saphyr::Error> {
    let mut options = serde_saphyr::Options::default();
    if let Some(depth) = limits.max_depth {
        let mut budget = serde_saphyr::Budget::default();
        budget.max_depth = depth;
        budget.flow_nesting_limit = depth;
        options.budget = Some(budget);
    }
    // Plain errors: a snippet wrapper would hide the variant callers classify by.
    options.with_snippet = false;
    match serde_saphyr::from_str_with_options::<Option<Spanned<RawYaml>>>(src, options)? {
        Some(root) => Ok(convert(root, src)),
        None => Ok(Yaml {
            value: YamlValue::Null,
            at: Pos {
                line: 1,
                column: 1,
                byte: Some(0),
                byte_len: Some(0),
            },
        }),
    }
}

impl Pos {
    /// The node's source text, when its span is known.
    pub fn text<'s>(&self, src: &'s str) -> Option<&'s str> {
        let (start, len) = self.byte.zip(self.byte_len)?;
        src.get(start..start + len)
    }
}

/// What serde-saphyr hands us: any YAML node, children with their spans.
enum RawYaml {
    Null,
    Bool(bool),
    Int(i64),
    Float,
    BigInt,
    Str(String),
    Seq(Vec<Spanned<RawYaml>>),
    Map(Vec<(Spanned<String>, Spanned<RawYaml>)>),
}

impl<'de> Deserialize<'de> for RawYaml {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawYaml, D::Error> {
        // Each level of YAML nesting costs several large serde frames; growing
        // the stack on demand keeps the 64 allowed levels safe on small thread
        // stacks (test threads, workers) instead of overflowing before the
        // depth budget can refuse the document.
        stacker::maybe_grow(64 * 1024, 1024 * 1024, || {
            deserializer.deserialize_any(RawVisitor)
        })
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawYaml;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<RawYaml, E> {
        Ok(RawYaml::Null)
    }
    fn visit_none<E>(self) -> Result<RawYaml, E> {
        Ok(RawYaml::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawYaml, D::Error> {
        d.deserialize_any(RawVisitor)
    }
    fn visit_bool<E>(self, v: bool) -> Result<RawYaml, E> {
        Ok(RawYaml::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<RawYaml, E> {
        Ok(RawYaml::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<RawYaml, E> {
        Ok(i64::try_from(v).map_or(RawYaml::BigInt, RawYaml::Int))
    }
    fn visit_i128<E>(self, _: i128) -> Result<RawYaml, E> {
        Ok(RawYaml::BigInt)
    }
    fn visit_u128<E>(self, _: u128) -> Result<RawYaml, E> {
        Ok(RawYaml::BigInt)
    }
    fn visit_f64<E>(self, _: f64) -> Result<RawYaml, E> {
        // The value itself is never used: the exact text is read from the source.
        Ok(RawYaml::Float)
    }
    fn visit_str<E>(self, v: &str) -> Result<RawYaml, E> {
        Ok(RawYaml::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<RawYaml, E> {
        Ok(RawYaml::Str(v))
    }
    fn visit_char<E>(self, v: char) -> Result<RawYaml, E> {
        Ok(RawYaml::Str(v.to_string()))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<RawYaml, E> {
        Err(E::custom("binary values are not supported"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawYaml, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(RawYaml::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawYaml, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(RawYaml::Map(entries))
    }
}

fn pos_of(location: &serde_saphyr::Location) -> Pos {
    let span = location.span();
    let known = |v: Option<u64>| {
        v.filter(|v| *v < u64::from(u32::MAX))
            .and_then(|v| usize::try_from(v).ok())
    };
    Pos {
        line: location.line(),
        column: location.column(),
        byte: known(span.byte_offset()),
        byte_len: known(span.byte_len()),
    }
}

/// Converts serde-saphyr's tree into ours. Depth is bounded by the parse budget.
fn convert(node: Spanned<RawYaml>, src: &str) -> Yaml {
    let at = pos_of(&node.referenced);
    let number_text = || {
        at.byte
            .zip(at.byte_len)
            .and_then(|(start, len)| src.get(start..start + len))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let value = match node.value {
        RawYaml::Null => YamlValue::Null,
        RawYaml::Bool(b) => YamlValue::Bool(b),
        RawYaml::Int(i) => YamlValue::Int(i),
        RawYaml::Float | RawYaml::BigInt => YamlValue::Number(number_text()),
        RawYaml::Str(s) => YamlValue::Str(s),
        RawYaml::Seq(items) => YamlValue::Seq(items.into_iter().map(|i| convert(i, src)).collect()),
        RawYaml::Map(entries) => YamlValue::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    (
                        Key {
                            name: k.value,
                            at: pos_of(&k.referenced),
                        },
                        convert(v, src),
                    )
                })
                .collect(),
        ),
    };
    Yaml { value, at }
}
