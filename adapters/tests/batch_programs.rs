//! The shipped batch procedures (`heating_aid`, `price_subsidy`) end to end on SQLite and
//! PostgreSQL, through the real engine, outbox dispatcher and ledger on a manual clock:
//! each active recipient household is paid once (per member for the price subsidy, read
//! from the case's own household), an ended benefit gets nothing, a second run for the
//! same month pays nobody twice, and a season started twice — before either run was
//! carried out, or carried out by two nodes at the same moment — pays each household once
//! and tells the second case whose run it was.
//!
//! (`batches.rs` covers the ledger side of a run: resuming after a crash, the progress
//! rows.) PostgreSQL comes from `JIUZHU_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each test gets a fresh schema.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, ensure};
use chrono::{DateTime, TimeZone, Utc};
use jiuzhu_adapters::dispatch::{DispatchConfig, Dispatcher, Outcome, TickReport};
use jiuzhu_adapters::payments::Ledger;
use jiuzhu_engine::clock::{Clock, ManualClock};
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::store::Store;
use jiuzhu_rules::Value;
use jiuzhu_testkit::{Db, TestDatabase, report};
use serde_json::json;
use support::repo_path;

/// 10 July 2026, 09:00 in Beijing: the price subsidy for June is decided.
fn july() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 10, 1, 0, 0).unwrap()
}

/// 15 October 2026, 09:00 in Beijing: the heating season starts.
fn october() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 15, 1, 0, 0).unwrap()
}

const UNIT: &str = "双鸭山市/尖山区/富安街道";

#[derive(Clone)]
struct Ctx {
    clock: Arc<ManualClock>,
    engine: Arc<Engine>,
    ledger: Ledger,
}

impl Ctx {
    fn dispatcher(&self, node: &str) -> Dispatcher {
        let mut config = DispatchConfig::new(node);
        config.lease = chrono::Duration::minutes(1);
        Dispatcher::new(self.engine.clone(), config).with_payments(Arc::new(self.ledger.clone()))
    }

    /// Ticks node `node-a` at the clock's time.
    async fn tick(&self) -> Result<TickReport> {
        Ok(self.dispatcher("node-a").tick(self.clock.now()).await?)
    }

    /// A monthly benefit of `case` in the ledger, as an approved case's effect makes it.
    async fn benefit(&self, case: &str, program: &str, from: &str, payee: &str) -> Result<()> {
        self.benefit_in(UNIT, case, program, from, payee).await
    }

    /// The same in `unit`.
    async fn benefit_in(
        &self,
        unit: &str,
        case: &str,
        program: &str,
        from: &str,
        payee: &str,
    ) -> Result<()> {
        self.ledger
            .apply_effect(
                &json!({"type": "payment", "id": format!("{case}-{program}-e1"), "instance": case,
                        "unit": unit, "amount": "705.00", "purpose": program,
                        "schedule": "monthly", "from": from, "payee": payee,
                        "account": "6222020200001111", "id_number": "230505194810200021"}),
                Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap(),
            )
            .await?;
        Ok(())
    }

    /// Stops `case`'s benefit of `program` from `from`, as a review's `payment_stop` does.
    async fn stop(&self, case: &str, program: &str, from: &str) -> Result<()> {
        self.ledger
            .apply_effect(
                &json!({"type": "payment_stop", "id": format!("{case}-{program}-e2"),
                        "instance": case, "unit": UNIT, "purpose": program, "from": from}),
                self.clock.now(),
            )
            .await?;
        Ok(())
    }

    fn admin() -> Actor {
        Actor {
            user: "admin".into(),
            roles: vec!["admin".into()],
            unit: "双鸭山市/尖山区".into(),
        }
    }

