//! `jiuzhu start` with bad data: every problem on a line of its own at its JSON path,
//! exit code 1, and nothing stored.

use super::*;

#[test]
fn a_start_with_bad_data_prints_every_problem_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("jiuzhu.db");
    let deploy = lifecycle(&db, &["deploy"]);
    assert!(deploy.status.success(), "{}", text(&deploy.stderr));
    let bad = r#"{"applicant_name": "", "area": "urban",
        "household": {"members": [
            {"id": "m1", "birth_date": "1950-05-01"},
            {"id": "m2", "birth_date": "2999-01-01", "income": [{"kind": "salary", "monthly": "10"}]}
        ], "savings": "-5"},
        "bank": {"account": "6222020200112233445", "id_number": "230502197809123327"}}"#;
    let start = lifecycle(&db, &["start", "dibao", "--data", bad, "--as", "zx_clerk"]);
    assert_eq!(start.status.code(), Some(1), "{}", text(&start.stderr));
    let err = text(&start.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("error[invalid_data]: 5 problems with the data:"),
        "{err}"
    );
    for want in [
        "  $.applicant_name: must not be empty",
        "  $.bank.id_number: the check character does not match the ID number (GB 11643)",
        "  $.household.members[1].birth_date: birth date 2999-01-01 is in the future",
        "  $.household.members[1].income[0].kind: unknown income kind \"salary\"",
        "  $.household.savings: must be >= 0",
    ] {
        assert!(lines.iter().any(|l| l.starts_with(want)), "{want} in {err}");
    }
    // The ID number is never printed back.
    assert!(!err.contains("230502197809123327"), "{err}");
    let cases = lifecycle(&db, &["cases", "--json"]);
    assert!(cases.status.success(), "{}", text(&cases.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&cases.stdout).expect("JSON");
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");

    // A case's incident needs a user to be retried.
    let retry = lifecycle(&db, &["retry", "tekun-x-i5"]);
    assert_eq!(retry.status.code(), Some(2), "{}", text(&retry.stderr));
    assert!(
        text(&retry.stderr).contains("needs --as USER"),
        "{}",
        text(&retry.stderr)
    );
}
