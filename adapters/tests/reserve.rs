//! The township reserve fund on SQLite (a temp file) and PostgreSQL alike: many draws racing
//! for a balance that covers only some of them, from several nodes at once; a retried draw;
//! replenishment up to the ceiling and refused above it; malformed amounts.
//!
//! PostgreSQL comes from `JIUZHU_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each test gets a fresh schema that is dropped afterwards. When no server answers, the
//! PostgreSQL half fails and says how to start one.

use std::str::FromStr;

use anyhow::{Result, bail, ensure};
use chrono::{DateTime, Utc};
use jiuzhu_adapters::payments::{Ledger, ReserveError, ReserveProblem};
use jiuzhu_engine::store::Store;
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const UNIT: &str = "双鸭山市/尖山区/中心站街道";
const OTHER: &str = "双鸭山市/尖山区/富安街道";

#[derive(Clone)]
struct Ctx {
    store: Store,
    url: String,
}

struct Teardown {
    database: TestDatabase,
    store: Store,
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "reserve").await;
    let url = database.url.clone();
    let store = Store::open(&url).await.expect("open store");
    Ledger::open(&store).await.expect("ledger migrations");
    let ctx = Ctx {
        store: store.clone(),
        url,
    };
    (ctx, Teardown { database, store })
}

async fn finish(db: Db, teardown: Teardown, outcome: Outcome) {
    teardown.store.close().await;
    teardown.database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(
    racing_draws_never_take_a_balance_below_zero,
    a_retried_draw_is_answered_as_the_first_time,
    replenishment_stops_at_the_ceiling_and_refuses_bad_amounts,
);

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-05T09:00:00+08:00")
        .expect("a valid time")
        .with_timezone(&Utc)
}

/// Sum of a reserve's entry deltas, read through the ledger.
async fn entries_total(ledger: &Ledger, unit: &str) -> Result<Decimal> {
    Ok(ledger
        .reserve_entries(unit)
        .await?
        .iter()
        .map(|e| e.delta)
        .sum())
}

/// 64 advances of 100.00 race for a balance of 1,000.00 from four nodes (stores of their
/// own on the same database): exactly ten are drawn, the balance ends at zero, never
/// below, and it is the sum of the entries.
async fn racing_draws_never_take_a_balance_below_zero(ctx: Ctx) -> Result<()> {
    let ledger = Ledger::new(&ctx.store);
    let balance = ledger
        .replenish_reserve(UNIT, dec!(1000.00), None, "county_staff1", None, now())
        .await?;
    ensure!(balance == dec!(1000.00), "{balance}");
    // A reserve of another township is not touched by these draws.
    ledger
        .replenish_reserve(OTHER, dec!(300.00), None, "county_staff1", None, now())
        .await?;

    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(Store::open(&ctx.url).await?);
    }
    let nodes: Vec<Ledger> = stores.iter().map(Ledger::new).collect();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let ledger = nodes[i % nodes.len()].clone();
        tasks.push(tokio::spawn(async move {
            ledger
                .draw_reserve(
                    UNIT,
                    &format!("temporary_aid-{i}-e1"),
                    &format!("temporary_aid-{i}"),
                    dec!(100.00),
                    now(),
                )
                .await
        }));
    }
    let mut drawn = 0;
    for task in tasks {
        let outcome = task.await??;
        ensure!(!outcome.duplicate, "a first draw reported as a duplicate");
        ensure!(
            outcome.balance_after >= Decimal::ZERO,
            "balance went below zero: {}",
            outcome.balance_after
        );
        if outcome.drawn {
            drawn += 1;
        }
    }
    ensure!(drawn == 10, "{drawn} draws succeeded, expected 10");

    let reserves = ledger.reserve_map().await?;
    let reserve = &reserves[UNIT];
    ensure!(reserve.balance == Decimal::ZERO, "{}", reserve.balance);
    ensure!(reserve.verified(), "{reserve:?}");
    ensure!(entries_total(&ledger, UNIT).await? == Decimal::ZERO);
    let entries = ledger.reserve_entries(UNIT).await?;
    let count = |kind: &str| entries.iter().filter(|e| e.kind == kind).count();
    ensure!(
        (count("replenish"), count("draw"), count("refused")) == (1, 10, 54),
        "{entries:#?}"
    );
    // Every draw's balance afterwards is distinct: they were applied one after another.
    let mut after: Vec<Decimal> = entries
        .iter()
        .filter(|e| e.kind == "draw")
        .map(|e| e.balance_after)
        .collect();
    after.sort();
    after.dedup();
    ensure!(after.len() == 10, "{after:?}");
    ensure!(reserves[OTHER].balance == dec!(300.00));
    for store in stores {
        store.close().await;
    }
    Ok(())
}

