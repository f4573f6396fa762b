//! Policy parameters: the local figures of assess.md (standards, rates, caps) read
//! from YAML as exact decimals, and the choice of the policy in force for a unit
//! and a date.
//!
//! Which sections a policy file has, their keys, types and checks are data: one
//! declaration file per section in `processes/policies/sections/` (embedded in the
//! binary, and read from a project's own `policies/sections/` when it has one). A
//! program that needs new figures declares a new section; no Rust changes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::expr::Expr;
use crate::value::{Type, Value};
use crate::yaml::{self, Node, NodeValue};

/// One policy parameter file.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// First day these figures apply.
    pub effective_from: NaiveDate,
    /// The unit path the figures apply to, e.g. `双鸭山市` or `双鸭山市/尖山区`.
    pub jurisdiction: String,
    /// Each section the file has, by name, as checked against its declaration
    /// (an object of the declared keys).
    pub sections: BTreeMap<String, Value>,
    /// The section names declared when the file was read: an optional one the
    /// file lacks is `null` in [`Policy::to_value`].
    pub declared: Vec<String>,
    /// The file it was read from, for messages (`policy.yaml`).
    pub source: String,
}

mod sections;

pub use sections::*;
use sections::{KEY_TYPES, is_identifier, yaml_files};

/// One problem in a policy file, at a YAML key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    /// Dotted key path, e.g. `dibao.standard.urban`.
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Why policy parameters could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{}", .source)]
    Yaml {
        file: String,
        #[source]
        source: yaml::YamlError,
    },
    #[error("{}", ProblemList { file, problems })]
    Invalid {
        file: String,
        problems: Vec<PolicyProblem>,
    },
}

impl PolicyError {
    /// One line per problem: `policy.yaml: dibao.standard.urban: must be >= 0`.
    pub fn lines(&self) -> Vec<String> {
        match self {
            PolicyError::Invalid { file, problems } => problems
                .iter()
                .map(|p| format!("{file}: {}: {}", p.path, p.message))
                .collect(),
            other => vec![other.to_string()],
        }
    }
}

struct ProblemList<'a> {
    file: &'a str,
    problems: &'a [PolicyProblem],
}

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}: {}", self.file, p.path, p.message)?;
        }
        Ok(())
    }
}

/// Collects every problem while reading the tree.
struct Reader {
    problems: Vec<PolicyProblem>,
}

impl Reader {
    fn problem(&mut self, path: &str, node: Option<&Node>, message: impl Into<String>) {
        self.problems.push(PolicyProblem {
            path: path.to_string(),
            line: node.map_or(0, |n| n.line),
            column: node.map_or(0, |n| n.column),
            message: message.into(),
        });
    }

