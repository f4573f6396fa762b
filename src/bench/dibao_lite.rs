//! `jiuzhu bench dibao-lite`: the peers' workload (bench/peers/README.md) through the engine,
//! with C concurrent clients, beside the raw-commit floor of the same database measured in
//! the same run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, anyhow, bail, ensure};
use jiuzhu_engine::clock::SystemClock;
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::group_commit::GroupCommitOptions;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_rules::Value;
use rust_decimal::Decimal;
use serde_json::json;

use super::setup::{self, BenchDb};
use super::{DbOptions, round};

const PROCESS: &str = "dibao_lite";
const UNIT: &str = "bench/county/town";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How many dibao-lite cases to drive from start to payment.
    #[arg(long, default_value_t = 2000)]
    pub instances: u64,
    /// Concurrent clients, each driving its own instances start to end.
    #[arg(long, default_value_t = 1)]
    pub clients: u64,
    /// Commit every step in its own transaction instead of grouping concurrent steps.
    #[arg(long)]
    pub no_group_commit: bool,
    /// One-row transactions committed to measure the raw-commit floor in the same run.
    #[arg(long, default_value_t = 2000)]
    pub raw_commits: u32,
    /// Rounds the run is cut into: each round commits its share of the raw transactions,
    /// then drives its share of the instances, so both rates are measured over the same
    /// stretch of a noisy machine's time. The default, one round, measures the floor on
    /// the fresh, empty database before any step (the conservative floor).
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    #[command(flatten)]
    pub db: DbOptions,
}

pub async fn run(args: &Args) -> Result<serde_json::Value> {
    ensure!(args.instances > 0, "--instances must be at least 1");
    ensure!(args.clients > 0, "--clients must be at least 1");
    ensure!(args.rounds > 0, "--rounds must be at least 1");
    setup::with_db(&args.db, async |db| measure(db, args).await).await
}

/// What one client did.
#[derive(Default)]
pub(super) struct ClientTally {
    instances: u64,
    pub(super) steps: u64,
    approved: u64,
    payments: u64,
    /// Instances whose payment carried the expected amount.
    amounts_ok: u64,
    first_instance: Option<String>,
}

async fn measure(db: &BenchDb, args: &Args) -> Result<serde_json::Value> {
    let group = (!args.no_group_commit).then_some((GroupCommitOptions::default(), 1));
    let engine = setup::engine(db, &args.db.definitions, Arc::new(SystemClock), group).await?;

    // Raw commits (the floor, on the same store, driver and settings) and instances take
    // turns, round by round; each rate is its work over its own summed time.
    let rounds = u64::from(args.rounds);
    let raw_total = args.raw_commits.max(1);
    let mut raw_time = std::time::Duration::ZERO;
    let mut step_time = std::time::Duration::ZERO;
    let mut tallies = Vec::new();
    for r in 0..rounds {
        let share = |total: u64| total * (r + 1) / rounds - total * r / rounds;
        let raw_share = u32::try_from(share(u64::from(raw_total)))?;
        if raw_share > 0 {
            raw_time += db.store.bench_raw_commits(raw_share).await?;
        }
        let (first, count) = (args.instances * r / rounds, share(args.instances));
        let started = Instant::now();
        let mut clients = Vec::new();
        for client in 0..args.clients {
            let engine = engine.clone();
            let clients_total = args.clients;
            clients.push(tokio::spawn(async move {
                let actor = setup::actor(&format!("bench-{client}"), UNIT);
                let mut tally = ClientTally::default();
                let mut i = client;
                while i < count {
                    run_instance(&engine, &actor, first + i, &mut tally).await?;
                    i += clients_total;
                }
                anyhow::Ok(tally)
            }));
        }
        for client in clients {
            tallies.push(client.await??);
        }
        step_time += started.elapsed();
    }
    let raw_commits_per_s = f64::from(raw_total) / raw_time.as_secs_f64();
    let mut total = ClientTally::default();
    let mut sample = Vec::new();
    for tally in tallies {
        total.instances += tally.instances;
        total.steps += tally.steps;
        total.approved += tally.approved;
        total.payments += tally.payments;
        total.amounts_ok += tally.amounts_ok;
        sample.extend(tally.first_instance);
    }
    let seconds = step_time.as_secs_f64();

    // Check the run: every case completed and paid once, nothing left open, one history
    // row per step, and the hash chains intact.
    let counts = db.store.bench_counts().await?;
    ensure!(
        counts.completed_instances == i64::try_from(args.instances)?,
        "{} of {} instances completed",
        counts.completed_instances,
        args.instances
    );
    ensure!(
        counts.open_tasks == 0,
        "{} tasks left open",
        counts.open_tasks
    );
    ensure!(
        counts.history == i64::try_from(total.steps)?,
        "{} history rows for {} steps",
        counts.history,
        total.steps
    );
    ensure!(
        counts.outbox == i64::try_from(args.instances)?,
        "{} outbox entries for {} instances",
        counts.outbox,
        args.instances
    );
    for instance in &sample {
        db.store.verify_history(instance).await?;
    }
    let (groups, grouped_steps) = engine
        .group_committer()
        .map(|c| (c.stats().groups(), c.stats().steps()))
        .unwrap_or((total.steps, total.steps));
    let steps_per_s = total.steps as f64 / seconds;
    Ok(json!({
        "bench": "dibao-lite",
        "db": db.kind(),
        "synchronous": db.synchronous(),
        "instances": args.instances,
        "clients": args.clients,
        "group_commit": !args.no_group_commit,
        "steps": total.steps,
        "seconds": round(seconds, 3),
        "instances_per_s": round(args.instances as f64 / seconds, 1),
        "steps_per_s": round(steps_per_s, 1),
        "raw_commits": raw_total,
        "rounds": args.rounds,
        "raw_commits_per_s": round(raw_commits_per_s, 1),
        "ratio_to_raw": round(steps_per_s / raw_commits_per_s, 3),
        "commits": groups,
        "avg_steps_per_commit": round(grouped_steps as f64 / groups.max(1) as f64, 2),
        "completed": counts.completed_instances,
        "approved": total.approved,
        "payments": total.payments,
        "payment_amounts_ok": total.amounts_ok,
        "history_rows": counts.history,
        "chains_verified": sample.len(),
    }))
}

