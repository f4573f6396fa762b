//! The language guide's table of expression functions is generated from the
//! function registry: this test fails when `docs/process-language.md` differs
//! from the registry (a function added, renamed or re-described).
//!
//! Regenerate the table with
//! `UPDATE_DOCS=1 cargo test -p jiuzhu-rules --test function_table`.

use std::path::PathBuf;

use jiuzhu_rules::expr::{Registry, function_table};
use jiuzhu_rules::ruleset::rules_registry;

const BEGIN: &str = "<!-- functions:begin -->\n";
const END: &str = "<!-- functions:end -->";

fn guide() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/process-language.md")
}

#[test]
fn the_guide_lists_every_function_of_the_registry() {
    let path = guide();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let start = text
        .find(BEGIN)
        .unwrap_or_else(|| panic!("{}: no `{}` marker", path.display(), BEGIN.trim()))
        + BEGIN.len();
    let end = start
        + text[start..]
            .find(END)
            .unwrap_or_else(|| panic!("{}: no `{END}` marker after the begin", path.display()));
    let want = function_table(&Registry::standard(), &rules_registry());
    if text[start..end] == want {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let updated = format!("{}{want}{}", &text[..start], &text[end..]);
        std::fs::write(&path, updated).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    panic!(
        "the function table of {} differs from the registry; regenerate it with \
         `UPDATE_DOCS=1 cargo test -p jiuzhu-rules --test function_table`\n\nexpected:\n{want}",
        path.display()
    );
}

#[test]
fn every_function_has_a_description() {
    for f in rules_registry().functions() {
        assert!(
            !f.description.trim().is_empty() && !f.description.contains('\n'),
            "`{}` needs a one-line description",
            f.name
        );
        assert!(
            f.signature.starts_with(f.name),
            "{}: {}",
            f.name,
            f.signature
        );
    }
}
