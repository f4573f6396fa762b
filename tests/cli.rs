//! End-to-end tests of the `jiuzhu` binary: validate, test, diagram and the
//! case lifecycle on a real SQLite file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn jiuzhu(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jiuzhu"));
    cmd.current_dir(root()).args(args).env_remove("JIUZHU_DB");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the jiuzhu binary runs")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

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

fn lifecycle(db: &Path, args: &[&str]) -> Output {
    let db = db.display().to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--db", &db]);
    jiuzhu(&all, &[])
}

/// `jiuzhu complete TASK --data FILE --as USER` on `db`.
fn complete_as(db: &Path, task: &str, data: &Path, user: &str) -> Output {
    lifecycle(
        db,
        &[
            "complete",
            task,
            "--data",
            &data.display().to_string(),
            "--as",
            user,
        ],
    )
}

#[test]
fn a_case_runs_through_the_lifecycle_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("jiuzhu.db");
    let deploy = lifecycle(&db, &["deploy"]);
    assert!(deploy.status.success(), "{}", text(&deploy.stderr));
    assert!(
        text(&deploy.stdout).contains("dibao@1"),
        "{}",
        text(&deploy.stdout)
    );
    // Unchanged definitions: no new version.
    let again = lifecycle(&db, &["deploy"]);
    assert!(
        text(&again.stdout).contains("dibao@1"),
        "{}",
        text(&again.stdout)
    );

    let start_data = dir.path().join("start.json");
    std::fs::write(
        &start_data,
        r#"{"applicant_name": "张三", "area": "urban",
            "household": {"members": [{"id": "m1", "birth_date": "1948-10-20"}], "savings": "0"}}"#,
    )
    .expect("write");
    let start = lifecycle(
        &db,
        &[
            "start",
            "dibao",
            "--data",
            &start_data.display().to_string(),
            "--as",
            "zx_clerk",
        ],
    );
    assert!(start.status.success(), "{}", text(&start.stderr));
    let instance = text(&start.stdout)
        .lines()
        .next()
        .expect("the instance id")
        .trim()
        .to_string();

    let queue = lifecycle(&db, &["tasks", "--as", "zx_clerk"]);
    let queue = text(&queue.stdout);
    let task = queue
        .lines()
        .find(|l| l.contains(&instance))
        .and_then(|l| l.split_whitespace().next())
        .expect("the accept task is in the clerk's queue")
        .to_string();
    // Another township's clerk does not see it and may not act on it.
    let other = lifecycle(&db, &["tasks", "--as", "fa_clerk"]);
    assert!(!text(&other.stdout).contains(&instance));

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"complete": "yes"}"#).expect("write");
    let refused = complete_as(&db, &task, &bad, "zx_clerk");
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).starts_with("invalid_data: $.complete"),
        "{}",
        text(&refused.stderr)
    );

    let forbidden = complete_as(&db, &task, &bad, "fa_clerk");
    assert!(
        text(&forbidden.stderr).starts_with("forbidden:"),
        "{}",
        text(&forbidden.stderr)
    );

    let good = dir.path().join("good.json");
    std::fs::write(&good, r#"{"complete": true}"#).expect("write");
    let done = complete_as(&db, &task, &good, "zx_clerk");
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert!(
        text(&done.stdout).contains("入户调查"),
        "{}",
        text(&done.stdout)
    );
    // The same task again: it is closed.
    let twice = complete_as(&db, &task, &good, "zx_clerk");
    assert!(
        text(&twice.stderr).starts_with("not_found:"),
        "{}",
        text(&twice.stderr)
    );

    let show = lifecycle(&db, &["show", &instance]);
    let show = text(&show.stdout);
    assert!(
        show.contains("status: active") && show.contains("入户调查") && show.contains("信息核对"),
        "{show}"
    );

    let history = lifecycle(&db, &["history", &instance, "--verify"]);
    assert!(history.status.success(), "{}", text(&history.stderr));
    assert!(
        text(&history.stdout).contains("hash chain verified: 2 rows"),
        "{}",
        text(&history.stdout)
    );

    let unknown = lifecycle(&db, &["message", &instance, "no_such_message"]);
    assert!(
        text(&unknown.stderr).starts_with("not_found:"),
        "{}",
        text(&unknown.stderr)
    );
    let withdraw = lifecycle(&db, &["message", &instance, "withdraw"]);
    assert!(withdraw.status.success(), "{}", text(&withdraw.stderr));
    assert!(
        text(&withdraw.stdout).contains("terminated outcome withdrawn"),
        "{}",
        text(&withdraw.stdout)
    );
}

#[test]
fn a_database_from_a_newer_schema_is_refused_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("jiuzhu.db");
    assert!(lifecycle(&db, &["deploy"]).status.success());
    // Pretend a newer binary migrated this file.
    let conn = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"insert into _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) values (999, 'future', '2030-01-01', 1, x'00', 0)\"); c.commit()",
            &db.display().to_string(),
        ])
        .output()
        .expect("python3 runs");
    assert!(conn.status.success(), "{}", text(&conn.stderr));
    let out = lifecycle(&db, &["deploy"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("newer than this binary"),
        "{}",
        text(&out.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy file");
        }
    }
}

#[test]
fn deploy_refuses_a_notice_without_a_template_and_deploys_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let definitions = dir.path().join("processes");
    copy_dir(&root().join("processes"), &definitions);
    let dibao = definitions.join("dibao.yaml");
    let src = std::fs::read_to_string(&dibao).expect("dibao.yaml");
    std::fs::write(
        &dibao,
        src.replace("template: dibao_approved", "template: dibao_aproved"),
    )
    .expect("write");
    let db = dir.path().join("jiuzhu.db").display().to_string();
    let defs = definitions.display().to_string();
    let out = jiuzhu(&["deploy", "--db", &db, "--definitions", &defs], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("dibao_aproved") && err.contains("nothing deployed"),
        "{err}"
    );
    let status = jiuzhu(
        &[
            "status",
            "--db",
            &db,
            "--definitions",
            &root().join("processes").display().to_string(),
        ],
        &[],
    );
    assert!(
        !text(&status.stdout).contains("dibao@"),
        "{}",
        text(&status.stdout)
    );
}
