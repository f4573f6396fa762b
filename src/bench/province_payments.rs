//! `jiuzhu bench province --payments N`: the monthly payment run of a province. N active
//! monthly benefits are written straight into the ledger (bulk inserts: the setting, not
//! the thing measured), then timed: the month's first run, a rerun of the same month
//! (which must write nothing), the bank file export (streamed) and the month report
//! (aggregated in the database). Peak memory is the kernel's high-water mark (`VmHWM`),
//! reset after seeding.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, ensure};
use chrono::{TimeZone as _, Utc};
use jiuzhu_adapters::payments::{BankFileConfig, Ledger, Payee, SeedBenefit, YearMonth};
use jiuzhu_engine::clock::ManualClock;
use rust_decimal::Decimal;
use serde_json::json;

use super::setup::{self, BenchDb};
use super::{Args, reset_peak_rss, unit_of};
use crate::bench::round;

/// Benefits per seeding transaction.
const SEED_CHUNK: u64 = 10_000;

pub async fn measure(db: &BenchDb, args: &Args, benefits: u64) -> Result<serde_json::Value> {
    let now = Utc
        .with_ymd_and_hms(2026, 11, 5, 1, 0, 0)
        .single()
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    let month: YearMonth = "2026-11".parse()?;
    let from: YearMonth = "2026-01".parse()?;
    let clock = Arc::new(ManualClock::new(now));
    let engine = setup::engine(db, &args.db.definitions, clock, None).await?;
    let ledger = Ledger::open(&db.store).await?;

    let started = Instant::now();
    let mut expected = Decimal::ZERO;
    let mut i = 0;
    while i < benefits {
        let end = (i + SEED_CHUNK).min(benefits);
        let chunk: Vec<SeedBenefit> = (i..end)
            .map(|i| {
                let seed = benefit(i, args.counties, args.towns, from);
                expected += seed.amount;
                seed
            })
            .collect();
        ledger.seed_benefits(&chunk, now).await?;
        i = end;
    }
    let seed_s = started.elapsed().as_secs_f64();
    let (_, rss_before) = setup::memory_mib();
    reset_peak_rss();

    let cpu = setup::cpu_seconds;
    let since = |before: Option<f64>| Some(round(cpu()? - before?, 2));
    let started = Instant::now();
    let cpu_before = cpu();
    let first = ledger.run_month(month, now).await?;
    let first_run_s = started.elapsed().as_secs_f64();
    let first_run_cpu_s = since(cpu_before);
    ensure!(
        first.created == benefits,
        "the first run created {} instructions for {benefits} benefits",
        first.created
    );
    let started = Instant::now();
    let rerun = ledger.run_month(month, now).await?;
    let rerun_s = started.elapsed().as_secs_f64();
    ensure!(
        rerun.created == 0,
        "the rerun created {} instructions",
        rerun.created
    );

    let dir = std::env::temp_dir().join(format!("jiuzhu-bench-bank-{}", std::process::id()));
    let started = Instant::now();
    let cpu_before = cpu();
    let export = ledger
        .export_bank_file(&dir, &BankFileConfig::default(), &engine, now)
        .await;
    let export_s = started.elapsed().as_secs_f64();
    let export_cpu_s = since(cpu_before);
    let file_bytes = match export.as_ref().ok().and_then(|e| e.files.first()) {
        Some(file) => std::fs::metadata(&file.path)?.len(),
        None => 0,
    };
    let _ = std::fs::remove_dir_all(&dir);
    let export = export?;
    let file = export.files.first();
    ensure!(
        export.files.len() == 1
            && file.is_some_and(|f| f.count as u64 == benefits && f.total == expected),
        "the export wrote {:?} for {benefits} benefits totalling {expected}",
        export
            .files
            .iter()
            .map(|f| (f.count, f.total))
            .collect::<Vec<_>>()
    );

    let started = Instant::now();
    let report = ledger.month_report(month).await?;
    let report_s = started.elapsed().as_secs_f64();
    ensure!(
        report.count == benefits && report.total == expected,
        "the report counts {} payments totalling {} (expected {benefits}, {expected})",
        report.count,
        report.total
    );
    let (peak_rss_mb, _) = setup::memory_mib();
    let database_bytes = db.store.database_bytes().await?;
    Ok(json!({
        "bench": "province_payments",
        "db": db.kind(),
        "synchronous": db.synchronous(),
        "benefits": benefits,
        "units": args.counties * args.towns,
        "seed_s": round(seed_s, 3),
        "first_run_s": round(first_run_s, 3),
        "first_run_cpu_s": first_run_cpu_s,
        "payment_run_instructions_per_s": round(benefits as f64 / first_run_s, 1),
        "rerun_s": round(rerun_s, 3),
        "rerun_share_of_first": round(rerun_s / first_run_s, 4),
        "export_s": round(export_s, 3),
        "export_cpu_s": export_cpu_s,
        "bank_file_bytes": file_bytes,
        "report_s": round(report_s, 3),
        "total": expected.to_string(),
        "rss_before_run_mb": rss_before,
        "peak_rss_mb": peak_rss_mb,
        "database_bytes": database_bytes,
        "db_bytes_per_case": round(database_bytes as f64 / benefits as f64, 1),
    }))
}

/// Benefit `i`: 70 % dibao, 20 % low_income, 10 % tekun, a monthly amount between 150 and
/// 1,500 yuan in whole fen, spread over the units as applications arrive.
fn benefit(i: u64, counties: u64, towns: u64, from: YearMonth) -> SeedBenefit {
    let (program, data) = super::household(i);
    let fen = 15_000 + (super::mix(i, 40) % 135_000) as i64;
    let id_number = data
        .iter()
        .find(|(key, _)| key == "bank")
        .and_then(|(_, bank)| bank["id_number"].as_str().map(str::to_owned));
    SeedBenefit {
        case_id: format!("{program}-{i:07}"),
        program: program.to_owned(),
        unit: unit_of(i, counties, towns),
        amount: Decimal::new(fen, 2),
        from,
        payee: Payee {
            name: format!("申请人{i}"),
            id_number,
            account: Some(format!("6222{i:012}")),
        },
        stopped_from: None,
    }
}
