//! `jiuzhu bench archive`: seeds finished cases (province-lite, decided at once) beside a
//! set of open dibao-lite tasks, times today's queries (a township's queue page, a live
//! case's show), archives every finished case in batches, and times the same queries
//! again, plus the show of an archived case. Prints one JSON object (docs/archives.md).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, ensure};
use chrono::Utc;
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::store::Store;
use jiuzhu_rules::Value;
use serde_json::json;

use super::inbox::percentile_ms;
use super::setup::{self, BenchDb};
use super::{DbOptions, round};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Finished cases seeded, then archived.
    #[arg(long, default_value_t = 100_000)]
    pub cases: u64,
    /// Open tasks (one live case each) in the queues.
    #[arg(long, default_value_t = 10_000)]
    pub open: u64,
    /// Township units the open cases are spread over.
    #[arg(long, default_value_t = 100)]
    pub units: u64,
    /// Queries timed per kind, before and after.
    #[arg(long, default_value_t = 500)]
    pub queries: u64,
    /// Cases moved per archive transaction.
    #[arg(long, default_value_t = 500)]
    pub batch: u32,
    /// Cases per seeding transaction.
    #[arg(long, default_value_t = 5_000)]
    pub seed_batch: usize,
    #[command(flatten)]
    pub db: DbOptions,
}

pub async fn run(args: &Args) -> Result<serde_json::Value> {
    ensure!(
        args.cases > 0 && args.open > 0 && args.units > 0 && args.queries > 0 && args.batch > 0,
        "--cases, --open, --units, --queries and --batch must be at least 1"
    );
    setup::with_db(&args.db, async |db| measure(db, args).await).await
}

/// A township of 双鸭山市, whose policy the province-lite assessment reads.
fn township(unit: u64) -> String {
    format!("双鸭山市/县区{:02}/乡镇{:02}", unit / 10, unit % 10)
}

/// When the seeded cases ran: a day the shipped policies cover.
fn seeded_on() -> chrono::DateTime<Utc> {
    chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 6, 15, 2, 0, 0)
        .single()
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC)
}

async fn measure(db: &BenchDb, args: &Args) -> Result<serde_json::Value> {
    let clock = Arc::new(ManualClock::new(seeded_on()));
    let engine = setup::engine(db, &args.db.definitions, clock, None).await?;
    let units = args.units;
    setup::seed(
        &engine,
        "dibao_lite",
        args.open,
        args.seed_batch,
        move |i| {
            let unit = i % units;
            (
                setup::actor(&format!("clerk-{unit}"), &township(unit)),
                BTreeMap::new(),
            )
        },
    )
    .await?;
    let live: Vec<String> = {
        let filter = jiuzhu_engine::store::InstanceFilter {
            limit: u32::try_from(args.queries.min(args.open))?,
            ..Default::default()
        };
        db.store
            .list_instances(&filter)
            .await?
            .into_iter()
            .map(|row| row.id)
            .collect()
    };
    setup::seed(
        &engine,
        "province_lite",
        args.cases,
        args.seed_batch,
        move |i| {
            let (program, data) = super::province::household(i);
            let mut vars = BTreeMap::new();
            vars.insert("program".to_string(), Value::Str(program.to_string()));
            for (key, value) in data {
                vars.insert(key, Value::from_json(&value));
            }
            (
                setup::actor(&format!("clerk-{i}"), &township(i % units)),
                vars,
            )
        },
    )
    .await?;
    db.store.bench_analyze().await?;
    let before = timings(&db.store, args, &live).await?;

    // Everything finished so far is old enough: the cut-off is a second from now.
    let cutoff = engine.now() + chrono::Duration::seconds(1);
    let started = Instant::now();
    let (mut archived, mut batches, mut archived_ids) = (0u64, 0u64, Vec::new());
    loop {
        let batch = db
            .store
            .archive_batch(cutoff, args.batch, engine.now())
            .await
            .context("archiving")?;
        if batch.instances.is_empty() {
            break;
        }
        archived += batch.instances.len() as u64;
        batches += 1;
        if archived_ids.len() < args.queries as usize {
            archived_ids.extend(batch.instances);
        }
    }
    let archive_seconds = started.elapsed().as_secs_f64();
    let counts = db.store.bench_counts().await?;
    ensure!(
        archived == args.cases,
        "{archived} cases archived of {} finished ({counts:?} left)",
        args.cases
    );
    db.store.bench_analyze().await?;
    let after = timings(&db.store, args, &live).await?;
    let mut archived_show = Vec::new();
    for id in archived_ids.iter().take(args.queries as usize) {
        let started = Instant::now();
        let found = db.store.find_instance(id).await?;
        archived_show.push(started.elapsed());
        ensure!(
            matches!(found, Some((_, true))),
            "archived case {id} not found"
        );
    }
    let mut verify = Vec::new();
    for id in archived_ids.iter().take(50) {
        let started = Instant::now();
        db.store.verify_history(id).await?;
        verify.push(started.elapsed());
    }
    Ok(json!({
        "mode": "archive",
        "database": db.kind(),
        "synchronous": db.synchronous(),
        "finished_cases": args.cases,
        "open_tasks": args.open,
        "archived": archived,
        "batches": batches,
        "batch": args.batch,
        "archive_seconds": round(archive_seconds, 3),
        "archived_per_second": round(archived as f64 / archive_seconds.max(1e-9), 1),
        "before": before,
        "after": after,
        "archived_show_p50_ms": percentile_ms(&mut archived_show, 0.5),
        "archived_show_p99_ms": percentile_ms(&mut archived_show, 0.99),
        "archived_verify_p50_ms": percentile_ms(&mut verify, 0.5),
    }))
}

/// Today's two queries, `args.queries` times each: a township user's queue page and the
/// show of a live case.
async fn timings(store: &Store, args: &Args, live: &[String]) -> Result<serde_json::Value> {
    let roles = vec!["township_staff".to_string()];
    let mut queue: Vec<Duration> = Vec::new();
    for q in 0..args.queries {
        let unit = township((q * 7919) % args.units);
        let started = Instant::now();
        let rows = store
            .tasks_for(&roles, std::slice::from_ref(&unit), "staff", 50)
            .await
            .map_err(|e| anyhow!(e).context(format!("queue of {unit}")))?;
        queue.push(started.elapsed());
        ensure!(!rows.is_empty(), "empty queue for {unit}");
    }
    let mut show: Vec<Duration> = Vec::new();
    for q in 0..args.queries {
        let id = &live[(q as usize) % live.len()];
        let started = Instant::now();
        let found = store.find_instance(id).await?;
        show.push(started.elapsed());
        ensure!(
            matches!(found, Some((_, false))),
            "live case {id} not found"
        );
    }
    Ok(json!({
        "queue_page_p50_ms": percentile_ms(&mut queue, 0.5),
        "queue_page_p99_ms": percentile_ms(&mut queue, 0.99),
        "case_show_p50_ms": percentile_ms(&mut show, 0.5),
        "case_show_p99_ms": percentile_ms(&mut show, 0.99),
    }))
}
