//! Tamper evidence that covers money, and no spurious conflicts, on SQLite and PostgreSQL:
//! an edited state stops its case with a `tampered` incident, a re-hashed or truncated chain
//! fails verification, cases from before the audit key still verify once sealed, and two
//! staff completing the parallel branches of one case at once both succeed.
//!
//! The database is tampered with behind the engine's back with plain SQL, as someone with
//! write access to the database (and not to the key file) could.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail, ensure};
use chrono::{DateTime, Utc};
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::{Engine, StepReport};
use jiuzhu_engine::store::{
    GENESIS_HASH, OutboxStatus, Store, StoreError, TamperKind, canonical_json, sha256_hex,
};
use jiuzhu_rules::Value;
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};

#[derive(Clone)]
struct Ctx {
    db: Db,
    url: String,
    clock: Arc<ManualClock>,
    project: Arc<Project>,
}

struct Teardown {
    database: TestDatabase,
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "audit").await;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../processes");
    let project = Project::load(&dir).unwrap_or_else(|problems| {
        panic!("{} does not load:\n{}", dir.display(), problems.join("\n"))
    });
    let start = DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
        .expect("valid time")
        .with_timezone(&Utc);
    let ctx = Ctx {
        db,
        url: database.url.clone(),
        clock: Arc::new(ManualClock::new(start)),
        project: Arc::new(project),
    };
    (ctx, Teardown { database })
}

async fn finish(db: Db, teardown: Teardown, outcome: Outcome) {
    teardown.database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(
    an_edited_state_stops_the_case_with_a_tampered_incident,
    a_rehashed_row_fails_verification,
    dropping_the_last_row_and_moving_the_head_fails_verification,
    cases_from_before_the_key_verify_once_sealed,
    parallel_branches_completed_at_once_both_succeed,
);

impl Ctx {
    /// An engine node of its own (own connections, nothing cached).
    async fn node(&self, name: &str) -> Result<Engine> {
        let store = Store::open(&self.url).await?;
        Engine::new(store, self.project.clone(), self.clock.clone(), name)
            .map_err(|e| anyhow::anyhow!(e))
    }

    fn actor(&self, user: &str) -> Result<Actor> {
        let org = self.project.org.as_ref().context("org.yaml")?;
        let user = org.user(user).with_context(|| format!("no user {user}"))?;
        Ok(Actor {
            user: user.id.clone(),
            roles: user.roles.clone(),
            unit: user.unit.clone(),
        })
    }

    async fn raw(&self, sql: &str) -> Result<()> {
        jiuzhu_testkit::raw(self.db, &self.url, sql).await
    }

    /// Replaces `from` by `to` in the stored state text of `instance`.
    async fn edit_state(&self, instance: &str, from: &str, to: &str) -> Result<()> {
        let sql = match self.db {
            Db::Sqlite => format!(
                "UPDATE instances SET state = replace(state, '{from}', '{to}') WHERE id = '{instance}'"
            ),
            Db::Postgres => format!(
                "UPDATE instances SET state = replace(state::text, '{from}', '{to}')::jsonb WHERE id = '{instance}'"
            ),
        };
        self.raw(&sql).await
    }
}

fn data(json: serde_json::Value) -> BTreeMap<String, Value> {
    match Value::from_json(&json) {
        Value::Object(map) => map,
        _ => BTreeMap::new(),
    }
}

fn task_of<'r>(report: &'r StepReport, node: &str) -> Result<&'r str> {
    report
        .tasks_opened
        .iter()
        .find(|t| t.node_id == node)
        .map(|t| t.id.as_str())
        .with_context(|| format!("no {node} task opened by this step"))
}

/// A dibao case taken to its parallel branches: (instance, survey task, verify task).
async fn case_at_branches(ctx: &Ctx, engine: &Engine) -> Result<(String, String, String)> {
    let clerk = ctx.actor("zx_clerk")?;
    let application = data(serde_json::json!({
        "applicant_name": "张秀兰",
        "area": "urban",
        "household": {
            "members": [
                {"id": "m1", "birth_date": "1950-05-01", "income": [{"kind": "pension_basic", "monthly": "180.00"}]},
                {"id": "m2", "birth_date": "1978-09-12", "income": [{"kind": "wage", "monthly": "1000.00"}]}
            ],
            "savings": "6000.00"
        }
    }));
    let started = engine.start("dibao", &clerk, application).await?;
    let accept = task_of(&started, "accept")?.to_string();
    let accepted = engine
        .complete(&accept, &clerk, data(serde_json::json!({"complete": true})))
        .await?;
    Ok((
        started.instance.id.clone(),
        task_of(&accepted, "survey")?.to_string(),
        task_of(&accepted, "verify")?.to_string(),
    ))
}

