//! The YAML layer of the process language: source limits (size, tabs,
//! nesting) and the classification of parse errors into diagnostic codes.
//!
//! Definitions are first parsed into the workspace's generic spanned tree
//! ([`jiuzhu_rules::yaml::tree`], re-exported here) rather than straight into
//! typed structs: serde stops at the first unknown key or wrong type, while the
//! loader must report every problem at once, and several keys take more than
//! one shape (`next: id` or a list; a type as `string` or `{type: list, of: …}`),
//! which serde could only express with untagged enums that lose positions.

use jiuzhu_rules::yaml::{ErrorAt, Limits};
pub use jiuzhu_rules::yaml::{Key, LineIndex, Pos, Yaml, YamlValue};

use super::diagnostic::codes;

/// Largest accepted definition file.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Deepest accepted nesting of mappings and sequences.
pub const MAX_NESTING: usize = 64;

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
    jiuzhu_rules::yaml::read(
        src,
        Limits {
            max_depth: Some(MAX_NESTING),
        },
    )
    .map_err(|err| vec![problem_of(&err)])
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
    let ErrorAt {
        line,
        column,
        message,
    } = ErrorAt::of(err);
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
