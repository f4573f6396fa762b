//! Tidy: house rules of the source tree, checked by reading the files (in the
//! spirit of rust-analyzer's `xtask/tests/tidy.rs`).
//!
//! - every `.rs` file of the crates opens with a `//!` line saying what it is;
//! - no source file grows past [`MAX_LINES`] lines, except the short,
//!   commented [`LONG_FILES`] list (split them, then shrink the list);
//! - the library crates (engine, rules, adapters) never print: they report
//!   through return values, and only the binary writes to the terminal;
//! - tests never call `dbg!`, never carry `#[ignore]` and never sleep (time is
//!   a manual clock; waiting makes tests slow and flaky).

use std::path::{Path, PathBuf};

/// Longest accepted source file; split by concern before a file gets there.
const MAX_LINES: usize = 1000;

/// Files still over [`MAX_LINES`], each with why it is not split yet.
const LONG_FILES: &[(&str, &str)] = &[
    // Rule-file loading and checking; to split into loading and evaluation.
    ("rules/src/ruleset.rs", "rule files: loader and evaluator"),
    // Database suites listing every case once for SQLite and PostgreSQL.
    (
        "engine/tests/engine_suite.rs",
        "one suite run on both databases",
    ),
    ("engine/tests/store.rs", "one suite run on both databases"),
];

/// Library files allowed to print, with why. None today.
const PRINTING_LIBRARY_FILES: &[(&str, &str)] = &[];

const SOURCE_DIRS: &[&str] = &[
    "engine/src",
    "rules/src",
    "adapters/src",
    "server/src",
    "src",
    "testkit/src",
];
const LIBRARY_DIRS: &[&str] = &["engine/src", "rules/src", "adapters/src", "server/src"];
const TEST_DIRS: &[&str] = &[
    "tests",
    "engine/tests",
    "rules/tests",
    "adapters/tests",
    "server/tests",
    "testkit/tests",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir` (relative to the workspace root), sorted.
fn rust_files(dir: &str) -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = root();
    let mut paths = Vec::new();
    walk(&root.join(dir), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            (name, text)
        })
        .collect()
}

/// Lines of code, without comments (a rule's words may appear in prose).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim_start()))
        .filter(|(_, line)| !line.starts_with("//"))
}

// The needles are assembled so that this file does not match itself.
fn needle(parts: &[&str]) -> String {
    parts.concat()
}

/// The problem with a file's first line, if any.
fn check_module_doc(name: &str, text: &str) -> Option<String> {
    (!text.starts_with("//!")).then(|| format!("{name}: does not open with a `//!` line"))
}

fn check_length(name: &str, text: &str, allowed: &[(&str, &str)]) -> Option<String> {
    let lines = text.lines().count();
    let listed = allowed.iter().any(|(file, _)| *file == name);
    (lines > MAX_LINES && !listed)
        .then(|| format!("{name}: {lines} lines (over {MAX_LINES}): split it by concern"))
}

fn check_no_printing(name: &str, text: &str, allowed: &[(&str, &str)]) -> Vec<String> {
    if allowed.iter().any(|(file, _)| *file == name) {
        return Vec::new();
    }
    let needles = [needle(&["print", "ln!("]), needle(&["eprint", "ln!("])];
    code_lines(text)
        .filter(|(_, line)| needles.iter().any(|n| line.contains(n.as_str())))
        .map(|(n, _)| format!("{name}:{n}: a library prints; return the text instead"))
        .collect()
}

fn check_test_hygiene(name: &str, text: &str) -> Vec<String> {
    let rules = [
        (needle(&["dbg", "!("]), "a leftover debug print"),
        (
            needle(&["#[", "ignore"]),
            "an ignored test: fix it or delete it",
        ),
        (
            needle(&["thread::", "sleep"]),
            "a sleeping test: advance the manual clock",
        ),
        (
            needle(&["time::", "sleep"]),
            "a sleeping test: advance the manual clock",
        ),
    ];
    let mut problems = Vec::new();
    for (n, line) in code_lines(text) {
        for (pattern, why) in &rules {
            if line.contains(pattern.as_str()) {
                problems.push(format!("{name}:{n}: {why}"));
            }
        }
    }
    problems
}

fn report(problems: Vec<String>) {
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let problems = SOURCE_DIRS
        .iter()
        .flat_map(|dir| rust_files(dir))
        .filter_map(|(name, text)| check_module_doc(&name, &text))
        .collect();
    report(problems);
}

#[test]
fn no_file_is_too_long() {
    let mut problems: Vec<String> = SOURCE_DIRS
        .iter()
        .chain(TEST_DIRS)
        .flat_map(|dir| rust_files(dir))
        .filter_map(|(name, text)| check_length(&name, &text, LONG_FILES))
        .collect();
    // An allow-list entry for a file that got short (or went away) must go too.
    for (file, _) in LONG_FILES {
        let lines = std::fs::read_to_string(root().join(file)).map_or(0, |t| t.lines().count());
        if lines <= MAX_LINES {
            problems.push(format!("{file}: {lines} lines; remove it from LONG_FILES"));
        }
    }
    report(problems);
}

#[test]
fn libraries_do_not_print() {
    let problems = LIBRARY_DIRS
        .iter()
        .flat_map(|dir| rust_files(dir))
        .flat_map(|(name, text)| check_no_printing(&name, &text, PRINTING_LIBRARY_FILES))
        .collect();
    report(problems);
}

#[test]
fn tests_neither_debug_print_nor_ignore_nor_sleep() {
    let problems = TEST_DIRS
        .iter()
        .flat_map(|dir| rust_files(dir))
        .filter(|(name, _)| name != "tests/tidy.rs")
        .flat_map(|(name, text)| check_test_hygiene(&name, &text))
        .collect();
    report(problems);
}

/// The checkers find what they are meant to find.
#[test]
fn the_checkers_catch_bad_examples() {
    let bad = format!(
        "use std::time::Duration;\n#[{ignore}]\n#[test]\nfn t() {{\n    std::thread::{sleep}(Duration::from_secs(1));\n    {dbg}(1);\n    {print}(\"x\");\n}}\n",
        ignore = "ignore",
        sleep = "sleep",
        dbg = needle(&["dbg", "!"]),
        print = needle(&["print", "ln!"]),
    );
    assert_eq!(
        check_module_doc("bad.rs", &bad).as_deref(),
        Some("bad.rs: does not open with a `//!` line")
    );
    assert_eq!(check_module_doc("good.rs", "//! Good.\n"), None);

    let hygiene = check_test_hygiene("bad.rs", &bad);
    assert_eq!(
        hygiene,
        [
            "bad.rs:2: an ignored test: fix it or delete it",
            "bad.rs:5: a sleeping test: advance the manual clock",
            "bad.rs:6: a leftover debug print",
        ]
    );
    // Prose mentioning the words is not code.
    assert!(check_test_hygiene("ok.rs", "// nothing here sleeps\n").is_empty());

    assert_eq!(
        check_no_printing("bad.rs", &bad, &[]),
        ["bad.rs:7: a library prints; return the text instead"]
    );
    assert!(check_no_printing("bad.rs", &bad, &[("bad.rs", "a reason")]).is_empty());

    let long = "x\n".repeat(MAX_LINES + 1);
    assert!(check_length("long.rs", &long, &[]).is_some());
    assert!(check_length("long.rs", &long, &[("long.rs", "listed")]).is_none());
    assert!(check_length("short.rs", "x\n", &[]).is_none());
}
