//! The YAML layer: source limits, parsing into a position-carrying tree, and
//! mapping byte offsets inside scalars back to `line:column`.
//!
//! Definitions are first parsed into a generic [`Yaml`] tree (every node and key
//! with its position) rather than straight into typed structs: serde stops at
//! the first unknown key or wrong type, while the loader must report every
//! problem at once, and several keys take more than one shape (`next: id` or a
//! list; a type as `string` or `{type: list, of: …}`), which serde could only
//! express with untagged enums that lose positions. `serde-saphyr` still does
//! the parsing: it rejects duplicate keys, enforces the nesting budget and
//! reports positions.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{MessageFormatter, Spanned};

use super::diagnostic::codes;

/// Largest accepted definition file.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Deepest accepted nesting of mappings and sequences.
pub const MAX_NESTING: usize = 64;

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

/// A problem found before or while parsing: code, position, message.
#[derive(Debug, Clone)]
pub struct ParseProblem {
    pub code: &'static str,
    pub line: u64,
    pub column: u64,
    pub message: String,
    pub hint: Option<String>,
}

/// Checks the source limits, then parses. Tabs are all reported at once; any
/// other problem stops parsing (the YAML cannot be read past it).
pub fn parse(src: &str) -> Result<Yaml, Vec<ParseProblem>> {
    if src.len() > MAX_FILE_BYTES {
        return Err(vec![ParseProblem {
            code: codes::E_TOO_LARGE,
            line: 1,
            column: 1,
            message: format!(
                "the file is {} bytes; a definition may be at most {MAX_FILE_BYTES} bytes (1 MiB)",
                src.len()
            ),
            hint: Some("split the procedure into several processes linked by start_process".into()),
        }]);
    }
    let tabs = tab_indentation(src);
    if !tabs.is_empty() {
        return Err(tabs);
    }
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_NESTING;
    budget.flow_nesting_limit = MAX_NESTING;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    // Plain errors: a snippet wrapper would hide the variant we classify by.
    options.with_snippet = false;
    match serde_saphyr::from_str_with_options::<Option<Spanned<RawYaml>>>(src, options) {
        Ok(Some(root)) => Ok(convert(root, src)),
        Ok(None) => Ok(Yaml {
            value: YamlValue::Null,
            at: Pos {
                line: 1,
                column: 1,
                byte: Some(0),
                byte_len: Some(0),
            },
        }),
        Err(err) => Err(vec![problem_of(&err)]),
    }
}

/// Every line whose indentation contains a tab: YAML forbids tabs there, and a
/// precise message beats the parser's generic one.
fn tab_indentation(src: &str) -> Vec<ParseProblem> {
    let mut problems = Vec::new();
    for (index, line) in src.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        if let Some(column) = line[..indent].chars().position(|c| c == '\t') {
            problems.push(ParseProblem {
                code: codes::E_TAB,
                line: index as u64 + 1,
                column: column as u64 + 1,
                message: "a tab in indentation".into(),
                hint: Some("indent with spaces only".into()),
            });
        }
    }
    problems
}

fn problem_of(err: &serde_saphyr::Error) -> ParseProblem {
    let (line, column) = err
        .location()
        .map(|l| (l.line().max(1), l.column().max(1)))
        .unwrap_or((1, 1));
    let message: String = serde_saphyr::DefaultMessageFormatter
        .format_message(err)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let (code, message, hint) = match err {
        serde_saphyr::Error::DuplicateMappingKey { key, .. } => (
            codes::E_DUPLICATE_KEY,
            match key {
                Some(key) => format!("duplicate key `{key}`"),
                None => "duplicate key".to_string(),
            },
            Some("each key may appear only once in a mapping".to_string()),
        ),
        serde_saphyr::Error::Budget { breach, .. } => match breach {
            serde_saphyr::budget::BudgetBreach::Depth { .. } => too_deep(),
            _ => (
                codes::E_TOO_LARGE,
                format!("the document exceeds the loader's limits: {message}"),
                None,
            ),
        },
        serde_saphyr::Error::ExternalMessage { source, .. }
            if matches!(
                source.as_ref(),
                serde_saphyr::ExternalMessageSource::Parser(scan)
                    if matches!(scan.kind(), serde_saphyr::granit_parser::ErrorKind::RecursionLimitExceeded)
            ) =>
        {
            too_deep()
        }
        _ => (codes::E_YAML, message, None),
    };
    ParseProblem {
        code,
        line,
        column,
        message,
        hint,
    }
}

