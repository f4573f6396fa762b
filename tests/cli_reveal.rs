//! `--reveal` reads of the `jiuzhu` binary write the access log (the server's table), by
//! `--as` or the OS user; masked reads write nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn jiuzhu(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jiuzhu"));
    cmd.current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .args(args)
        .env_remove("JIUZHU_DB");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the jiuzhu binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = jiuzhu(args, env);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

const ZHANG: &str = r#"{"applicant_name": "张三丰", "area": "urban",
    "bank": {"account": "6222020200112233445", "id_number": "230102194810201234"},
    "household": {"members": [{"id": "m1", "birth_date": "1948-10-20"}], "savings": "0"}}"#;

/// The access log's rows: (user, what, subject, address, via), oldest first.
fn access_log(db: &Path) -> Vec<(String, String, String, String, String)> {
    let conn = rusqlite::Connection::open(db).expect("open the database");
    let exists: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'server_access_log'",
            [],
            |row| row.get(0),
        )
        .expect("sqlite_master");
    if exists == 0 {
        return Vec::new();
    }
    let mut statement = conn
        .prepare(
            "SELECT user_id, what, subject, address, via FROM server_access_log ORDER BY rowid",
        )
        .expect("the access log");
    statement
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows read")
}

#[test]
fn reveal_reads_are_in_the_access_log_and_masked_reads_are_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("jiuzhu.db");
    let db = db_path.display().to_string();
    ok(&["--db", &db, "deploy"], &[]);
    let started = ok(
        &[
            "start", "dibao", "--data", ZHANG, "--as", "zx_clerk", "--db", &db,
        ],
        &[],
    );
    let id = started
        .lines()
        .next()
        .expect("the case id")
        .trim()
        .to_string();
    let short = &id[id.len() - 8..];
    let user = [("USER", "wang"), ("USERNAME", "wang"), ("LOGNAME", "wang")];

    // Masked reads leave no row.
    ok(&["show", short, "--db", &db], &user);
    ok(&["history", short, "--db", &db], &user);
    ok(&["tasks", "--as", "zx_clerk", "--db", &db], &user);
    ok(&["cases", "--db", &db], &user);
    assert_eq!(access_log(&db_path), Vec::new());

    // `show --reveal` by its short id: one row naming the full id and the OS user.
    let shown = ok(&["show", short, "--reveal", "--db", &db], &user);
    assert!(shown.contains("张三丰"), "{shown}");
    let cli = |what: &str, subject: &str, who: &str| {
        (
            who.to_string(),
            what.to_string(),
            subject.to_string(),
            "local".to_string(),
            "cli".to_string(),
        )
    };
    assert_eq!(access_log(&db_path), vec![cli("case", &id, "cli:wang")]);

    ok(&["history", short, "--reveal", "--db", &db], &user);
    ok(
        &["tasks", "--as", "zx_clerk", "--reveal", "--db", &db],
        &user,
    );
    ok(&["cases", "--reveal", "--db", &db], &user);
    assert_eq!(
        access_log(&db_path),
        vec![
            cli("case", &id, "cli:wang"),
            cli("history", &id, "cli:wang"),
            cli("tasks", &id, "zx_clerk"),
            cli("cases", &id, "cli:wang"),
        ]
    );
}
