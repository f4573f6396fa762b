//! `Ledger::standard_changes`: running monthly benefits whose amount changed from a date,
//! old → new per benefit, on SQLite and PostgreSQL (`JIUZHU_TEST_PG`). A repeated amount
//! and a resumed benefit are not changes; a change before the date is not listed; the unit
//! filter takes the unit and the units below it; names and ID numbers come out masked.

use anyhow::{Result, ensure};
use chrono::{DateTime, NaiveDate, Utc};
use jiuzhu_adapters::payments::Ledger;
use jiuzhu_engine::store::Store;
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};
use rust_decimal_macros::dec;
use serde_json::json;

const ZX: &str = "双鸭山市/尖山区/中心站街道";
const FA: &str = "双鸭山市/尖山区/富安街道";
const BS: &str = "双鸭山市/宝山区/七星镇";

struct Ctx {
    store: Store,
}

struct Teardown {
    database: TestDatabase,
    store: Store,
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "stdchg").await;
    let store = Store::open(&database.url).await.expect("open store");
    (
        Ctx {
            store: store.clone(),
        },
        Teardown { database, store },
    )
}

async fn finish(db: Db, teardown: Teardown, outcome: Outcome) {
    teardown.store.close().await;
    teardown.database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(who_changed_by_how_much_from_a_date);

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-07-01T09:00:00+08:00")
        .expect("time")
        .with_timezone(&Utc)
}

fn date(text: &str) -> NaiveDate {
    text.parse().expect("date")
}

#[allow(clippy::too_many_arguments)]
fn monthly(
    id: &str,
    case: &str,
    unit: &str,
    purpose: &str,
    amount: &str,
    from: &str,
    payee: &str,
    id_number: &str,
) -> serde_json::Value {
    json!({"type": "payment", "id": id, "instance": case, "unit": unit, "amount": amount,
        "purpose": purpose, "schedule": "monthly", "from": from, "payee": payee,
        "account": "6217000011112222444", "id_number": id_number})
}

async fn who_changed_by_how_much_from_a_date(ctx: Ctx) -> Result<()> {
    let ledger = Ledger::new(&ctx.store);
    let effects = [
        // Raised with the standard: 1200.00 → 1300.00 from July.
        monthly(
            "oa-1-e5",
            "oa-1",
            ZX,
            "orphan_allowance",
            "1200.00",
            "2026-04-01",
            "王秀兰",
            "230502201505101020",
        ),
        monthly(
            "oa-1-e9",
            "oa-1",
            ZX,
            "orphan_allowance",
            "1300.00",
            "2026-07-01",
            "王秀兰",
            "230502201505101020",
        ),
        // Told of the new policy, same figure: not a change.
        monthly(
            "oa-2-e5",
            "oa-2",
            FA,
            "orphan_allowance",
            "1600.00",
            "2026-04-01",
            "福利院",
            "230502201007061062",
        ),
        monthly(
            "oa-2-e9",
            "oa-2",
            FA,
            "orphan_allowance",
            "1600.00",
            "2026-07-01",
            "福利院",
            "230502201007061062",
        ),
        // Changed in May: before the date asked for.
        monthly(
            "tk-1-e5",
            "tk-1",
            ZX,
            "tekun",
            "986.00",
            "2026-04-01",
            "赵老汉",
            "230502195309301238",
        ),
        monthly(
            "tk-1-e9",
            "tk-1",
            ZX,
            "tekun",
            "1100.00",
            "2026-05-01",
            "赵老汉",
            "230502195309301238",
        ),
        // Another county, lowered.
        monthly(
            "oa-3-e5",
            "oa-3",
            BS,
            "orphan_allowance",
            "1200.00",
            "2026-04-01",
            "李桂芝",
            "230502201301201054",
        ),
        monthly(
            "oa-3-e9",
            "oa-3",
            BS,
            "orphan_allowance",
            "1150.00",
            "2026-08-01",
            "李桂芝",
            "230502201301201054",
        ),
        // Stopped in June and resumed in August: a resumption, not a change of amount.
        monthly(
            "db-1-e5",
            "db-1",
            FA,
            "dibao",
            "500.00",
            "2026-04-01",
            "张三",
            "230502198001011238",
        ),
        json!({"type": "payment_stop", "id": "db-1-e7", "instance": "db-1", "unit": FA,
            "purpose": "dibao", "from": "2026-06-01"}),
        monthly(
            "db-1-e9",
            "db-1",
            FA,
            "dibao",
            "600.00",
            "2026-08-01",
            "张三",
            "230502198001011238",
        ),
    ];
    for effect in &effects {
        ledger.apply_effect(effect, now()).await?;
    }

    let all = ledger.standard_changes(date("2026-07-01"), None).await?;
    let listed: Vec<(&str, String, _, _, _)> = all
        .changes
        .iter()
        .map(|c| {
            (
                c.case_id.as_str(),
                c.from.to_string(),
                c.old_amount,
                c.new_amount,
                c.difference,
            )
        })
        .collect();
    ensure!(
        listed
            == vec![
                (
                    "oa-1",
                    "2026-07".to_string(),
                    dec!(1200.00),
                    dec!(1300.00),
                    dec!(100.00)
                ),
                (
                    "oa-3",
                    "2026-08".to_string(),
                    dec!(1200.00),
                    dec!(1150.00),
                    dec!(-50.00)
                ),
            ],
        "{listed:?}"
    );
    ensure!(
        all.count == 2 && all.total_difference == dec!(50.00),
        "{all:?}"
    );

    // Masked at the edge: the surname and the ID number's ends only.
    let first = &all.changes[0];
    ensure!(
        first.payee.starts_with('王') && !first.payee.contains("秀兰"),
        "{}",
        first.payee
    );
    let id = first.id_number.as_deref().unwrap_or("");
    ensure!(!id.contains("20150510") && id.ends_with("1020"), "{id}");
    let json = serde_json::to_string(&all)?;
    ensure!(
        !json.contains("230502201505101020") && !json.contains("王秀兰"),
        "{json}"
    );

    // The county's own units only.
    let county = ledger
        .standard_changes(date("2026-07-01"), Some("双鸭山市/尖山区"))
        .await?;
    ensure!(
        county.changes.len() == 1 && county.changes[0].case_id == "oa-1",
        "{county:?}"
    );
    let township = ledger
        .standard_changes(date("2026-07-01"), Some(FA))
        .await?;
    ensure!(township.changes.is_empty(), "{township:?}");

    // From May the tekun change counts too.
    let may = ledger
        .standard_changes(date("2026-05-15"), Some("双鸭山市/尖山区"))
        .await?;
    let cases: Vec<&str> = may.changes.iter().map(|c| c.case_id.as_str()).collect();
    ensure!(cases == ["tk-1", "oa-1"], "{cases:?}");
    ensure!(may.total_difference == dec!(214.00), "{may:?}");
    Ok(())
}
