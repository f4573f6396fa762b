//! Corrections of a case's data (`Event::Correct`, `Engine::correct`): checked by the
//! pure core (paths, types, reason, who, closed cases) and committed as a step with a
//! history row and a version bump, on SQLite and PostgreSQL alike.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use chrono::{DateTime, FixedOffset, Utc};
use jiuzhu_engine::calendar::Calendar;
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::core::{self, Actor, Context, Event, InstanceState, Status, StepError};
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::{Engine, EngineError};
use jiuzhu_engine::store::Store;
use jiuzhu_rules::Value;
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};

const UNIT: &str = "双鸭山市/尖山区/中心站街道";

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

fn application() -> BTreeMap<String, Value> {
    data(serde_json::json!({
        "applicant_name": "张秀兰",
        "area": "urban",
        "household": {
            "members": [
                {"id": "m1", "name": "张秀兰", "birth_date": "1950-05-01", "income": [{"kind": "pension_basic", "monthly": "180.00"}]},
                {"id": "m2", "name": "王强", "birth_date": "1978-09-12", "income": [{"kind": "wage", "monthly": "1000.00"}]}
            ],
            "savings": "6000.00"
        }
    }))
}

fn change(path: &str, json: serde_json::Value) -> (String, Value) {
    (path.to_string(), Value::from_json(&json))
}

// ---------------------------------------------------------------- the pure core

struct Core {
    project: Arc<Project>,
    calendar: Calendar,
    now: DateTime<FixedOffset>,
}

impl Core {
    fn new() -> Core {
        Core {
            project: project(),
            calendar: Calendar::china_national(),
            now: DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00").expect("valid time"),
        }
    }

    fn step(&self, state: &InstanceState, event: &Event) -> Result<InstanceState, StepError> {
        let def = self.project.definitions.get("dibao").expect("dibao");
        let assessor = self.project.assessor(None).expect("policies load");
        let ctx = Context {
            calendar: &self.calendar,
            assessor: &assessor,
        };
        core::step(def, state, event, self.now, &ctx).map(|t| t.state)
    }

    fn started(&self) -> InstanceState {
        let start = Event::Start {
            actor: actor(&self.project, "zx_clerk"),
            data: application(),
        };
        self.step(&InstanceState::new("dibao-1", "dibao", self.now), &start)
            .expect("the application starts")
    }

    fn correct(
        &self,
        state: &InstanceState,
        user: &str,
        changes: Vec<(String, Value)>,
        reason: &str,
    ) -> Result<InstanceState, StepError> {
        let event = Event::Correct {
            actor: actor(&self.project, user),
            changes,
            reason: reason.to_string(),
        };
        self.step(state, &event)
    }
}

fn refused(outcome: Result<InstanceState, StepError>) -> (String, String) {
    match outcome {
        Ok(_) => ("ok".into(), String::new()),
        Err(StepError::InvalidData { path, .. }) => ("invalid_data".into(), path),
        Err(e) => (e.code().into(), String::new()),
    }
}

#[test]
fn a_correction_changes_the_values_at_its_paths_typed() {
    let core = Core::new();
    let state = core.started();
    let after = core
        .correct(
            &state,
            "zx_staff1",
            vec![
                change("applicant_name", serde_json::json!("张秀英")),
                change(
                    "household.members[1].income[0].monthly",
                    serde_json::json!("800.50"),
                ),
                change("$.household.savings", serde_json::json!(5000)),
            ],
            "申请人姓名录入错误，收入以工资单为准",
        )
        .expect("the correction is taken");
    assert_eq!(after.vars["applicant_name"], Value::Str("张秀英".into()));
    let monthly = core::value_at(
        &after.vars,
        &core::parse_path("household.members[1].income[0].monthly").expect("path"),
    );
    assert_eq!(
        monthly,
        Some(&Value::Decimal("800.50".parse().expect("dec")))
    );
    let savings = core::value_at(
        &after.vars,
        &core::parse_path("household.savings").expect("path"),
    );
    assert_eq!(savings, Some(&Value::Decimal(5000.into())));
    // Nothing else moved: the same open task, the same status.
    assert_eq!(after.tasks, state.tasks);
    assert_eq!(after.status, Status::Active);
}