/// Drives instance `i` from start to its payment, as the peers do.
pub(super) async fn run_instance(
    engine: &Engine,
    actor: &Actor,
    i: u64,
    tally: &mut ClientTally,
) -> Result<()> {
    let code = |e: jiuzhu_engine::runtime::EngineError| anyhow!("{}: {e}", e.code());
    let mut report = engine
        .start(PROCESS, actor, BTreeMap::new())
        .await
        .map_err(code)?;
    tally.steps += 1;
    let supplement = i % 2 == 0;
    let disputed = i % 4 == 0;
    while let Some(task) = report.tasks_opened.first() {
        let data: BTreeMap<String, Value> = match task.node_id.as_str() {
            "verify" => BTreeMap::from([
                ("income".into(), Value::Decimal(Decimal::from(300))),
                ("standard".into(), Value::Decimal(Decimal::from(700))),
                ("supplement".into(), Value::Bool(supplement)),
                ("disputed".into(), Value::Bool(disputed)),
            ]),
            "review" => BTreeMap::from([("review_passed".into(), Value::Bool(true))]),
            "approve" => BTreeMap::from([("approved".into(), Value::Bool(true))]),
            other => bail!("instance {i}: unexpected task {other}"),
        };
        let task_id = task.id.clone();
        report = engine.complete(&task_id, actor, data).await.map_err(code)?;
        tally.steps += 1;
    }
    let instance = &report.instance;
    ensure!(
        instance.status == "completed",
        "instance {i} stopped at status {}",
        instance.status
    );
    tally.instances += 1;
    if instance.outcome.as_deref() == Some("approved") {
        tally.approved += 1;
    }
    // gap = 700 − 300 = 400; × 1.15 with the supplement.
    let expected = if supplement {
        Decimal::from(460)
    } else {
        Decimal::from(400)
    };
    for entry in report.outbox.iter().filter(|e| e.kind == "payment") {
        tally.payments += 1;
        let amount = entry.payload.get("amount").and_then(|a| match a {
            serde_json::Value::String(s) => s.parse::<Decimal>().ok(),
            other => other.to_string().parse::<Decimal>().ok(),
        });
        if amount == Some(expected) {
            tally.amounts_ok += 1;
        }
    }
    if tally.first_instance.is_none() {
        tally.first_instance = Some(instance.id.clone());
    }
    Ok(())
}
