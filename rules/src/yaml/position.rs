//! Positions: byte offset → `line:column`, and a parser error → `file:line:column: message`.
//!
//! Every loader of a YAML file reports problems the same way, through
//! [`SourceError`]; config loaders use [`SourceError::from_config_yaml`], which
//! never repeats the value the parser choked on (it may be a misplaced secret).

use serde_saphyr::MessageFormatter as _;

use super::tree::Pos;

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

/// Where a parser error happened (1-based; 1:1 when the parser does not say)
/// and what it says, without the parser's own "at line …" suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorAt {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl ErrorAt {
    /// The position and message of a serde-saphyr error.
    pub fn of(error: &serde_saphyr::Error) -> ErrorAt {
        let (line, column) = error
            .location()
            .map_or((1, 1), |l| (l.line().max(1), l.column().max(1)));
        let message = serde_saphyr::UserMessageFormatter
            .format_message(error)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        ErrorAt {
            line,
            column,
            message,
        }
    }

    /// Like [`ErrorAt::of`], but the message never contains the value the
    /// parser refused (an unknown variant, a mistyped scalar): it says what was
    /// expected and names the key written at that position in `src`.
    pub fn of_config(error: &serde_saphyr::Error, src: &str) -> ErrorAt {
        let mut at = ErrorAt::of(error);
        at.message = withhold_values(&at.message);
        if let Some(key) = key_at(src, at.line, at.column) {
            at.message = format!("`{key}`: {}", at.message);
        }
        at
    }
}

/// A problem at a position of a named file: `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct SourceError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl SourceError {
    /// A serde-saphyr error of file `file`.
    pub fn from_yaml(file: &str, error: &serde_saphyr::Error) -> SourceError {
        SourceError::at(file, ErrorAt::of(error))
    }

    /// A serde-saphyr error of the config file `file` with text `src`; the
    /// refused value is withheld (see [`ErrorAt::of_config`]).
    pub fn from_config_yaml(file: &str, src: &str, error: &serde_saphyr::Error) -> SourceError {
        SourceError::at(file, ErrorAt::of_config(error, src))
    }

    /// A problem at byte `offset` of `src`.
    pub fn at_offset(file: &str, src: &str, offset: usize, message: String) -> SourceError {
        let (line, column) = LineIndex::new(src).position(offset);
        SourceError::at(
            file,
            ErrorAt {
                line,
                column,
                message,
            },
        )
    }

    fn at(file: &str, at: ErrorAt) -> SourceError {
        SourceError {
            file: file.to_string(),
            line: at.line,
            column: at.column,
            message: at.message,
        }
    }
}

/// serde's messages quote the refused value: ``unknown variant `x`, expected …``,
/// `invalid type: string "x", expected …`, `invalid value: …`. Everything quoted
/// before the `expected` part goes; the expected part (names of variants, types)
/// stays. Messages of other shapes that quote something lose every quote.
fn withhold_values(message: &str) -> String {
    let (refused, expected) = match message.find(", expected") {
        Some(i) => message.split_at(i),
        None => (message, ""),
    };
    let mut kept = String::with_capacity(refused.len());
    let mut chars = refused.chars().peekable();
    let mut withheld = false;
    while let Some(c) = chars.next() {
        if c == '`' || c == '"' || c == '\'' {
            // Skip to the matching quote; an unmatched one drops the rest.
            for d in chars.by_ref() {
                if d == c {
                    break;
                }
            }
            withheld = true;
            // `unknown variant `x`` → `unknown variant`, no double spaces.
            while kept.ends_with(' ') {
                kept.pop();
            }
            continue;
        }
        kept.push(c);
    }
    if withheld {
        kept.push_str(" (value withheld)");
    }
    kept + expected
}

/// The mapping key written on line `line` before column `column`, if any
/// (`  password: x` → `password`; `- tls: x` → `tls`).
fn key_at(src: &str, line: u64, column: u64) -> Option<String> {
    let text = src
        .lines()
        .nth(usize::try_from(line.checked_sub(1)?).ok()?)?;
    let before: String = text
        .chars()
        .take(usize::try_from(column.saturating_sub(1)).ok()?)
        .collect();
    let key = before.trim_end().strip_suffix(':')?;
    let key = key.trim().trim_start_matches("- ").trim();
    let key = key.trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty() && !key.contains(':')).then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_withhold_the_refused_value() {
        assert_eq!(
            withhold_values("unknown variant `Hunter2-x`, expected one of `starttls`, `tls`"),
            "unknown variant (value withheld), expected one of `starttls`, `tls`"
        );
        assert_eq!(
            withhold_values("invalid type: string \"Hunter2\", expected u16"),
            "invalid type: string (value withheld), expected u16"
        );
        assert_eq!(withhold_values("missing field"), "missing field");
    }

    #[test]
    fn the_key_before_a_value_is_found() {
        let src = "smtp:\n  tls: Hunter2\n  - port: 'x'\n";
        assert_eq!(key_at(src, 2, 8).as_deref(), Some("tls"));
        assert_eq!(key_at(src, 3, 11).as_deref(), Some("port"));
        assert_eq!(key_at(src, 1, 1), None);
    }

    #[test]
    fn offsets_become_lines_and_columns() {
        let error = SourceError::at_offset("f.yaml", "a: 1\nbé: 2\n", 9, "here".into());
        assert_eq!(error.to_string(), "f.yaml:2:4: here");
    }
}
