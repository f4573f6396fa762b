//! The view of a YAML document that policy and rule files read: every scalar
//! as the exact text the author wrote (an unquoted `0.15` is read back from the
//! source, never through the `f64` a YAML number would otherwise become, so
//! decimals stay exact), with 1-based line and column. Built from [`super::tree`].

use super::position::ErrorAt;
use super::tree::{Limits, Yaml, YamlValue, read};

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
    Map(Vec<(NodeKey, Node)>),
    Seq(Vec<Node>),
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeKey {
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
    let tree = read(src, Limits { max_depth: None }).map_err(|e| {
        let at = ErrorAt::of(&e);
        YamlError {
            line: to_usize(at.line),
            column: to_usize(at.column),
            message: at.message,
        }
    })?;
    Ok(build(tree, src))
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn build(node: Yaml, src: &str) -> Node {
    let text = node.at.text(src);
    let quoted = text.is_some_and(|t| t.starts_with('"') || t.starts_with('\''));
    let verbatim = || NodeValue::Scalar(text.unwrap_or("").trim().to_string());
    let value = match node.value {
        YamlValue::Null => NodeValue::Null,
        YamlValue::Str(s) => NodeValue::Scalar(s),
        YamlValue::Bool(_) | YamlValue::Int(_) | YamlValue::Number(_) => verbatim(),
        YamlValue::Map(entries) => NodeValue::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = NodeKey {
                        name: k.name,
                        line: to_usize(k.at.line),
                        column: to_usize(k.at.column),
                    };
                    (key, build(v, src))
                })
                .collect(),
        ),
        YamlValue::Seq(items) => NodeValue::Seq(items.into_iter().map(|i| build(i, src)).collect()),
    };
    Node {
        value,
        line: to_usize(node.at.line),
        column: to_usize(node.at.column),
        quoted,
    }
}

impl Node {
    pub fn as_map(&self) -> Option<&[(NodeKey, Node)]> {
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
