//! The function table of the language guide (`docs/process-language.md`),
//! generated from the registries so the guide cannot drift from the code.

use super::Registry;

/// The Markdown table of every function of `rules` (the registry of rule
/// files, a superset of `standard`); those only rule files may call are marked.
pub fn function_table(standard: &Registry, rules: &Registry) -> String {
    let mut out = String::from(
        "| 函数 (function) | 签名 (signature) | 说明 (description) |\n|---|---|---|\n",
    );
    for f in rules.functions() {
        let only_rules = if standard.get(f.name).is_some() {
            ""
        } else {
            "（仅规则文件 rule files only）"
        };
        out.push_str(&format!(
            "| `{}` | `{}` | {}{} |\n",
            f.name,
            cell(f.signature),
            cell(f.description),
            only_rules
        ));
    }
    out
}

/// A table cell: a `|` would end the cell, even inside backticks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}
