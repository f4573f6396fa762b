//! Property tests of the engine's two parsers of project files, fed mutations of the
//! files the project ships: the process YAML loader (every `processes/*.yaml` definition)
//! and the scenario loader (every `processes/scenarios/**/*.scenario.yaml`). Neither may
//! panic; each answers with a definition or scenario, or with at least one diagnostic that
//! carries a position inside the text. 256 cases each (stated in BENCHMARKS.md).

use std::path::{Path, PathBuf};

use jiuzhu_engine::lang::{LoadContext, load_definition};
use jiuzhu_engine::org::Org;
use jiuzhu_engine::scenario::parse_scenario;
use proptest::prelude::*;

const CASES: u32 = 256;

fn processes() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes")
}

fn context() -> LoadContext {
    let org = Org::load(&processes().join("org.yaml")).expect("the org file loads");
    LoadContext::default()
        .with_roles(org.role_ids())
        .with_calendars(["cn"])
}

/// Every file under `dir` whose name ends with `suffix`, with its text, sorted by path.
fn files(dir: &Path, suffix: &str, recurse: bool) -> Vec<(String, String)> {
    fn walk(dir: &Path, suffix: &str, recurse: bool, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                if recurse {
                    walk(&path, suffix, recurse, out);
                }
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(dir, suffix, recurse, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable file");
            (p.display().to_string(), text)
        })
        .collect()
}

fn definitions() -> Vec<(String, String)> {
    files(&processes(), ".yaml", false)
        .into_iter()
        .filter(|(_, text)| text.contains("\nprocess:") || text.starts_with("process:"))
        .collect()
}

/// One edit: at a byte offset, remove some bytes and insert a snippet. The snippets lean
/// towards YAML's own syntax (indentation, flow collections, anchors and aliases, tags,
/// block scalars, comments) and the language's (durations, expressions).
fn edit() -> impl Strategy<Value = (usize, usize, String)> {
    let snippet = prop_oneof![
        "[-a-z0-9 :'\"\\[\\]{}=!.\n\t#|>&*%@`,?]{0,8}",
        Just("\n  ".to_string()),
        Just("\n    - ".to_string()),
        Just(": &a [*a, *a]".to_string()),
        Just(" !!binary ".to_string()),
        Just("\n---\n".to_string()),
        Just(" 1e400".to_string()),
        Just(" 99999999999999999999999999999".to_string()),
        Just("\u{feff}".to_string()),
        Just(" 5wd".to_string()),
        Just(" ${{".to_string()),
        Just(" household.members[0].income + ".to_string()),
    ];
    (0usize..1_000_000, 0usize..32, snippet)
}

fn mutate(src: &str, edits: &[(usize, usize, String)]) -> String {
    let mut src = src.to_string();
    for (at, remove, insert) in edits {
        let mut at = at % (src.len() + 1);
        while !src.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + remove).min(src.len());
        while !src.is_char_boundary(end) {
            end -= 1;
        }
        src.replace_range(at..end, insert);
    }
    src
}

/// `line` and `column` (1-based) fall within `text`, or one past its end.
fn position_within(text: &str, line: u64, column: u64) -> bool {
    let lines = text.split('\n').count() as u64;
    line >= 1 && line <= lines + 1 && column >= 1
}

#[test]
fn the_shipped_files_are_found_and_load() {
    let defs = definitions();
    assert!(defs.len() >= 6, "{defs:?}");
    for (name, text) in &defs {
        assert!(load_definition(text, name, &context()).is_ok(), "{name}");
    }
    let scenarios = files(&processes().join("scenarios"), ".scenario.yaml", true);
    assert!(scenarios.len() >= 10, "{}", scenarios.len());
    for (name, text) in &scenarios {
        assert!(parse_scenario(text, name).is_ok(), "{name}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn mutated_shipped_definitions_load_or_say_where(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        let defs = definitions();
        let (name, text) = &defs[pick.index(defs.len())];
        let src = mutate(text, &edits);
        if let Err(diagnostics) = load_definition(&src, name, &context()) {
            prop_assert!(!diagnostics.is_empty());
            for d in &diagnostics {
                prop_assert!(!d.message.is_empty(), "{d:?}");
                prop_assert!(position_within(&src, d.line, d.column), "{d:?}");
            }
        }
    }

    #[test]
    fn mutated_shipped_scenarios_parse_or_say_where(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        let scenarios = files(&processes().join("scenarios"), ".scenario.yaml", true);
        let (name, text) = &scenarios[pick.index(scenarios.len())];
        let src = mutate(text, &edits);
        if let Err(errors) = parse_scenario(&src, name) {
            prop_assert!(!errors.is_empty());
            for e in &errors {
                prop_assert!(!e.message.is_empty(), "{e:?}");
                prop_assert!(position_within(&src, e.line, e.column), "{e:?}");
            }
        }
    }
}
