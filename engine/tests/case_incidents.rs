//! Data checked at the door and rule steps that fail: a start with bad data is refused
//! with every problem at its path and nothing stored; a rule step that fails leaves the
//! case waiting at its node with an incident (listed with the others), which a retry
//! after a correction resolves — on SQLite and PostgreSQL alike.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail, ensure};
use chrono::{DateTime, FixedOffset, Utc};
use jiuzhu_engine::calendar::Calendar;
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::core::{self, Actor, Context, Event, InstanceState, RULE_FAILED, StepError};
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::{Engine, EngineError};
use jiuzhu_engine::store::{OutboxStatus, Store};
use jiuzhu_rules::Value;
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};

fn project() -> Arc<Project> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../processes");
    Arc::new(
        Project::load(&dir).unwrap_or_else(|problems| {
            panic!("processes/ does not load:\n{}", problems.join("\n"))
        }),
    )
}

fn actor(project: &Project, user: &str) -> Actor {
    let org = project.org.as_ref().expect("org.yaml");
    let user = org.user(user).unwrap_or_else(|| panic!("no user {user}"));
    Actor {
        user: user.id.clone(),
        roles: user.roles.clone(),
        unit: user.unit.clone(),
    }
}

fn data(json: serde_json::Value) -> BTreeMap<String, Value> {
    match Value::from_json(&json) {
        Value::Object(map) => map,
        _ => BTreeMap::new(),
    }
}

fn now() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00").expect("valid time")
}

#[test]
fn a_start_with_bad_data_names_every_problem_and_starts_nothing() {
    let project = project();
    let def = project.definitions.get("dibao").expect("dibao");
    let assessor = project.assessor(None).expect("policies load");
    let calendar = Calendar::china_national();
    let ctx = Context {
        calendar: &calendar,
        assessor: &assessor,
    };
    let start = Event::Start {
        actor: actor(&project, "zx_clerk"),
        data: data(serde_json::json!({
            "applicant_name": " ",
            "area": "urban",
            "household": {
                "members": [
                    {"id": "m1", "birth_date": "1950-05-01"},
                    {"id": "m2", "name": "", "birth_date": "2030-01-01",
                     "income": [{"kind": "salary", "monthly": "100"}]}
                ],
                "savings": "-5"
            },
            "bank": {"account": "6222 0202", "id_number": "230502197809123327"},
            "surprise": 1
        })),
    };
    let state = InstanceState::new("dibao-1", "dibao", now());
    let refusal = core::step(def, &state, &start, now(), &ctx).expect_err("refused");
    assert_eq!(refusal.code(), "invalid_data");
    let problems: Vec<String> = refusal
        .problems()
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
    assert_eq!(
        problems,
        vec![
            "$.applicant_name: must not be empty",
            "$.bank.account: a bank account is 12 to 30 digits, without spaces or other characters",
            "$.bank.id_number: the check character does not match the ID number (GB 11643)",
            "$.household.members[1].birth_date: birth date 2030-01-01 is in the future (today is 2026-03-02)",
            "$.household.members[1].income[0].kind: unknown income kind \"salary\" (expected one of wage, business, property, transfer, pension_basic, social_assistance, traffic_accident_aid, preferential_care, reward, other)",
            "$.household.members[1].name: must not be empty",
            "$.household.savings: must be >= 0",
            "$.surprise: unknown field: not a variable of this process",
        ]
    );
    // One problem alone is the single-path refusal every caller already knows.
    let one = Event::Start {
        actor: actor(&project, "zx_clerk"),
        data: data(serde_json::json!({
            "applicant_name": "张三", "area": "urban",
            "household": {"members": [{"id": "m1", "birth_date": "1950-05-01"}], "savings": "x"}
        })),
    };
    match core::step(def, &state, &one, now(), &ctx) {
        Err(StepError::InvalidData { path, .. }) => assert_eq!(path, "$.household.savings"),
        other => panic!("expected one invalid_data, got {other:?}"),
    }
}

/// A tekun application naming two people: well formed, so it passes the door, but a tekun
/// assessment covers one person, so the rule step fails.
fn two_person_tekun() -> BTreeMap<String, Value> {
    data(serde_json::json!({
        "applicant_name": "赵老汉",
        "area": "rural",
        "household": {
            "members": [
                {"id": "p1", "birth_date": "1953-09-30",
                 "income": [{"kind": "other", "monthly": "100.00"}]},
                {"id": "p2", "birth_date": "1955-01-12"}
            ],
            "savings": "3000.00"
        }
    }))
}

jiuzhu_testkit::on_both_databases!(
    a_failed_rule_step_is_an_incident_that_a_retry_after_a_correction_resolves,
    a_bad_start_stores_nothing,
);

#[derive(Clone)]
struct Ctx {
    url: String,
    clock: Arc<ManualClock>,
    project: Arc<Project>,
}

impl Ctx {
    async fn engine(&self) -> Result<Engine> {
        let store = Store::open(&self.url).await?;
        let engine = Engine::new(store, self.project.clone(), self.clock.clone(), "n1")
            .map_err(|e| anyhow::anyhow!(e))?;
        engine.deploy().await?;
        Ok(engine)
    }
}

async fn setup(db: Db) -> (Ctx, TestDatabase) {
    let database = TestDatabase::create(db, "case_incidents").await;
    let ctx = Ctx {
        url: database.url.clone(),
        clock: Arc::new(ManualClock::new(now().with_timezone(&Utc))),
        project: project(),
    };
    (ctx, database)
}