#[test]
fn values_that_do_not_fit_are_refused_at_their_path() {
    let core = Core::new();
    let state = core.started();
    let cases = [
        (
            "household.members[1].income[0].monthly",
            serde_json::json!("很多"),
            "$.household.members[1].income[0].monthly",
        ),
        ("area", serde_json::json!("suburban"), "$.area"),
        (
            "household.members[5].name",
            serde_json::json!("李四"),
            "$.household.members[5].name",
        ),
        ("status", serde_json::json!("closed"), "$.status"),
        ("tasks[0]", serde_json::json!({}), "$.tasks[0]"),
        (
            "applicant_name",
            serde_json::Value::Null,
            "$.applicant_name",
        ),
        (
            "household.savings.amount",
            serde_json::json!(1),
            "$.household.savings.amount",
        ),
        (
            "household..savings",
            serde_json::json!(1),
            "$.household..savings",
        ),
    ];
    for (path, value, expected) in cases {
        let outcome = core.correct(&state, "zx_staff1", vec![change(path, value)], "录入错误");
        assert_eq!(
            refused(outcome),
            ("invalid_data".to_string(), expected.to_string()),
            "{path}"
        );
    }
}

#[test]
fn a_correction_needs_a_reason() {
    let core = Core::new();
    let state = core.started();
    let fix = || vec![change("applicant_name", serde_json::json!("张秀英"))];
    for reason in ["", "   ", &"长".repeat(core::MAX_REASON_CHARS + 1)] {
        let outcome = core.correct(&state, "zx_staff1", fix(), reason);
        assert_eq!(
            refused(outcome),
            ("invalid_data".to_string(), "$.reason".to_string())
        );
    }
    let outcome = core.correct(&state, "zx_staff1", Vec::new(), "录入错误");
    assert_eq!(
        refused(outcome),
        ("invalid_data".to_string(), "$.changes".to_string())
    );
    let longest = "长".repeat(core::MAX_REASON_CHARS);
    assert!(core.correct(&state, "zx_staff1", fix(), &longest).is_ok());
}

#[test]
fn only_staff_of_the_process_in_the_cases_unit_or_heads_correct() {
    let core = Core::new();
    let state = core.started();
    let fix = || vec![change("applicant_name", serde_json::json!("张秀英"))];
    for (user, expected) in [
        ("zx_clerk", "ok"),
        ("zx_staff1", "ok"),
        ("zx_head", "ok"),
        ("county_staff1", "ok"),
        ("admin", "ok"),
        ("zx_village", "forbidden"),
        ("fa_staff1", "forbidden"),
        ("fa_head", "forbidden"),
    ] {
        let outcome = core.correct(&state, user, fix(), "录入错误");
        assert_eq!(refused(outcome).0, expected, "{user}");
    }
    assert_eq!(actor(&core.project, "zx_clerk").unit, UNIT);
}

#[test]
fn a_closed_case_is_not_corrected_even_by_a_head() {
    let core = Core::new();
    let state = core.started();
    let withdrawn = core
        .step(
            &state,
            &Event::Message {
                name: "withdraw".into(),
                actor: Some(actor(&core.project, "zx_clerk")),
                data: BTreeMap::new(),
            },
        )
        .expect("a withdrawal closes the case");
    assert_ne!(withdrawn.status, Status::Active);
    for user in ["zx_staff1", "zx_head", "admin"] {
        let outcome = core.correct(
            &withdrawn,
            user,
            vec![change("applicant_name", serde_json::json!("张秀英"))],
            "录入错误",
        );
        assert_eq!(refused(outcome).0, "conflict", "{user}");
    }
}

// ---------------------------------------------------------------- through the store

jiuzhu_testkit::on_both_databases!(
    a_correction_is_a_step_with_a_history_row_and_a_new_version,
    a_refused_correction_leaves_no_history_row,
);

