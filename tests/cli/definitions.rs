//! The binary on definitions and scenarios: validate, test, diagram.

use super::*;

#[test]
fn shipped_definitions_validate() {
    let mut files: Vec<String> = std::fs::read_dir(root().join("processes"))
        .expect("processes/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    let args: Vec<&str> = std::iter::once("validate")
        .chain(files.iter().map(String::as_str))
        .collect();
    let out = jiuzhu(&args, &[]);
    assert!(
        out.status.success(),
        "validate failed:\n{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("ok "), "{}", text(&out.stdout));
}

#[test]
fn a_broken_copy_reports_every_problem_with_its_position() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = std::fs::read_to_string(root().join("processes/dibao.yaml")).expect("dibao.yaml");
    let broken = src
        .replacen("next: checks_done", "next: checks_dnoe", 1)
        .replacen("due: 5wd", "due: 5 days", 1)
        .replacen("role: county_staff", "role: county_staf", 1);
    std::fs::write(dir.path().join("dibao.yaml"), broken).expect("write");
    std::fs::copy(
        root().join("processes/org.yaml"),
        dir.path().join("org.yaml"),
    )
    .expect("copy org");
    let file = dir.path().join("dibao.yaml");
    let out = jiuzhu(&["validate", &file.display().to_string()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    for code in ["E_UNKNOWN_NODE", "E_BAD_DURATION", "E_UNKNOWN_ROLE"] {
        let line = err
            .lines()
            .find(|l| l.contains(code))
            .unwrap_or_else(|| panic!("no {code} in:\n{err}"));
        // file:line:column: CODE: message
        let rest = line
            .strip_prefix(&format!("{}:", file.display()))
            .expect("starts with the file");
        let mut parts = rest.splitn(3, ':');
        let line_no: u32 = parts
            .next()
            .and_then(|l| l.parse().ok())
            .expect("a line number");
        let col: u32 = parts
            .next()
            .and_then(|c| c.parse().ok())
            .expect("a column number");
        assert!(line_no > 1 && col > 0, "{line}");
    }
    assert!(err.contains("did you mean `checks_done`"), "{err}");
}

#[test]
fn the_shipped_scenarios_pass() {
    let out = jiuzhu(&["test", "processes/"], &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let last = stdout.lines().last().expect("a closing line");
    assert!(last.ends_with(" passed, 0 failed"), "{last}");
    assert!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count() >= 11,
        "{stdout}"
    );
}

#[test]
fn a_failing_scenario_names_the_step_and_exits_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = std::fs::read_to_string(
        root().join("processes/scenarios/dibao/01-undisputed-approval.scenario.yaml"),
    )
    .expect("scenario");
    let wrong = src.replace("tasks: [initial_opinion]", "tasks: [approve]");
    let file = dir.path().join("wrong.scenario.yaml");
    std::fs::write(&file, wrong).expect("write");
    let out = jiuzhu(&["test", &file.display().to_string()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("step 7 (expect): expected tasks [approve], found [initial_opinion]"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l == "0 passed, 1 failed"),
        "{stdout}"
    );
}

#[test]
fn a_scenario_that_does_not_load_exits_2_with_its_position() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bad.scenario.yaml");
    std::fs::write(&file, "name: x\nprocess: dibao\nstart:\n  at: 2026-03-02T09:00:00+08:00\n  by: {user: a, roles: [], unit: u}\nsteps:\n  - complete: accept\n    by: {user: a, roles: [], unit: u}\n    expect_error: nonsense\n").expect("write");
    let out = jiuzhu(&["test", &file.display().to_string()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("bad.scenario.yaml:7:"), "{err}");
    assert!(err.contains("unknown error code"), "{err}");
}

#[test]
fn diagram_prints_mermaid_with_chinese_labels() {
    let out = jiuzhu(&["diagram", "dibao"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("flowchart TD"), "{stdout}");
    for label in ["受理", "入户调查", "公示", "民主评议", "审核确认"] {
        assert!(stdout.contains(label), "missing {label}:\n{stdout}");
    }
}
