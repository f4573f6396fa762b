//! Batch runs over the recipients end to end, on SQLite and PostgreSQL: a `heating_aid`
//! case started through the real engine emits its `batch` request, one dispatcher tick
//! (on a manual clock) has the ledger pay each active household once and report back,
//! and a stopped benefit gets nothing. A second run for the same season and a request
//! delivered again after a crash pay nobody twice.
//!
//! PostgreSQL comes from `JIUZHU_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each test gets a fresh schema that is dropped afterwards.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, ensure};
use chrono::{DateTime, TimeZone, Utc};
use jiuzhu_adapters::dispatch::{DispatchConfig, Dispatcher, Outcome};
use jiuzhu_adapters::payments::Ledger;
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::store::Store;
use jiuzhu_rules::Value;
use jiuzhu_testkit::{Db, TestDatabase, report};
use serde_json::json;
use support::repo_path;

/// The run day: 15 October 2026, 09:00 in Beijing.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 15, 1, 0, 0).unwrap()
}

#[derive(Clone)]
struct Ctx {
    db: Db,
    url: String,
    clock: Arc<ManualClock>,
    engine: Arc<Engine>,
    ledger: Ledger,
}

impl Ctx {
    fn dispatcher(&self) -> Dispatcher {
        let mut config = DispatchConfig::new("node-a");
        config.lease = chrono::Duration::minutes(1);
        Dispatcher::new(self.engine.clone(), config).with_payments(Arc::new(self.ledger.clone()))
    }

    /// A monthly benefit (or its stop) in the ledger, as an approved case's effect makes it.
    async fn benefit(&self, case: &str, program: &str, from: &str, payee: &str) -> Result<()> {
        self.ledger
            .apply_effect(
                &json!({"type": "payment", "id": format!("{case}-e1"), "instance": case,
                        "unit": "双鸭山市/尖山区/富安街道", "amount": "705.00", "purpose": program,
                        "schedule": "monthly", "from": from, "payee": payee,
                        "account": "6222020200001111", "id_number": "230505194810200021"}),
                t0() - chrono::Duration::days(200),
            )
            .await?;
        Ok(())
    }

    async fn stop(&self, case: &str, program: &str, from: &str) -> Result<()> {
        self.ledger
            .apply_effect(
                &json!({"type": "payment_stop", "id": format!("{case}-e2"), "instance": case,
                        "unit": "双鸭山市/尖山区/富安街道", "purpose": program, "from": from}),
                t0() - chrono::Duration::days(60),
            )
            .await?;
        Ok(())
    }

    /// Starts a heating aid run for `season` as the administrator; returns the case id.
    async fn start(&self, season: &str) -> Result<String> {
        let actor = Actor {
            user: "admin".into(),
            roles: vec!["admin".into()],
            unit: "双鸭山市/尖山区".into(),
        };
        let data = BTreeMap::from([("season".to_string(), Value::Str(season.into()))]);
        Ok(self
            .engine
            .start("heating_aid", &actor, data)
            .await?
            .instance
            .id)
    }

    /// The heating aid instructions in the ledger: (case, amount).
    async fn heating_payments(&self) -> Result<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = self
            .ledger
            .instructions(None, None)
            .await?
            .into_iter()
            .filter(|i| i.program == "heating_aid")
            .map(|i| (i.case_id, i.amount.to_string()))
            .collect();
        out.sort();
        Ok(out)
    }

    async fn vars(&self, case: &str) -> Result<(String, Option<String>, serde_json::Value)> {
        let (row, _, state) = self.engine.load(case).await?;
        let vars: serde_json::Map<String, serde_json::Value> = state
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        Ok((row.status, row.outcome, serde_json::Value::Object(vars)))
    }
}

struct Teardown {
    database: TestDatabase,
    store: Store,
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "batches").await;
    let dir = database.dir().join("processes");
    jiuzhu_testkit::copy_project(
        &repo_path("processes"),
        &dir,
        &["org.yaml", "heating_aid.yaml"],
        &["policies"],
    );
    let (store, clock, engine, ledger) = support::deployed_node(&database.url, &dir, t0()).await;
    let ctx = Ctx {
        db,
        url: database.url.clone(),
        clock,
        engine,
        ledger,
    };
    (ctx, Teardown { database, store })
}

