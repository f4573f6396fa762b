//! Caps on incoming data (case files, process start data, messages): total
//! size, string length, list length, object keys, nesting depth and household
//! members. Every violation is reported at its JSON path with a stable code, so
//! an oversized input is refused before anything is stored or evaluated.

use std::fmt;

use serde_json::Value as Json;

/// Configurable caps on one JSON document. The defaults fit real cases
/// generously; an input beyond one is refused as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLimits {
    /// Bytes of the document as written compactly (no whitespace), so the
    /// same data counts the same however it was indented.
    pub max_total_bytes: usize,
    /// Characters (not bytes) of any string, object keys included.
    pub max_string_chars: usize,
    /// Items of any list.
    pub max_list_items: usize,
    /// Keys of any object.
    pub max_object_keys: usize,
    /// Containers nested within each other; the document itself is depth 1.
    pub max_depth: usize,
    /// Items of `household.members` wherever a `household` object appears.
    pub max_members: usize,
}

impl Default for InputLimits {
    fn default() -> InputLimits {
        InputLimits {
            // The largest household allowed (10,000 members) written out with
            // every field takes about 3 MB; 8 MiB leaves room for the rest.
            max_total_bytes: 8 * 1024 * 1024,
            max_string_chars: 10_000,
            max_list_items: 10_000,
            max_object_keys: 1_000,
            max_depth: 32,
            max_members: 10_000,
        }
    }
}

/// Which cap an input exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitKind {
    TotalBytes,
    StringLength,
    ListLength,
    ObjectKeys,
    Depth,
    Members,
}

impl LimitKind {
    /// Stable code, e.g. for an API's error body.
    pub fn code(self) -> &'static str {
        match self {
            LimitKind::TotalBytes => "input_too_large",
            LimitKind::StringLength => "string_too_long",
            LimitKind::ListLength => "list_too_long",
            LimitKind::ObjectKeys => "too_many_keys",
            LimitKind::Depth => "too_deep",
            LimitKind::Members => "too_many_members",
        }
    }
}

/// One cap exceeded at one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {code}: {actual} exceeds the limit of {limit}", code = .kind.code())]
pub struct LimitViolation {
    /// JSON path, e.g. `$.household.members[3].name` (`$` for the whole document).
    pub path: String,
    pub kind: LimitKind,
    pub limit: usize,
    /// The size found (for depth: the depth reached, which stops there).
    pub actual: usize,
}

impl LimitViolation {
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

impl InputLimits {
    /// Checks a document against every cap, reporting every violation (a
    /// container nested too deep is reported once and not entered).
    pub fn check(&self, json: &Json) -> Result<(), Vec<LimitViolation>> {
        let mut walk = Walk {
            limits: self,
            violations: Vec::new(),
            bytes: 0,
        };
        let mut path = String::from("$");
        walk.value(json, &mut path, 1);
        if walk.bytes > self.max_total_bytes {
            walk.violations.insert(
                0,
                LimitViolation {
                    path: "$".into(),
                    kind: LimitKind::TotalBytes,
                    limit: self.max_total_bytes,
                    actual: walk.bytes,
                },
            );
        }
        if walk.violations.is_empty() {
            Ok(())
        } else {
            Err(walk.violations)
        }
    }

    /// The longest text [`InputLimits::check_text`] accepts: the byte cap
    /// counts compact JSON, and indentation may make the same data several times
    /// larger, so the text is allowed four times the cap.
    pub fn max_text_bytes(&self) -> usize {
        self.max_total_bytes.saturating_mul(4)
    }

    /// Checks the size of a text before it is parsed, so a huge input is
    /// refused without building its tree. [`InputLimits::check`] still applies.
    pub fn check_text(&self, text: &str) -> Result<(), LimitViolation> {
        let cap = self.max_text_bytes();
        if text.len() > cap {
            return Err(LimitViolation {
                path: "$".into(),
                kind: LimitKind::TotalBytes,
                limit: cap,
                actual: text.len(),
            });
        }
        Ok(())
    }
}

struct Walk<'a> {
    limits: &'a InputLimits,
    violations: Vec<LimitViolation>,
    /// Compact JSON bytes seen so far.
    bytes: usize,
}