    /// The children of a mapping that must have exactly `keys`.
    fn map<'n>(&mut self, node: Option<&'n Node>, path: &str, keys: &[&str]) -> Option<&'n Node> {
        self.map_with_optional(node, path, keys, &[])
    }

    /// The children of a mapping that must have `keys` and may have `optional` ones.
    fn map_with_optional<'n>(
        &mut self,
        node: Option<&'n Node>,
        path: &str,
        keys: &[&str],
        optional: &[&str],
    ) -> Option<&'n Node> {
        let node = node?;
        let Some(entries) = node.as_map() else {
            self.problem(path, Some(node), "must be a mapping");
            return None;
        };
        for (key, _) in entries {
            if !keys.contains(&key.name.as_str()) && !optional.contains(&key.name.as_str()) {
                self.problems.push(PolicyProblem {
                    path: join(path, &key.name),
                    line: key.line,
                    column: key.column,
                    message: "unknown key".into(),
                });
            }
        }
        for key in keys {
            if node.get(key).is_none() {
                self.problem(&join(path, key), Some(node), "missing key");
            }
        }
        Some(node)
    }

    fn scalar<'n>(&mut self, node: Option<&'n Node>, path: &str) -> Option<&'n str> {
        let node = node?;
        match &node.value {
            NodeValue::Scalar(s) => Some(s),
            _ => {
                self.problem(path, Some(node), "must be a single value");
                None
            }
        }
    }

    fn boolean(&mut self, parent: Option<&Node>, key: &str, path: &str) -> bool {
        let path = join(path, key);
        let node = parent.and_then(|p| p.get(key));
        match self.scalar(node, &path) {
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                self.problem(
                    &path,
                    node,
                    format!("must be true or false, found {other:?}"),
                );
                false
            }
            None => false,
        }
    }

    fn date(&mut self, parent: Option<&Node>, key: &str) -> NaiveDate {
        let node = parent.and_then(|p| p.get(key));
        match self.scalar(node, key) {
            Some(text) => NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").unwrap_or_else(|_| {
                self.problem(
                    key,
                    node,
                    format!("must be a date YYYY-MM-DD, found {text:?}"),
                );
                NaiveDate::MIN
            }),
            None => NaiveDate::MIN,
        }
    }

    fn text(&mut self, parent: Option<&Node>, key: &str) -> String {
        let node = parent.and_then(|p| p.get(key));
        match self.scalar(node, key) {
            Some(text) if !text.trim().is_empty() => text.trim().trim_matches('/').to_string(),
            Some(_) => {
                self.problem(key, node, "must not be empty");
                String::new()
            }
            None => String::new(),
        }
    }

    /// The key declarations of a section or of a `map` key.
    fn key_decls(&mut self, node: Option<&Node>, path: &str) -> BTreeMap<String, KeyDecl> {
        let mut out = BTreeMap::new();
        let Some(node) = node else {
            return out;
        };
        let Some(entries) = node.as_map() else {
            self.problem(path, Some(node), "must be a mapping of key declarations");
            return out;
        };
        if entries.is_empty() {
            self.problem(path, Some(node), "must declare at least one key");
        }
        for (key, decl) in entries {
            let key_path = join(path, &key.name);
            if !is_identifier(&key.name) {
                self.problems.push(PolicyProblem {
                    path: key_path.clone(),
                    line: key.line,
                    column: key.column,
                    message: "must be a name of letters, digits and `_`".into(),
                });
            }
            let Some(map) = self.map_with_optional(
                Some(decl),
                &key_path,
                &["type"],
                &["label", "keys", "default"],
            ) else {
                continue;
            };
            let type_node = map.get("type");
            let Some(ty) = self.scalar(type_node, &join(&key_path, "type")) else {
                continue;
            };
            let label = map
                .get("label")
                .and_then(Node::as_scalar)
                .unwrap_or(&key.name)
                .to_string();
            let keys_node = map.get("keys");
            let ty = match ty.trim() {
                "amount" => KeyType::Amount,
                "positive" => KeyType::Positive,
                "decimal" => KeyType::Decimal,
                "percent" => KeyType::Percent,
                "bool" => KeyType::Bool,
                "integer" => KeyType::Integer,
                "date" => KeyType::Date,
                "text" => KeyType::Text,
                "map" => {
                    if keys_node.is_none() {
                        self.problem(&join(&key_path, "keys"), Some(map), "missing key");
                    }
                    KeyType::Map(self.key_decls(keys_node, &join(&key_path, "keys")))
                }
                other => {
                    self.problem(
                        &join(&key_path, "type"),
                        type_node,
                        format!("unknown type {other:?}; one of {KEY_TYPES}"),
                    );
                    continue;
                }
            };
            if keys_node.is_some() && !matches!(ty, KeyType::Map(_)) {
                self.problem(
                    &join(&key_path, "keys"),
                    keys_node,
                    "only a `map` key has `keys`",
                );
            }
            // A default is a value of the key's own type, checked as a policy's would be.
            let default = match map.get("default") {
                Some(node) if matches!(ty, KeyType::Map(_)) => {
                    self.problem(
                        &join(&key_path, "default"),
                        Some(node),
                        "a `map` key has no default; give its keys defaults",
                    );
                    None
                }
                Some(node) => self.value(node, &join(&key_path, "default"), &ty),
                None => None,
            };
            out.insert(key.name.clone(), KeyDecl { ty, label, default });
        }
        out
    }

    /// A mapping read against `keys`: every declared key present (or, left out, its
    /// declared default), no other.
    fn section(
        &mut self,
        node: &Node,
        path: &str,
        keys: &BTreeMap<String, KeyDecl>,
    ) -> Option<Value> {
        let names: Vec<&str> = keys
            .iter()
            .filter(|(_, d)| d.default.is_none())
            .map(|(k, _)| k.as_str())
            .collect();
        let optional: Vec<&str> = keys
            .iter()
            .filter(|(_, d)| d.default.is_some())
            .map(|(k, _)| k.as_str())
            .collect();
        let before = self.problems.len();
        let node = self.map_with_optional(Some(node), path, &names, &optional)?;
        let mut out = BTreeMap::new();
        for (name, decl) in keys {
            match node.get(name) {
                Some(child) => {
                    if let Some(v) = self.value(child, &join(path, name), &decl.ty) {
                        out.insert(name.clone(), v);
                    }
                }
                None => {
                    if let Some(default) = &decl.default {
                        out.insert(name.clone(), default.clone());
                    }
                }
            }
        }
        (self.problems.len() == before).then_some(Value::Object(out))
    }

    fn value(&mut self, node: &Node, path: &str, ty: &KeyType) -> Option<Value> {
        if let KeyType::Map(keys) = ty {
            return self.section(node, path, keys);
        }
        let text = self.scalar(Some(node), path)?.trim();
        let decimal = |r: &mut Reader| match Decimal::from_str(text) {
            Ok(d) => Some(d),
            Err(_) => {
                r.problem(
                    path,
                    Some(node),
                    format!("must be a decimal number, found {text:?}"),
                );
                None
            }
        };
        let checked = |r: &mut Reader, ok: bool, message: &str, d: Decimal| {
            if ok {
                Some(Value::Decimal(d))
            } else {
                r.problem(path, Some(node), message);
                None
            }
        };
        match ty {
            KeyType::Amount => {
                let d = decimal(self)?;
                checked(self, d >= Decimal::ZERO, "must be >= 0", d)
            }
            KeyType::Positive => {
                let d = decimal(self)?;
                if d < Decimal::ZERO {
                    checked(self, false, "must be >= 0", d)
                } else {
                    checked(self, d > Decimal::ZERO, "must be > 0", d)
                }
            }
            KeyType::Decimal => decimal(self).map(Value::Decimal),
            KeyType::Percent => {
                let d = decimal(self)?;
                checked(
                    self,
                    d >= Decimal::ZERO && d <= Decimal::ONE_HUNDRED,
                    "must be a percentage from 0 to 100",
                    d,
                )
            }
            KeyType::Bool => match text {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                other => {
                    self.problem(
                        path,
                        Some(node),
                        format!("must be true or false, found {other:?}"),
                    );
                    None
                }
            },
            KeyType::Integer => match text.parse::<i64>() {
                Ok(n) => Some(Value::Int(n)),
                Err(_) => {
                    self.problem(
                        path,
                        Some(node),
                        format!("must be a whole number, found {text:?}"),
                    );
                    None
                }
            },
            KeyType::Date => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Ok(d) => Some(Value::Date(d)),
                Err(_) => {
                    self.problem(
                        path,
                        Some(node),
                        format!("must be a date YYYY-MM-DD, found {text:?}"),
                    );
                    None
                }
            },
            KeyType::Text if text.is_empty() => {
                self.problem(path, Some(node), "must not be empty");
                None
            }
            KeyType::Text => Some(Value::Str(text.to_string())),
            KeyType::Map(_) => None,
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The node at a dotted key path below `node`.
fn node_at<'n>(node: &'n Node, path: &str) -> Option<&'n Node> {
    path.split('.').try_fold(node, |n, key| n.get(key))
}