/// A draw delivered again (the outbox delivers at least once) draws nothing more and gives
/// the first answer — even a refusal after the reserve was topped up since.
async fn a_retried_draw_is_answered_as_the_first_time(ctx: Ctx) -> Result<()> {
    let ledger = Ledger::new(&ctx.store);
    ledger
        .replenish_reserve(UNIT, dec!(500.00), None, "county_staff1", None, now())
        .await?;
    let first = ledger
        .draw_reserve(UNIT, "ta-1-e1", "ta-1", dec!(400.00), now())
        .await?;
    ensure!(first.drawn && !first.duplicate && first.balance_after == dec!(100.00));

    // Eight redeliveries at once.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            ledger
                .draw_reserve(UNIT, "ta-1-e1", "ta-1", dec!(400.00), now())
                .await
        }));
    }
    for task in tasks {
        let again = task.await??;
        ensure!(again.drawn && again.duplicate, "{again:?}");
        ensure!(again.balance_after == dec!(100.00));
    }
    ensure!(ledger.reserve_map().await?[UNIT].balance == dec!(100.00));

    let refused = ledger
        .draw_reserve(UNIT, "ta-2-e1", "ta-2", dec!(400.00), now())
        .await?;
    ensure!(!refused.drawn && !refused.duplicate, "{refused:?}");
    ledger
        .replenish_reserve(UNIT, dec!(1000.00), None, "county_staff1", None, now())
        .await?;
    let retried = ledger
        .draw_reserve(UNIT, "ta-2-e1", "ta-2", dec!(400.00), now())
        .await?;
    ensure!(!retried.drawn && retried.duplicate, "{retried:?}");
    let reserve = &ledger.reserve_map().await?[UNIT];
    ensure!(
        reserve.balance == dec!(1100.00) && reserve.verified(),
        "{reserve:?}"
    );
    ensure!(entries_total(&ledger, UNIT).await? == dec!(1100.00));
    Ok(())
}

/// Up to the ceiling, and not one fen above it: the refusal names the room left and writes
/// nothing. Zero, negative and sub-fen amounts are malformed.
async fn replenishment_stops_at_the_ceiling_and_refuses_bad_amounts(ctx: Ctx) -> Result<()> {
    let ledger = Ledger::new(&ctx.store);
    let ceiling = Some(dec!(20000.00));
    let balance = ledger
        .replenish_reserve(
            UNIT,
            dec!(15000.00),
            ceiling,
            "county_staff1",
            Some("年初拨付"),
            now(),
        )
        .await?;
    ensure!(balance == dec!(15000.00));
    match ledger
        .replenish_reserve(UNIT, dec!(5000.01), ceiling, "county_staff1", None, now())
        .await
    {
        Err(ReserveError::Refused(ReserveProblem::AboveCeiling { room, balance, .. })) => {
            ensure!(room == dec!(5000.00) && balance == dec!(15000.00));
        }
        other => bail!("expected above_ceiling, got {other:?}"),
    }
    let balance = ledger
        .replenish_reserve(UNIT, dec!(5000.00), ceiling, "county_staff1", None, now())
        .await?;
    ensure!(balance == dec!(20000.00), "exactly the ceiling is allowed");
    for bad in ["0", "-100.00", "0.001", "-0.00"] {
        let amount = Decimal::from_str(bad)?;
        match ledger
            .replenish_reserve(OTHER, amount, None, "county_staff1", None, now())
            .await
        {
            Err(ReserveError::Refused(problem)) => {
                ensure!(problem.code() == "invalid_data", "{bad}: {problem}")
            }
            other => bail!("{bad}: expected invalid_data, got {other:?}"),
        }
    }
    let entries = ledger.reserve_entries(UNIT).await?;
    ensure!(entries.len() == 2, "{entries:#?}");
    ensure!(entries[0].by.as_deref() == Some("county_staff1"));
    ensure!(entries[0].note.as_deref() == Some("年初拨付"));
    ensure!(ledger.reserve_entries(OTHER).await?.is_empty());
    let reserves = ledger.reserve_map().await?;
    ensure!(reserves[UNIT].verified() && reserves[UNIT].balance == dec!(20000.00));
    Ok(())
}
