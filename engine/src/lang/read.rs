//! Typed reading of the YAML tree: mappings with known keys, scalars of the
//! expected kind; each misfit becomes a diagnostic and reading goes on.

use super::diagnostic::{Diagnostic, codes, did_you_mean};
use super::yaml::{Key, LineIndex, Pos, Yaml, YamlValue};

/// The diagnostics of one file being read, with what is needed to position them.
pub struct Ctx<'s> {
    pub file: String,
    pub lines: LineIndex<'s>,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'s> Ctx<'s> {
    pub fn new(file: &str, src: &'s str) -> Ctx<'s> {
        Ctx {
            file: file.to_string(),
            lines: LineIndex::new(src),
            diagnostics: Vec::new(),
        }
    }

    pub fn error(&mut self, at: &Pos, code: &'static str, message: impl Into<String>) {
        self.push(at.line, at.column, code, message.into(), None);
    }

    pub fn error_hint(
        &mut self,
        at: &Pos,
        code: &'static str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(at.line, at.column, code, message.into(), Some(hint.into()));
    }

    pub fn push(
        &mut self,
        line: u64,
        column: u64,
        code: &'static str,
        message: String,
        hint: Option<String>,
    ) {
        self.diagnostics.push(Diagnostic {
            file: self.file.clone(),
            line,
            column,
            code,
            message,
            hint,
        });
    }

    pub fn wrong_type(&mut self, y: &Yaml, expected: &str, what: &str) {
        self.error(
            &y.at,
            codes::E_WRONG_TYPE,
            format!("{what}: expected {expected}, found {}", y.value.kind()),
        );
    }

    /// A string scalar, or a diagnostic.
    pub fn str<'y>(&mut self, y: &'y Yaml, what: &str) -> Option<&'y str> {
        match &y.value {
            YamlValue::Str(s) => Some(s),
            _ => {
                self.wrong_type(y, "a string", what);
                None
            }
        }
    }

    pub fn bool(&mut self, y: &Yaml, what: &str) -> Option<bool> {
        match &y.value {
            YamlValue::Bool(b) => Some(*b),
            _ => {
                self.wrong_type(y, "true or false", what);
                None
            }
        }
    }

    pub fn count(&mut self, y: &Yaml, what: &str) -> Option<usize> {
        match &y.value {
            YamlValue::Int(i) if *i >= 0 => usize::try_from(*i).ok(),
            _ => {
                self.wrong_type(y, "a whole number ≥ 0", what);
                None
            }
        }
    }

    /// A list of strings (a single string counts as a list of one), with positions.
    pub fn str_list(&mut self, y: &Yaml, what: &str) -> Vec<(String, Pos)> {
        match &y.value {
            YamlValue::Str(s) => vec![(s.clone(), y.at)],
            YamlValue::Seq(items) => items
                .iter()
                .filter_map(|item| self.str(item, what).map(|s| (s.to_string(), item.at)))
                .collect(),
            _ => {
                self.wrong_type(y, "a list of strings", what);
                Vec::new()
            }
        }
    }

    pub fn seq<'y>(&mut self, y: &'y Yaml, what: &str) -> &'y [Yaml] {
        match &y.value {
            YamlValue::Seq(items) => items,
            _ => {
                self.wrong_type(y, "a list", what);
                &[]
            }
        }
    }

    /// The entries of a mapping whose keys are free (variables, messages, form fields).
    pub fn entries<'y>(&mut self, y: &'y Yaml, what: &str) -> &'y [(Key, Yaml)] {
        match &y.value {
            YamlValue::Map(entries) => entries,
            _ => {
                self.wrong_type(y, "a mapping", what);
                &[]
            }
        }
    }

    /// A mapping with a fixed set of keys, read with [`Fields`].
    pub fn fields<'y>(&mut self, y: &'y Yaml, what: &str) -> Option<Fields<'y>> {
        match &y.value {
            YamlValue::Map(entries) => Some(Fields {
                at: y.at,
                what: what.to_string(),
                entries,
                used: vec![false; entries.len()],
                allowed: Vec::new(),
            }),
            _ => {
                self.wrong_type(y, "a mapping", what);
                None
            }
        }
    }
}

/// A mapping being read key by key; [`Fields::finish`] reports the keys nobody
/// asked for, which is how unknown keys are rejected everywhere.
pub struct Fields<'y> {
    pub at: Pos,
    what: String,
    entries: &'y [(Key, Yaml)],
    used: Vec<bool>,
    allowed: Vec<&'static str>,
}

impl<'y> Fields<'y> {
    /// The value of `key`; an explicit `null` counts as absent.
    pub fn get(&mut self, key: &'static str) -> Option<&'y Yaml> {
        self.allowed.push(key);
        let index = self.entries.iter().position(|(k, _)| k.name == key)?;
        self.used[index] = true;
        let value = &self.entries[index].1;
        (!matches!(value.value, YamlValue::Null)).then_some(value)
    }

    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k.name == key)
    }

    /// The position of `key` itself, when present.
    pub fn key_at(&self, key: &str) -> Option<Pos> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(k, _)| k.at)
    }

    pub fn required(&mut self, ctx: &mut Ctx<'_>, key: &'static str) -> Option<&'y Yaml> {
        let value = self.get(key);
        if value.is_none() {
            ctx.error(
                &self.at,
                codes::E_MISSING_KEY,
                format!("{} needs `{key}`", self.what),
            );
        }
        value
    }

    /// Reports every key that was not read.
    pub fn finish(mut self, ctx: &mut Ctx<'_>) {
        let mut seen = std::collections::BTreeSet::new();
        self.allowed.retain(|k| seen.insert(*k));
        for ((key, _), used) in self.entries.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let message = format!("unknown key `{}` in {}", key.name, self.what);
            match did_you_mean(&key.name, self.allowed.iter().copied()) {
                Some(best) => ctx.error_hint(
                    &key.at,
                    codes::E_UNKNOWN_KEY,
                    message,
                    format!("did you mean `{best}`?"),
                ),
                None => ctx.error_hint(
                    &key.at,
                    codes::E_UNKNOWN_KEY,
                    message,
                    format!("allowed here: {}", self.allowed.join(", ")),
                ),
            }
        }
    }
}
