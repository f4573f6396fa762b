//! End-to-end tests of tamper evidence with the `jiuzhu` binary on a real SQLite file: an
//! edited state stops the case (`tampered`, with an incident), a chain re-hashed without
//! the key or cut short fails `history --verify`, and `audit verify` passes over a clean
//! database and fails over a tampered one. The tampering is done as a script would, with
//! Python's sqlite3 and hashlib.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `jiuzhu ARGS --db DB`, run from the repository (its `processes/`).
fn jiuzhu(db: &Path, args: &[&str]) -> Output {
    let db = db.display().to_string();
    Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .current_dir(root())
        .args(args)
        .args(["--db", &db])
        .env_remove("JIUZHU_DB")
        .env_remove("JIUZHU_AUDIT_KEY_FILE")
        .output()
        .expect("the jiuzhu binary runs")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs a Python script on the database file (argv[1]) and the case id (argv[2]).
fn python(db: &Path, case: &str, script: &str) {
    let out = Command::new("python3")
        .args(["-c", script, &db.display().to_string(), case])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
}

const APPLICATION: &str = r#"{"applicant_name": "张三丰", "area": "urban",
    "household": {"members": [{"id": "m1", "birth_date": "1948-10-20"}], "savings": "0"}}"#;

/// A deployed database with `cases` dibao cases whose `accept` is completed; the ids.
fn seeded(dir: &Path, cases: usize) -> (PathBuf, Vec<String>) {
    let db = dir.join("jiuzhu.db");
    ok(jiuzhu(&db, &["deploy"]));
    let accept = dir.join("accept.json");
    std::fs::write(&accept, r#"{"complete": true}"#).expect("write");
    let ids = (0..cases)
        .map(|_| {
            let started = ok(jiuzhu(
                &db,
                &["start", "dibao", "--data", APPLICATION, "--as", "zx_clerk"],
            ));
            let id = started
                .lines()
                .next()
                .expect("the case id")
                .trim()
                .to_string();
            let task = format!("{id}-t2");
            ok(jiuzhu(
                &db,
                &[
                    "complete",
                    &task,
                    "--data",
                    &accept.display().to_string(),
                    "--as",
                    "zx_clerk",
                ],
            ));
            id
        })
        .collect();
    (db, ids)
}

/// Re-hashes the last history row of the case with a changed actor, the plain SHA-256 way
/// (the canonical row document after the previous hash), and moves the head to it.
const REHASH: &str = r#"
import sqlite3, sys, json, hashlib
c = sqlite3.connect(sys.argv[1]); case = sys.argv[2]
seq, at, event, node, data, prev = c.execute(
    "select seq, at, event, node, data, prev_hash from history where instance_id = ? order by seq desc limit 1",
    (case,)).fetchone()
dump = lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"))
doc = '{"actor":%s,"at":%d,"data":%s,"event":%s,"node":%s,"seq":%d}' % (
    dump("zx_staff2"), at, data, dump(event), dump(node), seq)
h = hashlib.sha256((prev + doc).encode()).hexdigest()
c.execute("update history set actor = 'zx_staff2', hash = ? where instance_id = ? and seq = ?", (h, case, seq))
c.execute("update instances set history_hash = ? where id = ?", (h, case))
c.commit()
"#;

/// Drops the last history row of the case and moves the head back to the row before.
const TRUNCATE: &str = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); case = sys.argv[2]
(seq,) = c.execute("select max(seq) from history where instance_id = ?", (case,)).fetchone()
(prev,) = c.execute("select hash from history where instance_id = ? and seq = ?", (case, seq - 1)).fetchone()
c.execute("delete from history where instance_id = ? and seq = ?", (case, seq))
c.execute("update instances set version = ?, history_hash = ? where id = ?", (seq - 1, prev, case))
c.commit()
"#;

/// Puts another amount and another bank account into the case's stored state.
const EDIT_STATE: &str = r#"
import sqlite3, sys, json
c = sqlite3.connect(sys.argv[1]); case = sys.argv[2]
(state,) = c.execute("select state from instances where id = ?", (case,)).fetchone()
s = json.loads(state)
s["vars"]["monthly_amount"] = "99999.00"
s["vars"]["bank"] = {"account": "6222000011112222333"}
c.execute("update instances set state = ? where id = ?", (json.dumps(s, ensure_ascii=False), case))
c.commit()
"#;

#[test]
fn an_edited_state_is_refused_by_the_next_step_and_raises_an_incident() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, ids) = seeded(dir.path(), 1);
    python(&db, &ids[0], EDIT_STATE);
    let survey = dir.path().join("survey.json");
    std::fs::write(&survey, r#"{"surveyors": ["李强", "赵敏"]}"#).expect("write");
    let task = format!("{}-t3", ids[0]);
    let out = jiuzhu(
        &db,
        &[
            "complete",
            &task,
            "--data",
            &survey.display().to_string(),
            "--as",
            "zx_staff1",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("error[tampered]"), "{stderr}");
    assert!(stderr.contains(&ids[0]), "{stderr}");
    let incidents = ok(jiuzhu(&db, &["incidents"]));
    assert!(incidents.contains("tampered"), "{incidents}");
    let history = jiuzhu(&db, &["history", &ids[0], "--verify"]);
    assert_eq!(history.status.code(), Some(1));
    assert!(text(&history.stderr).contains("error[tampered]"));
}

#[test]
fn a_rehashed_row_fails_history_verify() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, ids) = seeded(dir.path(), 1);
    ok(jiuzhu(&db, &["history", &ids[0], "--verify"]));
    python(&db, &ids[0], REHASH);
    let out = jiuzhu(&db, &["history", &ids[0], "--verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("error[tampered]"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn dropping_the_last_row_and_moving_the_head_fails_history_verify() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, ids) = seeded(dir.path(), 1);
    python(&db, &ids[0], TRUNCATE);
    let out = jiuzhu(&db, &["history", &ids[0], "--verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("error[tampered]"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn audit_verify_passes_over_a_clean_database_and_names_every_tampered_case() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, ids) = seeded(dir.path(), 4);
    let clean = ok(jiuzhu(&db, &["audit", "verify"]));
    assert!(
        clean.contains("4 cases, 8 history rows") && clean.contains("0 failed"),
        "{clean}"
    );

    python(&db, &ids[0], EDIT_STATE);
    python(&db, &ids[1], REHASH);
    python(&db, &ids[2], TRUNCATE);
    let out = jiuzhu(&db, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    for tampered in &ids[..3] {
        assert!(stdout.contains(&format!("FAILED {tampered}")), "{stdout}");
    }
    assert!(!stdout.contains(&format!("FAILED {}", ids[3])), "{stdout}");
    assert!(stdout.contains("3 failed"), "{stdout}");
    assert!(text(&out.stderr).contains("error[tampered]"));
}