async fn finish(db: Db, teardown: Teardown, outcome: jiuzhu_testkit::Outcome) {
    teardown.store.close().await;
    teardown.database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(
    a_batch_pays_each_active_household_once_and_a_stopped_one_nothing,
    a_second_run_for_the_same_season_pays_nobody_and_says_whose_run_it_was,
    a_run_delivered_again_after_a_crash_pays_nobody_twice,
);

async fn a_batch_pays_each_active_household_once_and_a_stopped_one_nothing(ctx: Ctx) -> Result<()> {
    ctx.benefit("dibao-a", "dibao", "2026-04-01", "张桂兰")
        .await?;
    ctx.benefit("tekun-b", "tekun", "2026-01-01", "李德福")
        .await?;
    // The same household's second benefit: still one payment.
    ctx.benefit("tekun-b", "dibao", "2026-01-01", "李德福")
        .await?;
    ctx.benefit("dibao-c", "dibao", "2025-11-01", "王秀英")
        .await?;
    ctx.stop("dibao-c", "dibao", "2026-09-01").await?;
    // Not a program of the run.
    ctx.benefit("low-d", "low_income", "2026-01-01", "孙丽")
        .await?;

    let case = ctx.start("2026-2027").await?;
    let report = ctx.dispatcher().tick(t0()).await?;
    ensure!(
        report
            .entries
            .iter()
            .any(|e| e.kind == "batch" && e.instance_id == case && e.outcome == Outcome::Delivered),
        "{report:?}"
    );
    ensure!(
        ctx.heating_payments().await?
            == vec![
                ("dibao-a".to_string(), "300.00".to_string()),
                ("tekun-b".to_string(), "300.00".to_string()),
            ],
        "{:?}",
        ctx.heating_payments().await?
    );
    let (status, outcome, vars) = ctx.vars(&case).await?;
    ensure!(status == "completed" && outcome.as_deref() == Some("completed"));
    ensure!(vars["paid_households"] == 2, "{vars}");
    ensure!(vars["total"] == "600.00", "{vars}");

    let runs = ctx.ledger.batches(None).await?;
    ensure!(runs.len() == 1, "{runs:?}");
    ensure!(runs[0].run_key == "heating_aid:2026-2027:双鸭山市/尖山区");
    ensure!(runs[0].status == "done" && runs[0].recipients == 2 && runs[0].done == 2);
    Ok(())
}

async fn a_second_run_for_the_same_season_pays_nobody_and_says_whose_run_it_was(
    ctx: Ctx,
) -> Result<()> {
    ctx.benefit("dibao-a", "dibao", "2026-04-01", "张桂兰")
        .await?;
    let first = ctx.start("2026-2027").await?;
    ctx.dispatcher().tick(t0()).await?;
    let later = t0() + chrono::Duration::days(1);
    ctx.clock.set(later);
    let second = ctx.start("2026-2027").await?;
    ctx.dispatcher().tick(later).await?;

    ensure!(ctx.heating_payments().await?.len() == 1, "paid once");
    let (status, _, vars) = ctx.vars(&second).await?;
    ensure!(status == "completed", "{status}");
    ensure!(vars["paid_households"] == 0, "{vars}");
    let note = vars["note"].as_str().unwrap_or_default();
    ensure!(
        note.contains(&first),
        "the note names the first run's case: {note}"
    );
    Ok(())
}

async fn a_run_delivered_again_after_a_crash_pays_nobody_twice(ctx: Ctx) -> Result<()> {
    ctx.benefit("dibao-a", "dibao", "2026-04-01", "张桂兰")
        .await?;
    ctx.benefit("tekun-b", "tekun", "2026-01-01", "李德福")
        .await?;
    let case = ctx.start("2026-2027").await?;
    ctx.dispatcher().tick(t0()).await?;
    ensure!(ctx.heating_payments().await?.len() == 2);

    // As if the node had died after paying both but before marking one recipient done
    // and reporting: the row is pending again, the run running, the request undelivered.
    jiuzhu_testkit::raw(
        ctx.db,
        &ctx.url,
        "UPDATE batch_items SET status = 'pending', amount = NULL WHERE recipient = 'tekun-b'; \
         UPDATE batch_runs SET status = 'running', finished_at = NULL; \
         UPDATE outbox SET status = 'pending', available_at = 0, claimed_by = NULL, \
         delivered_at = NULL WHERE kind = 'batch'",
    )
    .await?;
    let later = t0() + chrono::Duration::minutes(5);
    ctx.clock.set(later);
    let report = ctx.dispatcher().tick(later).await?;
    ensure!(
        report
            .entries
            .iter()
            .any(|e| e.kind == "batch" && e.instance_id == case && e.outcome == Outcome::Delivered),
        "{report:?}"
    );
    ensure!(
        ctx.heating_payments().await?.len() == 2,
        "nobody paid twice: {:?}",
        ctx.heating_payments().await?
    );
    let runs = ctx.ledger.batches(None).await?;
    ensure!(runs[0].status == "done" && runs[0].done == 2 && runs[0].paid == 2);
    Ok(())
}
