//! A program's own part of the case format, declared in its rule file's `case:`
//! block: the start-data fields the program reads beyond the common ones
//! (`program`, `as_of`, `area`, `household`), with their types, and checks over the
//! whole case. The door checks and the case reader use these declarations, and the
//! rule file's expressions see the fields by name (`request.amount`).

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value as Json;

use crate::expr::Expr;
use crate::value::{Type, Value};

/// The type of a declared case field.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldType {
    /// Money >= 0, a decimal string or a number without exponent.
    Amount,
    Decimal,
    Integer,
    Bool,
    /// Non-empty text.
    Text,
    /// `YYYY-MM-DD`.
    Date,
    Enum(Vec<String>),
    /// The `id` of a member of the case's household.
    Member,
    /// Nested fields.
    Object(BTreeMap<String, FieldDecl>),
}

/// One declared field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDecl {
    pub ty: FieldType,
    /// Absent or null is refused when required; else it is null.
    pub required: bool,
    pub label: String,
}

/// A check over the case: `require` must hold, else `message` at `path`.
#[derive(Debug, Clone)]
pub struct CaseCheck {
    pub require: Expr,
    /// JSON path, e.g. `$.household.members`.
    pub path: String,
    pub message: String,
}

/// The `case:` block of a rule file.
#[derive(Debug, Clone, Default)]
pub struct CaseFields {
    pub fields: BTreeMap<String, FieldDecl>,
    pub checks: Vec<CaseCheck>,
}

/// The names of the field types, for messages.
pub const FIELD_TYPES: &str = "amount, decimal, integer, bool, text, date, enum, member, object";

impl FieldType {
    pub fn value_type(&self) -> Type {
        match self {
            FieldType::Amount | FieldType::Decimal => Type::Decimal,
            FieldType::Integer => Type::Int,
            FieldType::Bool => Type::Bool,
            FieldType::Text | FieldType::Member => Type::String,
            FieldType::Date => Type::Date,
            FieldType::Enum(values) => Type::Enum(values.clone()),
            FieldType::Object(fields) => object_type(fields),
        }
    }
}

fn object_type(fields: &BTreeMap<String, FieldDecl>) -> Type {
    Type::Object {
        fields: fields
            .iter()
            .map(|(k, d)| (k.clone(), d.ty.value_type()))
            .collect(),
        open: false,
    }
}

/// Reads declared fields from JSON, collecting every problem as `(path, message)`.
pub(crate) struct FieldReader<'a> {
    /// The ids of the household's members, for `member` fields.
    pub member_ids: &'a [String],
    pub problems: Vec<(String, String)>,
}

impl FieldReader<'_> {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push((path.to_string(), message.into()));
    }

    /// Each declared field of `map` (null when absent and not required).
    pub fn fields(
        &mut self,
        map: &serde_json::Map<String, Json>,
        path: &str,
        decls: &BTreeMap<String, FieldDecl>,
        required_message: &str,
    ) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for (name, decl) in decls {
            let at = format!("{path}.{name}");
            let value = match map.get(name) {
                None | Some(Json::Null) => {
                    if decl.required {
                        self.problem(&at, required_message);
                    }
                    Value::Null
                }
                Some(json) => self.value(json, &at, &decl.ty).unwrap_or(Value::Null),
            };
            out.insert(name.clone(), value);
        }
        out
    }

    fn value(&mut self, json: &Json, path: &str, ty: &FieldType) -> Option<Value> {
        match ty {
            FieldType::Amount | FieldType::Decimal => {
                let text = match json {
                    Json::String(s) => s.trim().to_string(),
                    Json::Number(n) => n.to_string(),
                    _ => {
                        self.problem(path, "must be a decimal amount");
                        return None;
                    }
                };
                if text.contains(['e', 'E']) {
                    self.problem(
                        path,
                        format!("must be written without an exponent, found {text:?}"),
                    );
                    return None;
                }
                match Decimal::from_str(&text) {
                    Ok(d) if d < Decimal::ZERO && *ty == FieldType::Amount => {
                        self.problem(path, "must be >= 0");
                        None
                    }
                    Ok(d) => Some(Value::Decimal(d)),
                    Err(_) => {
                        self.problem(path, format!("must be a decimal amount, found {text:?}"));
                        None
                    }
                }
            }
            FieldType::Integer => match json.as_i64() {
                Some(n) => Some(Value::Int(n)),
                None => {
                    self.problem(path, "must be a whole number");
                    None
                }
            },
            FieldType::Bool => match json {
                Json::Bool(b) => Some(Value::Bool(*b)),
                _ => {
                    self.problem(path, "must be true or false");
                    None
                }
            },
            FieldType::Text | FieldType::Member | FieldType::Enum(_) => {
                let s = match json {
                    Json::String(s) if !s.trim().is_empty() => s.clone(),
                    Json::String(_) => {
                        self.problem(path, "must not be empty");
                        return None;
                    }
                    _ => {
                        self.problem(path, "must be a string");
                        return None;
                    }
                };
                match ty {
                    FieldType::Enum(values) if !values.contains(&s) => {
                        self.problem(
                            path,
                            format!("must be one of {}, found {s:?}", values.join(", ")),
                        );
                        None
                    }
                    FieldType::Member if !self.member_ids.contains(&s) => {
                        self.problem(path, "must be the id of a member of the household");
                        None
                    }
                    _ => Some(Value::Str(s)),
                }
            }
            FieldType::Date => {
                let parsed = match json {
                    Json::String(s) if s.len() == 10 => {
                        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
                    }
                    _ => None,
                };
                match parsed {
                    Some(d) => Some(Value::Date(d)),
                    None => {
                        self.problem(path, "must be a date YYYY-MM-DD");
                        None
                    }
                }
            }
            FieldType::Object(decls) => {
                let Json::Object(map) = json else {
                    self.problem(path, "must be an object");
                    return None;
                };
                for key in map.keys() {
                    if !decls.contains_key(key) {
                        self.problem(&format!("{path}.{key}"), "unknown field");
                    }
                }
                let before = self.problems.len();
                let fields = self.fields(map, path, decls, "is required");
                (self.problems.len() == before).then_some(Value::Object(fields))
            }
        }
    }
}

impl CaseFields {
    /// The static types of the declared fields, by name.
    pub fn types(&self) -> BTreeMap<String, Type> {
        self.fields
            .iter()
            .map(|(k, d)| (k.clone(), d.ty.value_type()))
            .collect()
    }
}
