//! Due dates past the years a calendar covers: counted (Monday to Friday) but marked
//! provisional, on the core's state and on the task and timer rows, and counted again —
//! one `calendar_changed` history row per case — when a calendar covering the year is
//! deployed. Run on SQLite and PostgreSQL (`JIUZHU_TEST_PG`); time is a manual clock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use chrono::{DateTime, FixedOffset, Utc};
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::core::{Actor, InstanceState};
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::{Engine, StepReport};
use jiuzhu_engine::store::Store;
use jiuzhu_rules::Value;
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};

#[derive(Clone)]
struct Ctx {
    url: String,
    clock: Arc<ManualClock>,
    project: Arc<Project>,
}

struct Teardown {
    database: TestDatabase,
}

fn processes_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../processes")
}

fn load_project(dir: &Path) -> Arc<Project> {
    Arc::new(Project::load(dir).unwrap_or_else(|problems| {
        panic!("{} does not load:\n{}", dir.display(), problems.join("\n"))
    }))
}

fn beijing(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).expect("a valid time")
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "calendar_years").await;
    let ctx = Ctx {
        url: database.url.clone(),
        // Friday 4 December 2026, 09:00 in Beijing.
        clock: Arc::new(ManualClock::new(
            beijing("2026-12-04T09:00:00+08:00").with_timezone(&Utc),
        )),
        project: load_project(&processes_dir()),
    };
    (ctx, Teardown { database })
}

async fn finish(db: Db, teardown: Teardown, outcome: Outcome) {
    teardown.database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(
    due_dates_in_2027_are_provisional_until_the_2027_calendar_is_deployed,
);

impl Ctx {
    async fn node(&self, name: &str, project: Arc<Project>) -> Result<Engine> {
        let store = Store::open(&self.url).await?;
        Engine::new(store, project, self.clock.clone(), name).map_err(|e| anyhow::anyhow!(e))
    }

    fn actor(&self, user: &str) -> Result<Actor> {
        let org = self.project.org.as_ref().context("org.yaml")?;
        Ok(org
            .user(user)
            .with_context(|| format!("no user {user}"))?
            .actor())
    }
}

fn data(json: serde_json::Value) -> BTreeMap<String, Value> {
    match Value::from_json(&json) {
        Value::Object(map) => map,
        _ => BTreeMap::new(),
    }
}

fn application() -> BTreeMap<String, Value> {
    data(serde_json::json!({
        "applicant_name": "张秀兰",
        "area": "urban",
        "household": {
            "members": [{"id": "m1", "birth_date": "1950-05-01", "income": []}],
            "savings": "0.00"
        }
    }))
}

fn task_of<'r>(report: &'r StepReport, node: &str) -> Result<&'r str> {
    report
        .tasks_opened
        .iter()
        .find(|t| t.node_id == node)
        .map(|t| t.id.as_str())
        .with_context(|| format!("no {node} task opened"))
}

/// Starts a dibao case and accepts it now: the 20wd decision deadline is armed and the
/// 5wd survey task opened. Returns (instance, survey task).
async fn accepted_case(ctx: &Ctx, engine: &Engine) -> Result<(String, String)> {
    let clerk = ctx.actor("zx_clerk")?;
    let started = engine.start("dibao", &clerk, application()).await?;
    let accept = task_of(&started, "accept")?.to_string();
    let accepted = engine
        .complete(&accept, &clerk, data(serde_json::json!({"complete": true})))
        .await?;
    Ok((
        started.instance.id.clone(),
        task_of(&accepted, "survey")?.to_string(),
    ))
}

async fn state(engine: &Engine, instance: &str) -> Result<InstanceState> {
    Ok(engine.load(instance).await?.2)
}

