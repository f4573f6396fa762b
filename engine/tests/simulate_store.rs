//! The read-only queries of `simulate-policy` on SQLite and PostgreSQL: decided cases
//! page by page in id order (none twice, none missed), the unit filter, one case by id,
//! and the database's size; the assessment inputs (engine migration 13) equal to what the
//! states say, after later steps and after the migration's backfill.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use chrono::{DateTime, Utc};
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::store::Store;
use jiuzhu_engine::store::simulate::DecidedPage;
use jiuzhu_rules::Value;
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};

struct Ctx {
    db: Db,
    url: String,
}

struct Teardown {
    database: TestDatabase,
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "simulate").await;
    (
        Ctx {
            db,
            url: database.url.clone(),
        },
        Teardown { database },
    )
}

async fn finish(db: Db, teardown: Teardown, outcome: Outcome) {
    teardown.database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(
    decided_cases_are_read_page_by_page,
    assessment_inputs_equal_what_the_states_say
);

fn data(i: usize) -> BTreeMap<String, Value> {
    let json = serde_json::json!({
        "program": "dibao",
        "applicant_name": format!("申请人{i}"),
        "area": "urban",
        "household": {
            "members": [{"id": "m1", "birth_date": "1960-01-01",
                         "income": [{"kind": "wage", "monthly": format!("{}.00", 100 * i)}]}],
            "savings": "0.00"
        }
    });
    let mut json = json;
    if i % 2 == 0 {
        json["bank"] = serde_json::json!({"account": format!("62220000{i:08}"), "id_number": "230102195005010085"});
    }
    json.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), Value::from_json(v)))
                .collect()
        })
        .unwrap_or_default()
}

/// The bench's short process, deployed on a new store, with seven decided cases in three
/// units; the cases' ids in order.
async fn seeded(url: &str, start: DateTime<Utc>) -> Result<(Store, Vec<String>)> {
    let processes = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../processes");
    let mut project = Project::load(&processes.join("bench"))
        .map_err(|problems| anyhow::anyhow!(problems.join("\n")))?;
    project.dir = processes;
    let store = Store::open(url).await?;
    let engine = Engine::new(
        store.clone(),
        Arc::new(project),
        Arc::new(ManualClock::new(start)),
        "simulate",
    )?;
    engine.deploy().await?;
    let units = [
        "双鸭山市/甲区/一街道",
        "双鸭山市/甲区/一街道/社区",
        "双鸭山市/乙区/二街道",
    ];
    let mut started = Vec::new();
    for i in 0..7 {
        let actor = Actor {
            user: "clerk".into(),
            roles: vec!["township_staff".into()],
            unit: units[i % 3].into(),
        };
        let report = engine.start("province_lite", &actor, data(i)).await?;
        started.push(report.instance.id.clone());
    }
    started.sort();
    Ok((store, started))
}

async fn decided_cases_are_read_page_by_page(ctx: Ctx) -> Result<()> {
    let start = DateTime::parse_from_rfc3339("2026-06-15T09:00:00+08:00")?.with_timezone(&Utc);
    let (store, started) = seeded(&ctx.url, start).await?;

    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = store
            .decided_cases(&DecidedPage {
                after: after.clone(),
                unit: None,
                limit: 3,
                inputs: true,
            })
            .await?;
        let Some(last) = page.last() else { break };
        ensure!(page.len() <= 3, "a page of {}", page.len());
        after = last.id.clone();
        for case in page {
            let vars = case.vars.as_deref().context("the variables")?;
            ensure!(!vars.contains("trace"), "the assessment's trace is read");
            let vars: serde_json::Value = serde_json::from_str(vars)?;
            ensure!(vars[5] == "dibao", "the assessment's program: {vars}");
            ensure!(
                vars[0]["members"].as_array().is_some_and(|m| !m.is_empty()),
                "the household: {vars}"
            );
            ensure!(vars[1] == "urban", "the area: {vars}");
            ensure!(vars[3].is_string(), "the applicant's name: {vars}");
            ensure!(vars[2].is_null(), "no request: {vars}");
            ensure!(case.outcome == "approved" || case.outcome == "rejected");
            ensure!(case.updated_at == start, "{}", case.updated_at);
            seen.push(case.id);
        }
    }
    ensure!(seen == started, "{seen:?} != {started:?}");

    let in_district = store
        .decided_cases(&DecidedPage {
            after: String::new(),
            unit: Some("双鸭山市/甲区".into()),
            limit: 100,
            inputs: true,
        })
        .await?;
    ensure!(
        in_district.len() == 5,
        "{} cases in 甲区",
        in_district.len()
    );
    ensure!(
        in_district
            .iter()
            .all(|c| c.unit.starts_with("双鸭山市/甲区/"))
    );

    let one = store
        .case_for_simulation(&started[0])
        .await?
        .context("the first case")?;
    ensure!(one.id == started[0]);
    ensure!(store.case_for_simulation("no-such-case").await?.is_none());
    ensure!(store.database_bytes().await? > 0);
    store.close().await;
    Ok(())
}

