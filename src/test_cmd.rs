//! `jiuzhu test`: runs scenario files and prints `ok NAME` / `FAIL NAME: …` and `N passed, N failed`.

use std::path::{Path, PathBuf};

use jiuzhu_engine::project::Project;
use jiuzhu_engine::scenario;

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
        scenario::collect(path, &mut files);
    }
    if files.is_empty() {
        eprintln!("no *.scenario.yaml files under {}", display_list(paths));
        return 2;
    }
    let (mut passed, mut failed, mut broken) = (0, 0, 0);
    for file in files {
        let outcome = match scenario::run_file(&file, &project, policy) {
            Ok(outcome) => outcome,
            Err(problems) => {
                for problem in problems {
                    eprintln!("{problem}");
                }
                broken += 1;
                continue;
            }
        };
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

fn display_list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
