//! Cases that reach each other, through the engine and the store: business keys (a second
//! active case with the same key refused, the key free again once the case ended), the
//! `message` effect delivered by the engine (by case id or by process and key, once, as
//! the system user) and `start_process` carried out by the engine (the child linked to
//! its parent, started once, a duplicate refusal an incident naming the active case).
//! Run on SQLite and PostgreSQL (`JIUZHU_TEST_PG`); time is a manual clock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use chrono::{DateTime, Utc};
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::internal::{InternalOutcome, started_instance_id};
use jiuzhu_engine::runtime::{Engine, EngineError};
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
    let database = TestDatabase::create(db, "cross_case").await;
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
    a_second_active_case_with_the_same_key_is_refused_until_the_first_ends,
    messages_reach_a_case_once_by_id_or_by_process_and_key,
    start_process_starts_a_linked_child_once_and_a_duplicate_is_an_incident,
);

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
        .expect("a valid time")
        .with_timezone(&Utc)
}

impl Ctx {
    async fn engine(&self) -> Result<Engine> {
        let store = Store::open(&self.url).await?;
        let engine = Engine::new(store, self.project.clone(), self.clock.clone(), "n1")
            .map_err(|e| anyhow::anyhow!(e))?;
        engine.deploy().await?;
        Ok(engine)
    }

    fn clerk(&self) -> Result<Actor> {
        let org = self.project.org.as_ref().context("org.yaml")?;
        Ok(org.user("zx_clerk").context("no user zx_clerk")?.actor())
    }
}

fn application(applicant: &str) -> BTreeMap<String, Value> {
    let json = json!({
        "applicant_name": "张秀兰",
        "area": "urban",
        "household": {
            "members": [{"id": "m1", "id_number": applicant, "birth_date": "1950-05-01", "income": []}],
            "savings": "0.00"
        }
    });
    match Value::from_json(&json) {
        Value::Object(map) => map,
        _ => BTreeMap::new(),
    }
}

async fn a_second_active_case_with_the_same_key_is_refused_until_the_first_ends(
    ctx: Ctx,
) -> Result<()> {
    let engine = ctx.engine().await?;
    let clerk = ctx.clerk()?;
    let first = engine
        .start("dibao", &clerk, application("230102195005010026"))
        .await?;
    let first = first.instance.id;
    let refused = engine
        .start("dibao", &clerk, application("230102195005010026"))
        .await;
    match &refused {
        Err(error @ EngineError::DuplicateKey { case, .. }) => {
            ensure!(case == &first, "names the active case: {error}");
            ensure!(
                error.code() == "duplicate" && error.status() == 409,
                "{error}"
            );
            ensure!(
                !error.to_string().contains("230102195005010026"),
                "the key (an ID number) is not in the message: {error}"
            );
        }
        other => anyhow::bail!("expected duplicate, got {other:?}"),
    }
    // Another person's key is free.
    engine
        .start("dibao", &clerk, application("230102195005010042"))
        .await?;
    // The first case ends (withdrawn): its key is released in the same commit.
    engine
        .message(&first, "withdraw", Some(&clerk), BTreeMap::new())
        .await?;
    ensure!(
        engine
            .store
            .key_holder("dibao", "230102195005010026")
            .await?
            .is_none(),
        "released at the end"
    );
    let again = engine
        .start("dibao", &clerk, application("230102195005010026"))
        .await?;
    ensure!(
        engine
            .store
            .key_holder("dibao", "230102195005010026")
            .await?
            == Some(again.instance.id.clone()),
        "held by the new case"
    );
    Ok(())
}

