//! Strict JSON reading: like `serde_json::from_str::<Value>`, except that an
//! object with a repeated key is refused. serde_json keeps the last of two equal
//! keys, so `{"savings": "0.00", "savings": "999999999.00"}` would show a
//! reviewer one amount and assess another; here it is an error naming the
//! key's JSON path and its line and column.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value as Json};

/// Why a text is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// An object names the same key twice.
    #[error("{line}:{column}: duplicate key {key:?} at {path}")]
    DuplicateKey {
        /// JSON path of the repeated key, e.g. `$.household.savings`.
        path: String,
        key: String,
        line: usize,
        column: usize,
    },
    /// Not JSON at all (syntax, an unexpected end, trailing text, nesting too deep).
    #[error("{line}:{column}: {message}")]
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },
}

impl JsonError {
    /// Stable code: `duplicate_key` or `invalid_json`.
    pub fn code(&self) -> &'static str {
        match self {
            JsonError::DuplicateKey { .. } => "duplicate_key",
            JsonError::Syntax { .. } => "invalid_json",
        }
    }

    /// The JSON path where the problem is, when it is known (`$` otherwise).
    pub fn path(&self) -> &str {
        match self {
            JsonError::DuplicateKey { path, .. } => path,
            JsonError::Syntax { .. } => "$",
        }
    }
}

/// Parses `text` as one JSON document, refusing repeated object keys.
pub fn parse_strict(text: &str) -> Result<Json, JsonError> {
    let state = State {
        path: RefCell::new(String::from("$")),
        duplicate: RefCell::new(None),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let result = ValueSeed { state: &state }
        .deserialize(&mut de)
        .and_then(|value| de.end().map(|()| value));
    result.map_err(|err| match state.duplicate.into_inner() {
        Some((path, key)) => JsonError::DuplicateKey {
            path,
            key,
            line: err.line(),
            column: err.column(),
        },
        None => JsonError::Syntax {
            message: syntax_message(&err),
            line: err.line(),
            column: err.column(),
        },
    })
}

/// serde_json's message without its own " at line L column C" suffix, which
/// [`JsonError`] carries as fields.
fn syntax_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_string()
}

/// Shared by every seed of one parse: the path of the value being read, and the
/// repeated key once one is found (serde's error carries only a message).
struct State {
    path: RefCell<String>,
    duplicate: RefCell<Option<(String, String)>>,
}

#[derive(Clone, Copy)]
struct ValueSeed<'s> {
    state: &'s State,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Json;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        // serde_json reads a finite number or fails; the fallback mirrors its Value.
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        let base = self.state.path.borrow().len();
        loop {
            {
                let mut path = self.state.path.borrow_mut();
                path.truncate(base);
                path.push_str(&format!("[{}]", items.len()));
            }
            match seq.next_element_seed(self)? {
                Some(item) => items.push(item),
                None => break,
            }
        }
        self.state.path.borrow_mut().truncate(base);
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Json, A::Error> {
        let mut map = Map::new();
        let base = self.state.path.borrow().len();
        while let Some(key) = access.next_key::<String>()? {
            {
                let mut path = self.state.path.borrow_mut();
                path.truncate(base);
                push_key(&mut path, &key);
            }
            if map.contains_key(&key) {
                let path = self.state.path.borrow().clone();
                let message = format!("duplicate key {key:?} at {path}");
                *self.state.duplicate.borrow_mut() = Some((path, key));
                return Err(de::Error::custom(message));
            }
            let value = access.next_value_seed(self)?;
            map.insert(key, value);
        }
        self.state.path.borrow_mut().truncate(base);
        Ok(Json::Object(map))
    }
}

/// Appends `.key`, or `["key"]` when the key is not a plain identifier.
pub(crate) fn push_key(path: &mut String, key: &str) {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_alphanumeric() || c == '_');
    if plain {
        path.push('.');
        path.push_str(key);
    } else {
        path.push('[');
        path.push_str(&Json::String(key.to_string()).to_string());
        path.push(']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_is_refused_with_its_path_and_position() {
        let text = "{\n  \"household\": {\n    \"savings\": \"0.00\",\n    \"savings\": \"999999999.00\"\n  }\n}";
        let err = parse_strict(text).unwrap_err();
        match &err {
            JsonError::DuplicateKey {
                path, key, line, ..
            } => {
                assert_eq!(path, "$.household.savings");
                assert_eq!(key, "savings");
                assert_eq!(*line, 4);
            }
            other => panic!("expected a duplicate key, got {other:?}"),
        }
        assert_eq!(err.code(), "duplicate_key");
    }

    #[test]
    fn repeated_keys_inside_lists_are_named_by_index() {
        let text = r#"{"members": [{"id": "m1"}, {"id": "m2", "id": "m3"}]}"#;
        let err = parse_strict(text).unwrap_err();
        assert_eq!(err.path(), "$.members[1].id");
        match err {
            JsonError::DuplicateKey { line, column, .. } => {
                assert_eq!(line, 1);
                assert!(column > 30 && column <= 45, "column {column}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_same_key_in_different_objects_is_fine() {
        let text = r#"{"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 3}, {"x": 4}], "x": 0}"#;
        let strict = parse_strict(text).unwrap();
        let loose: Json = serde_json::from_str(text).unwrap();
        assert_eq!(strict, loose);
    }

    #[test]
    fn values_read_as_serde_json_reads_them() {
        let text = r#"{"i": -3, "u": 18446744073709551615, "f": 1.25, "s": "救助\n",
            "n": null, "t": true, "l": [], "o": {}, "k": {"a b": [1, [2, {"c": null}]]}}"#;
        assert_eq!(
            parse_strict(text).unwrap(),
            serde_json::from_str::<Json>(text).unwrap()
        );
    }

    #[test]
    fn syntax_errors_and_trailing_text_are_refused() {
        let err = parse_strict("{\"a\": 1,}").unwrap_err();
        assert_eq!(err.code(), "invalid_json");
        let err = parse_strict("{\"a\": 1} x").unwrap_err();
        assert!(
            matches!(
                err,
                JsonError::Syntax {
                    line: 1,
                    column: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains(" at line "), "{err}");
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert_eq!(parse_strict(&deep).unwrap_err().code(), "invalid_json");
    }
}
