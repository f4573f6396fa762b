//! `jiuzhu bench` at tiny sizes: each mode runs end to end and reports what it did. These
//! check correctness only (every case completed, every timer fired exactly once, every queue
//! answered); timing figures are measured with release builds and written to BENCHMARKS.md,
//! never asserted here.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// Runs `jiuzhu bench ARGS` on a fresh SQLite file in a temporary folder; returns its JSON.
fn bench(args: &[&str]) -> Value {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = dir.path().join("bench.db");
    let out = Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .arg("bench")
        .args(args)
        .arg("--db")
        .arg(&db)
        .output()
        .expect("the jiuzhu binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench {args:?} failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The database is removed after the run.
    assert!(!db.exists(), "the bench left {} behind", db.display());
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON object per run: {stdout}");
    serde_json::from_str(lines[0]).expect("the report is JSON")
}

fn number(report: &Value, field: &str) -> f64 {
    report[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is a number in {report}"))
}

#[test]
fn dibao_lite_completes_every_instance_with_the_right_payment() {
    for clients in ["1", "4"] {
        let report = bench(&[
            "dibao-lite",
            "--instances",
            "20",
            "--clients",
            clients,
            "--raw-commits",
            "20",
        ]);
        assert_eq!(report["bench"], "dibao-lite");
        assert_eq!(report["db"], "sqlite");
        assert_eq!(report["synchronous"], "full");
        assert_eq!(report["instances"], 20);
        assert_eq!(report["completed"], 20);
        assert_eq!(report["approved"], 20);
        assert_eq!(report["payments"], 20);
        assert_eq!(report["payment_amounts_ok"], 20);
        // 20 starts, 20 verifies, 5 reviews (i % 4 == 0), 20 approvals.
        assert_eq!(report["steps"], 65);
        assert_eq!(report["history_rows"], 65);
        assert_eq!(report["clients"].as_u64(), clients.parse().ok());
        for field in [
            "instances_per_s",
            "steps_per_s",
            "raw_commits_per_s",
            "ratio_to_raw",
            "seconds",
        ] {
            assert!(number(&report, field) > 0.0, "{field} in {report}");
        }
        let ratio = number(&report, "steps_per_s") / number(&report, "raw_commits_per_s");
        assert!(
            (ratio - number(&report, "ratio_to_raw")).abs() < 0.01,
            "{report}"
        );
        assert!(number(&report, "chains_verified") >= 1.0, "{report}");
    }
}

#[test]
fn dibao_lite_commits_alone_without_group_commit_and_with_normal_sync() {
    let report = bench(&[
        "dibao-lite",
        "--instances",
        "8",
        "--clients",
        "2",
        "--no-group-commit",
        "--synchronous",
        "normal",
        "--raw-commits",
        "10",
    ]);
    assert_eq!(report["group_commit"], false);
    assert_eq!(report["synchronous"], "normal");
    assert_eq!(report["completed"], 8);
    assert_eq!(report["commits"], report["steps"]);
}

#[test]
fn timers_fire_every_due_timer_exactly_once_through_the_index() {
    let report = bench(&[
        "timers",
        "--timers",
        "2000",
        "--due",
        "200",
        "--batch",
        "64",
        "--concurrency",
        "8",
    ]);
    assert_eq!(report["bench"], "timers");
    assert_eq!(report["pending_timers"], 2000);
    assert_eq!(report["fired"], 200);
    assert_eq!(report["completed"], 200);
    assert_eq!(report["reminders"], 200);
    assert_eq!(report["timers_left"], 1800);
    assert_eq!(report["claim_uses_index"], true, "{report}");
    for field in ["firings_per_s", "last_firing_lag_ms", "peak_rss_mib"] {
        assert!(number(&report, field) > 0.0, "{field} in {report}");
    }
}

#[test]
fn inbox_answers_each_queue_from_its_own_units() {
    let report = bench(&[
        "inbox",
        "--tasks",
        "5000",
        "--units",
        "50",
        "--queries",
        "20",
    ]);
    assert_eq!(report["bench"], "inbox");
    assert_eq!(report["open_tasks"], 5000);
    let (p50, p99) = (number(&report, "p50_ms"), number(&report, "p99_ms"));
    assert!(p50 > 0.0 && p50 <= p99, "{report}");
    assert!(number(&report, "county_p99_ms") > 0.0, "{report}");
}

#[test]
fn a_bench_refuses_an_existing_database_file() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = dir.path().join("existing.db");
    std::fs::write(&db, b"").expect("a file");
    let out = Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .args(["bench", "dibao-lite", "--instances", "1", "--db"])
        .arg(&db)
        .output()
        .expect("the jiuzhu binary runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fresh database"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists(), "an existing file is left alone");
}

#[test]
fn nodes_share_one_postgresql_and_fire_and_pay_each_case_once() {
    // The server the PostgreSQL tests use; connecting first fails with a clear message
    // when none answers.
    let base = jiuzhu_testkit::pg_base();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let mut admin = runtime.block_on(jiuzhu_testkit::connect_pg_admin(&base));
    let child = Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .args([
            "bench",
            "nodes",
            "--nodes",
            "1,2",
            "--timers",
            "300",
            "--instances",
            "24",
            "--clients",
            "4",
            "--db",
            &base,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the jiuzhu binary runs");
    let pid = child.id();
    let out = child.wait_with_output().expect("the bench ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench nodes failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(report["bench"], "nodes");
    let runs = report["run"].as_array().expect("run nodes");
    assert_eq!(runs.len(), 2, "{report}");
    for (run, k) in runs.iter().zip([1u64, 2]) {
        assert_eq!(run["nodes"].as_u64(), Some(k), "{run}");
        assert_eq!(run["timers"], 300);
        // Each case started and fired once, one reminder each, across the nodes.
        assert_eq!(run["history_rows"], 600, "{run}");
        assert_eq!(run["fired_twice"], 0, "{run}");
        assert_eq!(run["reminders"], 300, "{run}");
        assert!(number(run, "firings_per_s") > 0.0, "{run}");
        assert!(
            number(run, "webhook_posts") >= number(run, "reminders_delivered"),
            "{run}"
        );
        assert!(number(run, "xact_commits") > 0.0, "{run}");
        let per_node = run["cpu"]["nodes_s"].as_array().expect("CPU per node");
        assert_eq!(per_node.len() as u64, k, "{run}");
    }
    let serves = report["serve"].as_array().expect("serve nodes");
    assert_eq!(serves.len(), 2, "{report}");
    for (serve, k) in serves.iter().zip([1u64, 2]) {
        assert_eq!(serve["nodes"].as_u64(), Some(k), "{serve}");
        assert_eq!(serve["paid"], 24, "{serve}");
        // 24 starts, 24 verifies, 6 reviews (i % 4 == 0), 24 approvals.
        assert_eq!(serve["steps"], 78, "{serve}");
        assert!(number(serve, "completions_per_s") > 0.0, "{serve}");
        assert!(
            number(serve, "all_paid_seconds") >= number(serve, "seconds"),
            "{serve}"
        );
    }
    // Every database the bench made is gone.
    let left: i64 = runtime
        .block_on(
            sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname LIKE $1")
                .bind(format!("jiuzhu_bench_{pid}_%"))
                .fetch_one(&mut admin),
        )
        .expect("pg_database reads");
    assert_eq!(left, 0, "the bench left its databases behind");
}

#[test]
fn nodes_refuse_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let out = Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .args(["bench", "nodes", "--nodes", "1", "--db"])
        .arg(dir.path().join("nodes.db"))
        .output()
        .expect("the jiuzhu binary runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs --db postgres://"), "{stderr}");
    assert!(
        !dir.path().join("nodes.db").exists(),
        "no database was made"
    );
}
