//! End-to-end test of the binary's logs: `RUST_LOG=debug` shows what a node does (group
//! commits, ticks, deliveries) on stderr, keeps stdout clean, and never logs the personal
//! data of a case (name, ID number, bank account), in human or JSON format.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NAME: &str = "欧阳测试";
const ID_NUMBER: &str = "110109199003071234";
const ACCOUNT: &str = "6222020200112233445";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `jiuzhu ARGS --db DB` with `RUST_LOG=debug`, no notification channel configured.
fn jiuzhu(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .current_dir(root())
        .args(args)
        .args(["--db", &db.display().to_string()])
        .env_remove("JIUZHU_DB")
        .env_remove("JIUZHU_NOTIFY_SMTP_HOST")
        .env_remove("JIUZHU_NOTIFY_WEBHOOK_URL")
        .env("RUST_LOG", "debug")
        .output()
        .expect("the jiuzhu binary runs")
}

/// Runs a command that must succeed; returns its stdout and stderr.
fn ok(db: &Path, args: &[&str]) -> (String, String) {
    let out = jiuzhu(db, args);
    assert!(
        out.status.success(),
        "{args:?} failed:\n{}",
        text(&out.stderr)
    );
    (text(&out.stdout), text(&out.stderr))
}

fn assert_no_personal_data(log: &str) {
    for value in [NAME, ID_NUMBER, ACCOUNT] {
        assert!(!log.contains(value), "the log contains {value:?}:\n{log}");
    }
}

#[test]
fn debug_logs_show_the_node_at_work_and_no_personal_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("jiuzhu.db");
    let mut log = String::new();

    let (_, err) = ok(&db, &["deploy"]);
    log.push_str(&err);

    let start_data = dir.path().join("start.json");
    std::fs::write(
        &start_data,
        format!(
            r#"{{"applicant_name": "{NAME}", "area": "urban",
                "household": {{"members": [{{"id": "m1", "name": "{NAME}", "id_number": "{ID_NUMBER}",
                                            "birth_date": "1948-10-20"}}], "savings": "0"}},
                "bank": {{"account": "{ACCOUNT}", "id_number": "{ID_NUMBER}"}}}}"#
        ),
    )
    .expect("write start data");
    let (out, err) = ok(
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
    log.push_str(&err);
    let instance = out
        .lines()
        .next()
        .expect("the instance id")
        .trim()
        .to_string();
    // stdout is the command's output, not logs.
    assert!(!out.contains("DEBUG"), "{out}");
    // The start step was committed, and that is logged with the group's size.
    assert!(err.contains("group committed"), "{err}");
    assert!(err.contains("size=1"), "{err}");

    let (queue, err) = ok(&db, &["tasks", "--as", "zx_clerk"]);
    log.push_str(&err);
    // The queue names cases by the last 8 characters of their id.
    let short = &instance[instance.len() - 8..];
    let task = queue
        .lines()
        .find(|l| l.contains(short))
        .and_then(|l| l.split_whitespace().next())
        .expect("the accept task is in the clerk's queue")
        .to_string();

    // Materials missing: the step emits a notification to the applicant (an outbox entry,
    // due now), carrying the applicant's name in the case's state.
    let form = dir.path().join("form.json");
    std::fs::write(&form, r#"{"complete": false, "missing": ["户口簿"]}"#).expect("write form");
    let (_, err) = ok(
        &db,
        &[
            "complete",
            &task,
            "--data",
            &form.display().to_string(),
            "--as",
            "zx_clerk",
        ],
    );
    log.push_str(&err);

    // One round of the node: tick, payments, outbox. No channel is configured, so the
    // notification is retried later; the delivery is logged with its effect id.
    let (out, err) = ok(&db, &["run", "--once"]);
    log.push_str(&err);
    assert!(!out.contains("DEBUG"), "{out}");
    assert!(err.contains("tick done"), "{err}");
    let delivery = err
        .lines()
        .find(|l| l.contains("delivery failed; retrying later"))
        .unwrap_or_else(|| panic!("no delivery line in:\n{err}"));
    assert!(
        delivery.contains(&format!("effect={instance}-e"))
            && delivery.contains("kind=notification")
            && delivery.contains("attempt=1")
            && delivery.contains("outcome=\"retrying\""),
        "{delivery}"
    );
    assert!(err.contains("outbox batch handled"), "{err}");

    // The same round as JSON lines: every log line is a JSON object.
    let json = jiuzhu(&db, &["run", "--once", "--log-format", "json"]);
    assert!(json.status.success(), "{}", text(&json.stderr));
    let err = text(&json.stderr);
    log.push_str(&err);
    let mut ticks = 0;
    for line in err.lines().filter(|l| l.starts_with('{')) {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if event["fields"]["message"] == "tick done" {
            ticks += 1;
            assert_eq!(event["level"], "DEBUG", "{line}");
            assert!(event["fields"]["fired"].is_u64(), "{line}");
        }
    }
    assert_eq!(ticks, 1, "{err}");

    assert_no_personal_data(&log);
}

#[test]
fn without_rust_log_a_command_logs_no_info_or_debug() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("jiuzhu.db");
    let out = Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .current_dir(root())
        .args(["deploy", "--db", &db.display().to_string()])
        .env_remove("JIUZHU_DB")
        .env_remove("RUST_LOG")
        .output()
        .expect("the jiuzhu binary runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Info for jiuzhu's crates, warn for the rest: a deploy logs nothing below a warning.
    let err = text(&out.stderr);
    assert!(
        !err.contains("DEBUG") && !err.contains("INFO") && !err.contains("TRACE"),
        "{err}"
    );
    // With RUST_LOG, the same command logs its group commits.
    let out = Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .current_dir(root())
        .args(["deploy", "--db", &db.display().to_string()])
        .env_remove("JIUZHU_DB")
        .env("RUST_LOG", "jiuzhu=debug")
        .output()
        .expect("the jiuzhu binary runs");
    assert!(
        text(&out.stderr).contains("command finished"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_unknown_log_format_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .args(["status", "--log-format", "xml"])
        .output()
        .expect("the jiuzhu binary runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("human"), "{}", text(&out.stderr));
}
