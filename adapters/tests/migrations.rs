//! The adapters' own migrations (the payments ledger, versions 1000–1999) beside the
//! engine's (1–999) in the one `_sqlx_migrations` table, on SQLite and PostgreSQL: a
//! database from the binary whose engine still owned the ledger's tables (engine migration
//! 3) opens with its data; a fresh one gets the tables from the adapters; and each
//! component refuses only a newer schema of its own.

use std::path::Path;

use anyhow::{Context as _, Result, bail, ensure};
use jiuzhu_adapters::payments::{Ledger, PaymentError};
use jiuzhu_engine::store::{Store, StoreError};
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};
use rust_decimal::Decimal;
use sqlx::Connection as _;

struct Ctx {
    db: Db,
    url: String,
    dir: std::path::PathBuf,
}

async fn setup(db: Db) -> (Ctx, TestDatabase) {
    let database = TestDatabase::create(db, "mig").await;
    let ctx = Ctx {
        db,
        url: database.url.clone(),
        dir: database.dir().to_path_buf(),
    };
    (ctx, database)
}

async fn finish(db: Db, database: TestDatabase, outcome: Outcome) {
    database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(
    a_database_whose_engine_owned_the_ledger_opens_with_its_data,
    a_fresh_database_gets_the_ledger_from_the_adapters,
    each_component_refuses_only_a_newer_schema_of_its_own,
);

fn folder(db: Db) -> &'static str {
    match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    }
}

/// Migrates the database as the binary of engine schema 5 did: the engine's migrations
/// 1–5, its 0003 being the ledger's tables (kept byte for byte in the fixtures, so the
/// recorded checksum is the one that binary wrote).
async fn migrate_as_engine_schema_5(ctx: &Ctx) -> Result<()> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let engine = manifest.join("../engine/migrations").join(folder(ctx.db));
    let old = ctx.dir.join("engine_schema_5");
    std::fs::create_dir_all(&old)?;
    for name in [
        "0001_initial.sql",
        "0002_schedules.sql",
        "0004_dispatch.sql",
        "0005_inbox_covering.sql",
    ] {
        std::fs::copy(engine.join(name), old.join(name)).context(name)?;
    }
    std::fs::copy(
        manifest
            .join("tests/fixtures/engine_schema_5")
            .join(format!("{}_0003_payments.sql", folder(ctx.db))),
        old.join("0003_payments.sql"),
    )?;
    // sqlx's migrator future cannot be proven `Send` for a spawned test body; it runs to
    // its end here, on this worker thread.
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(async {
            let migrator = sqlx::migrate::Migrator::new(old.as_path()).await?;
            match ctx.db {
                Db::Sqlite => {
                    let url = format!("{}?mode=rwc", ctx.url);
                    let mut conn = sqlx::SqliteConnection::connect(&url).await?;
                    migrator.run(&mut conn).await?;
                    conn.close().await?;
                }
                Db::Postgres => {
                    let mut conn = sqlx::PgConnection::connect(&ctx.url).await?;
                    migrator.run(&mut conn).await?;
                    conn.close().await?;
                }
            }
            anyhow::Ok(())
        })
    })
}

async fn applied_versions(ctx: &Ctx) -> Result<Vec<i64>> {
    const SQL: &str = "SELECT version FROM _sqlx_migrations ORDER BY version";
    Ok(match ctx.db {
        Db::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&ctx.url).await?;
            let versions = sqlx::query_scalar(SQL).fetch_all(&mut conn).await?;
            conn.close().await?;
            versions
        }
        Db::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&ctx.url).await?;
            let versions = sqlx::query_scalar(SQL).fetch_all(&mut conn).await?;
            conn.close().await?;
            versions
        }
    })
}

/// Records `version` as applied by some newer binary.
async fn pretend_applied(ctx: &Ctx, version: i64) -> Result<()> {
    let checksum = match ctx.db {
        Db::Sqlite => "x'00'",
        Db::Postgres => "'\\x00'::bytea",
    };
    jiuzhu_testkit::raw(
        ctx.db,
        &ctx.url,
        &format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ({version}, 'from a newer jiuzhu', TRUE, {checksum}, 0)"
        ),
    )
    .await
}

