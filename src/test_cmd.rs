//! `jiuzhu test`: runs scenario files and prints `ok NAME` / `FAIL NAME: …` and `N passed, N failed`.

use std::path::{Path, PathBuf};

use jiuzhu_engine::project::Project;
use jiuzhu_engine::scenario::{self, parse_scenario};

/// Exit codes: 0 all passed, 1 some failed, 2 a scenario or definition did not load.
pub fn run(definitions: &Path, policy: Option<&Path>, paths: &[PathBuf]) -> i32 {
    let project = match Project::load(definitions) {
        Ok(project) => project,
        Err(problems) => {
            for problem in problems {
                eprintln!("{problem}");
            }
            return 2;
        }
    };
    let mut files = Vec::new();
    for path in paths {
        collect(path, &mut files);
    }
    if files.is_empty() {
        eprintln!("no *.scenario.yaml files under {}", display_list(paths));
        return 2;
    }
    let (mut passed, mut failed, mut broken) = (0, 0, 0);
    for file in files {
        let src = match std::fs::read_to_string(&file) {
            Ok(src) => src,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                broken += 1;
                continue;
            }
        };
        let scenario = match parse_scenario(&src, &file.display().to_string()) {
            Ok(s) => s,
            Err(errors) => {
                for e in errors {
                    eprintln!("{e}");
                }
                broken += 1;
                continue;
            }
        };
        let outcome = scenario::run(&scenario, &file, &project, policy);
        match outcome.failure {
            None => {
                passed += 1;
                println!("ok {}", outcome.name);
            }
            Some(why) => {
                failed += 1;
                println!("FAIL {}: {why}", outcome.name);
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if broken > 0 {
        2
    } else if failed > 0 {
        1
    } else {
        0
    }
}

/// Scenario files under `path`: every `*.scenario.yaml` of a folder (recursively), or the file itself.
fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        entries.sort();
        for entry in entries {
            if entry.is_dir() || entry.to_string_lossy().ends_with(".scenario.yaml") {
                collect(&entry, out);
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
}

fn display_list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