async fn setup(db: Db) -> (Ctx, TestDatabase) {
    let database = TestDatabase::create(db, "corrections").await;
    let ctx = Ctx {
        url: database.url.clone(),
        clock: Arc::new(ManualClock::new(
            DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
                .expect("valid time")
                .with_timezone(&Utc),
        )),
        project: project(),
    };
    (ctx, database)
}

async fn finish(db: Db, database: TestDatabase, outcome: Outcome) {
    database.drop().await;
    report(db, outcome);
}

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

fn code<T: std::fmt::Debug>(result: &Result<T, EngineError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

async fn a_correction_is_a_step_with_a_history_row_and_a_new_version(ctx: Ctx) -> Result<()> {
    let engine = ctx.engine().await?;
    let clerk = actor(&ctx.project, "zx_clerk");
    let started = engine.start("dibao", &clerk, application()).await?;
    let instance = started.instance.id.clone();
    let corrected = engine
        .correct(
            &instance,
            &actor(&ctx.project, "zx_staff1"),
            vec![
                change("applicant_name", serde_json::json!("张秀英")),
                change(
                    "household.members[1].income[0].monthly",
                    serde_json::json!("800.00"),
                ),
            ],
            "  姓名录入错误；工资以单位证明为准  ",
        )
        .await?;
    ensure!(corrected.instance.version == started.instance.version + 1);
    ensure!(corrected.tasks_opened.is_empty() && corrected.outbox.is_empty());

    // A fresh engine reads the corrected values from the store.
    let other = ctx.engine().await?;
    let (row, _, state) = other.load(&instance).await?;
    ensure!(row.version == corrected.instance.version);
    ensure!(state.vars["applicant_name"] == Value::Str("张秀英".into()));

    let history = engine.store.history(&instance).await?;
    let last = history.last().context("history")?;
    ensure!(last.event == "correct" && last.actor.as_deref() == Some("zx_staff1"));
    ensure!(last.node.is_none());
    ensure!(last.data["input"]["reason"] == "姓名录入错误；工资以单位证明为准");
    let corrections = &last.data["corrections"];
    ensure!(
        corrections[0]
            == serde_json::json!({"path": "$.applicant_name", "old": "张*", "new": "张*"}),
        "{corrections}"
    );
    ensure!(
        corrections[1]
            == serde_json::json!({
                "path": "$.household.members[1].income[0].monthly",
                "old": "1000.00",
                "new": "800.00"
            }),
        "{corrections}"
    );
    // No full name anywhere in the correction's account.
    ensure!(!corrections.to_string().contains("张秀英"));
    engine.store.verify_history(&instance).await?;
    Ok(())
}

async fn a_refused_correction_leaves_no_history_row(ctx: Ctx) -> Result<()> {
    let engine = ctx.engine().await?;
    let started = engine
        .start("dibao", &actor(&ctx.project, "zx_clerk"), application())
        .await?;
    let instance = started.instance.id.clone();
    let before = engine.store.history(&instance).await?;
    let fix = || vec![change("applicant_name", serde_json::json!("张秀英"))];
    let refusals = [
        (
            engine
                .correct(
                    &instance,
                    &actor(&ctx.project, "fa_staff1"),
                    fix(),
                    "录入错误",
                )
                .await,
            "forbidden",
        ),
        (
            engine
                .correct(
                    &instance,
                    &actor(&ctx.project, "zx_staff1"),
                    vec![change("household.savings", serde_json::json!("很多"))],
                    "录入错误",
                )
                .await,
            "invalid_data",
        ),
        (
            engine
                .correct(&instance, &actor(&ctx.project, "zx_staff1"), fix(), " ")
                .await,
            "invalid_data",
        ),
        (
            engine
                .correct(
                    "dibao-nope",
                    &actor(&ctx.project, "zx_staff1"),
                    fix(),
                    "录入错误",
                )
                .await,
            "not_found",
        ),
    ];
    for (outcome, expected) in &refusals {
        ensure!(code(outcome) == *expected, "{outcome:?}");
    }
    ensure!(engine.store.history(&instance).await? == before);
    let (row, _, _) = engine.load(&instance).await?;
    ensure!(row.version == started.instance.version);
    Ok(())
}