fn too_deep() -> (&'static str, String, Option<String>) {
    (
        codes::E_TOO_DEEP,
        format!("nesting deeper than {MAX_NESTING} levels"),
        Some("flatten the structure; definitions never need this depth".into()),
    )
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

/// Byte offset → `line:column` (1-based, columns in characters) for one source.
#[derive(Debug, Clone)]
pub struct LineIndex<'s> {
    src: &'s str,
    starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    pub fn new(src: &'s str) -> LineIndex<'s> {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { src, starts }
    }

    pub fn position(&self, byte: usize) -> (u64, u64) {
        let byte = byte.min(self.src.len());
        let line = self
            .starts
            .partition_point(|s| *s <= byte)
            .saturating_sub(1);
        let start = self.starts.get(line).copied().unwrap_or(0);
        let column = self
            .src
            .get(start..byte)
            .map_or(byte - start, |s| s.chars().count());
        (line as u64 + 1, column as u64 + 1)
    }

    /// The position of byte `offset` of the *value* of the string scalar at `at`.
    ///
    /// The scalar's source may differ from its value: quotes, escapes (`\"`,
    /// `''`), folded line breaks and block indentation. The value's characters are
    /// aligned greedily with the source text, which is exact for single-line
    /// scalars of every style and close for multi-line ones.
    pub fn scalar_position(&self, at: &Pos, value: &str, offset: usize) -> (u64, u64) {
        let Some(start) = at.byte else {
            return (at.line, at.column);
        };
        let end = at
            .byte_len
            .map_or(self.src.len(), |len| (start + len).min(self.src.len()));
        let Some(source) = self.src.get(start..end) else {
            return (at.line, at.column);
        };
        let quote = source.chars().next().filter(|c| *c == '"' || *c == '\'');
        let mut p = quote.map_or(0, |q| q.len_utf8());
        let bytes = source.as_bytes();
        for (i, c) in value.char_indices() {
            let Some(rest) = source.get(p..) else { break };
            if i >= offset {
                break;
            }
            match quote {
                Some('"') if bytes.get(p) == Some(&b'\\') => {
                    p += escape_len(rest);
                    continue;
                }
                Some('\'') if c == '\'' && rest.starts_with("''") => {
                    p += 2;
                    continue;
                }
                _ => {}
            }
            match rest.find(c) {
                Some(found) => p += found + c.len_utf8(),
                None => break,
            }
        }
        // Skip what the value does not contain (indentation, a folded break)
        // so the position lands on the character itself.
        let next = value.get(offset..).and_then(|rest| rest.chars().next());
        let at_escape = quote == Some('"') && bytes.get(p) == Some(&b'\\');
        if let (Some(c), Some(rest), false) = (next, source.get(p..), at_escape)
            && let Some(found) = rest.find(c)
        {
            p += found;
        }
        // Never past the scalar, never inside a character.
        let mut p = p.min(source.len());
        while !source.is_char_boundary(p) {
            p -= 1;
        }
        self.position(start + p)
    }
}

/// Length in bytes of the escape sequence at the start of `s` (which begins with `\`).
fn escape_len(s: &str) -> usize {
    let mut chars = s.char_indices().skip(1);
    match chars.next() {
        Some((_, 'x')) => 4.min(s.len()),
        Some((_, 'u')) => 6.min(s.len()),
        Some((_, 'U')) => 10.min(s.len()),
        Some((i, c)) => i + c.len_utf8(),
        None => s.len(),
    }
}
