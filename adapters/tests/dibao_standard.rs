//! A raised dibao standard reaching running dibao benefits end to end, on SQLite and
//! PostgreSQL (`JIUZHU_TEST_PG`): the shipped `dibao_standard` procedure is started by the
//! scheduler on the 2026-07-01 policy day (its `on: policy_changed` schedule), its batch
//! runs through the dispatcher into the ledger, each running dibao benefit gets a new
//! monthly amount from July (old + the standard's rise × covered members, the area read
//! from the benefit's own case) and `standard_changes` reports who changed by how much.
//! A benefit stopped before July is not changed; a second scheduler (a restart, another
//! node) starts nothing again and pays nobody twice.

mod support;

use std::sync::Arc;

use anyhow::{Result, anyhow, ensure};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use jiuzhu_adapters::dispatch::{DispatchConfig, Dispatcher};
use jiuzhu_adapters::payments::Ledger;
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::scheduler::Scheduler;
use jiuzhu_engine::store::Store;
use jiuzhu_rules::Value;
use jiuzhu_testkit::{Db, TestDatabase, report};
use rust_decimal_macros::dec;
use serde_json::json;
use support::repo_path;

const ZX: &str = "双鸭山市/尖山区/中心站街道";

/// Deployed on 20 June 2026, 09:00 in Beijing: before the raise.
fn deployed() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 20, 1, 0, 0).unwrap()
}

/// 1 July 2026, 00:30 in Beijing: the raised standard is in force.
fn policy_day() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 30, 16, 30, 0).unwrap()
}

struct Ctx {
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

    /// A dibao case in the store (waiting at its first task: only its variables matter
    /// here) whose benefit the ledger pays, as its approval would have set it up.
    async fn dibao_benefit(&self, area: &str, members: usize, amount: &str) -> Result<String> {
        let actor = Actor {
            user: "zx_clerk".into(),
            roles: vec!["township_clerk".into()],
            unit: ZX.into(),
        };
        let members: Vec<serde_json::Value> = (0..members)
            .map(|i| json!({"id": format!("m{}", i + 1), "birth_date": "1970-01-01"}))
            .collect();
        let data = json!({"applicant_name": "张三", "area": area,
            "household": {"members": members, "savings": "0.00"}});
        let Value::Object(data) = Value::from_json(&data) else {
            return Err(anyhow!("object"));
        };
        let case = self.engine.start("dibao", &actor, data).await?.instance.id;
        self.ledger
            .apply_effect(
                &json!({"type": "payment", "id": format!("{case}-approved"), "instance": case,
                        "unit": ZX, "amount": amount, "purpose": "dibao",
                        "schedule": "monthly", "from": "2026-04-01", "payee": "张三",
                        "account": "6222020200001111", "id_number": "230505194810200021"}),
                deployed(),
            )
            .await?;
        Ok(case)
    }
}

struct Teardown {
    database: TestDatabase,
    store: Store,
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "dibaostd").await;
    let dir = database.dir().join("processes");
    jiuzhu_testkit::copy_project(
        &repo_path("processes"),
        &dir,
        &[
            "org.yaml",
            "dibao.yaml",
            "dibao_review.yaml",
            "dibao_standard.yaml",
        ],
        &["policies"],
    );
    let (store, clock, engine, ledger) =
        support::deployed_node(&database.url, &dir, deployed()).await;
    let ctx = Ctx {
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

jiuzhu_testkit::on_both_databases!(a_raised_standard_moves_running_dibao_benefits_from_its_month);

async fn a_raised_standard_moves_running_dibao_benefits_from_its_month(ctx: Ctx) -> Result<()> {
    let urban = ctx.dibao_benefit("urban", 2, "705.00").await?;
    let rural = ctx.dibao_benefit("rural", 3, "480.00").await?;
    let stopped = ctx.dibao_benefit("urban", 1, "300.00").await?;
    ctx.ledger
        .apply_effect(
            &json!({"type": "payment_stop", "id": format!("{stopped}-stop"), "instance": stopped,
                    "unit": ZX, "purpose": "dibao", "from": "2026-06-01"}),
            deployed(),
        )
        .await?;

    // Before the day: the scheduler starts nothing (2026-01-01 came before the deployment).
    let before = Scheduler::new(&ctx.engine).tick().await?;
    ensure!(before.policy_starts.is_empty(), "{before:?}");

    ctx.clock.set(policy_day());
    let tick = Scheduler::new(&ctx.engine).tick().await?;
    let case = "dibao_standard-raise-20260701-双鸭山市";
    ensure!(
        tick.policy_starts
            == vec![(
                case.to_string(),
                NaiveDate::from_ymd_opt(2026, 7, 1).unwrap()
            )],
        "{tick:?}"
    );
    // The batch into the ledger, then its report back to the case.
    for _ in 0..3 {
        ctx.dispatcher().tick(policy_day()).await?;
    }
    let (row, _, state) = ctx.engine.load(case).await?;
    ensure!(
        row.status == "completed" && row.outcome.as_deref() == Some("completed"),
        "{row:?}"
    );
    ensure!(
        state.vars.get("adjusted") == Some(&Value::Int(2)),
        "{:?}",
        state.vars
    );

    // urban 700 → 730: 705.00 + 30.00 × 2; rural 520 → 545: 480.00 + 25.00 × 3.
    let changes = ctx
        .ledger
        .standard_changes(NaiveDate::from_ymd_opt(2026, 7, 1).unwrap(), None)
        .await?;
    let mut listed: Vec<(String, String, _, _)> = changes
        .changes
        .iter()
        .map(|c| {
            (
                c.case_id.clone(),
                c.from.to_string(),
                c.old_amount,
                c.new_amount,
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        (
            urban.clone(),
            "2026-07".to_string(),
            dec!(705.00),
            dec!(765.00),
        ),
        (
            rural.clone(),
            "2026-07".to_string(),
            dec!(480.00),
            dec!(555.00),
        ),
    ];
    expected.sort();
    ensure!(listed == expected, "{listed:?}");
    ensure!(changes.total_difference == dec!(135.00), "{changes:?}");

    // A restarted (or second) scheduler later that day: nothing started or paid again.
    let later = policy_day() + chrono::Duration::hours(3);
    ctx.clock.set(later);
    let again = Scheduler::new(&ctx.engine).tick().await?;
    ensure!(again.policy_starts.is_empty(), "{again:?}");
    ensure!(again.policy_failures.is_empty(), "{again:?}");
    ctx.dispatcher().tick(later).await?;
    let after = ctx
        .ledger
        .standard_changes(NaiveDate::from_ymd_opt(2026, 7, 1).unwrap(), None)
        .await?;
    ensure!(after == changes, "{after:?}");
    Ok(())
}
