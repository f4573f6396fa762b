//! `jiuzhu bench timers`: a million cases each waiting on a timer; 100,000 of them come due
//! at once and are fired through the engine (claimed with leases in batches, stepped, group
//! committed). Business time is a manual clock; the lag is wall time from the moment they
//! came due to the last firing's commit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, ensure};
use chrono::{DateTime, Duration, TimeZone, Utc};
use jiuzhu_engine::clock::{Clock, ManualClock};
use jiuzhu_engine::group_commit::GroupCommitOptions;
use jiuzhu_engine::runtime::TIMER_CONCURRENCY;
use jiuzhu_engine::scheduler::{Scheduler, SchedulerOptions};
use jiuzhu_rules::Value;
use serde_json::json;

use super::setup::{self, BenchDb};
use super::{DbOptions, round};

const PROCESS: &str = "timer_lite";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Pending timers (one case each).
    #[arg(long, default_value_t = 1_000_000)]
    pub timers: u64,
    /// How many of them come due at once.
    #[arg(long, default_value_t = 100_000)]
    pub due: u64,
    /// Timers claimed per lease batch (the node's default, as `jiuzhu run`).
    #[arg(long, default_value_t = SchedulerOptions::default().timer_batch)]
    pub batch: u32,
    /// Instances fired at the same time (their steps share group commits); the default is
    /// what `jiuzhu run` uses.
    #[arg(long, default_value_t = TIMER_CONCURRENCY)]
    pub concurrency: usize,
    /// Cases per seeding transaction.
    #[arg(long, default_value_t = 2_000)]
    pub seed_batch: usize,
    #[command(flatten)]
    pub db: DbOptions,
}

pub async fn run(args: &Args) -> Result<serde_json::Value> {
    ensure!(args.timers > 0, "--timers must be at least 1");
    ensure!(
        args.due > 0 && args.due <= args.timers,
        "--due must be between 1 and --timers"
    );
    setup::with_db(&args.db, async |db| measure(db, args).await).await
}

fn seeded_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0)
        .single()
        .unwrap_or_default()
}

async fn measure(db: &BenchDb, args: &Args) -> Result<serde_json::Value> {
    let clock = Arc::new(ManualClock::new(seeded_at()));
    let due_at = seeded_at() + Duration::hours(1);
    let later = seeded_at() + Duration::days(30);
    let group = (GroupCommitOptions::default(), args.concurrency.max(1));
    let engine = setup::engine(
        db,
        &args.db.definitions,
        clock.clone() as Arc<dyn Clock>,
        Some(group),
    )
    .await?;

    // Every `stride`-th case comes due, spread over the table as in life.
    let stride = args.timers / args.due;
    let due_count = args.due;
    let seeded = setup::seed(&engine, PROCESS, args.timers, args.seed_batch, move |i| {
        let wake = if i % stride == 0 && i / stride < due_count {
            due_at
        } else {
            later
        };
        (
            setup::actor("bench-scheduler", "bench/county/town"),
            BTreeMap::from([("wake_at".into(), Value::DateTime(wake.fixed_offset()))]),
        )
    })
    .await?;
    let (peak_rss_after_seed_mib, _) = setup::memory_mib();
    let before = db.store.bench_counts().await?;
    ensure!(
        before.timers == i64::try_from(args.timers)?,
        "{} timers pending after seeding {}",
        before.timers,
        args.timers
    );
    let plan = db.store.bench_timer_claim_plan(due_at, args.batch).await?;
    let claim_uses_index = plan.iter().any(|line| line.contains("timers_available"));

    // They come due: the clock moves to their due time, and the scheduler fires.
    clock.set(due_at);
    let started = Instant::now();
    let mut fired = 0u64;
    let mut claims = 0u64;
    let mut last_firing = started.elapsed();
    // The node's own scheduler, with the node's defaults: claims of `--batch` timers, the next
    // batch claimed while the one before still fires.
    let scheduler = Scheduler::with_options(
        &engine,
        SchedulerOptions {
            timer_batch: args.batch,
            ..SchedulerOptions::default()
        },
    );
    loop {
        let report = scheduler
            .tick()
            .await
            .map_err(|e| anyhow::anyhow!("scheduler: {e}"))?;
        if let Some(failure) = report.timer_failures.first() {
            anyhow::bail!("timer {} failed: {}", failure.timer_id, failure.error);
        }
        claims += 1;
        if report.fired.is_empty() {
            break;
        }
        fired += report.fired.len() as u64;
        last_firing = started.elapsed();
    }
    let seconds = last_firing.as_secs_f64();

    let after = db.store.bench_counts().await?;
    let expect = |n: u64| i64::try_from(n);
    ensure!(
        fired == args.due,
        "fired {fired} of {} due timers",
        args.due
    );
    ensure!(
        after.timers == expect(args.timers - args.due)?,
        "{} timers left, expected {}",
        after.timers,
        args.timers - args.due
    );
    ensure!(
        after.completed_instances == expect(args.due)?,
        "{} cases completed, expected {}",
        after.completed_instances,
        args.due
    );
    // Exactly once: one reminder and one history row per firing, none more.
    ensure!(
        after.outbox == expect(args.due)?,
        "{} reminders for {} firings",
        after.outbox,
        args.due
    );
    ensure!(
        after.history == expect(args.timers + args.due)?,
        "{} history rows, expected {}",
        after.history,
        args.timers + args.due
    );
    let lag = db.store.oldest_due_timer_lag(clock.now()).await?;
    ensure!(lag.is_none(), "a due timer is still waiting");
    let (groups, grouped) = engine
        .group_committer()
        .map(|c| (c.stats().groups(), c.stats().steps()))
        .unwrap_or((fired, fired));
    let (peak_rss_mib, rss_mib) = setup::memory_mib();
    Ok(json!({
        "bench": "timers",
        "db": db.kind(),
        "synchronous": db.synchronous(),
        "pending_timers": args.timers,
        "due": args.due,
        "fired": fired,
        "ticks": claims,
        "concurrency": args.concurrency.max(1),
        "seconds": round(seconds, 3),
        "firings_per_s": round(fired as f64 / seconds.max(f64::EPSILON), 1),
        "last_firing_lag_ms": round(last_firing.as_secs_f64() * 1000.0, 1),
        "commits": groups,
        "avg_steps_per_commit": round(grouped as f64 / groups.max(1) as f64, 2),
        "seed_seconds": round(seeded.elapsed.as_secs_f64(), 3),
        "seed_cases_per_s": round(seeded.cases as f64 / seeded.elapsed.as_secs_f64(), 1),
        "claim_plan": plan,
        "claim_uses_index": claim_uses_index,
        "peak_rss_mib": peak_rss_mib,
        "peak_rss_after_seed_mib": peak_rss_after_seed_mib,
        "rss_mib": rss_mib,
        "timers_left": after.timers,
        "completed": after.completed_instances,
        "reminders": after.outbox,
    }))
}
