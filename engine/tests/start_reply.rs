//! A `start_process` with `reply` tells its parent what became of the child — started,
//! refused as a `duplicate` (naming the active case) or `refused` with the refusal's code
//! (the child's data at the door) — so the parent can branch on it; `discovery` ends
//! `referred`, `already_active` or `not_referred`. Without `reply` a refused start stays
//! an incident. Through the engine and the store, on SQLite and PostgreSQL
//! (`JIUZHU_TEST_PG`); time is a manual clock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use chrono::{DateTime, Utc};
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::runtime::internal::{InternalOutcome, started_instance_id};
use jiuzhu_engine::store::Store;
use jiuzhu_rules::Value;
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};
use serde_json::json;

#[derive(Clone)]
struct Ctx {
    url: String,
    clock: Arc<ManualClock>,
    project: Arc<Project>,
}

struct Teardown {
    database: TestDatabase,
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "start_reply").await;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../processes");
    let project = Project::load(&dir).unwrap_or_else(|problems| {
        panic!("{} does not load:\n{}", dir.display(), problems.join("\n"))
    });
    let ctx = Ctx {
        url: database.url.clone(),
        clock: Arc::new(ManualClock::new(now())),
        project: Arc::new(project),
    };
    (ctx, Teardown { database })
}

async fn finish(db: Db, teardown: Teardown, outcome: Outcome) {
    teardown.database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(
    a_started_child_is_reported_and_the_parent_ends_referred,
    a_duplicate_child_is_reported_and_the_parent_ends_already_active,
    a_child_refused_at_the_door_is_reported_with_its_code,
);

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
        .expect("a valid time")
        .with_timezone(&Utc)
}

fn object(json: serde_json::Value) -> BTreeMap<String, Value> {
    match Value::from_json(&json) {
        Value::Object(map) => map,
        _ => BTreeMap::new(),
    }
}

fn household(id_number: &str) -> serde_json::Value {
    json!({
        "applicant_name": "李桂芬",
        "area": "urban",
        "household": {
            "members": [{"id": "m1", "id_number": id_number, "birth_date": "1955-10-10", "income": []}],
            "savings": "0.00"
        }
    })
}

impl Ctx {
    async fn engine(&self) -> Result<Engine> {
        let store = Store::open(&self.url).await?;
        let engine = Engine::new(store, self.project.clone(), self.clock.clone(), "n1")
            .map_err(|e| anyhow::anyhow!(e))?;
        engine.deploy().await?;
        Ok(engine)
    }

    fn user(&self, id: &str) -> Result<Actor> {
        let org = self.project.org.as_ref().context("org.yaml")?;
        Ok(org
            .user(id)
            .with_context(|| format!("no user {id}"))?
            .actor())
    }
}

/// Starts a discovery case, visits with `program`, and carries out its `start_process`
/// as the dispatcher would (twice: a redelivery changes nothing). The discovery case's
/// id and the effect id.
async fn discover(
    engine: &Engine,
    ctx: &Ctx,
    id_number: &str,
    program: &str,
) -> Result<(String, String)> {
    let started = engine
        .start(
            "discovery",
            &ctx.user("zx_village")?,
            object(household(id_number)),
        )
        .await?;
    let case = started.instance.id.clone();
    let visit = started.tasks_opened.first().context("the visit task")?;
    let visited = engine
        .complete(
            &visit.id,
            &ctx.user("zx_staff1")?,
            object(json!({"in_difficulty": true, "program": program, "consent": true})),
        )
        .await?;
    let effect = visited
        .outbox
        .iter()
        .find(|o| o.kind == "start_process")
        .context("a start_process effect")?;
    ensure!(
        effect.payload["process"] == program && effect.payload["reply"] == "start_answer",
        "{}",
        effect.payload
    );
    for _ in 0..2 {
        let outcome = engine
            .deliver_internal(&effect.id, &case, "start_process", &effect.payload, now())
            .await;
        ensure!(outcome == InternalOutcome::Done, "{outcome:?}");
    }
    let history = engine.store.history(&case).await?;
    ensure!(
        history
            .iter()
            .filter(|h| h.event == "message:start_answer")
            .count()
            == 1,
        "the reply is taken once"
    );
    Ok((case, effect.id.clone()))
}

async fn a_started_child_is_reported_and_the_parent_ends_referred(ctx: Ctx) -> Result<()> {
    let engine = ctx.engine().await?;
    let (_, effect) = discover(&engine, &ctx, "230502195510100040", "dibao").await?;
    let child = started_instance_id("dibao", &effect);
    let (row, _, state) = engine.load(&child).await?;
    ensure!(row.status == "active", "{}", row.status);
    let parent = state.parent.context("linked")?.case;
    let (row, _, state) = engine.load(&parent).await?;
    ensure!(row.status == "completed", "{}", row.status);
    ensure!(state.outcome.as_deref() == Some("referred"));
    ensure!(state.vars.get("referred_case") == Some(&Value::Str(child)));
    ensure!(state.vars.get("refusal") == Some(&Value::Null));
    Ok(())
}

async fn a_duplicate_child_is_reported_and_the_parent_ends_already_active(ctx: Ctx) -> Result<()> {
    let engine = ctx.engine().await?;
    let own = engine
        .start(
            "dibao",
            &ctx.user("zx_clerk")?,
            object(household("230502196306060066")),
        )
        .await?
        .instance
        .id;
    let (parent, effect) = discover(&engine, &ctx, "230502196306060066", "dibao").await?;
    ensure!(
        engine
            .store
            .load_instance(&started_instance_id("dibao", &effect))
            .await?
            .is_none(),
        "no second dibao case"
    );
    let (row, _, state) = engine.load(&parent).await?;
    ensure!(row.status == "completed", "{}", row.status);
    ensure!(
        state.outcome.as_deref() == Some("already_active"),
        "{:?}",
        state.outcome
    );
    ensure!(state.vars.get("referred_case") == Some(&Value::Str(own)));
    ensure!(state.vars.get("refusal") == Some(&Value::Str("duplicate".into())));
    Ok(())
}

async fn a_child_refused_at_the_door_is_reported_with_its_code(ctx: Ctx) -> Result<()> {
    let engine = ctx.engine().await?;
    // Temporary aid needs its `request`, which a visit does not give.
    let (parent, _) = discover(&engine, &ctx, "230502197001010070", "temporary_aid").await?;
    let (row, _, state) = engine.load(&parent).await?;
    ensure!(row.status == "completed", "{}", row.status);
    ensure!(
        state.outcome.as_deref() == Some("not_referred"),
        "{:?}",
        state.outcome
    );
    ensure!(state.vars.get("refusal") == Some(&Value::Str("invalid_data".into())));
    ensure!(state.vars.get("referred_case") == Some(&Value::Null));
    // The same start without `reply`: nobody to tell, an incident at once.
    let bare = json!({"type": "start_process", "process": "temporary_aid",
                      "data": household("230502197001010070")});
    match engine
        .deliver_internal(
            &format!("{parent}-e99"),
            &parent,
            "start_process",
            &bare,
            now(),
        )
        .await
    {
        InternalOutcome::Failed {
            error,
            retryable: false,
        } => ensure!(error.contains("request"), "{error}"),
        other => anyhow::bail!("expected an incident, got {other:?}"),
    }
    Ok(())
}
