//! End-to-end tests of the `jiuzhu` binary: validate, test, diagram and the
//! case lifecycle on a real SQLite file.

use jiuzhu_testkit::copy_dir;
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

/// The short form of a case id the commands print: its last 8 characters.
fn short(id: &str) -> &str {
    &id[id.len() - 8..]
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

mod cases;
mod definitions;
mod door;

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
    // The queue shows short ids: the last 8 characters of the case id.
    let task = queue
        .lines()
        .find(|l| l.contains(short(&instance)))
        .and_then(|l| l.split_whitespace().next())
        .expect("the accept task is in the clerk's queue")
        .to_string();
    // Another township's clerk does not see it and may not act on it.
    let other = lifecycle(&db, &["tasks", "--as", "fa_clerk"]);
    assert!(!text(&other.stdout).contains(short(&instance)));

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"complete": "yes"}"#).expect("write");
    let refused = complete_as(&db, &task, &bad, "zx_clerk");
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).starts_with("error[invalid_data]: $.complete"),
        "{}",
        text(&refused.stderr)
    );

    let forbidden = complete_as(&db, &task, &bad, "fa_clerk");
    assert!(
        text(&forbidden.stderr).starts_with("error[forbidden]:"),
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
        text(&twice.stderr).starts_with("error[not_found]:"),
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
        text(&unknown.stderr).starts_with("error[not_found]:"),
        "{}",
        text(&unknown.stderr)
    );
    // A withdrawal is recorded by the case's township, not by an unnamed sender.
    let anonymous = lifecycle(&db, &["message", &instance, "withdraw"]);
    assert!(
        text(&anonymous.stderr).starts_with("error[forbidden]:"),
        "{}",
        text(&anonymous.stderr)
    );
    let withdraw = lifecycle(&db, &["message", &instance, "withdraw", "--as", "zx_clerk"]);
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
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("dibao.yaml:")
            && err.contains("E_UNKNOWN_TEMPLATE: unknown notification template `dibao_aproved`"),
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

/// The binary run in `dir` with `args`, `env` and `stdin`; neither JIUZHU_DB nor
/// JIUZHU_HOME leaks in from the caller.
fn jiuzhu_in(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    use std::io::Write as _;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jiuzhu"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("JIUZHU_DB")
        .env_remove("JIUZHU_HOME")
        .env_remove("JIUZHU_DATA")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the jiuzhu binary runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("the jiuzhu binary ends")
}

const ZHANG: &str = r#"{"applicant_name": "张三丰", "area": "urban",
    "bank": {"account": "6222020200112233445", "id_number": "230102194810201234"},
    "household": {"members": [{"id": "m1", "birth_date": "1948-10-20"}], "savings": "0"}}"#;
const LI: &str = r#"{"applicant_name": "李四", "area": "urban",
    "bank": {"account": "6222020200998877665", "id_number": "23011919551111567X"},
    "household": {"members": [{"id": "m1", "birth_date": "1955-11-11"}], "savings": "0"}}"#;

/// A deployed database in `dir` with the cases of `starts` (start data, as inline JSON);
/// returns the database path and the case ids.
fn seeded(dir: &Path, starts: &[&str]) -> (String, Vec<String>) {
    let db = dir.join("jiuzhu.db").display().to_string();
    let deploy = jiuzhu(&["--db", &db, "deploy"], &[]);
    assert!(deploy.status.success(), "{}", text(&deploy.stderr));
    let ids = starts
        .iter()
        .map(|data| {
            let out = jiuzhu(
                &[
                    "start", "dibao", "--data", data, "--as", "zx_clerk", "--db", &db,
                ],
                &[],
            );
            assert!(out.status.success(), "{}", text(&out.stderr));
            text(&out.stdout)
                .lines()
                .next()
                .expect("the case id")
                .trim()
                .to_string()
        })
        .collect();
    (db, ids)
}