impl Walk<'_> {
    fn violation(&mut self, path: &str, kind: LimitKind, limit: usize, actual: usize) {
        self.violations.push(LimitViolation {
            path: path.to_string(),
            kind,
            limit,
            actual,
        });
    }

    fn string(&mut self, s: &str, path: &str) {
        // Quotes plus the text; escapes are not counted, the byte cap is a
        // guard against bulk, not an exact measure.
        self.bytes = self.bytes.saturating_add(s.len() + 2);
        // A string has no more characters than bytes: only a long one is counted.
        if s.len() > self.limits.max_string_chars {
            let chars = s.chars().count();
            if chars > self.limits.max_string_chars {
                self.violation(
                    path,
                    LimitKind::StringLength,
                    self.limits.max_string_chars,
                    chars,
                );
            }
        }
    }

    fn value(&mut self, json: &Json, path: &mut String, depth: usize) {
        let container = matches!(json, Json::Array(_) | Json::Object(_));
        if container && depth > self.limits.max_depth {
            self.violation(path, LimitKind::Depth, self.limits.max_depth, depth);
            return;
        }
        match json {
            Json::Null => self.bytes += 4,
            Json::Bool(b) => self.bytes += if *b { 4 } else { 5 },
            Json::Number(n) => self.bytes += n.to_string().len(),
            Json::String(s) => self.string(s, path),
            Json::Array(items) => {
                self.bytes += 2 + items.len().saturating_sub(1);
                if items.len() > self.limits.max_list_items {
                    self.violation(
                        path,
                        LimitKind::ListLength,
                        self.limits.max_list_items,
                        items.len(),
                    );
                }
                let len = path.len();
                for (i, item) in items.iter().enumerate() {
                    path.push_str(&format!("[{i}]"));
                    self.value(item, path, depth + 1);
                    path.truncate(len);
                }
            }
            Json::Object(map) => {
                self.bytes += 2 + map.len().saturating_sub(1) + map.len();
                if map.len() > self.limits.max_object_keys {
                    self.violation(
                        path,
                        LimitKind::ObjectKeys,
                        self.limits.max_object_keys,
                        map.len(),
                    );
                }
                if let Some(Json::Object(household)) = map.get("household")
                    && let Some(Json::Array(members)) = household.get("members")
                    && members.len() > self.limits.max_members
                {
                    let at = format!("{path}.household.members");
                    self.violation(
                        &at,
                        LimitKind::Members,
                        self.limits.max_members,
                        members.len(),
                    );
                }
                let len = path.len();
                for (key, item) in map {
                    crate::json::push_key(path, key);
                    // The key itself is a string: measured and capped like one.
                    self.string(key, path);
                    self.value(item, path, depth + 1);
                    path.truncate(len);
                }
            }
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn small() -> InputLimits {
        InputLimits {
            max_total_bytes: 200,
            max_string_chars: 10,
            max_list_items: 3,
            max_object_keys: 4,
            max_depth: 4,
            max_members: 2,
        }
    }

    #[test]
    fn a_real_case_passes_the_defaults() {
        let case = json!({"program": "dibao", "as_of": "2026-03-01", "area": "urban",
            "household": {"members": [{"id": "m1", "birth_date": "1950-01-01", "income": []}],
            "savings": "0.00"}});
        assert_eq!(InputLimits::default().check(&case), Ok(()));
    }

    #[test]
    fn every_violation_is_reported_at_its_path() {
        let doc = json!({
            "household": {"members": [{"name": "张三丰太极拳张三丰太极拳"}, {}, {}]},
            "tags": [1, 2, 3, 4],
        });
        let errors = small().check(&doc).unwrap_err();
        let found: Vec<(&str, &str)> = errors.iter().map(|e| (e.path.as_str(), e.code())).collect();
        assert_eq!(
            found,
            [
                ("$.household.members", "too_many_members"),
                ("$.household.members[0].name", "string_too_long"),
                ("$.tags", "list_too_long"),
            ]
        );
        assert_eq!(errors[1].actual, 12, "characters, not bytes");
        assert_eq!(errors[2].actual, 4);
    }

    #[test]
    fn depth_keys_and_total_size_are_capped() {
        let deep = json!({"a": {"b": {"c": {"d": {"e": 1}}}}});
        let errors = small().check(&deep).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            (errors[0].path.as_str(), errors[0].code()),
            ("$.a.b.c.d", "too_deep")
        );
        let shallow = json!({"a": {"b": {"c": {"d": 1}}}});
        assert_eq!(small().check(&shallow), Ok(()));

        let keys = json!({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5});
        let errors = small().check(&keys).unwrap_err();
        assert_eq!(
            (errors[0].path.as_str(), errors[0].code()),
            ("$", "too_many_keys")
        );

        let big = json!({"a": ["abcd", "abcd", "abcd"], "b": ["abcd", "abcd", "abcd"],
            "c": ["abcd", "abcd", "abcd"], "d": ["abcd", "abcd", "abcd"]});
        let limits = InputLimits {
            max_total_bytes: 50,
            ..small()
        };
        let errors = limits.check(&big).unwrap_err();
        assert_eq!(
            (errors[0].path.as_str(), errors[0].code()),
            ("$", "input_too_large")
        );
        assert_eq!(errors[0].actual, big.to_string().len());
        let mut exact = small();
        exact.max_total_bytes = big.to_string().len();
        assert_eq!(
            exact.check(&big),
            Ok(()),
            "the compact size is measured exactly"
        );
    }

    #[test]
    fn long_keys_and_odd_keys_are_named_safely() {
        let doc = json!({"a b": "far too long"});
        let errors = small().check(&doc).unwrap_err();
        assert_eq!(errors[0].path, "$[\"a b\"]");
        let doc = json!({"abcdefghijk": 1});
        let errors = small().check(&doc).unwrap_err();
        assert_eq!(
            (errors[0].path.as_str(), errors[0].code()),
            ("$.abcdefghijk", "string_too_long")
        );
    }

    #[test]
    fn a_sixty_megabyte_contact_is_refused() {
        let doc = json!({"contact": {"note": "x".repeat(60 * 1024 * 1024)}});
        let errors = InputLimits::default().check(&doc).unwrap_err();
        let codes: Vec<&str> = errors.iter().map(LimitViolation::code).collect();
        assert_eq!(codes, ["input_too_large", "string_too_long"]);
        assert_eq!(errors[1].path, "$.contact.note");
    }
}