fn survey_form() -> BTreeMap<String, Value> {
    data(serde_json::json!({"surveyors": ["李强", "赵敏"]}))
}

fn tamper_kind<T: std::fmt::Debug>(result: Result<T, StoreError>) -> Result<TamperKind> {
    match result {
        Err(StoreError::Tampered(tamper)) => Ok(tamper.kind),
        other => bail!("tampering went unnoticed: {other:?}"),
    }
}

async fn an_edited_state_stops_the_case_with_a_tampered_incident(ctx: Ctx) -> Result<()> {
    let engine = ctx.node("n1").await?;
    engine.deploy().await?;
    let (instance, survey, _) = case_at_branches(&ctx, &engine).await?;
    let (_, sound_survey, _) = case_at_branches(&ctx, &engine).await?;
    ctx.edit_state(&instance, "6000.00", "99999.00").await?;

    // Another node reads the case from the database: the step is refused, nothing is written.
    let other = ctx.node("n2").await?;
    let refused = other
        .complete(&survey, &ctx.actor("zx_staff1")?, survey_form())
        .await;
    match &refused {
        Err(error) => {
            ensure!(error.code() == "tampered", "{error:?}");
            ensure!(error.to_string().contains(&instance), "{error}");
        }
        Ok(_) => bail!("a step ran on an edited state"),
    }
    let history = other.store.history(&instance).await?;
    ensure!(history.len() == 2, "{} rows", history.len());
    let incidents = other.store.dead_outbox(50, 0).await?;
    let raised: Vec<_> = incidents
        .iter()
        .filter(|i| i.entry.instance_id == instance && i.entry.kind == "tampered")
        .collect();
    ensure!(
        raised.len() == 1 && raised[0].status == OutboxStatus::Dead,
        "{incidents:?}"
    );
    // The case stays stopped; other cases go on.
    let again = other
        .complete(&survey, &ctx.actor("zx_staff1")?, survey_form())
        .await;
    ensure!(
        again.as_ref().err().map(|e| e.code()) == Some("tampered"),
        "{again:?}"
    );
    other
        .complete(&sound_survey, &ctx.actor("zx_staff1")?, survey_form())
        .await?;
    ensure!(tamper_kind(other.store.verify_history(&instance).await)? == TamperKind::StateMismatch);

    // A state cut short (SQLite keeps text; PostgreSQL's jsonb refuses it) names its case.
    if ctx.db == Db::Sqlite {
        ctx.raw(&format!(
            "UPDATE instances SET state = substr(state, 1, 40) WHERE id = '{instance}'"
        ))
        .await?;
        let third = ctx.node("n3").await?;
        let refused = third
            .complete(&survey, &ctx.actor("zx_staff1")?, survey_form())
            .await;
        match refused {
            Err(error) => ensure!(
                error.code() == "tampered" && error.to_string().contains(&instance),
                "{error}"
            ),
            Ok(_) => bail!("a step ran on a truncated state"),
        }
    }
    Ok(())
}

/// Recomputes a row's hash the plain way (SHA-256 of the previous hash and the canonical
/// row), as a script without the key would.
fn plain_hash(prev: &str, row: &jiuzhu_engine::store::HistoryRecord, actor: &str) -> String {
    let document = serde_json::json!({
        "actor": actor,
        "at": row.at.timestamp_millis(),
        "data": row.data,
        "event": row.event,
        "node": row.node,
        "seq": row.seq,
    });
    sha256_hex(format!("{prev}{}", canonical_json(&document)).as_bytes())
}

async fn a_rehashed_row_fails_verification(ctx: Ctx) -> Result<()> {
    let engine = ctx.node("n1").await?;
    engine.deploy().await?;
    let (instance, survey, _) = case_at_branches(&ctx, &engine).await?;
    engine
        .complete(&survey, &ctx.actor("zx_staff1")?, survey_form())
        .await?;
    engine.store.verify_history(&instance).await?;
    let rows = engine.store.history(&instance).await?;
    let last = rows.last().context("no history")?;
    ensure!(last.seq == 3);
    // Change who completed the survey, re-hash the row and move the head, once as a plain
    // row and once keeping the keyed scheme's marker.
    let forged = plain_hash(&last.prev_hash, last, "zx_staff2");
    for scheme in [1, 2] {
        ctx.raw(&format!(
            "UPDATE history SET actor = 'zx_staff2', hash = '{forged}', scheme = {scheme} \
             WHERE instance_id = '{instance}' AND seq = 3; \
             UPDATE instances SET history_hash = '{forged}' WHERE id = '{instance}'"
        ))
        .await?;
        let kind = tamper_kind(engine.store.verify_history(&instance).await)?;
        ensure!(
            matches!(kind, TamperKind::Downgraded | TamperKind::HashMismatch),
            "scheme {scheme}: {kind:?}"
        );
    }
    // The moved head is caught before the next step too.
    let verify = ctx.node("n2").await?.load(&instance).await;
    ensure!(
        verify.as_ref().err().map(|e| e.code()) == Some("tampered"),
        "{:?}",
        verify.map(|_| ())
    );
    Ok(())
}

