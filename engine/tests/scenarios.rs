//! Scenario fixtures of the engine (definitions no shipped process has), run as `jiuzhu
//! test` runs them: against the core, with the project's calendars and org.

use std::path::PathBuf;

use jiuzhu_engine::project::Project;
use jiuzhu_engine::scenario::{self, parse_scenario};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run_fixture(name: &str) -> scenario::Outcome {
    let project = Project::load(&root().join("../processes"))
        .unwrap_or_else(|problems| panic!("processes/ does not load:\n{}", problems.join("\n")));
    let file = root().join("tests/fixtures/scenarios").join(name);
    let src = std::fs::read_to_string(&file).expect("fixture");
    let parsed = parse_scenario(&src, &file.display().to_string()).unwrap_or_else(|errors| {
        panic!(
            "{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    scenario::run(&parsed, &file, &project, None)
}

#[test]
fn a_two_role_task_is_claimed_and_completed_by_either_role() {
    let outcome = run_fixture("two_roles.scenario.yaml");
    assert_eq!(outcome.failure, None);
}

#[test]
fn a_wrong_expectation_about_a_claim_fails_the_scenario() {
    // The same story with the head's claim expected to be refused: the runner must say so,
    // or the passing test above proves nothing.
    let project = Project::load(&root().join("../processes")).expect("processes/ loads");
    let file = root().join("tests/fixtures/scenarios/two_roles.scenario.yaml");
    let src = std::fs::read_to_string(&file).expect("fixture").replace(
        "  - claim: review\n    by: *head\n",
        "  - claim: review\n    by: *head\n    expect_error: forbidden\n",
    );
    let parsed = parse_scenario(&src, &file.display().to_string()).expect("parses");
    let outcome = scenario::run(&parsed, &file, &project, None);
    let failure = outcome.failure.expect("the scenario must fail");
    assert!(failure.contains("claim review"), "{failure}");
}