#[test]
fn db_goes_before_or_after_any_subcommand() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("jiuzhu.db").display().to_string();
    assert!(jiuzhu(&["--db", &db, "deploy"], &[]).status.success());
    for args in [
        vec!["--db", &db, "status"],
        vec!["status", "--db", &db],
        vec!["--db", &db, "payments", "report", "--month", "2026-04"],
        vec!["payments", "report", "--month", "2026-04", "--db", &db],
        vec!["payments", "--db", &db, "report", "--month", "2026-04"],
    ] {
        let out = jiuzhu(&args, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    let status = jiuzhu(&["--db", &db, "status"], &[]);
    assert!(
        text(&status.stdout).contains("dibao@1"),
        "{}",
        text(&status.stdout)
    );
}

#[test]
fn data_comes_from_stdin_or_inline_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("jiuzhu.db").display().to_string();
    assert!(jiuzhu(&["--db", &db, "deploy"], &[]).status.success());
    let start = jiuzhu_in(
        &root(),
        &[
            "start", "dibao", "--data", "-", "--as", "zx_clerk", "--db", &db,
        ],
        &[],
        Some(ZHANG),
    );
    assert!(start.status.success(), "{}", text(&start.stderr));
    let instance = text(&start.stdout)
        .lines()
        .next()
        .expect("id")
        .trim()
        .to_string();
    // The short task id as the queue prints it, completed with inline JSON.
    let task = format!("{}-t2", short(&instance));
    let queue = jiuzhu(&["tasks", "--as", "zx_clerk", "--db", &db], &[]);
    assert!(
        text(&queue.stdout).contains(&task),
        "{}",
        text(&queue.stdout)
    );
    let done = jiuzhu(
        &[
            "complete",
            &task,
            "--data",
            r#"{"complete": true}"#,
            "--as",
            "zx_clerk",
            "--db",
            &db,
        ],
        &[],
    );
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert!(
        text(&done.stdout).contains("入户调查"),
        "{}",
        text(&done.stdout)
    );
    // Inline JSON that is not JSON is bad input (exit 2), named as such.
    let bad = jiuzhu(
        &[
            "message", &instance, "withdraw", "--data", "{oops", "--db", &db,
        ],
        &[],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    assert!(
        text(&bad.stderr).starts_with("error[invalid_input]: --data (inline JSON)"),
        "{}",
        text(&bad.stderr)
    );
}

/// Issue 12: a key given twice was accepted, the last one winning (`savings` 0.00, then
/// 999999999.00); and start data had no size cap (a 60 MB `contact` was stored).
#[test]
fn duplicate_keys_and_oversized_data_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("jiuzhu.db").display().to_string();
    assert!(jiuzhu(&["--db", &db, "deploy"], &[]).status.success());
    let twice = r#"{"applicant_name": "张三丰", "area": "urban",
        "household": {"members": [{"id": "m1", "birth_date": "1948-10-20"}],
                      "savings": "0.00", "savings": "999999999.00"}}"#;
    let out = jiuzhu(
        &[
            "start", "dibao", "--data", twice, "--as", "zx_clerk", "--db", &db,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("error[duplicate_key]")
            && text(&out.stderr).contains("$.household.savings"),
        "{}",
        text(&out.stderr)
    );

    let contact = "x".repeat(20_000);
    let big = format!(
        r#"{{"applicant_name": "张三丰", "area": "urban", "contact": {{"note": "{contact}"}},
            "household": {{"members": [{{"id": "m1", "birth_date": "1948-10-20"}}], "savings": "0"}}}}"#
    );
    let out = jiuzhu(
        &[
            "start", "dibao", "--data", &big, "--as", "zx_clerk", "--db", &db,
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("error[invalid_data]")
            && text(&out.stderr).contains("$.contact.note: string_too_long"),
        "{}",
        text(&out.stderr)
    );
    let cases = jiuzhu(&["cases", "--json", "--db", &db], &[]);
    assert!(cases.status.success(), "{}", text(&cases.stderr));
    assert_eq!(text(&cases.stdout).trim(), "[]", "nothing was stored");
}

