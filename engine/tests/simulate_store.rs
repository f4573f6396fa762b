//! The read-only queries of `simulate-policy` on SQLite and PostgreSQL: decided cases
//! page by page in id order (none twice, none missed), the unit filter, one case by id,
//! and the database's size.

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
    url: String,
}

struct Teardown {
    database: TestDatabase,
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "simulate").await;
    (
        Ctx {
            url: database.url.clone(),
        },
        Teardown { database },
    )
}

async fn finish(db: Db, teardown: Teardown, outcome: Outcome) {
    teardown.database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(decided_cases_are_read_page_by_page);

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
    json.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), Value::from_json(v)))
                .collect()
        })
        .unwrap_or_default()
}

async fn decided_cases_are_read_page_by_page(ctx: Ctx) -> Result<()> {
    let processes = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../processes");
    let mut project = Project::load(&processes.join("bench"))
        .map_err(|problems| anyhow::anyhow!(problems.join("\n")))?;
    project.dir = processes;
    let start = DateTime::parse_from_rfc3339("2026-06-15T09:00:00+08:00")?.with_timezone(&Utc);
    let store = Store::open(&ctx.url).await?;
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

    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = store
            .decided_cases(&DecidedPage {
                after: after.clone(),
                unit: None,
                limit: 3,
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
            ensure!(
                vars[2].is_null() && vars[4].is_null(),
                "no request, no bank account: {vars}"
            );
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
