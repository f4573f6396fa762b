//! A spanned YAML tree for policy and rule files, built on `serde-saphyr`.
//!
//! Every node keeps its line and column, and every scalar keeps the exact text
//! the author wrote: an unquoted `0.15` is read back from the source, never
//! through the `f64` a YAML number would otherwise become, so decimals stay exact.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A YAML node with its position (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    pub line: usize,
    pub column: usize,
    /// True for a `"..."` or `'...'` scalar (its content starts one column later).
    pub quoted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Null,
    /// The scalar's text: decoded for quoted strings, verbatim otherwise.
    Scalar(String),
    Map(Vec<(Key, Node)>),
    Seq(Vec<Node>),
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub line: usize,
    pub column: usize,
}

/// A file that is not well-formed YAML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct YamlError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses one YAML document into a spanned tree.
pub fn parse(src: &str) -> Result<Node, YamlError> {
    let raw: Spanned<Raw> = serde_saphyr::from_str(src).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (to_usize(l.line()), to_usize(l.column())))
            .unwrap_or((0, 0));
        let message = e.to_string();
        // The library's message repeats the position; keep its first line only.
        let message = message.lines().next().unwrap_or("invalid YAML").to_string();
        YamlError {
            line,
            column,
            message,
        }
    })?;
    Ok(build(raw, src))
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// What serde hands us; numbers are placeholders filled from the source text.
enum Raw {
    Null,
    Text(String),
    /// A plain scalar that YAML resolved to a number or bool: re-read verbatim.
    Verbatim,
    Map(Vec<(Spanned<String>, Spanned<Raw>)>),
    Seq(Vec<Spanned<Raw>>),
}

fn build(raw: Spanned<Raw>, src: &str) -> Node {
    let location = raw.referenced;
    let span = location.span();
    let text_of_span = || {
        let start = span.byte_offset().and_then(|o| usize::try_from(o).ok())?;
        let len = span.byte_len().and_then(|o| usize::try_from(o).ok())?;
        src.get(start..start + len)
    };
    let quoted = text_of_span().is_some_and(|t| t.starts_with('"') || t.starts_with('\''));
    let value = match raw.value {
        Raw::Null => NodeValue::Null,
        Raw::Text(s) => NodeValue::Scalar(s),
        Raw::Verbatim => NodeValue::Scalar(text_of_span().unwrap_or("").trim().to_string()),
        Raw::Map(entries) => NodeValue::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = Key {
                        name: k.value,
                        line: to_usize(k.referenced.line()),
                        column: to_usize(k.referenced.column()),
                    };
                    (key, build(v, src))
                })
                .collect(),
        ),
        Raw::Seq(items) => NodeValue::Seq(items.into_iter().map(|i| build(i, src)).collect()),
    };
    Node {
        value,
        line: to_usize(location.line()),
        column: to_usize(location.column()),
        quoted,
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Raw, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Raw, E> {
        Ok(Raw::Verbatim)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Raw, E> {
        Ok(Raw::Verbatim)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Raw, E> {
        Ok(Raw::Verbatim)
    }
    fn visit_i128<E>(self, _: i128) -> Result<Raw, E> {
        Ok(Raw::Verbatim)
    }
    fn visit_u128<E>(self, _: u128) -> Result<Raw, E> {
        Ok(Raw::Verbatim)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Raw, E> {
        Ok(Raw::Verbatim)
    }
    fn visit_str<E>(self, s: &str) -> Result<Raw, E> {
        Ok(Raw::Text(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Raw, E> {
        Ok(Raw::Text(s))
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Spanned<Raw>>()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

impl Node {
    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            NodeValue::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            NodeValue::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_scalar(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// The 1-based column of the first character of a scalar's content.
    pub fn content_column(&self) -> usize {
        self.column + usize::from(self.quoted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_keep_their_exact_text_and_position() {
        let src = "a: 0.15\nb: \"0.150\"\nc:\n  - 1.100000000000000000000001\n  - true\nd: ~\n";
        let root = parse(src).expect("parses");
        let a = root.get("a").expect("a");
        assert_eq!(
            (a.as_scalar(), a.line, a.column, a.quoted),
            (Some("0.15"), 1, 4, false)
        );
        let b = root.get("b").expect("b");
        assert_eq!(
            (b.as_scalar(), b.quoted, b.content_column()),
            (Some("0.150"), true, 5)
        );
        let c = root.get("c").and_then(Node::as_seq).expect("c");
        assert_eq!(c[0].as_scalar(), Some("1.100000000000000000000001"));
        assert_eq!(c[1].as_scalar(), Some("true"));
        assert_eq!(root.get("d").map(|d| &d.value), Some(&NodeValue::Null));
    }

    #[test]
    fn malformed_yaml_reports_a_position() {
        let err = parse("a: [1, 2\nb: 3\n").expect_err("malformed");
        assert!(err.line >= 1, "{err}");
    }
}
