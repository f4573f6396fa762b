//! `jiuzhu bench nodes`: throughput of 1, 2, 3 … nodes of this binary on one PostgreSQL
//! database. For each node count, on a fresh database:
//!
//! - `run` nodes: `timer_lite` cases are seeded with their timers already due by the
//!   system clock; K `jiuzhu run` children fire them (claims with leases, SKIP LOCKED) and
//!   deliver the reminders to a webhook this process answers. Timed from spawn until no
//!   timer is left; every case must have fired exactly once (two history rows, one outbox
//!   row each).
//! - `serve` nodes: K `jiuzhu serve` children; C clients with API tokens, spread
//!   round-robin over the nodes, drive `dibao_lite` cases from start to completion as
//!   `bench http` does; timed until the last completion, then until every payment is in
//!   the ledger (once per case).
//!
//! Beside the rates: the CPU the nodes and PostgreSQL's backends used, the machine's busy
//! share and the database's commits, so what limits the rate can be read off the report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use jiuzhu_engine::clock::{Clock, ManualClock, SystemClock};
use jiuzhu_rules::Value;
use serde_json::{Value as Json, json};

use super::nodes_proc::{ChildProject, CpuSnapshot, Node, PgProbe, Webhook};
use super::setup::{self, BenchDb};
use super::{DbOptions, nodes_serve, round};

const TIMER_PROCESS: &str = "timer_lite";
/// Where `bench nodes` keeps the webhook's secret in the children's environment.
const SECRET_VAR: &str = "JIUZHU_BENCH_WEBHOOK_SECRET";

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kinds {
    Run,
    Serve,
    Both,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The node counts to measure, each on a fresh database.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub nodes: Vec<usize>,
    /// Which nodes: `run` (timers), `serve` (the API) or `both`.
    #[arg(long, value_enum, default_value_t = Kinds::Both)]
    pub kind: Kinds,
    /// `run` nodes: due timers (one `timer_lite` case each) the nodes fire.
    #[arg(long, default_value_t = 20_000)]
    pub timers: u64,
    /// `serve` nodes: dibao-lite cases the clients drive from start to payment.
    #[arg(long, default_value_t = 1_000)]
    pub instances: u64,
    /// `serve` nodes: concurrent API clients, spread round-robin over the nodes.
    #[arg(long, default_value_t = 32)]
    pub clients: u64,
    /// Cases per seeding transaction.
    #[arg(long, default_value_t = 5_000)]
    pub seed_batch: usize,
    /// Longest wait for one node count's work, in seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    #[command(flatten)]
    pub db: DbOptions,
}