impl Policy {
    /// Reads a policy from YAML text against the built-in section declarations;
    /// `file` names it in messages.
    pub fn from_yaml(src: &str, file: &str) -> Result<Policy, PolicyError> {
        Policy::from_yaml_with(src, file, PolicySections::builtin())
    }

    /// Reads a policy from YAML text against `sections`.
    pub fn from_yaml_with(
        src: &str,
        file: &str,
        sections: &PolicySections,
    ) -> Result<Policy, PolicyError> {
        let root = yaml::parse(src).map_err(|source| PolicyError::Yaml {
            file: file.to_string(),
            source,
        })?;
        let mut r = Reader {
            problems: Vec::new(),
        };
        let mut required = vec!["effective_from", "jurisdiction"];
        let mut optional = Vec::new();
        for decl in sections.sections.values() {
            if decl.required {
                required.push(decl.name.as_str());
            } else {
                optional.push(decl.name.as_str());
            }
        }
        let top = r.map_with_optional(Some(&root), "", &required, &optional);
        let effective_from = r.date(top, "effective_from");
        let jurisdiction = r.text(top, "jurisdiction");
        let mut values = BTreeMap::new();
        for decl in sections.sections.values() {
            let Some(node) = top.and_then(|t| t.get(&decl.name)) else {
                continue;
            };
            let Some(value) = r.section(node, &decl.name, &decl.keys) else {
                continue;
            };
            // The declared checks, once every figure of the section is readable.
            if let Value::Object(fields) = &value {
                for check in &decl.checks {
                    match check.require.eval(fields) {
                        Ok(Value::Bool(true)) => {}
                        Ok(_) | Err(_) => r.problem(
                            &join(&decl.name, &check.path),
                            node_at(node, &check.path),
                            check.message.clone(),
                        ),
                    }
                }
            }
            values.insert(decl.name.clone(), value);
        }
        if !r.problems.is_empty() {
            return Err(PolicyError::Invalid {
                file: file.to_string(),
                problems: r.problems,
            });
        }
        Ok(Policy {
            effective_from,
            jurisdiction,
            sections: values,
            declared: sections.sections.keys().cloned().collect(),
            source: file.to_string(),
        })
    }

