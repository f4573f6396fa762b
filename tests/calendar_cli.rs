//! Provisional due dates at the command line: `tasks` and `show` mark them (暂定),
//! `status` counts them, `deploy` warns about them and, given a calendar that covers
//! their year, counts them again.
//!
//! The binary reads the system clock, so the project's calendar is replaced by ones
//! whose coverage does not depend on today's date: first one covering only the year
//! 2000 (every due date counted now is provisional), then one declaring no `covers`
//! (it vouches for every year).

use std::path::Path;
use std::process::{Command, Output};

fn jiuzhu(project: &Path, db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .current_dir(project)
        .args(args)
        .args(["--db", &db.display().to_string()])
        .env_remove("JIUZHU_DB")
        .env_remove("JIUZHU_HOME")
        .output()
        .expect("the jiuzhu binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn provisional_due_dates_are_marked_counted_warned_and_recounted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let project = dir.path();
    jiuzhu_testkit::copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("processes"),
        &project.join("processes"),
    );
    let calendar = project.join("processes/calendars/cn.yaml");
    std::fs::write(&calendar, "id: cn\nname: 测试日历\ncovers: [2000]\n").expect("write");
    let db = project.join("jiuzhu.db");

    let deploy = jiuzhu(project, &db, &["deploy"]);
    ok(&deploy);
    assert!(
        text(&deploy.stderr).contains("warning: calendar `cn` covers up to 2000-12-31"),
        "{}",
        text(&deploy.stderr)
    );
    let start = jiuzhu(
        project,
        &db,
        &[
            "start",
            "dibao",
            "--data",
            r#"{"applicant_name": "张三", "area": "urban",
                "household": {"members": [{"id": "m1", "birth_date": "1948-10-20"}], "savings": "0"}}"#,
            "--as",
            "zx_clerk",
        ],
    );
    let instance = ok(&start)
        .lines()
        .next()
        .expect("case id")
        .trim()
        .to_string();
    let queue = ok(&jiuzhu(project, &db, &["tasks", "--as", "zx_clerk"]));
    let accept = queue
        .lines()
        .find(|l| l.contains(&instance[instance.len() - 8..]))
        .and_then(|l| l.split_whitespace().next())
        .expect("the accept task")
        .to_string();
    ok(&jiuzhu(
        project,
        &db,
        &[
            "complete",
            &accept,
            "--data",
            r#"{"complete": true}"#,
            "--as",
            "zx_clerk",
        ],
    ));

    // The survey (5wd) is due in a year the calendar does not cover.
    let queue = ok(&jiuzhu(project, &db, &["tasks", "--as", "zx_staff1"]));
    let survey = queue
        .lines()
        .find(|l| l.contains("入户调查"))
        .unwrap_or_else(|| panic!("{queue}"));
    assert!(survey.contains("(暂定)"), "{survey}");
    let show = ok(&jiuzhu(project, &db, &["show", &instance]));
    assert!(
        show.lines()
            .any(|l| l.contains("入户调查") && l.contains("(暂定)")),
        "{show}"
    );
    let status = ok(&jiuzhu(project, &db, &["status"]));
    assert!(
        status.contains("provisional due dates (暂定, past the calendar's years): 2 open tasks"),
        "{status}"
    );
    let again = jiuzhu(project, &db, &["deploy"]);
    ok(&again);
    assert!(
        text(&again.stderr).contains("warning: 2 open tasks and"),
        "{}",
        text(&again.stderr)
    );

    // A calendar that vouches for every year: deploy counts the dates again.
    std::fs::write(&calendar, "id: cn\nname: 测试日历\n").expect("write");
    let covered = jiuzhu(project, &db, &["deploy"]);
    let out = ok(&covered);
    assert!(
        out.contains("provisional due dates counted again with the deployed calendars: 1 cases"),
        "{out}"
    );
    assert!(
        !text(&covered.stderr).contains("warning"),
        "{}",
        text(&covered.stderr)
    );
    let queue = ok(&jiuzhu(project, &db, &["tasks", "--as", "zx_staff1"]));
    assert!(!queue.contains("(暂定)"), "{queue}");
    let status = ok(&jiuzhu(project, &db, &["status"]));
    assert!(
        status.contains(": 0 open tasks, 0 pending timers"),
        "{status}"
    );
    let history = ok(&jiuzhu(project, &db, &["history", &instance]));
    assert!(history.contains("calendar_changed"), "{history}");
}