    /// A dibao application of a household of `members` people (their case holds the
    /// household the price subsidy counts); returns its id.
    async fn dibao_case(&self, members: usize, first_id_number: &str) -> Result<String> {
        let clerk = Actor {
            user: "fa_clerk".into(),
            roles: vec!["township_clerk".into()],
            unit: UNIT.into(),
        };
        let mut list = vec![json!({"id": "m1", "id_number": first_id_number,
                                   "birth_date": "1948-05-20"})];
        for i in 2..=members {
            list.push(json!({"id": format!("m{i}"), "birth_date": "1979-04-12"}));
        }
        let household = json!({"members": list, "savings": "1000.00"});
        let data = BTreeMap::from([
            ("applicant_name".to_string(), Value::Str("张桂兰".into())),
            ("area".to_string(), Value::Str("urban".into())),
            ("household".to_string(), Value::from_json(&household)),
        ]);
        Ok(self.engine.start("dibao", &clerk, data).await?.instance.id)
    }

    async fn heating(&self, season: &str) -> Result<String> {
        self.heating_by(season, &Ctx::admin()).await
    }

    /// A heating season run by the township's admin: its run covers the township only.
    async fn township_heating(&self, season: &str) -> Result<String> {
        let admin = Actor {
            user: "fa_admin".into(),
            roles: vec!["admin".into()],
            unit: UNIT.into(),
        };
        self.heating_by(season, &admin).await
    }

    async fn heating_by(&self, season: &str, admin: &Actor) -> Result<String> {
        let data = BTreeMap::from([("season".to_string(), Value::Str(season.into()))]);
        Ok(self
            .engine
            .start("heating_aid", admin, data)
            .await?
            .instance
            .id)
    }

    async fn price(&self, month: &str, rise: &str) -> Result<String> {
        let rise: rust_decimal::Decimal = rise.parse()?;
        let data = BTreeMap::from([
            ("month".to_string(), Value::Str(month.into())),
            ("rise_percent".to_string(), Value::Decimal(rise)),
        ]);
        Ok(self
            .engine
            .start("price_subsidy", &Ctx::admin(), data)
            .await?
            .instance
            .id)
    }

