//! `jiuzhu load-payments` (hidden, for the crash test): seeds N monthly benefits straight
//! into the ledger, runs November 2026 page by page, printing `progress N` after each
//! committed page, writes the bank file, prints `file PATH`, then `done`.
//!
//! It resumes from whatever the database holds, so it can be killed at any moment and
//! started again: the seeding leaves existing benefits alone, the run resumes after its
//! last committed page, and the export rewrites a batch whose file was not acknowledged.
//! Every tenth benefit was stopped before the month.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow};
use chrono::{DateTime, Utc};
use jiuzhu_adapters::payments::{BankFileConfig, Ledger, Payee, SeedBenefit, YearMonth};
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::store::Store;
use rust_decimal::Decimal;

/// Business time of the run: 5 November 2026, 09:00 in Beijing.
const RUN_AT: &str = "2026-11-05T09:00:00+08:00";
/// The month the run pays.
pub const MONTH: &str = "2026-11";

pub struct Args<'a> {
    pub db: &'a str,
    pub definitions: &'a Path,
    pub benefits: usize,
    /// Benefits per page of the run.
    pub page: usize,
    /// Where the bank file goes.
    pub out: &'a Path,
}

pub fn run(args: &Args<'_>) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            crate::errors::emit(
                "runtime",
                &format!("cannot start the async runtime: {e}"),
                &[],
            );
            return 1;
        }
    };
    match runtime.block_on(drive(args)) {
        Ok(()) => 0,
        Err(e) => crate::errors::report(&e),
    }
}

async fn drive(args: &Args<'_>) -> Result<()> {
    let project =
        Project::load(args.definitions).map_err(|problems| anyhow!(problems.join("\n")))?;
    let store = Store::open(args.db)
        .await
        .with_context(|| format!("opening {}", args.db))?;
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339(RUN_AT)?.with_timezone(&Utc);
    let engine = Engine::new(
        store.clone(),
        Arc::new(project),
        Arc::new(ManualClock::new(now)),
        &format!("load-payments-{}", std::process::id()),
    )
    .map_err(|e| anyhow!(e))?;
    engine.deploy().await.map_err(|e| anyhow!(e))?;
    let ledger = Ledger::open(&store).await?.with_run_page(args.page);
    let month: YearMonth = MONTH.parse()?;
    let seeds: Vec<SeedBenefit> = (0..args.benefits).map(|i| seed(i, month)).collect();
    for chunk in seeds.chunks(10_000) {
        ledger.seed_benefits(chunk, now).await?;
    }
    let mut report = |progress: &jiuzhu_adapters::payments::RunProgress| {
        println!("progress {}", progress.pages);
    };
    ledger.run_month_observed(month, now, &mut report).await?;
    let export = ledger
        .export_bank_file(args.out, &BankFileConfig::default(), &engine, now)
        .await?;
    for file in &export.files {
        println!("file {}", file.path.display());
    }
    println!("done");
    store.close().await;
    Ok(())
}

/// Benefit `i`: a fixed amount, payee and account; every tenth stopped from the month.
pub fn seed(i: usize, month: YearMonth) -> SeedBenefit {
    let fen = 30_000 + (i as i64 * 7_919) % 90_000;
    SeedBenefit {
        case_id: format!("dibao-{i:07}"),
        program: "dibao".into(),
        unit: format!("双鸭山市/尖山区/乡镇{:02}", i % 12),
        amount: Decimal::new(fen, 2),
        from: "2026-01".parse().unwrap_or(month),
        payee: Payee {
            name: format!("户主{i}"),
            id_number: None,
            account: Some(format!("6222{i:012}")),
        },
        stopped_from: (i % 10 == 9).then_some(month),
    }
}