async fn finish(db: Db, database: TestDatabase, outcome: Outcome) {
    database.drop().await;
    report(db, outcome);
}

/// Completes the open task of `node` in `instance` as `user`.
async fn complete(
    engine: &Engine,
    project: &Project,
    instance: &str,
    node: &str,
    user: &str,
    json: serde_json::Value,
) -> Result<()> {
    let (_, _, state) = engine.load(instance).await?;
    let task = state
        .tasks
        .iter()
        .find(|t| t.node == node)
        .with_context(|| format!("no open task at {node}"))?;
    engine
        .complete(&task.id, &actor(project, user), data(json))
        .await?;
    Ok(())
}

async fn a_failed_rule_step_is_an_incident_that_a_retry_after_a_correction_resolves(
    ctx: Ctx,
) -> Result<()> {
    let engine = ctx.engine().await?;
    let p = &ctx.project;
    let started = engine
        .start("tekun", &actor(p, "zx_clerk"), two_person_tekun())
        .await?;
    let id = started.instance.id.clone();
    complete(
        &engine,
        p,
        &id,
        "accept",
        "zx_clerk",
        serde_json::json!({"complete": true}),
    )
    .await?;
    complete(
        &engine,
        p,
        &id,
        "survey",
        "zx_staff1",
        serde_json::json!({"surveyors": ["李强", "赵敏"], "proposal": "approve"}),
    )
    .await?;
    // The county's step commits; the assessment after it fails and the case waits.
    complete(
        &engine,
        p,
        &id,
        "care_assessment",
        "county_staff1",
        serde_json::json!({"adl_not_met": 2}),
    )
    .await?;
    let (row, _, state) = engine.load(&id).await?;
    ensure!(
        row.status == "active" && state.tasks.is_empty(),
        "{:?}",
        state.tasks
    );
    let incident = state.incidents.first().context("an incident")?.clone();
    ensure!(incident.node == "assess" && incident.code == RULE_FAILED);
    ensure!(
        incident.message.contains("exactly one person"),
        "{}",
        incident.message
    );

    // Listed with the other incidents, under its own id.
    let dead = engine.store.dead_outbox(10, 0).await?;
    ensure!(dead.len() == 1, "{dead:?}");
    ensure!(dead[0].entry.id == incident.id && dead[0].entry.kind == RULE_FAILED);
    ensure!(dead[0].entry.instance_id == id);

    // Retrying unchanged data fails again: refused, counted, still listed.
    let head = actor(p, "zx_head");
    match engine.retry_incident(&incident.id, &head).await {
        Err(EngineError::Step(StepError::Incident { .. })) => {}
        other => bail!("expected the retry to fail again, got {other:?}"),
    }
    let entry = engine
        .store
        .outbox_entry(&incident.id)
        .await?
        .context("entry")?;
    ensure!(entry.status == OutboxStatus::Dead && entry.attempts == 1);
    // Someone who may not correct the case may not retry it either.
    match engine
        .retry_incident(&incident.id, &actor(p, "fa_head"))
        .await
    {
        Err(e) if e.code() == "forbidden" => {}
        other => bail!("expected forbidden, got {other:?}"),
    }

    engine
        .correct(
            &id,
            &head,
            vec![(
                "household.members".to_string(),
                Value::from_json(&serde_json::json!([{"id": "p1", "birth_date": "1953-09-30",
                    "adl_not_met": 2, "income": [{"kind": "other", "monthly": "100.00"}]}])),
            )],
            "p2 不属于本户",
        )
        .await?;
    engine.retry_incident(&incident.id, &head).await?;
    let (_, _, state) = engine.load(&id).await?;
    ensure!(state.incidents.is_empty());
    ensure!(
        state.vars["eligible"] == Value::Bool(true),
        "{:?}",
        state.vars["eligible"]
    );
    ensure!(engine.store.dead_outbox(10, 0).await?.is_empty());
    let entry = engine
        .store
        .outbox_entry(&incident.id)
        .await?
        .context("entry")?;
    ensure!(entry.status == OutboxStatus::Delivered);
    // The history says who retried.
    let history = engine.store.history(&id).await?;
    let last = history.last().context("history")?;
    ensure!(last.event == "retry" && last.actor.as_deref() == Some("zx_head"));
    ensure!(last.node.as_deref() == Some("assess"));
    // A second retry finds nothing to retry.
    match engine.retry_incident(&incident.id, &head).await {
        Err(e) if e.code() == "not_found" => {}
        other => bail!("expected not_found, got {other:?}"),
    }
    engine.store.verify_history(&id).await?;
    Ok(())
}

async fn a_bad_start_stores_nothing(ctx: Ctx) -> Result<()> {
    let engine = ctx.engine().await?;
    let refused = engine
        .start(
            "dibao",
            &actor(&ctx.project, "zx_clerk"),
            data(serde_json::json!({
                "applicant_name": "", "area": "urban",
                "household": {"members": [{"id": "m1", "birth_date": "1850-01-01"}], "savings": "-1"}
            })),
        )
        .await;
    match refused {
        Err(EngineError::Step(e)) => {
            ensure!(e.code() == "invalid_data" && e.problems().len() == 3, "{e}");
        }
        other => bail!("expected invalid_data, got {other:?}"),
    }
    let summary = engine.store.summary().await?;
    ensure!(summary.active_instances.is_empty(), "{summary:?}");
    Ok(())
}
