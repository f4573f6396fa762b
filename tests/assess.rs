//! End-to-end tests of `jiuzhu assess`: the spec examples through the built
//! binary, and invalid input (exit 2, JSON path on stderr, nothing on stdout).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/tests/examples")
}

fn assess(policy: &Path, case: &Path, explain: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jiuzhu"));
    cmd.arg("assess")
        .arg("--policy")
        .arg(policy)
        .arg("--case")
        .arg(case);
    if explain {
        cmd.arg("--explain");
    }
    cmd.output().expect("the jiuzhu binary runs")
}

#[test]
fn spec_examples_reproduce_through_the_binary() {
    let dir = examples();
    for name in [
        "dibao-expenditure",
        "dibao-income-elderly",
        "dibao-single-person",
        "tekun",
        "temporary-aid-emergency",
    ] {
        let out = assess(
            &dir.join("policy.yaml"),
            &dir.join(format!("{name}.case.json")),
            false,
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
        let want: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.expected.json")))
                .expect("expected file"),
        )
        .expect("expected JSON");
        for (field, value) in want.as_object().expect("object") {
            assert_eq!(got.get(field), Some(value), "{name}: {field}");
        }
        assert!(got.get("trace").is_none(), "no trace without --explain");
    }
}

#[test]
fn explain_adds_a_labelled_trace() {
    let dir = examples();
    let out = assess(
        &dir.join("policy.yaml"),
        &dir.join("dibao-income-elderly.case.json"),
        true,
    );
    assert_eq!(out.status.code(), Some(0));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let trace = got["trace"].as_array().expect("trace array");
    let income = trace
        .iter()
        .find(|t| t["step"] == "household_income")
        .expect("household income step");
    assert_eq!(income["label"], "家庭月收入");
    // Trace values are exact (not rounded): 1000.00 wage − 200.0000 employment cost.
    let value = income["value"].as_str().expect("decimal string");
    assert_eq!(value.trim_end_matches('0').trim_end_matches('.'), "800");
}

#[test]
fn invalid_input_exits_2_with_every_problem_on_stderr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut case: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(examples().join("dibao-expenditure.case.json")).expect("case"),
    )
    .expect("json");
    case["household"]["members"][1]["income"][0]["monthly"] = "-1.00".into();
    case["area"] = "town".into();
    let case_path = dir.path().join("case.json");
    std::fs::write(&case_path, case.to_string()).expect("write case");
    let out = assess(&examples().join("policy.yaml"), &case_path, false);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("case.json: $.household.members[1].income[0].monthly: must be >= 0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("case.json: $.area: must be one of urban, rural"),
        "{stderr}"
    );
}

#[test]
fn unreadable_or_malformed_files_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad_json = dir.path().join("case.json");
    std::fs::write(&bad_json, "{ not json").expect("write");
    let out = assess(&examples().join("policy.yaml"), &bad_json, false);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());

    let bad_policy = dir.path().join("policy.yaml");
    std::fs::write(&bad_policy, "effective_from: 2026-01-01\njurisdiction: x\n").expect("write");
    let out = assess(&bad_policy, &examples().join("tekun.case.json"), false);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("policy.yaml: dibao: missing key"));

    let out = assess(
        &dir.path().join("missing.yaml"),
        &examples().join("tekun.case.json"),
        false,
    );
    assert_eq!(out.status.code(), Some(2));
}
