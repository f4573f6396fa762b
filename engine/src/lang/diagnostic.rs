//! Load-time diagnostics: one positioned, coded problem of a definition file.
//!
//! A [`Diagnostic`] renders as `file:line:column: CODE: message`, followed by a
//! `  hint: …` line when there is advice to give. The codes are listed (and
//! documented) in [`codes`]; they are stable, so tests and tools may match them.

use std::fmt;

/// The stable diagnostic codes. See the module documentation of [`crate::lang`]
/// for what each one means.
pub mod codes {
    pub const E_YAML: &str = "E_YAML";
    pub const E_UNKNOWN_KEY: &str = "E_UNKNOWN_KEY";
    pub const E_DUPLICATE_KEY: &str = "E_DUPLICATE_KEY";
    pub const E_WRONG_TYPE: &str = "E_WRONG_TYPE";
    pub const E_MISSING_KEY: &str = "E_MISSING_KEY";
    pub const E_BAD_VALUE: &str = "E_BAD_VALUE";
    pub const E_BAD_ID: &str = "E_BAD_ID";
    pub const E_DUPLICATE_ID: &str = "E_DUPLICATE_ID";
    pub const E_UNKNOWN_NODE: &str = "E_UNKNOWN_NODE";
    pub const E_UNKNOWN_TYPE: &str = "E_UNKNOWN_TYPE";
    pub const E_UNREACHABLE: &str = "E_UNREACHABLE";
    pub const E_NO_END: &str = "E_NO_END";
    pub const E_LOOP_WITHOUT_WAIT: &str = "E_LOOP_WITHOUT_WAIT";
    pub const E_NO_DEFAULT: &str = "E_NO_DEFAULT";
    pub const E_UNKNOWN_ROLE: &str = "E_UNKNOWN_ROLE";
    pub const E_UNKNOWN_CALENDAR: &str = "E_UNKNOWN_CALENDAR";
    pub const E_UNKNOWN_PROGRAM: &str = "E_UNKNOWN_PROGRAM";
    pub const E_UNKNOWN_TEMPLATE: &str = "E_UNKNOWN_TEMPLATE";
    pub const E_UNKNOWN_PURPOSE: &str = "E_UNKNOWN_PURPOSE";
    pub const E_TEMPLATE_VARIABLE: &str = "E_TEMPLATE_VARIABLE";
    pub const E_UNKNOWN_PROCESS: &str = "E_UNKNOWN_PROCESS";
    pub const E_UNKNOWN_DEADLINE: &str = "E_UNKNOWN_DEADLINE";
    pub const E_BAD_DURATION: &str = "E_BAD_DURATION";
    pub const E_BAD_CRON: &str = "E_BAD_CRON";
    pub const E_BAD_JOIN: &str = "E_BAD_JOIN";
    pub const E_UNKNOWN_VARIABLE: &str = "E_UNKNOWN_VARIABLE";
    pub const E_TYPE: &str = "E_TYPE";
    pub const E_EXPR_SYNTAX: &str = "E_EXPR_SYNTAX";
    pub const E_TOO_LARGE: &str = "E_TOO_LARGE";
    pub const E_TOO_DEEP: &str = "E_TOO_DEEP";
    pub const E_TAB: &str = "E_TAB";
    pub const E_IO: &str = "E_IO";
}

/// One problem found while loading a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as named by the caller (usually the path given on the command line).
    pub file: String,
    /// 1-based line.
    pub line: u64,
    /// 1-based column, counted in characters.
    pub column: u64,
    /// A stable code from [`codes`] (expression codes come from the expression checker).
    pub code: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(
        file: impl Into<String>,
        line: u64,
        column: u64,
        code: &'static str,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: file.into(),
            line,
            column,
            code,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.code, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Renders diagnostics one after another, each on its own line(s).
pub fn render(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    out
}

/// The closest candidate to `name` (edit distance), when it is close enough to be
/// a likely typo: used for every "did you mean" hint.
pub fn did_you_mean<'c>(
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<String> {
    // About one edit per three characters, and never a complete rewrite.
    let length = name.chars().count();
    let limit = (length / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(distance, _)| *distance <= limit && *distance < length)
        .min_by_key(|(distance, c)| (*distance, c.to_string()))
        .map(|(_, c)| c.to_string())
}