async fn dropping_the_last_row_and_moving_the_head_fails_verification(ctx: Ctx) -> Result<()> {
    let engine = ctx.node("n1").await?;
    engine.deploy().await?;
    let (instance, survey, _) = case_at_branches(&ctx, &engine).await?;
    engine
        .complete(&survey, &ctx.actor("zx_staff1")?, survey_form())
        .await?;
    let rows = engine.store.history(&instance).await?;
    let second = rows.get(1).context("no second row")?;
    ctx.raw(&format!(
        "DELETE FROM history WHERE instance_id = '{instance}' AND seq = 3; \
         UPDATE instances SET version = 2, history_hash = '{}' WHERE id = '{instance}'",
        second.hash
    ))
    .await?;
    let kind = tamper_kind(engine.store.verify_history(&instance).await)?;
    ensure!(kind == TamperKind::StateMismatch, "{kind:?}");
    Ok(())
}

/// A case written before the audit key (plain rows, no head MAC) verifies as before once
/// sealed, and its next steps are keyed.
async fn cases_from_before_the_key_verify_once_sealed(ctx: Ctx) -> Result<()> {
    let engine = ctx.node("n1").await?;
    engine.deploy().await?;
    let (instance, survey, verify) = case_at_branches(&ctx, &engine).await?;
    // Rewrite the chain as the binary before the key wrote it.
    let rows = engine.store.history(&instance).await?;
    let mut prev = GENESIS_HASH.to_owned();
    let mut sql = String::new();
    for row in &rows {
        let actor = row.actor.as_deref().context("actor")?;
        let hash = plain_hash(&prev, row, actor);
        sql.push_str(&format!(
            "UPDATE history SET prev_hash = '{prev}', hash = '{hash}', scheme = 1, state_hash = NULL \
             WHERE instance_id = '{instance}' AND seq = {}; ",
            row.seq
        ));
        prev = hash;
    }
    sql.push_str(&format!(
        "UPDATE instances SET history_hash = '{prev}', head_mac = NULL WHERE id = '{instance}'"
    ));
    ctx.raw(&sql).await?;
    let unsealed = tamper_kind(engine.store.verify_history(&instance).await)?;
    ensure!(unsealed == TamperKind::Unsealed, "{unsealed:?}");

    let node = ctx.node("n2").await?;
    ensure!(node.store.seal_unsealed().await? == 1);
    let verified = node.store.verify_history(&instance).await?;
    ensure!(
        verified.rows == 2 && verified.plain_rows == 2,
        "{verified:?}"
    );
    node.complete(&survey, &ctx.actor("zx_staff1")?, survey_form())
        .await?;
    node.complete(
        &verify,
        &ctx.actor("county_staff1")?,
        data(serde_json::json!({"verification_ok": true})),
    )
    .await?;
    let verified = node.store.verify_history(&instance).await?;
    ensure!(
        verified.rows == 4 && verified.plain_rows == 2,
        "{verified:?}"
    );
    Ok(())
}

/// Two staff complete the two parallel branches (survey and verification) of one case at
/// the same moment, each on a node of their own that reads the case fresh: both succeed,
/// every time.
async fn parallel_branches_completed_at_once_both_succeed(ctx: Ctx) -> Result<()> {
    let setup = ctx.node("setup").await?;
    setup.deploy().await?;
    let surveyor = ctx.actor("zx_staff1")?;
    let verifier = ctx.actor("county_staff1")?;
    for round in 0..15 {
        let (instance, survey, verify) = case_at_branches(&ctx, &setup).await?;
        let a = ctx.node("a").await?;
        let b = ctx.node("b").await?;
        let (surveyor, verifier) = (surveyor.clone(), verifier.clone());
        let first =
            tokio::spawn(async move { a.complete(&survey, &surveyor, survey_form()).await });
        let second = tokio::spawn(async move {
            b.complete(
                &verify,
                &verifier,
                data(serde_json::json!({"verification_ok": true})),
            )
            .await
        });
        let (first, second) = (first.await?, second.await?);
        ensure!(
            first.is_ok() && second.is_ok(),
            "round {round}: survey {:?}, verify {:?}",
            first.as_ref().err().map(|e| e.to_string()),
            second.as_ref().err().map(|e| e.to_string())
        );
        setup.store.verify_history(&instance).await?;
    }
    Ok(())
}
