//! The binary on cases: search, show, corrections, history, errors, payments, budgets.

use super::*;

#[test]
fn cases_are_found_by_name_and_id_number_and_shown_masked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, ids) = seeded(dir.path(), &[ZHANG, LI]);
    let by_name = jiuzhu(&["cases", "--name", "张", "--db", &db], &[]);
    assert!(by_name.status.success(), "{}", text(&by_name.stderr));
    let out = text(&by_name.stdout);
    assert!(
        out.contains(short(&ids[0])) && !out.contains(short(&ids[1])),
        "{out}"
    );
    assert!(
        out.contains("张*") && out.contains("230***********1234"),
        "{out}"
    );
    assert!(
        !out.contains("张三丰") && !out.contains("230102194810201234"),
        "{out}"
    );

    // As typed from the card: spaces and a lower-case x.
    let by_id = jiuzhu(
        &[
            "cases",
            "--id-number",
            "230119 19551111 567x",
            "--json",
            "--db",
            &db,
        ],
        &[],
    );
    assert!(by_id.status.success(), "{}", text(&by_id.stderr));
    let found: serde_json::Value = serde_json::from_slice(&by_id.stdout).expect("JSON");
    let found = found.as_array().expect("an array");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["id"], ids[1].as_str());
    assert_eq!(found[0]["applicant_name"], "李*");
    assert_eq!(found[0]["id_number"], "230***********567X");

    // Paging and the other filters.
    let page = jiuzhu(
        &[
            "cases",
            "--process",
            "dibao",
            "--status",
            "active",
            "--unit",
            "双鸭山市",
            "--limit",
            "1",
            "--offset",
            "1",
            "--json",
            "--db",
            &db,
        ],
        &[],
    );
    let page: serde_json::Value = serde_json::from_slice(&page.stdout).expect("JSON");
    assert_eq!(page.as_array().map(Vec::len), Some(1));
    assert_eq!(page[0]["id"], ids[1].as_str());
    let none = jiuzhu(&["cases", "--process", "tekun", "--json", "--db", &db], &[]);
    assert_eq!(text(&none.stdout).trim(), "[]");

    // A beginning both ids share is ambiguous: refused with the candidates.
    let ambiguous = jiuzhu(&["show", "dibao-", "--db", &db], &[]);
    assert_eq!(ambiguous.status.code(), Some(2));
    let err = text(&ambiguous.stderr);
    assert!(
        err.starts_with("error[ambiguous_id]: dibao- matches several case ids"),
        "{err}"
    );
    assert!(err.contains(&ids[0]) && err.contains(&ids[1]), "{err}");
}

#[test]
fn show_prints_json_masked_unless_revealed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, ids) = seeded(dir.path(), &[ZHANG]);
    let show = jiuzhu(&["show", short(&ids[0]), "--json", "--db", &db], &[]);
    assert!(show.status.success(), "{}", text(&show.stderr));
    let case: serde_json::Value = serde_json::from_slice(&show.stdout).expect("JSON");
    assert_eq!(case["id"], ids[0].as_str());
    assert_eq!(case["status"], "active");
    assert_eq!(case["revealed"], false);
    assert_eq!(case["variables"]["applicant_name"], "张*");
    assert_eq!(case["variables"]["bank"]["account"], "***************3445");
    assert_eq!(case["tasks"][0]["label"], "受理");
    assert!(!text(&show.stdout).contains("张三丰"));

    let revealed = jiuzhu(&["show", &ids[0], "--json", "--reveal", "--db", &db], &[]);
    let case: serde_json::Value = serde_json::from_slice(&revealed.stdout).expect("JSON");
    assert_eq!(case["revealed"], true);
    assert_eq!(case["variables"]["applicant_name"], "张三丰");
    let text_view = jiuzhu(&["show", &ids[0], "--reveal", "--db", &db], &[]);
    assert!(text(&text_view.stdout).starts_with("** personal data revealed"));
}