/// Every decided case as [`Store::decided_cases`] reads it, from the assessment inputs or
/// from the states, with the variables parsed.
async fn all_decided(store: &Store, inputs: bool) -> Result<Vec<String>> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let page = store
            .decided_cases(&DecidedPage {
                after: after.clone(),
                unit: None,
                limit: 2,
                inputs,
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        for case in page {
            let vars: serde_json::Value =
                serde_json::from_str(case.vars.as_deref().context("the variables")?)?;
            all.push(format!(
                "{} {} {} {} {} {} {vars}",
                case.id, case.process_id, case.status, case.outcome, case.unit, case.updated_at
            ));
        }
    }
    Ok(all)
}

async fn assessment_inputs_equal_what_the_states_say(ctx: Ctx) -> Result<()> {
    let start = DateTime::parse_from_rfc3339("2026-06-15T09:00:00+08:00")?.with_timezone(&Utc);
    let (store, started) = seeded(&ctx.url, start).await?;
    ensure!(store.has_assessment_inputs().await?);
    let from_states = all_decided(&store, false).await?;
    ensure!(from_states.len() == started.len(), "{from_states:?}");
    ensure!(
        from_states.iter().any(|c| c.contains("6222")),
        "a bank account is read: {from_states:?}"
    );
    ensure!(all_decided(&store, true).await? == from_states);

    // A later step of a decided case (a household corrected) moves its inputs with it, in
    // the same commit.
    let mut row = store
        .load_instance(&started[1])
        .await?
        .context("the case")?;
    let mut state = row.state.to_value();
    state["vars"]["area"] = serde_json::json!("rural");
    state["vars"]["household"]["savings"] = serde_json::json!("1234.50");
    let expected = row.version;
    row.state = state.into();
    row.version += 1;
    row.status = "active".into();
    row.updated_at = start + chrono::Duration::days(3);
    store
        .commit(&jiuzhu_engine::store::StepCommit {
            instance: row,
            expected_version: Some(expected),
            history: jiuzhu_engine::store::HistoryEntry {
                at: start + chrono::Duration::days(3),
                actor: Some("clerk".into()),
                event: "corrected".into(),
                node: None,
                data: serde_json::json!({}),
            },
            tasks_opened: vec![],
            tasks_closed: vec![],
            timers_set: vec![],
            timers_cancelled: vec![],
            outbox: vec![],
            tasks_assigned: vec![],
            tasks_rescheduled: vec![],
            completes: None,
            unchanged: jiuzhu_engine::store::Unchanged::default(),
            business_key: None,
        })
        .await?;
    let corrected = all_decided(&store, false).await?;
    ensure!(
        corrected != from_states,
        "the correction shows in the states"
    );
    ensure!(
        corrected[1].contains("rural")
            && corrected[1].contains("1234.50")
            && corrected[1].contains(" active "),
        "{}",
        corrected[1]
    );
    ensure!(all_decided(&store, true).await? == corrected);
    store.close().await;

    // A database decided before migration 13: the migration fills the inputs in from the
    // states.
    jiuzhu_testkit::raw(
        ctx.db,
        &ctx.url,
        "DROP TABLE assessment_inputs; DELETE FROM _sqlx_migrations WHERE version = 13",
    )
    .await?;
    let store = Store::open_with(
        &ctx.url,
        jiuzhu_engine::store::StoreOptions {
            read_only: true,
            ..Default::default()
        },
    );
    let store = match ctx.db {
        // A read-only open migrates nothing: the simulation reads the states.
        Db::Sqlite => {
            let store = store.await?;
            ensure!(!store.has_assessment_inputs().await?);
            ensure!(all_decided(&store, false).await? == corrected);
            store.close().await;
            Store::open(&ctx.url).await?
        }
        Db::Postgres => Store::open(&ctx.url).await?,
    };
    ensure!(store.has_assessment_inputs().await?);
    ensure!(all_decided(&store, true).await? == corrected);
    store.close().await;
    Ok(())
}