async fn due_dates_in_2027_are_provisional_until_the_2027_calendar_is_deployed(
    ctx: Ctx,
) -> Result<()> {
    let engine = ctx.node("n1", ctx.project.clone()).await?;
    engine.deploy().await?;

    // Accepted Friday 4 December 2026: 20 working days end on Friday 1 January 2027,
    // which the shipped calendar (2026 only) counts as a working day — provisionally.
    let (december, survey) = accepted_case(&ctx, &engine).await?;
    let st = state(&engine, &december).await?;
    let decision = st
        .deadlines
        .iter()
        .find(|d| d.id == "decision")
        .context("decision deadline")?;
    ensure!(
        decision.due_at == beijing("2027-01-01T17:30:00+08:00"),
        "{decision:?}"
    );
    ensure!(decision.provisional, "a due date in 2027 is provisional");
    // The survey (5wd, due 11 December) stays in 2026: not provisional.
    let survey_task = st.task(&survey).context("survey task")?;
    ensure!(!survey_task.provisional, "{survey_task:?}");
    ensure!(
        st.timers
            .iter()
            .any(|t| t.provisional && t.due_at == decision.due_at),
        "the deadline's timer is marked: {:?}",
        st.timers
    );

    // Accepted Monday 28 December: the survey's 5 working days reach 4 January 2027.
    ctx.clock
        .set(beijing("2026-12-28T09:00:00+08:00").with_timezone(&Utc));
    let (late, late_survey) = accepted_case(&ctx, &engine).await?;
    let row = engine
        .store
        .task(&late_survey)
        .await?
        .context("survey row")?;
    ensure!(row.provisional, "the task row carries the mark: {row:?}");
    ensure!(
        row.due_at == Some(beijing("2027-01-04T17:30:00+08:00").with_timezone(&Utc)),
        "{row:?}"
    );
    let (tasks, timers) = engine.store.provisional_counts().await?;
    ensure!(tasks == 1 && timers >= 3, "{tasks} tasks, {timers} timers");

    // Deploying the same calendar again changes nothing and writes no history.
    let recounted = engine.recount_provisional().await?;
    ensure!(
        recounted.changed.is_empty() && recounted.unchanged == 2,
        "{recounted:?}"
    );

    // Deploy a calendar that covers 2027 (1 January a holiday).
    let dir = tempfile::tempdir()?;
    copy_dir(&processes_dir(), dir.path())?;
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/calendars/cn_2026_2027.yaml"),
        dir.path().join("calendars/cn.yaml"),
    )?;
    let covered = ctx.node("n2", load_project(dir.path())).await?;
    covered.deploy().await?;
    let recounted = covered.recount_provisional().await?;
    let mut changed = recounted.changed.clone();
    changed.sort();
    let mut expected = vec![december.clone(), late.clone()];
    expected.sort();
    ensure!(changed == expected, "{recounted:?}");

    let st = state(&covered, &december).await?;
    let decision = st
        .deadlines
        .iter()
        .find(|d| d.id == "decision")
        .context("decision deadline")?;
    ensure!(
        decision.due_at == beijing("2027-01-04T17:30:00+08:00") && !decision.provisional,
        "recounted past the New Year holiday: {decision:?}"
    );
    ensure!(st.timers.iter().all(|t| !t.provisional), "{:?}", st.timers);
    let history = covered.store.history(&december).await?;
    let last = history.last().context("history")?;
    ensure!(last.event == "calendar_changed", "{last:?}");
    let moved = &last.data["rescheduled"];
    ensure!(
        moved[0]["deadline"] == "decision"
            && moved[0]["old_due_at"] == "2027-01-01T17:30:00+08:00"
            && moved[0]["due_at"] == "2027-01-04T17:30:00+08:00"
            && moved[0]["old_provisional"] == true
            && moved[0]["provisional"] == false,
        "{moved}"
    );

    let row = covered
        .store
        .task(&late_survey)
        .await?
        .context("survey row")?;
    ensure!(
        !row.provisional
            && row.due_at == Some(beijing("2027-01-05T17:30:00+08:00").with_timezone(&Utc)),
        "{row:?}"
    );
    ensure!(
        covered.store.provisional_counts().await? == (0, 0),
        "nothing provisional is left"
    );
    ensure!(
        covered.recount_provisional().await?.changed.is_empty(),
        "a second recount has nothing to do"
    );
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
