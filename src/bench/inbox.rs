//! `jiuzhu bench inbox`: a million open tasks over a thousand township units; the latency of
//! one user's queue query (`Store::tasks_for`), for a township user (their unit) and a county
//! user (the ten townships below them).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, ensure};
use jiuzhu_engine::clock::SystemClock;
use jiuzhu_engine::store::Store;
use serde_json::json;

use super::setup::{self, BenchDb};
use super::{DbOptions, round};

const PROCESS: &str = "dibao_lite";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Open tasks (one case each).
    #[arg(long, default_value_t = 1_000_000)]
    pub tasks: u64,
    /// Township units the cases are spread over (ten per county).
    #[arg(long, default_value_t = 1_000)]
    pub units: u64,
    /// Queue queries timed per kind of user.
    #[arg(long, default_value_t = 2_000)]
    pub queries: u64,
    /// Rows per queue page.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Cases per seeding transaction.
    #[arg(long, default_value_t = 5_000)]
    pub seed_batch: usize,
    /// Drop the operating system's page cache between seeding and the queries (Linux,
    /// as root), so they read the database from disk, as on the first morning after a
    /// restart.
    #[arg(long)]
    pub cold: bool,
    #[command(flatten)]
    pub db: DbOptions,
}

pub async fn run(args: &Args) -> Result<serde_json::Value> {
    ensure!(
        args.tasks > 0 && args.units > 0,
        "--tasks and --units must be at least 1"
    );
    ensure!(args.queries > 0, "--queries must be at least 1");
    setup::with_db(&args.db, async |db| measure(db, args).await).await
}

/// Writes dirty pages out, then asks Linux to drop the clean ones from its page cache.
fn drop_page_cache() -> Result<()> {
    let synced = std::process::Command::new("sync")
        .status()
        .context("--cold runs sync before dropping the page cache")?;
    ensure!(synced.success(), "sync failed: {synced}");
    std::fs::write("/proc/sys/vm/drop_caches", "1")
        .context("--cold writes /proc/sys/vm/drop_caches, which needs Linux and root")
}

fn county(unit: u64) -> String {
    format!("bench/county{:03}", unit / 10)
}

pub(super) fn township(unit: u64) -> String {
    format!("{}/town{unit:04}", county(unit))
}

async fn measure(db: &BenchDb, args: &Args) -> Result<serde_json::Value> {
    let engine = setup::engine(db, &args.db.definitions, Arc::new(SystemClock), None).await?;
    let units = args.units;
    let seeded = setup::seed(&engine, PROCESS, args.tasks, args.seed_batch, move |i| {
        let unit = i % units;
        (
            setup::actor(&format!("clerk-{unit}"), &township(unit)),
            BTreeMap::new(),
        )
    })
    .await?;
    let counts = db.store.bench_counts().await?;
    ensure!(
        counts.open_tasks == i64::try_from(args.tasks)?,
        "{} open tasks after seeding {}",
        counts.open_tasks,
        args.tasks
    );

    if args.cold {
        drop_page_cache()?;
    }

    let per_unit = |unit: u64| args.tasks / units + u64::from(unit < args.tasks % units);
    let roles = vec!["township_staff".to_string()];
    // A township user: their own unit.
    let mut town = Vec::with_capacity(args.queries as usize);
    for q in 0..args.queries {
        let unit = (q * 7919) % units;
        let expected = per_unit(unit).min(u64::from(args.limit));
        let (took, rows) = timed_query(
            &db.store,
            &roles,
            &township(unit),
            &format!("staff-{unit}"),
            args.limit,
        )
        .await?;
        ensure!(
            rows.len() as u64 == expected && rows.iter().all(|t| t.unit == township(unit)),
            "queue of {}: {} rows, expected {expected}",
            township(unit),
            rows.len()
        );
        town.push(took);
    }
    // A county user: every township below their county.
    let counties = units.div_ceil(10);
    let mut county_latencies = Vec::with_capacity(args.queries as usize);
    for q in 0..args.queries {
        let unit = ((q * 7919) % counties) * 10;
        let (took, rows) = timed_query(
            &db.store,
            &roles,
            &county(unit),
            &format!("county-staff-{unit}"),
            args.limit,
        )
        .await?;
        let prefix = format!("{}/", county(unit));
        ensure!(
            !rows.is_empty() && rows.iter().all(|t| t.unit.starts_with(&prefix)),
            "queue of {}: rows outside the county",
            county(unit)
        );
        county_latencies.push(took);
    }
    let (peak_rss_mib, _) = setup::memory_mib();
    Ok(json!({
        "bench": "inbox",
        "db": db.kind(),
        "synchronous": db.synchronous(),
        "open_tasks": args.tasks,
        "units": args.units,
        "queries": args.queries,
        "cold": args.cold,
        "limit": args.limit,
        "p50_ms": percentile_ms(&mut town, 0.50),
        "p99_ms": percentile_ms(&mut town, 0.99),
        "max_ms": percentile_ms(&mut town, 1.0),
        "county_p50_ms": percentile_ms(&mut county_latencies, 0.50),
        "county_p99_ms": percentile_ms(&mut county_latencies, 0.99),
        "seed_seconds": round(seeded.elapsed.as_secs_f64(), 3),
        "seed_cases_per_s": round(seeded.cases as f64 / seeded.elapsed.as_secs_f64(), 1),
        "peak_rss_mib": peak_rss_mib,
    }))
}

async fn timed_query(
    store: &Store,
    roles: &[String],
    unit: &str,
    user: &str,
    limit: u32,
) -> Result<(Duration, Vec<jiuzhu_engine::store::TaskRow>)> {
    let started = Instant::now();
    let rows = store
        .tasks_for(roles, &[unit.to_string()], user, limit)
        .await
        .map_err(|e| anyhow!(e).context(format!("queue of {unit}")))?;
    Ok((started.elapsed(), rows))
}

/// The `p`-quantile (nearest rank) of the latencies, in milliseconds.
pub(super) fn percentile_ms(latencies: &mut [Duration], p: f64) -> f64 {
    if latencies.is_empty() {
        return 0.0;
    }
    latencies.sort_unstable();
    let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
    round(latencies[rank - 1].as_secs_f64() * 1000.0, 3)
}
