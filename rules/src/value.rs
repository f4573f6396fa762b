//! The runtime value and static type model shared by expressions, rules and the engine.
//!
//! Values are exact: money is `Decimal`, never a float. JSON input is coerced
//! against a declared [`Type`] (strings become decimals or dates where the type
//! says so), and JSON output writes decimals and dates as strings, so a value
//! survives a round trip through storage without losing a fen.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate};
use rust_decimal::Decimal;
use std::str::FromStr;

/// A runtime value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Decimal(Decimal),
    Str(String),
    Date(NaiveDate),
    DateTime(DateTime<FixedOffset>),
    List(Vec<Value>),
    Object(BTreeMap<String, Value>),
}

/// A static type, declared in a process definition or inferred by the expression checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// Unknown or dynamic: accepted everywhere, checked at run time.
    Any,
    Null,
    Bool,
    Int,
    Decimal,
    String,
    Date,
    DateTime,
    /// A string restricted to the listed values.
    Enum(Vec<String>),
    List(Box<Type>),
    /// An object with known fields; `open` objects may carry other fields of type `Any`.
    Object {
        fields: BTreeMap<String, Type>,
        open: bool,
    },
}

impl Type {
    pub fn list(item: Type) -> Type {
        Type::List(Box::new(item))
    }

    pub fn open_object() -> Type {
        Type::Object {
            fields: BTreeMap::new(),
            open: true,
        }
    }