#[test]
fn a_read_command_on_a_missing_database_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("typo.db");
    let path = db.display().to_string();
    for args in [
        vec!["tasks", "--as", "zx_clerk"],
        vec!["show", "x"],
        vec!["history", "x"],
        vec!["status"],
        vec!["cases"],
        vec!["incidents"],
        vec!["payments", "report", "--month", "2026-04"],
        vec!["start", "dibao", "--as", "zx_clerk"],
    ] {
        let mut all = args.clone();
        all.extend(["--db", &path]);
        let out = jiuzhu(&all, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.starts_with(&format!("error[no_database]: no database at {path}")),
            "{err}"
        );
        assert!(err.contains("hint: create it with `jiuzhu deploy"), "{err}");
        assert!(!db.exists(), "{args:?} created {path}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

#[cfg(unix)]
#[test]
fn a_read_only_database_can_be_read() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().join("ro");
    std::fs::create_dir(&folder).expect("dir");
    let (db, ids) = seeded(&folder, &[ZHANG]);
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    let before = std::fs::read(&db).expect("read db");
    mode(Path::new(&db), 0o444);
    mode(&folder, 0o555);
    let outs: Vec<Output> = [
        vec!["tasks", "--as", "zx_clerk"],
        vec!["show", &ids[0]],
        vec!["history", &ids[0], "--verify"],
        vec!["cases"],
        vec!["status"],
    ]
    .iter()
    .map(|args| {
        let mut all = args.clone();
        all.extend(["--db", &db]);
        jiuzhu(&all, &[])
    })
    .collect();
    mode(&folder, 0o755);
    mode(Path::new(&db), 0o644);
    for out in &outs {
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    assert!(text(&outs[1].stdout).contains("status: active"));
    assert!(text(&outs[2].stdout).contains("hash chain verified: 1 rows"));
    assert_eq!(
        std::fs::read(&db).expect("read db"),
        before,
        "a read wrote the file"
    );
}

#[test]
fn the_project_is_found_from_any_folder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let project = dir.path().join("office");
    copy_dir(&root().join("processes"), &project.join("processes"));
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("dir");
    let project_arg = project.display().to_string();
    // --project: the database defaults to data/jiuzhu.db in the project folder.
    let deploy = jiuzhu_in(
        &elsewhere,
        &["--project", &project_arg, "deploy"],
        &[],
        None,
    );
    assert!(deploy.status.success(), "{}", text(&deploy.stderr));
    assert!(project.join("data/jiuzhu.db").exists());
    assert_eq!(std::fs::read_dir(&elsewhere).expect("dir").count(), 0);
    // JIUZHU_HOME, from an unrelated folder.
    let start = jiuzhu_in(
        &elsewhere,
        &["start", "dibao", "--data", ZHANG, "--as", "zx_clerk"],
        &[("JIUZHU_HOME", &project_arg)],
        None,
    );
    assert!(start.status.success(), "{}", text(&start.stderr));
    // No option at all, from a folder inside the project: found by its processes/ folder.
    let inside = project.join("processes/scenarios");
    let queue = jiuzhu_in(&inside, &["tasks", "--as", "zx_clerk"], &[], None);
    assert!(queue.status.success(), "{}", text(&queue.stderr));
    assert!(
        text(&queue.stdout).contains("受理"),
        "{}",
        text(&queue.stdout)
    );
}

#[test]
fn a_broken_definition_does_not_stop_reading() {
    let dir = tempfile::tempdir().expect("temp dir");
    let definitions = dir.path().join("processes");
    copy_dir(&root().join("processes"), &definitions);
    let defs = definitions.display().to_string();
    let db = dir.path().join("jiuzhu.db").display().to_string();
    let deploy = jiuzhu(&["deploy", "--db", &db, "--definitions", &defs], &[]);
    assert!(deploy.status.success(), "{}", text(&deploy.stderr));
    let start = jiuzhu(
        &[
            "start",
            "dibao",
            "--data",
            ZHANG,
            "--as",
            "zx_clerk",
            "--db",
            &db,
            "--definitions",
            &defs,
        ],
        &[],
    );
    assert!(start.status.success(), "{}", text(&start.stderr));
    let instance = text(&start.stdout)
        .lines()
        .next()
        .expect("id")
        .trim()
        .to_string();
    std::fs::write(definitions.join("tekun.yaml"), "id: tekun\nnodes: [oops\n").expect("break");
    for args in [
        vec!["tasks", "--as", "zx_clerk"],
        vec!["show", &instance],
        vec!["history", &instance],
        vec!["cases"],
    ] {
        let mut all = args.clone();
        all.extend(["--db", &db, "--definitions", &defs]);
        let out = jiuzhu(&all, &[]);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    // A command that runs steps needs the definitions: it says what is wrong.
    let refused = jiuzhu(
        &[
            "message",
            &instance,
            "withdraw",
            "--db",
            &db,
            "--definitions",
            &defs,
        ],
        &[],
    );
    assert_eq!(refused.status.code(), Some(2));
    let err = text(&refused.stderr);
    assert!(
        err.starts_with("error[invalid_definition]:") && err.contains("tekun.yaml"),
        "{err}"
    );
}