async fn a_database_whose_engine_owned_the_ledger_opens_with_its_data(ctx: Ctx) -> Result<()> {
    migrate_as_engine_schema_5(&ctx).await?;
    // A payment the old binary's ledger wrote.
    jiuzhu_testkit::raw(
        ctx.db,
        &ctx.url,
        "INSERT INTO payment_instructions (id, kind, month, case_id, program, unit, payee_name, \
         amount, due_on, created_at, updated_at) VALUES ('case-1-e3', 'once', '2026-02', 'case-1', \
         'temporary_aid', 'gd', 'payee', '1200.00', '2026-02-10', 0, 0)",
    )
    .await?;
    // And a benefit: 500.00 from January, 600.00 to a new account from March.
    jiuzhu_testkit::raw(
        ctx.db,
        &ctx.url,
        "INSERT INTO benefits (id, case_id, program, unit, created_at) \
         VALUES ('case-2:dibao', 'case-2', 'dibao', 'gd', 0)",
    )
    .await?;
    jiuzhu_testkit::raw(
        ctx.db,
        &ctx.url,
        "INSERT INTO benefit_entries (id, benefit_id, seq, kind, effective_month, \
         monthly_amount, payee_name, account, effect_id, recorded_at) VALUES \
         ('case-2-e1', 'case-2:dibao', 1, 'created', '2026-01', '500.00', 'payee', '6222-1', \
          'case-2-e1', 0), \
         ('case-2-e2', 'case-2:dibao', 2, 'amount_changed', '2026-03', '600.00', NULL, \
          '6222-2', 'case-2-e2', 0)",
    )
    .await?;
    ensure!(applied_versions(&ctx).await? == [1, 2, 3, 4, 5]);

    // The engine no longer has a migration 3 and must not refuse the row it left.
    let store = Store::open(&ctx.url).await?;
    let ledger = Ledger::open(&store).await?;
    let old = ledger
        .instruction("case-1-e3")
        .await?
        .context("the old instruction is still there")?;
    ensure!(old.amount == Decimal::new(120_000, 2), "{old:?}");
    // Its benefit's terms were written by migration 1006: February replays the entries
    // (March's is dated after it), March reads the terms.
    let now = chrono::DateTime::parse_from_rfc3339("2026-03-05T09:00:00+08:00")?.to_utc();
    for (month, amount, account) in [("2026-02", 50_000, "6222-1"), ("2026-03", 60_000, "6222-2")] {
        let month = month.parse()?;
        ensure!(ledger.run_month(month, now).await?.created == 1, "{month}");
        let paid = ledger
            .instruction(&format!("case-2:dibao:{month}"))
            .await?
            .context("the month's instruction")?;
        ensure!(
            paid.amount == Decimal::new(amount, 2)
                && paid.amount.to_string() == format!("{}.00", amount / 100)
                && paid.payee.name == "payee"
                && paid.payee.account.as_deref() == Some(account),
            "{paid:?}"
        );
    }
    // The adapters' 1001 found its tables there and recorded itself.
    ensure!(
        applied_versions(&ctx).await?
            == [
                1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 1001, 1002, 1003, 1004, 1005, 1006
            ]
    );
    store.close().await;

    // And again, as every later start does.
    let store = Store::open(&ctx.url).await?;
    let ledger = Ledger::open(&store).await?;
    ensure!(ledger.instruction("case-1-e3").await?.is_some());
    store.close().await;
    ensure!(
        applied_versions(&ctx).await?
            == [
                1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 1001, 1002, 1003, 1004, 1005, 1006
            ]
    );
    Ok(())
}

async fn a_fresh_database_gets_the_ledger_from_the_adapters(ctx: Ctx) -> Result<()> {
    let store = Store::open(&ctx.url).await?;
    ensure!(applied_versions(&ctx).await? == [1, 2, 4, 5, 6, 7, 8, 9, 11, 12, 13]);
    // The engine alone made no ledger tables.
    let missing = jiuzhu_testkit::raw(ctx.db, &ctx.url, "SELECT 1 FROM payment_instructions").await;
    ensure!(missing.is_err(), "the engine created the ledger's tables");

    // A ledger made without `open` migrates on its first use.
    let ledger = Ledger::new(&store);
    ensure!(ledger.instruction("nothing").await?.is_none());
    ensure!(
        applied_versions(&ctx).await?
            == [
                1, 2, 4, 5, 6, 7, 8, 9, 11, 12, 13, 1001, 1002, 1003, 1004, 1005, 1006
            ]
    );
    jiuzhu_testkit::raw(ctx.db, &ctx.url, "SELECT 1 FROM payment_instructions").await?;
    store.close().await;
    Ok(())
}

async fn each_component_refuses_only_a_newer_schema_of_its_own(ctx: Ctx) -> Result<()> {
    let store = Store::open(&ctx.url).await?;
    Ledger::open(&store).await?;
    store.close().await;

    // A newer adapters migration (and a server's row, in its own range): the engine opens,
    // the ledger refuses.
    pretend_applied(&ctx, 1500).await?;
    pretend_applied(&ctx, 2001).await?;
    let store = Store::open(&ctx.url).await?;
    match Ledger::open(&store).await {
        Err(PaymentError::Store(StoreError::SchemaTooNew { found, supported })) => {
            ensure!((found, supported) == (1500, 1006), "{found} {supported}");
        }
        other => bail!("expected SchemaTooNew, got {other:?}"),
    }
    store.close().await;

    // A newer engine migration: the engine refuses.
    let newer = Store::schema_version() + 1;
    pretend_applied(&ctx, newer).await?;
    match Store::open(&ctx.url).await {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            ensure!((found, supported) == (newer, Store::schema_version()));
        }
        other => bail!("expected SchemaTooNew, got {other:?}"),
    }
    Ok(())
}
