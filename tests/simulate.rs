//! `jiuzhu simulate-policy` refusing a bad proposal: every problem at file:line:column
//! with a stable code, exit 2, and nothing written (no CSV, no database).

use std::path::Path;
use std::process::{Command, Output};

const GOOD: &str = include_str!("../processes/policies/shuangyashan-2026-07-01.yaml");

fn simulate(dir: &Path, policy: &str, extra: &[&str]) -> Output {
    let file = dir.join("proposed.yaml");
    std::fs::write(&file, policy).expect("write the proposal");
    Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .arg("--project")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .arg("--db")
        .arg(dir.join("none.db"))
        .arg("simulate-policy")
        .arg("--policy")
        .arg(&file)
        .arg("--csv")
        .arg(dir.join("changes.csv"))
        .args(extra)
        .output()
        .expect("the jiuzhu binary runs")
}

fn refused(out: &Output, dir: &Path, code: &str, wanted: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    assert!(stderr.contains(&format!("error[{code}]")), "{stderr}");
    for text in wanted {
        assert!(stderr.contains(text), "{text:?} not in {stderr}");
    }
    assert!(!dir.join("changes.csv").exists(), "a CSV was written");
    assert!(!dir.join("none.db").exists(), "a database was created");
}

#[test]
fn a_missing_key_is_refused_at_its_line() {
    let dir = tempfile::tempdir().expect("dir");
    let policy = GOOD.replace("  supplement_rate: \"0.15\"", "");
    let out = simulate(dir.path(), &policy, &[]);
    refused(
        &out,
        dir.path(),
        "invalid_policy",
        &["proposed.yaml:4:3: dibao.supplement_rate: missing key"],
    );
}

#[test]
fn a_malformed_number_is_refused_at_its_line_and_column() {
    let dir = tempfile::tempdir().expect("dir");
    let policy = GOOD.replace("\"730.00\"", "\"73O.00\"");
    let out = simulate(dir.path(), &policy, &[]);
    refused(
        &out,
        dir.path(),
        "invalid_policy",
        &["proposed.yaml:4:", "dibao.standard.urban"],
    );
}

#[test]
fn an_effective_date_before_the_as_of_date_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let out = simulate(dir.path(), GOOD, &["--as-of", "2026-08-01"]);
    refused(
        &out,
        dir.path(),
        "policy_in_past",
        &["proposed.yaml:1:17:", "2026-07-01"],
    );
}

#[test]
fn a_good_proposal_without_a_database_says_so_and_creates_none() {
    let dir = tempfile::tempdir().expect("dir");
    let out = simulate(dir.path(), GOOD, &[]);
    refused(&out, dir.path(), "no_database", &[]);
}
