//! `jiuzhu incidents --json` lists every kind of incident the text form lists: the dead
//! effects (each with its effect type as `kind`) and the parked timers (`kind: "timer"`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use jiuzhu_engine::store::Store;
use serde_json::{Value as Json, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `jiuzhu ARGS --db DB`, run from the repository (its `processes/`); its stdout.
fn jiuzhu(db: &Path, args: &[&str]) -> String {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .current_dir(root())
        .args(args)
        .args(["--db", &db.display().to_string()])
        .env_remove("JIUZHU_DB")
        .env_remove("JIUZHU_AUDIT_KEY_FILE")
        .output()
        .expect("the jiuzhu binary runs");
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

const APPLICATION: &str = r#"{"applicant_name": "张三丰", "area": "urban",
    "household": {"members": [{"id": "m1", "birth_date": "1948-10-20"}], "savings": "0"}}"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_json_list_has_the_parked_timers_beside_the_dead_effects() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("jiuzhu.db");
    jiuzhu(&db, &["deploy"]);
    let started = jiuzhu(
        &db,
        &["start", "dibao", "--data", APPLICATION, "--as", "zx_clerk"],
    );
    let case = started
        .lines()
        .next()
        .expect("the case id")
        .trim()
        .to_string();
    // Accepted: the survey task opens with its deadline's timers.
    let accept = dir.path().join("accept.json");
    std::fs::write(&accept, r#"{"complete": true}"#).expect("write");
    jiuzhu(
        &db,
        &[
            "complete",
            &format!("{case}-t2"),
            "--data",
            &accept.display().to_string(),
            "--as",
            "zx_clerk",
        ],
    );
    let empty: Json =
        serde_json::from_str(&jiuzhu(&db, &["incidents", "--json"])).expect("a JSON list");
    assert_eq!(empty, json!([]), "a fresh case has no incident");

    // A dead effect and a parked timer (the task's deadline timer), as the dispatcher and
    // the scheduler leave them.
    let store = Store::open(&format!("sqlite:{}", db.display()))
        .await
        .expect("open the database");
    let now = chrono::DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
        .expect("a valid time")
        .to_utc();
    store
        .record_incident(
            &format!("{case}-e9"),
            &case,
            "notification",
            &json!({"type": "notification", "template": "dibao_approved"}),
            "webhook answered HTTP 500",
            now,
        )
        .await
        .expect("a dead effect");
    let timer: String = {
        let connection = rusqlite::Connection::open(&db).expect("open with rusqlite");
        connection
            .query_row(
                "SELECT id FROM timers WHERE instance_id = ?1 ORDER BY id LIMIT 1",
                [&case],
                |row| row.get(0),
            )
            .expect("the case has a timer")
    };
    assert!(
        store
            .park_timer(&timer, "incident", now)
            .await
            .expect("park"),
        "{timer} parked"
    );
    drop(store);

    let listed: Json =
        serde_json::from_str(&jiuzhu(&db, &["incidents", "--json"])).expect("a JSON list");
    let items = listed.as_array().expect("an array");
    assert_eq!(items.len(), 2, "{listed:#}");
    assert_eq!(items[0]["kind"], "notification", "{listed:#}");
    assert_eq!(items[0]["id"], format!("{case}-e9"), "{listed:#}");
    let parked = &items[1];
    assert_eq!(parked["kind"], "timer", "{listed:#}");
    assert_eq!(parked["id"], timer, "{listed:#}");
    assert_eq!(parked["instance_id"], case, "{listed:#}");
    assert_eq!(parked["last_error"], "incident", "{listed:#}");
    for field in ["summary", "attempts", "due_at", "given_up_at"] {
        assert!(!parked[field].is_null(), "{field} missing: {listed:#}");
    }

    // The text form lists the same two.
    let shown = jiuzhu(&db, &["incidents"]);
    assert!(shown.contains(&format!("{case}-e9")), "{shown}");
    assert!(
        shown.contains(&format!("timer {timer} of case {case}: parked")),
        "{shown}"
    );
}