#[test]
fn correct_records_a_step_with_its_reason_and_prints_masked_values() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, ids) = seeded(dir.path(), &[ZHANG]);
    let correct = |args: &[&str]| {
        let mut all = vec!["correct", short(&ids[0])];
        all.extend(args);
        all.extend(["--db", &db]);
        jiuzhu(&all, &[])
    };
    let done = correct(&[
        "--set",
        "applicant_name=张三风",
        "--set",
        "household.savings=\"1200.50\"",
        "--reason",
        "姓名录入错误",
        "--as",
        "zx_staff1",
    ]);
    assert!(done.status.success(), "{}", text(&done.stderr));
    let out = text(&done.stdout);
    assert!(out.contains("active corrected (version 2)"), "{out}");
    assert!(
        out.contains("$.applicant_name: \"张*\" -> \"张*\""),
        "{out}"
    );
    assert!(
        out.contains("$.household.savings: \"0\" -> \"1200.50\""),
        "{out}"
    );
    assert!(!out.contains("张三"), "{out}");
    let history = jiuzhu(&["history", &ids[0], "--json", "--db", &db], &[]);
    let rows: serde_json::Value = serde_json::from_slice(&history.stdout).expect("JSON");
    assert_eq!(rows[1]["event"], "correct");
    assert_eq!(rows[1]["input"]["reason"], "姓名录入错误");
    assert_eq!(rows[1]["corrections"][0]["new"], "张*");
    let timeline = jiuzhu(&["history", &ids[0], "--db", &db], &[]);
    let timeline = text(&timeline.stdout);
    assert!(
        timeline.contains("corrected $.household.savings: 0 -> 1200.50"),
        "{timeline}"
    );

    // A value that does not fit is refused with its path (exit 1); bad usage exits 2.
    let misfit = correct(&[
        "--set",
        "area=suburban",
        "--reason",
        "x",
        "--as",
        "zx_staff1",
    ]);
    assert_eq!(misfit.status.code(), Some(1), "{}", text(&misfit.stderr));
    assert!(
        text(&misfit.stderr).starts_with("error[invalid_data]: $.area"),
        "{}",
        text(&misfit.stderr)
    );
    let other = correct(&["--set", "area=rural", "--reason", "x", "--as", "fa_staff1"]);
    assert!(
        text(&other.stderr).starts_with("error[forbidden]"),
        "{}",
        text(&other.stderr)
    );
    let bad = correct(&["--set", "area", "--reason", "x", "--as", "zx_staff1"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
}

#[test]
fn history_is_a_timeline_in_local_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, ids) = seeded(dir.path(), &[ZHANG]);
    let history = jiuzhu(&["history", &ids[0], "--db", &db], &[]);
    assert!(history.status.success(), "{}", text(&history.stderr));
    let out = text(&history.stdout);
    let first = out.lines().find(|l| l.starts_with("#1 ")).expect("row 1");
    assert!(first.contains(" +08:00  zx_clerk  start"), "{first}");
    assert!(
        out.contains("applicant_name = 张*") && !out.contains("张三丰"),
        "{out}"
    );

    let json = jiuzhu(&["history", &ids[0], "--json", "--db", &db], &[]);
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(rows[0]["seq"], 1);
    assert_eq!(rows[0]["actor"], "zx_clerk");
    assert!(
        rows[0]["at"]
            .as_str()
            .is_some_and(|at| at.ends_with("+08:00")),
        "{rows}"
    );
    assert_eq!(rows[0]["input"]["bank"]["id_number"], "230***********1234");
}

#[test]
fn errors_share_one_form() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, _) = seeded(dir.path(), &[]);
    let show = jiuzhu(&["show", "no-such-case", "--db", &db], &[]);
    assert_eq!(show.status.code(), Some(1));
    assert!(
        text(&show.stderr).starts_with("error[not_found]: no case no-such-case"),
        "{}",
        text(&show.stderr)
    );
    let user = jiuzhu(&["tasks", "--as", "nobody", "--db", &db], &[]);
    assert_eq!(user.status.code(), Some(2));
    assert!(
        text(&user.stderr).starts_with("error[unknown_user]:"),
        "{}",
        text(&user.stderr)
    );
    let month = jiuzhu(
        &["payments", "report", "--month", "April", "--db", &db],
        &[],
    );
    assert_eq!(month.status.code(), Some(2));
    assert!(
        text(&month.stderr).starts_with("error[invalid_input]: --month"),
        "{}",
        text(&month.stderr)
    );
}

#[test]
fn an_empty_payment_run_says_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, _) = seeded(dir.path(), &[]);
    let run = jiuzhu(
        &[
            "payments",
            "run",
            "--month",
            "2026-04",
            "--no-file",
            "--db",
            &db,
        ],
        &[],
    );
    assert!(run.status.success(), "{}", text(&run.stderr));
    let out = text(&run.stdout);
    assert!(out.contains("0 instructions created"), "{out}");
    assert!(out.contains("no active benefits for 2026-04"), "{out}");
}

/// A definition whose compute nodes loop without waiting (even with a way out) is refused
/// at deploy, at the loop's line and column, and nothing is deployed; the node-entry
/// budget that stops such a loop at run time is the engine's own test (`loops.rs`).
#[test]
fn a_loop_that_never_waits_is_refused_at_deploy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let project = dir.path().join("office");
    copy_dir(&root().join("processes"), &project.join("processes"));
    std::fs::write(
        project.join("processes/looping.yaml"),
        r#"process: looping
variables:
  n: {type: int, default: 0}
nodes:
  - {id: count, type: compute, set: {n: "n + 1"}, next: check}
  - id: check
    type: choice
    next:
      - {if: "n < 0", to: done}
      - {to: count}
  - {id: done, type: end}
"#,
    )
    .expect("write");
    let project_arg = project.display().to_string();
    let deploy = jiuzhu_in(
        dir.path(),
        &["--project", &project_arg, "deploy"],
        &[],
        None,
    );
    let err = text(&deploy.stderr);
    assert_eq!(deploy.status.code(), Some(2), "{deploy:?}");
    assert!(
        err.contains("looping.yaml:5:10: E_LOOP_WITHOUT_WAIT"),
        "{err}"
    );
    let list = jiuzhu_in(dir.path(), &["--project", &project_arg, "cases"], &[], None);
    assert!(!text(&list.stdout).contains("looping"), "{list:?}");
}