    /// The ledger's one-off instructions of `program`: (case, amount), sorted.
    async fn paid(&self, program: &str) -> Result<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = self
            .ledger
            .instructions(None, None)
            .await?
            .into_iter()
            .filter(|i| i.program == program)
            .map(|i| (i.case_id, i.amount.to_string()))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Status, outcome and variables of a case.
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

fn pair(case: &str, amount: &str) -> (String, String) {
    (case.to_string(), amount.to_string())
}

struct Teardown {
    database: TestDatabase,
    store: Store,
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "batch_programs").await;
    let dir = database.dir().join("processes");
    jiuzhu_testkit::copy_project(
        &repo_path("processes"),
        &dir,
        &[
            "org.yaml",
            "dibao.yaml",
            "dibao_review.yaml",
            "heating_aid.yaml",
            "price_subsidy.yaml",
        ],
        &["policies", "rules", "calendars"],
    );
    let (store, clock, engine, ledger) = support::deployed_node(&database.url, &dir, july()).await;
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

jiuzhu_testkit::on_both_databases!(
    the_price_subsidy_pays_each_active_household_per_member_once,
    a_rise_below_the_threshold_runs_no_batch_and_pays_nobody,
    a_season_started_twice_before_its_run_pays_each_household_once,
    a_season_run_by_two_nodes_at_once_pays_each_household_once,
    a_benefit_ended_before_the_next_season_gets_nothing_then,
    a_township_run_then_the_county_run_pay_each_household_once,
    a_township_run_and_the_county_run_at_once_pay_each_household_once,
);

/// Another township of the county than [`UNIT`].
const OTHER_UNIT: &str = "双鸭山市/尖山区/中心站街道";

/// Two households in the township, one in another township of the county.
async fn three_households(ctx: &Ctx) -> Result<()> {
    ctx.clock.set(october());
    ctx.benefit("dibao-a", "dibao", "2026-04-01", "张桂兰")
        .await?;
    ctx.benefit("tekun-b", "tekun", "2026-01-01", "李德福")
        .await?;
    ctx.benefit_in(OTHER_UNIT, "dibao-z", "dibao", "2026-01-01", "王秀英")
        .await
}

/// Each of the three households paid once in the season, and the two runs' counts.
async fn each_paid_once(ctx: &Ctx, township: &str, county: &str) -> Result<(i64, i64)> {
    ensure!(
        ctx.paid("heating_aid").await?
            == vec![
                pair("dibao-a", "300.00"),
                pair("dibao-z", "300.00"),
                pair("tekun-b", "300.00"),
            ],
        "{:?}",
        ctx.paid("heating_aid").await?
    );
    let (_, _, township) = ctx.vars(township).await?;
    let (_, _, county) = ctx.vars(county).await?;
    let count = |vars: &serde_json::Value| vars["paid_households"].as_i64().unwrap_or(-1);
    Ok((count(&township), count(&county)))
}

async fn a_township_run_then_the_county_run_pay_each_household_once(ctx: Ctx) -> Result<()> {
    three_households(&ctx).await?;
    let township = ctx.township_heating("2026-2027").await?;
    ctx.tick().await?;
    // The county's run of the same season: a run key of its own, the same once key.
    ctx.clock.set(october() + chrono::Duration::days(1));
    let county = ctx.heating("2026-2027").await?;
    ctx.tick().await?;
    settle(&ctx, &[&township, &county]).await?;
    let counts = each_paid_once(&ctx, &township, &county).await?;
    ensure!(counts == (2, 1), "{counts:?}");
    let runs = ctx.ledger.batches(None).await?;
    ensure!(runs.len() == 2, "{runs:?}");
    ensure!(
        runs.iter()
            .any(|r| r.case_id == county && r.recipients == 1 && r.paid == 1),
        "{runs:?}"
    );
    Ok(())
}

async fn a_township_run_and_the_county_run_at_once_pay_each_household_once(ctx: Ctx) -> Result<()> {
    three_households(&ctx).await?;
    let township = ctx.township_heating("2026-2027").await?;
    let county = ctx.heating("2026-2027").await?;
    let node = |name: &str| {
        let mut config = DispatchConfig::new(name);
        config.lease = chrono::Duration::minutes(1);
        config.batch = 1;
        Dispatcher::new(ctx.engine.clone(), config).with_payments(Arc::new(ctx.ledger.clone()))
    };
    let (a, b) = (node("node-a"), node("node-b"));
    let now = ctx.clock.now();
    let (ra, rb) = tokio::join!(a.tick(now), b.tick(now));
    let (ra, rb) = (ra?, rb?);
    ensure!(ra.claimed() + rb.claimed() == 2, "{ra:?} {rb:?}");
    settle(&ctx, &[&township, &county]).await?;
    let (from_township, from_county) = each_paid_once(&ctx, &township, &county).await?;
    // Whichever listed first took the township's households; together, three.
    ensure!(
        from_township + from_county == 3 && from_county >= 1,
        "{from_township} {from_county}"
    );
    Ok(())
}

async fn the_price_subsidy_pays_each_active_household_per_member_once(ctx: Ctx) -> Result<()> {
    // A household of three (its case's household), one of one (no case on file: 1).
    let family = ctx.dibao_case(3, "230502194805200036").await?;
    ctx.benefit(&family, "dibao", "2026-04-01", "张桂兰")
        .await?;
    ctx.benefit("tekun-b", "tekun", "2026-01-01", "李德福")
        .await?;
    // The same household's second benefit: still one payment.
    ctx.benefit("tekun-b", "dibao", "2026-01-01", "李德福")
        .await?;
    // Ended before July: nothing.
    ctx.benefit("dibao-c", "dibao", "2025-11-01", "王秀英")
        .await?;
    ctx.stop("dibao-c", "dibao", "2026-06-01").await?;
    // Not a program of the subsidy.
    ctx.benefit("low-d", "low_income", "2026-01-01", "孙丽")
        .await?;

    let first = ctx.price("2026-06", "3.8").await?;
    let report = ctx.tick().await?;
    ensure!(
        report.entries.iter().any(|e| e.kind == "batch"
            && e.instance_id == first
            && e.outcome == Outcome::Delivered),
        "{report:?}"
    );
    let expected = vec![pair(&family, "150.00"), pair("tekun-b", "50.00")];
    ensure!(
        ctx.paid("price_subsidy").await? == expected,
        "{:?}",
        ctx.paid("price_subsidy").await?
    );
    let (status, outcome, vars) = ctx.vars(&first).await?;
    ensure!(
        status == "completed" && outcome.as_deref() == Some("paid"),
        "{status} {outcome:?}"
    );
    ensure!(vars["paid_households"] == 2, "{vars}");
    ensure!(vars["total"] == "200.00", "{vars}");

    // June again, a day later: nobody is paid twice, and the case says whose run it was.
    ctx.clock.set(july() + chrono::Duration::days(1));
    let again = ctx.price("2026-06", "3.8").await?;
    ctx.tick().await?;
    ensure!(
        ctx.paid("price_subsidy").await? == expected,
        "{:?}",
        ctx.paid("price_subsidy").await?
    );
    let (status, outcome, vars) = ctx.vars(&again).await?;
    ensure!(
        status == "completed" && outcome.as_deref() == Some("paid"),
        "{status} {outcome:?}"
    );
    ensure!(vars["paid_households"] == 0, "{vars}");
    let note = vars["note"].as_str().unwrap_or_default();
    ensure!(
        note.contains(&first),
        "the note names the first run's case: {note}"
    );

    // July is a month of its own: paid again, once.
    ctx.clock.set(july() + chrono::Duration::days(31));
    ctx.price("2026-07", "3.6").await?;
    ctx.tick().await?;
    ensure!(ctx.paid("price_subsidy").await?.len() == 4);
    let runs = ctx.ledger.batches(None).await?;
    ensure!(runs.len() == 2, "one run per month: {runs:?}");
    Ok(())
}

async fn a_rise_below_the_threshold_runs_no_batch_and_pays_nobody(ctx: Ctx) -> Result<()> {
    ctx.benefit("tekun-b", "tekun", "2026-01-01", "李德福")
        .await?;
    let case = ctx.price("2026-06", "3.49").await?;
    let report = ctx.tick().await?;
    ensure!(
        !report.entries.iter().any(|e| e.kind == "batch"),
        "no run requested: {report:?}"
    );
    let (status, outcome, _) = ctx.vars(&case).await?;
    ensure!(
        status == "completed" && outcome.as_deref() == Some("below_threshold"),
        "{status} {outcome:?}"
    );
    ensure!(ctx.paid("price_subsidy").await?.is_empty());
    ensure!(ctx.ledger.batches(None).await?.is_empty());
    // A later run for the same month above the threshold is not blocked by it.
    ctx.price("2026-06", "3.5").await?;
    ctx.tick().await?;
    ensure!(ctx.paid("price_subsidy").await? == vec![pair("tekun-b", "50.00")]);
    Ok(())
}

async fn a_season_started_twice_before_its_run_pays_each_household_once(ctx: Ctx) -> Result<()> {
    ctx.clock.set(october());
    ctx.benefit("dibao-a", "dibao", "2026-04-01", "张桂兰")
        .await?;
    ctx.benefit("tekun-b", "tekun", "2026-01-01", "李德福")
        .await?;
    // Both requests wait in the outbox when the dispatcher first runs; it delivers them
    // side by side. One may meet the other's ledger write and be tried again later.
    let one = ctx.heating("2026-2027").await?;
    let two = ctx.heating("2026-2027").await?;
    let report = ctx.tick().await?;
    ensure!(
        report.entries.iter().filter(|e| e.kind == "batch").count() == 2,
        "{report:?}"
    );
    settle(&ctx, &[&one, &two]).await?;
    ensure!(
        ctx.paid("heating_aid").await?
            == vec![pair("dibao-a", "300.00"), pair("tekun-b", "300.00")],
        "{:?}",
        ctx.paid("heating_aid").await?
    );
    season_told_once(&ctx, &one, &two).await
}

/// Ticks later (past the first retries) until every case of `cases` has had its report.
async fn settle(ctx: &Ctx, cases: &[&str]) -> Result<()> {
    let start = ctx.clock.now();
    for minutes in [1, 5, 30, 120] {
        let mut waiting = false;
        for case in cases {
            let (_, _, vars) = ctx.vars(case).await?;
            waiting |= vars["paid_households"].is_null();
        }
        if !waiting {
            return Ok(());
        }
        let later = start + chrono::Duration::minutes(minutes);
        ctx.clock.set(later);
        ctx.tick().await?;
    }
    Ok(())
}

/// Both cases completed; one paid both households, the other nobody, naming the first.
async fn season_told_once(ctx: &Ctx, one: &str, two: &str) -> Result<()> {
    let (status_one, _, vars_one) = ctx.vars(one).await?;
    let (status_two, _, vars_two) = ctx.vars(two).await?;
    ensure!(status_one == "completed" && status_two == "completed");
    let (paid, duplicate, first) = if vars_one["paid_households"] == 2 {
        (&vars_one, &vars_two, one)
    } else {
        (&vars_two, &vars_one, two)
    };
    ensure!(
        paid["paid_households"] == 2 && paid["total"] == "600.00",
        "{paid}"
    );
    ensure!(duplicate["paid_households"] == 0, "{duplicate}");
    let note = duplicate["note"].as_str().unwrap_or_default();
    ensure!(
        note.contains(first),
        "the note names the case that paid: {note}"
    );
    let runs = ctx.ledger.batches(None).await?;
    ensure!(runs.len() == 1, "{runs:?}");
    ensure!(runs[0].case_id == first && runs[0].status == "done" && runs[0].paid == 2);
    Ok(())
}

async fn a_season_run_by_two_nodes_at_once_pays_each_household_once(ctx: Ctx) -> Result<()> {
    ctx.clock.set(october());
    ctx.benefit("dibao-a", "dibao", "2026-04-01", "张桂兰")
        .await?;
    ctx.benefit("tekun-b", "tekun", "2026-01-01", "李德福")
        .await?;
    let one = ctx.heating("2026-2027").await?;
    let two = ctx.heating("2026-2027").await?;
    // Each node claims one request (one entry per tick) and both run at the same moment.
    let node = |name: &str| {
        let mut config = DispatchConfig::new(name);
        config.lease = chrono::Duration::minutes(1);
        config.batch = 1;
        Dispatcher::new(ctx.engine.clone(), config).with_payments(Arc::new(ctx.ledger.clone()))
    };
    let (a, b) = (node("node-a"), node("node-b"));
    let now = ctx.clock.now();
    let (ra, rb) = tokio::join!(a.tick(now), b.tick(now));
    let (ra, rb) = (ra?, rb?);
    ensure!(ra.claimed() + rb.claimed() == 2, "{ra:?} {rb:?}");
    // A request the race made fail is tried again later; it still pays nobody twice.
    settle(&ctx, &[&one, &two]).await?;
    ensure!(
        ctx.paid("heating_aid").await?
            == vec![pair("dibao-a", "300.00"), pair("tekun-b", "300.00")],
        "{:?}",
        ctx.paid("heating_aid").await?
    );
    season_told_once(&ctx, &one, &two).await
}

async fn a_benefit_ended_before_the_next_season_gets_nothing_then(ctx: Ctx) -> Result<()> {
    ctx.clock.set(october());
    ctx.benefit("dibao-a", "dibao", "2026-04-01", "张桂兰")
        .await?;
    ctx.benefit("tekun-b", "tekun", "2026-01-01", "李德福")
        .await?;
    ctx.heating("2026-2027").await?;
    ctx.tick().await?;
    // The dibao recipient died in October: a review stopped the benefit from November.
    ctx.clock.set(october() + chrono::Duration::days(7));
    ctx.stop("dibao-a", "dibao", "2026-11-01").await?;
    // A late second run of the same season pays nobody (the key is spent) …
    ctx.heating("2026-2027").await?;
    ctx.tick().await?;
    // … and next season pays only the household still receiving its benefit.
    let next = october() + chrono::Duration::days(365);
    ctx.clock.set(next);
    let case = ctx.heating("2027-2028").await?;
    ctx.tick().await?;
    ensure!(
        ctx.paid("heating_aid").await?
            == vec![
                pair("dibao-a", "300.00"),
                pair("tekun-b", "300.00"),
                pair("tekun-b", "300.00"),
            ],
        "{:?}",
        ctx.paid("heating_aid").await?
    );
    let (_, outcome, vars) = ctx.vars(&case).await?;
    ensure!(outcome.as_deref() == Some("completed"));
    ensure!(
        vars["paid_households"] == 1 && vars["total"] == "300.00",
        "{vars}"
    );
    Ok(())
}