    /// Reads a policy file against the declarations beside it (`sections/` in its
    /// directory) or the built-in ones; messages name it by its file name.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let file = display_name(path);
        let dir = path.parent().unwrap_or(Path::new("."));
        let sections = PolicySections::for_policies(dir).map_err(|errors| {
            errors
                .into_iter()
                .next()
                .unwrap_or_else(|| PolicyError::Invalid {
                    file: "sections".into(),
                    problems: Vec::new(),
                })
        })?;
        let src = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            file: file.clone(),
            source,
        })?;
        Policy::from_yaml_with(&src, &file, &sections)
    }

    /// The figure at a dotted path (`dibao.standard.urban`), if the file has it.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let mut value = self.sections.get(parts.next()?)?;
        for part in parts {
            match value {
                Value::Object(fields) => value = fields.get(part)?,
                _ => return None,
            }
        }
        Some(value)
    }

    /// The decimal figure at a dotted path.
    pub fn decimal(&self, path: &str) -> Option<Decimal> {
        match self.get(path)? {
            Value::Decimal(d) => Some(*d),
            Value::Int(n) => Some(Decimal::from(*n)),
            _ => None,
        }
    }

    /// Replaces the figure at a dotted path (for what-if copies of a policy);
    /// false when the file has no such figure.
    pub fn set(&mut self, path: &str, new: Value) -> bool {
        let mut parts = path.split('.');
        let Some(first) = parts.next() else {
            return false;
        };
        let Some(mut value) = self.sections.get_mut(first) else {
            return false;
        };
        for part in parts {
            match value {
                Value::Object(fields) => match fields.get_mut(part) {
                    Some(v) => value = v,
                    None => return false,
                },
                _ => return false,
            }
        }
        *value = new;
        true
    }

    /// The figures as an expression value `policy`, shaped like the YAML file. A
    /// declared section the file lacks is null: reading a figure of it fails the
    /// expression, naming the section.
    pub fn to_value(&self) -> Value {
        let mut out = BTreeMap::new();
        out.insert(
            "effective_from".to_string(),
            Value::Date(self.effective_from),
        );
        out.insert(
            "jurisdiction".to_string(),
            Value::Str(self.jurisdiction.clone()),
        );
        for name in &self.declared {
            out.insert(name.clone(), Value::Null);
        }
        for (name, value) in &self.sections {
            out.insert(name.clone(), value.clone());
        }
        Value::Object(out)
    }

    /// The static type of [`Policy::to_value`] under the built-in declarations,
    /// for checking rule expressions.
    pub fn value_type() -> Type {
        PolicySections::builtin().value_type()
    }
}

fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Every policy file of a product, one per jurisdiction and effective date.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: Vec<Policy>,
}

impl PolicySet {
    pub fn new(policies: Vec<Policy>) -> PolicySet {
        PolicySet { policies }
    }

    /// Loads every `*.yaml` file directly under `dir`, read against the section
    /// declarations of `dir/sections/` (or the built-in ones), reporting every
    /// broken file.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, Vec<PolicyError>> {
        let sections = PolicySections::for_policies(dir)?;
        let paths = yaml_files(dir).map_err(|e| vec![e])?;
        let mut policies = Vec::new();
        let mut errors = Vec::new();
        for path in paths {
            let file = display_name(&path);
            let loaded = std::fs::read_to_string(&path)
                .map_err(|source| PolicyError::Io {
                    file: file.clone(),
                    source,
                })
                .and_then(|src| Policy::from_yaml_with(&src, &file, &sections));
            match loaded {
                Ok(p) => policies.push(p),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(PolicySet { policies })
        } else {
            Err(errors)
        }
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The policy in force for `unit` (a path like `双鸭山市/尖山区/中心站街道`) on
    /// `as_of`: among policies already effective, the most specific jurisdiction
    /// (the longest whole-segment prefix of the unit), then the latest
    /// `effective_from`. A change on 2026-07-01 applies to a case on that day.
    pub fn select(&self, unit: &str, as_of: NaiveDate) -> Option<&Policy> {
        let unit = unit.trim_matches('/');
        self.policies
            .iter()
            .filter(|p| p.effective_from <= as_of)
            .filter(|p| {
                let j = p.jurisdiction.as_str();
                unit == j
                    || unit
                        .strip_prefix(j)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|p| (p.jurisdiction.split('/').count(), p.effective_from))
    }
}
