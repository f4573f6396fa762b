//! `requires_active` and `key_outlives` through the engine and the store, on SQLite and
//! PostgreSQL (`JIUZHU_TEST_PG`): a start that requires an approved case of another
//! process for a person is refused `no_active_benefit` and stores nothing while no such
//! case exists; once one does, the start goes through; a second start for the same
//! person is refused `duplicate` while the first is open and, the first approved, still
//! after it ended (its key outlives it), but not after a rejection.

use jiuzhu_testkit::copy_dir;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use chrono::{DateTime, Utc};
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::{Engine, EngineError};
use jiuzhu_engine::store::Store;
use jiuzhu_engine::store::search::CaseQuery;
use jiuzhu_rules::Value;
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};
use serde_json::json;

/// Ends at once, approved: the benefit a person holds.
const GRANT: &str = r#"process: grant
name: 测试保障
started_by: [township_staff]
start: granted
variables:
  applicant_name: {type: string, required: true}
  id_number: {type: string, required: true}
nodes:
  - id: granted
    type: end
    outcome: approved
"#;

/// Requires the person's grant; one per person, kept once approved.
const AID: &str = r#"process: aid
name: 测试救助
started_by: [township_staff]
start: check
key: "id_number"
key_outlives: [approved]
requires_active: {process: grant, id_number: "=id_number"}
variables:
  applicant_name: {type: string, required: true}
  id_number: {type: string, required: true}
nodes:
  - id: check
    type: task
    role: township_staff
    form:
      ok: {type: bool, required: true}
    next:
      - {if: "form.ok", to: paid}
      - {to: refused}
  - id: paid
    type: end
    outcome: approved
  - id: refused
    type: end
    outcome: rejected
"#;

const PERSON: &str = "230502195510100040";

#[derive(Clone)]
struct Ctx {
    url: String,
    clock: Arc<ManualClock>,
    project: Arc<Project>,
}

struct Teardown {
    database: TestDatabase,
    _dir: tempfile::TempDir,
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "requires_active").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../processes");
    let processes = dir.path().join("processes");
    copy_dir(&shipped, &processes);
    std::fs::write(processes.join("grant.yaml"), GRANT).expect("write grant");
    std::fs::write(processes.join("aid.yaml"), AID).expect("write aid");
    let project = Project::load(&processes).unwrap_or_else(|problems| {
        panic!("the test project does not load:\n{}", problems.join("\n"))
    });
    let ctx = Ctx {
        url: database.url.clone(),
        clock: Arc::new(ManualClock::new(now())),
        project: Arc::new(project),
    };
    (
        ctx,
        Teardown {
            database,
            _dir: dir,
        },
    )
}

async fn finish(db: Db, teardown: Teardown, outcome: Outcome) {
    teardown.database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(
    a_start_without_the_required_case_is_refused_and_stores_nothing,
    one_case_per_person_while_open_and_after_approval,
);

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
        .expect("a valid time")
        .with_timezone(&Utc)
}

fn person(id_number: &str) -> BTreeMap<String, Value> {
    match Value::from_json(&json!({"applicant_name": "李桂芬", "id_number": id_number})) {
        Value::Object(map) => map,
        _ => BTreeMap::new(),
    }
}

impl Ctx {
    async fn engine(&self) -> Result<Engine> {
        let store = Store::open(&self.url).await?;
        let engine = Engine::new(store, self.project.clone(), self.clock.clone(), "n1")
            .map_err(|e| anyhow::anyhow!(e))?;
        engine.deploy().await?;
        Ok(engine)
    }

    fn staff(&self) -> Result<Actor> {
        let org = self.project.org.as_ref().context("org.yaml")?;
        Ok(org.user("zx_staff1").context("no user zx_staff1")?.actor())
    }
}

async fn aid_cases(engine: &Engine) -> Result<usize> {
    let query = CaseQuery {
        process_id: Some("aid".into()),
        limit: 100,
        ..CaseQuery::default()
    };
    Ok(engine.store.search_cases(&query).await?.len())
}

fn refused_with(result: Result<impl std::fmt::Debug, EngineError>, code: &str) -> Result<()> {
    match result {
        Err(error) => {
            ensure!(error.code() == code, "expected {code}, got {error}");
            Ok(())
        }
        Ok(report) => anyhow::bail!("expected {code}, the start went through: {report:?}"),
    }
}

async fn a_start_without_the_required_case_is_refused_and_stores_nothing(ctx: Ctx) -> Result<()> {
    let engine = ctx.engine().await?;
    let staff = ctx.staff()?;
    let refused = engine.start("aid", &staff, person(PERSON)).await;
    let error = refused.as_ref().err().context("refused")?;
    ensure!(error.status() == 422, "{}", error.status());
    // The message names the process and the masked ID number, never the number itself.
    ensure!(!error.to_string().contains(PERSON), "{error}");
    ensure!(error.to_string().contains("grant"), "{error}");
    refused_with(refused, "no_active_benefit")?;
    ensure!(aid_cases(&engine).await? == 0, "nothing stored");
    // Another person's grant does not count.
    engine
        .start("grant", &staff, person("230502196306060066"))
        .await?;
    refused_with(
        engine.start("aid", &staff, person(PERSON)).await,
        "no_active_benefit",
    )?;
    ensure!(aid_cases(&engine).await? == 0, "nothing stored");
    Ok(())
}

async fn one_case_per_person_while_open_and_after_approval(ctx: Ctx) -> Result<()> {
    let engine = ctx.engine().await?;
    let staff = ctx.staff()?;
    let grant = engine.start("grant", &staff, person(PERSON)).await?;
    ensure!(
        grant.instance.status == "completed",
        "{}",
        grant.instance.status
    );
    let first = engine.start("aid", &staff, person(PERSON)).await?;
    refused_with(
        engine.start("aid", &staff, person(PERSON)).await,
        "duplicate",
    )?;
    // Rejected: the key is free again.
    let task = first.tasks_opened.first().context("check task")?;
    let data = match Value::from_json(&json!({"ok": false})) {
        Value::Object(map) => map,
        _ => BTreeMap::new(),
    };
    engine.complete(&task.id, &staff, data).await?;
    let second = engine.start("aid", &staff, person(PERSON)).await?;
    let task = second.tasks_opened.first().context("check task")?;
    let data = match Value::from_json(&json!({"ok": true})) {
        Value::Object(map) => map,
        _ => BTreeMap::new(),
    };
    let done = engine.complete(&task.id, &staff, data).await?;
    ensure!(
        done.instance.status == "completed",
        "{}",
        done.instance.status
    );
    ensure!(done.instance.outcome.as_deref() == Some("approved"));
    // Approved: its key outlives it.
    refused_with(
        engine.start("aid", &staff, person(PERSON)).await,
        "duplicate",
    )?;
    ensure!(aid_cases(&engine).await? == 2, "two cases, one approved");
    Ok(())
}