pub async fn run(args: &Args) -> Result<Json> {
    let url = args.db.db.as_deref().unwrap_or_default();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        bail!(
            "bench nodes needs --db postgres://…: several nodes share one PostgreSQL \
             database (SQLite has one writer, so its nodes would only queue on its lock)"
        );
    }
    ensure!(
        !args.nodes.is_empty() && args.nodes.iter().all(|&k| (1..=64).contains(&k)),
        "--nodes lists node counts from 1 to 64, e.g. 1,2,3"
    );
    ensure!(
        args.timers > 0 && args.instances > 0 && args.clients > 0,
        "--timers, --instances and --clients must be at least 1"
    );
    let load_before = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    let mut run_nodes = Vec::new();
    let mut serve_nodes = Vec::new();
    if args.kind != Kinds::Serve {
        let webhook = Webhook::start().await?;
        for &k in &args.nodes {
            run_nodes.push(
                setup::with_db(&args.db, async |db| {
                    measure_run(db, args, k, &webhook).await
                })
                .await
                .with_context(|| format!("{k} run node(s)"))?,
            );
        }
    }
    if args.kind != Kinds::Run {
        for &k in &args.nodes {
            serve_nodes.push(
                setup::with_db(&args.db, async |db| nodes_serve::measure(db, args, k).await)
                    .await
                    .with_context(|| format!("{k} serve node(s)"))?,
            );
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(json!({
        "bench": "nodes",
        "db": "postgres",
        "synchronous": "synchronous_commit=on",
        "machine_cores": cores,
        "load_before": load_before,
        "run": run_nodes,
        "serve": serve_nodes,
        "notes": [
            format!(
                "PostgreSQL, the nodes and this bench share the machine's {cores} core(s): a \
                 node adds CPU only where cores sit idle, so once nodes_and_postgres_cores_used \
                 nears the core count (or machine_busy_share nears 1) more nodes cannot go faster."
            ),
            "run nodes: deliveries_per_s counts the reminders delivered by the moment the last \
             timer fired (a node fires its due timers before it turns to the outbox), not the \
             delivery rate; the serve rows' all_paid_seconds shows the outbox keeping up.",
            "nodes_share / postgres_share split the CPU the nodes and this database's backends \
             used; the backends include this bench's own progress queries.",
        ],
    }))
}

/// K `jiuzhu run` nodes fire `--timers` due timers.
async fn measure_run(db: &BenchDb, args: &Args, k: usize, webhook: &Webhook) -> Result<Json> {
    let url = db
        .postgres_url()
        .context("bench nodes runs on PostgreSQL")?
        .to_string();
    // Seeded two hours ago in business time, due an hour ago: due at once for the nodes,
    // which run on the system clock.
    let now = SystemClock.now();
    let clock = Arc::new(ManualClock::new(now - chrono::Duration::hours(2)));
    let engine = setup::engine(db, &args.db.definitions, clock as Arc<dyn Clock>, None).await?;
    let wake = Value::DateTime((now - chrono::Duration::hours(1)).fixed_offset());
    let seeded = setup::seed(&engine, TIMER_PROCESS, args.timers, args.seed_batch, {
        move |i| {
            let contact = Value::from_json(&json!({"phone": format!("1380000{:04}", i % 10_000)}));
            (
                setup::actor("bench-scheduler", "bench/county/town"),
                BTreeMap::from([
                    ("wake_at".into(), wake.clone()),
                    ("contact".into(), contact),
                ]),
            )
        }
    })
    .await?;
    // The ledger's tables, made once here rather than by K nodes racing at start.
    jiuzhu_adapters::payments::Ledger::open(&db.store).await?;
    let probe = PgProbe::connect(&url).await?;
    let project = ChildProject::create(&args.db.definitions)?;
    let _ = webhook.take();
    let env = vec![
        ("JIUZHU_NOTIFY_WEBHOOK_URL".to_string(), webhook.url.clone()),
        (
            "JIUZHU_NOTIFY_WEBHOOK_SECRET_ENV".to_string(),
            SECRET_VAR.to_string(),
        ),
        (
            SECRET_VAR.to_string(),
            uuid::Uuid::now_v7().simple().to_string(),
        ),
        (
            "JIUZHU_NOTIFY_ROUTE_APPLICANT".to_string(),
            "webhook".to_string(),
        ),
    ];
    let backends_before = probe.backends().await?.len();
    let commits_before = probe.commits().await?;
    let queries_before = probe.queries();
    let cpu_before = CpuSnapshot::take(&probe, &[]).await?;
    let started = Instant::now();
    let mut nodes = Vec::with_capacity(k);
    for index in 0..k {
        nodes.push(Node::spawn(&project, &url, index, &["run"], &env, false).await?);
    }
    // Done when no timer is left; polled ten times a second.
    let timeout = Duration::from_secs(args.timeout);
    loop {
        let left = probe.numbers("SELECT count(*) FROM timers").await?[0];
        if left == 0 {
            break;
        }
        for node in &mut nodes {
            node.check_running()?;
        }
        if started.elapsed() > timeout {
            bail!("{left} timers still pending after {} s", args.timeout);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = CpuSnapshot::take(&probe, &nodes).await?.since(&cpu_before);
    let delivered = probe
        .numbers("SELECT count(*) FROM outbox WHERE status = 'delivered'")
        .await?[0];
    for node in nodes {
        node.stop().await?;
    }
    let commits = probe.settled_commits(backends_before).await? - commits_before;
    // This bench's own reads are transactions too; the last one is not counted yet.
    let probe_queries = (probe.queries() - queries_before).saturating_sub(1);
    // Exactly once: a start and a firing per case, one reminder each, none dead.
    let n = i64::try_from(args.timers)?;
    let [history, odd_cases, outbox, outbox_cases, dead, completed] = probe
        .numbers(
            "SELECT (SELECT count(*) FROM history), \
             (SELECT count(*) FROM (SELECT instance_id FROM history GROUP BY instance_id \
              HAVING count(*) <> 2) odd), \
             (SELECT count(*) FROM outbox), (SELECT count(DISTINCT instance_id) FROM outbox), \
             (SELECT count(*) FROM outbox WHERE status = 'dead'), \
             (SELECT count(*) FROM instances WHERE status = 'completed')",
        )
        .await?[..]
    else {
        bail!("the exactly-once counts did not read");
    };
    ensure!(completed == n, "{completed} of {n} cases completed");
    ensure!(
        history == 2 * n && odd_cases == 0,
        "{history} history rows for {n} cases, {odd_cases} case(s) without exactly one firing"
    );
    ensure!(
        outbox == n && outbox_cases == n,
        "{outbox} reminders for {n} firings ({outbox_cases} cases)"
    );
    ensure!(dead == 0, "{dead} reminder(s) dead");
    let received = webhook.take();
    let twice = received.values().filter(|&&c| c > 1).count();
    let received_total: u64 = received.values().map(|&c| u64::from(c)).sum();
    ensure!(
        i64::try_from(received.len())? >= delivered,
        "{delivered} reminders marked delivered, the webhook saw {}",
        received.len()
    );
    probe.close().await;
    let net_commits = commits - i64::try_from(probe_queries)?;
    Ok(json!({
        "nodes": k,
        "timers": args.timers,
        "seconds": round(seconds, 3),
        "firings_per_s": round(args.timers as f64 / seconds, 1),
        "reminders_delivered": delivered,
        "deliveries_per_s": round(delivered as f64 / seconds, 1),
        "webhook_posts": received_total,
        "webhook_keys_twice": twice,
        "history_rows": history,
        "reminders": outbox,
        "fired_twice": odd_cases,
        "xact_commits": commits,
        "xact_commits_less_probe": net_commits,
        "commits_per_s": round(net_commits as f64 / seconds, 1),
        "cpu": cpu,
        "seed_seconds": round(seeded.elapsed.as_secs_f64(), 3),
    }))
}