    /// True when a value of type `other` may be used where `self` is expected.
    pub fn accepts(&self, other: &Type) -> bool {
        match (self, other) {
            (Type::Any, _) | (_, Type::Any) => true,
            (Type::Decimal, Type::Int) => true,
            (Type::String, Type::Enum(_)) => true,
            (Type::Enum(a), Type::Enum(b)) => b.iter().all(|v| a.contains(v)),
            (Type::List(a), Type::List(b)) => a.accepts(b),
            (Type::Object { .. }, Type::Object { .. }) => true,
            (a, b) => a == b,
        }
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, Type::Int | Type::Decimal | Type::Any)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Any => write!(f, "any"),
            Type::Null => write!(f, "null"),
            Type::Bool => write!(f, "bool"),
            Type::Int => write!(f, "int"),
            Type::Decimal => write!(f, "decimal"),
            Type::String => write!(f, "string"),
            Type::Date => write!(f, "date"),
            Type::DateTime => write!(f, "datetime"),
            Type::Enum(values) => write!(f, "enum[{}]", values.join("|")),
            Type::List(item) => write!(f, "list<{item}>"),
            Type::Object { .. } => write!(f, "object"),
        }
    }
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Decimal(_) => "decimal",
            Value::Str(_) => "string",
            Value::Date(_) => "date",
            Value::DateTime(_) => "datetime",
            Value::List(_) => "list",
            Value::Object(_) => "object",
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The exact decimal value of an `Int`, a `Decimal`, or a decimal string.
    pub fn as_decimal(&self) -> Option<Decimal> {
        match self {
            Value::Int(i) => Some(Decimal::from(*i)),
            Value::Decimal(d) => Some(*d),
            Value::Str(s) => Decimal::from_str(s.trim()).ok(),
            _ => None,
        }
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        match self {
            Value::Object(map) => map.get(field),
            _ => None,
        }
    }

    /// Plain JSON: decimals as strings with their own scale, dates as `YYYY-MM-DD`,
    /// datetimes as RFC 3339.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Decimal(d) => J::String(d.to_string()),
            Value::Str(s) => J::String(s.clone()),
            Value::Date(d) => J::String(d.format("%Y-%m-%d").to_string()),
            Value::DateTime(t) => J::String(t.to_rfc3339()),
            Value::List(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Object(map) => {
                J::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// Untyped conversion from JSON: integers stay `Int`, other numbers become exact
    /// decimals read from their text, strings stay strings. Use [`Value::coerce`]
    /// with a declared type to get decimals and dates out of strings.
    pub fn from_json(json: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else {
                    // serde_json prints the shortest text that reads back to the same
                    // number; reading that text as a decimal keeps what the author wrote.
                    Decimal::from_str(&n.to_string())
                        .or_else(|_| Decimal::from_scientific(&n.to_string()))
                        .map(Value::Decimal)
                        .unwrap_or(Value::Null)
                }
            }
            J::String(s) => Value::Str(s.clone()),
            J::Array(items) => Value::List(items.iter().map(Value::from_json).collect()),
            J::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Converts an untyped value into one of type `ty`, or says why it cannot,
    /// with a JSON path (`$.household.members[1].birth_date`) built from `path`.
    pub fn coerce(self, ty: &Type, path: &str) -> Result<Value, CoerceError> {
        let fail = |expected: &Type, got: &Value| CoerceError {
            path: path.to_string(),
            message: format!("expected {expected}, found {}", got.describe()),
        };
        match (ty, self) {
            (Type::Any, v) => Ok(v),
            (_, Value::Null) => Ok(Value::Null),
            (Type::Bool, Value::Bool(b)) => Ok(Value::Bool(b)),
            (Type::Int, Value::Int(i)) => Ok(Value::Int(i)),
            (Type::Int, Value::Str(s)) if s.trim().parse::<i64>().is_ok() => {
                Ok(Value::Int(s.trim().parse().unwrap_or_default()))
            }
            (Type::Decimal, Value::Int(i)) => Ok(Value::Decimal(Decimal::from(i))),
            (Type::Decimal, Value::Decimal(d)) => Ok(Value::Decimal(d)),
            (Type::Decimal, Value::Str(s)) => match Decimal::from_str(s.trim()) {
                Ok(d) => Ok(Value::Decimal(d)),
                Err(_) => Err(fail(ty, &Value::Str(s))),
            },
            (Type::String, Value::Str(s)) => Ok(Value::Str(s)),
            (Type::Enum(values), Value::Str(s)) => {
                if values.iter().any(|v| v == &s) {
                    Ok(Value::Str(s))
                } else {
                    Err(CoerceError {
                        path: path.to_string(),
                        message: format!("must be one of {}, found {s:?}", values.join(", ")),
                    })
                }
            }
            (Type::Date, Value::Date(d)) => Ok(Value::Date(d)),
            (Type::Date, Value::Str(s)) => match NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
                Ok(d) => Ok(Value::Date(d)),
                Err(_) => Err(CoerceError {
                    path: path.to_string(),
                    message: format!("expected a date YYYY-MM-DD, found {s:?}"),
                }),
            },
            (Type::DateTime, Value::DateTime(t)) => Ok(Value::DateTime(t)),
            (Type::DateTime, Value::Str(s)) => match DateTime::parse_from_rfc3339(s.trim()) {
                Ok(t) => Ok(Value::DateTime(t)),
                Err(_) => Err(CoerceError {
                    path: path.to_string(),
                    message: format!("expected a date-time with offset (RFC 3339), found {s:?}"),
                }),
            },
            (Type::List(item), Value::List(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| v.coerce(item, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::List),
            (Type::Object { fields, open }, Value::Object(map)) => {
                let mut out = BTreeMap::new();
                for (key, value) in map {
                    let sub = format!("{path}.{key}");
                    match fields.get(&key) {
                        Some(field_ty) => {
                            out.insert(key, value.coerce(field_ty, &sub)?);
                        }
                        None if *open => {
                            out.insert(key, value);
                        }
                        None => {
                            return Err(CoerceError {
                                path: sub,
                                message: "unknown field".into(),
                            });
                        }
                    }
                }
                Ok(Value::Object(out))
            }
            (ty, v) => Err(fail(ty, &v)),
        }
    }

    fn describe(&self) -> String {
        match self {
            Value::Str(s) => format!("string {s:?}"),
            Value::Int(i) => format!("int {i}"),
            Value::Decimal(d) => format!("decimal {d}"),
            Value::Bool(b) => format!("bool {b}"),
            other => other.type_name().to_string(),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "{s}"),
            other => write!(f, "{}", other.to_json()),
        }
    }
}

/// Why a value does not fit its declared type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct CoerceError {
    /// JSON path of the offending value, e.g. `$.household.savings`.
    pub path: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_survive_a_json_round_trip() {
        let v = Value::from_json(&serde_json::json!({"amount": "1305.00", "n": 3}));
        let ty = Type::Object {
            fields: [
                ("amount".to_string(), Type::Decimal),
                ("n".to_string(), Type::Int),
            ]
            .into(),
            open: false,
        };
        let typed = v.coerce(&ty, "$").unwrap();
        assert_eq!(
            typed.get("amount"),
            Some(&Value::Decimal(Decimal::new(130500, 2)))
        );
        assert_eq!(
            typed.to_json(),
            serde_json::json!({"amount": "1305.00", "n": 3})
        );
    }

    #[test]
    fn coercion_names_the_json_path() {
        let v = Value::from_json(&serde_json::json!({"items": [{"d": "2026-13-01"}]}));
        let item = Type::Object {
            fields: [("d".to_string(), Type::Date)].into(),
            open: false,
        };
        let ty = Type::Object {
            fields: [("items".to_string(), Type::list(item))].into(),
            open: false,
        };
        let err = v.coerce(&ty, "$").unwrap_err();
        assert_eq!(err.path, "$.items[0].d");
    }
}