async fn messages_reach_a_case_once_by_id_or_by_process_and_key(ctx: Ctx) -> Result<()> {
    let engine = ctx.engine().await?;
    let clerk = ctx.clerk()?;
    let sender = engine
        .start("dibao", &clerk, application("230102195005010034"))
        .await?
        .instance
        .id;
    let target = engine
        .start("dibao", &clerk, application("230102195005010042"))
        .await?
        .instance
        .id;
    let effect = json!({"type": "message", "name": "withdraw", "case": target});
    let effect_id = format!("{sender}-e90");
    let outcome = engine
        .deliver_internal(&effect_id, &sender, "message", &effect, now())
        .await;
    ensure!(outcome == InternalOutcome::Done, "{outcome:?}");
    let (row, _, state) = engine.load(&target).await?;
    ensure!(row.status == "terminated", "withdrawn: {}", row.status);
    ensure!(
        state.received == vec![effect_id.clone()],
        "{:?}",
        state.received
    );
    let history = engine.store.history(&target).await?;
    let last = history.last().context("history")?;
    ensure!(
        last.event == "message:withdraw"
            && last.actor.as_deref() == Some("system")
            && last.data["delivery"] == effect_id.as_str(),
        "{last:?}"
    );
    // Delivered again (the acknowledgement was lost): nothing happens a second time.
    let again = engine
        .deliver_internal(&effect_id, &sender, "message", &effect, now())
        .await;
    ensure!(again == InternalOutcome::Done, "{again:?}");
    ensure!(engine.store.history(&target).await?.len() == history.len());
    // A new message to the ended case, or to no case, is an incident at once.
    for (case, says) in [
        (target.as_str(), "has ended"),
        ("dibao-none", "does not exist"),
    ] {
        let effect = json!({"type": "message", "name": "withdraw", "case": case});
        match engine
            .deliver_internal(&format!("{sender}-e91"), &sender, "message", &effect, now())
            .await
        {
            InternalOutcome::Failed {
                error,
                retryable: false,
            } => ensure!(error.contains(says), "{error}"),
            other => anyhow::bail!("{case}: {other:?}"),
        }
    }
    // A handler whose roles do not list `system` refuses the engine's message.
    let effect = json!({"type": "message", "name": "extend", "case": sender,
                        "data": {"reason": "人户分离"}});
    match engine
        .deliver_internal(&format!("{sender}-e92"), &sender, "message", &effect, now())
        .await
    {
        InternalOutcome::Failed {
            error,
            retryable: false,
        } => ensure!(error.contains("county_staff"), "{error}"),
        other => anyhow::bail!("extend: {other:?}"),
    }
    // By process and business key: the active case holding it.
    let keyed = engine
        .start("dibao", &clerk, application("230102195005010050"))
        .await?
        .instance
        .id;
    let effect = json!({"type": "message", "name": "withdraw", "process": "dibao", "key": "230102195005010050"});
    let outcome = engine
        .deliver_internal(&format!("{sender}-e93"), &sender, "message", &effect, now())
        .await;
    ensure!(outcome == InternalOutcome::Done, "{outcome:?}");
    ensure!(engine.load(&keyed).await?.0.status == "terminated");
    match engine
        .deliver_internal(&format!("{sender}-e94"), &sender, "message", &effect, now())
        .await
    {
        InternalOutcome::Failed {
            error,
            retryable: false,
        } => ensure!(
            error.contains("no active dibao case") && !error.contains("230102195005010050"),
            "{error}"
        ),
        other => anyhow::bail!("keyed after the end: {other:?}"),
    }
    Ok(())
}

async fn start_process_starts_a_linked_child_once_and_a_duplicate_is_an_incident(
    ctx: Ctx,
) -> Result<()> {
    let engine = ctx.engine().await?;
    let clerk = ctx.clerk()?;
    let parent = engine
        .start("dibao", &clerk, application("230102195005010069"))
        .await?
        .instance
        .id;
    let effect_id = format!("{parent}-e80");
    let effect = json!({"type": "start_process", "process": "dibao", "on_end": "child_ended",
                        "data": {"applicant_name": "李四", "area": "urban",
                                 "household": {"members": [{"id": "c1", "id_number": "230102195005010085", "birth_date": "1950-05-01"}],
                                               "savings": "0.00"}}});
    let outcome = engine
        .deliver_internal(&effect_id, &parent, "start_process", &effect, now())
        .await;
    ensure!(outcome == InternalOutcome::Done, "{outcome:?}");
    let child = started_instance_id("dibao", &effect_id);
    let (row, _, state) = engine.load(&child).await?;
    ensure!(row.status == "active", "{}", row.status);
    let link = state.parent.context("the child knows its parent")?;
    ensure!(link.case == parent && link.on_end.as_deref() == Some("child_ended"));
    // Delivered again: the same child, not a second one.
    let again = engine
        .deliver_internal(&effect_id, &parent, "start_process", &effect, now())
        .await;
    ensure!(again == InternalOutcome::Done, "{again:?}");
    ensure!(
        engine
            .store
            .key_holder("dibao", "230102195005010085")
            .await?
            == Some(child.clone())
    );
    // The child ends: it tells its parent with an outbox message in the same commit.
    let ended = engine
        .message(&child, "withdraw", Some(&clerk), BTreeMap::new())
        .await?;
    let notice = ended
        .outbox
        .iter()
        .find(|o| o.kind == "message")
        .context("an on_end message")?;
    ensure!(
        notice.payload["name"] == "child_ended"
            && notice.payload["case"] == parent.as_str()
            && notice.payload["data"]["case"] == child.as_str()
            && notice.payload["data"]["status"] == "terminated"
            && notice.payload["data"]["outcome"] == "withdrawn",
        "{}",
        notice.payload
    );
    // A second start for a person with an active case, without `reply`: an incident that
    // names the active case.
    let holder = engine
        .start("dibao", &clerk, application("230102195005010077"))
        .await?
        .instance
        .id;
    let effect = json!({"type": "start_process", "process": "dibao",
                        "data": {"applicant_name": "王五", "area": "urban",
                                 "household": {"members": [{"id": "d1", "id_number": "230102195005010077", "birth_date": "1950-05-01"}],
                                               "savings": "0.00"}}});
    match engine
        .deliver_internal(
            &format!("{parent}-e81"),
            &parent,
            "start_process",
            &effect,
            now(),
        )
        .await
    {
        InternalOutcome::Failed {
            error,
            retryable: false,
        } => ensure!(error.contains(&holder), "{error}"),
        other => anyhow::bail!("duplicate start: {other:?}"),
    }
    Ok(())
}
