//! Poison timers and short leases, on SQLite and PostgreSQL: a timer whose firing fails is
//! tried a bounded number of times with a backoff, then parked as an incident on its case,
//! while the other timers of its batch fire; a claim whose firing never reports back (the
//! node was killed) counts as an attempt; a dead node's leases end within seconds, and a
//! live node's are renewed. Time is a manual clock: nothing here sleeps.

use jiuzhu_testkit::copy_dir;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use chrono::{DateTime, Duration, Utc};
use jiuzhu_engine::clock::{Clock as _, ManualClock};
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::{Engine, TimerRetry};
use jiuzhu_engine::scheduler::{Scheduler, SchedulerOptions};
use jiuzhu_engine::store::{InstanceFilter, Store};
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};

/// A timer that leads into a division by zero: every firing is an incident.
const POISON: &str = r#"process: poison
variables:
  n: {type: decimal, default: 0}
nodes:
  - {id: pause, type: timer, wait: 1d, next: count}
  - {id: count, type: compute, set: {n: "n / (n - n)"}, next: done}
  - {id: done, type: end}
"#;

/// A timer that ends its case.
const HEALTHY: &str = r#"process: healthy
nodes:
  - {id: pause, type: timer, wait: 1d, next: done}
  - {id: done, type: end}
"#;

#[derive(Clone)]
struct Ctx {
    url: String,
    clock: Arc<ManualClock>,
    project: Arc<Project>,
}

impl Ctx {
    async fn node(&self, name: &str) -> Result<Engine> {
        let store = Store::open(&self.url).await?;
        Engine::new(store, self.project.clone(), self.clock.clone(), name)
            .map_err(|e| anyhow::anyhow!(e))
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

struct Teardown {
    database: TestDatabase,
    _dir: tempfile::TempDir,
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "poison").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let processes = dir.path().join("processes");
    copy_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../processes"),
        &processes,
    );
    std::fs::write(processes.join("poison.yaml"), POISON).expect("write");
    std::fs::write(processes.join("healthy.yaml"), HEALTHY).expect("write");
    let project = Project::load(&processes)
        .unwrap_or_else(|problems| panic!("does not load:\n{}", problems.join("\n")));
    let start = DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
        .expect("valid time")
        .with_timezone(&Utc);
    let ctx = Ctx {
        url: database.url.clone(),
        clock: Arc::new(ManualClock::new(start)),
        project: Arc::new(project),
    };
    (
        ctx,
        Teardown {
            database,
            _dir: dir,
        },
    )
}

async fn finish(db: Db, teardown: Teardown, outcome: Outcome) {
    teardown.database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(
    a_failing_timer_is_parked_and_the_rest_of_its_batch_fires,
    a_claim_that_never_reports_back_counts_as_an_attempt,
    a_dead_nodes_lease_ends_in_seconds_and_a_live_one_is_renewed,
);

fn clerk() -> Actor {
    Actor {
        user: "clerk".into(),
        roles: vec!["township_clerk".into()],
        unit: "双鸭山市/尖山区/中心站街道".into(),
    }
}

fn options(max_attempts: i64) -> SchedulerOptions {
    SchedulerOptions {
        retry: TimerRetry {
            max_attempts,
            backoff: Duration::seconds(10),
        },
        ..SchedulerOptions::default()
    }
}

async fn status(engine: &Engine, id: &str) -> Result<String> {
    let row = engine
        .store
        .load_instance(id)
        .await?
        .with_context(|| format!("no instance {id}"))?;
    Ok(row.status)
}

async fn a_failing_timer_is_parked_and_the_rest_of_its_batch_fires(ctx: Ctx) -> Result<()> {
    let engine = ctx.node("n1").await?;
    engine.deploy().await?;
    let poison = engine
        .start("poison", &clerk(), BTreeMap::new())
        .await?
        .instance
        .id;
    let mut healthy = Vec::new();
    for _ in 0..3 {
        healthy.push(
            engine
                .start("healthy", &clerk(), BTreeMap::new())
                .await?
                .instance
                .id,
        );
    }
    ctx.clock.advance(Duration::days(2));
    let scheduler = Scheduler::with_options(&engine, options(3));

    // First tick: the healthy cases end, the poison one fails and is put off.
    let tick = scheduler.tick().await?;
    ensure!(tick.fired.len() == 3, "{tick:?}");
    ensure!(
        tick.timer_failures.len() == 1 && tick.parked.is_empty(),
        "{tick:?}"
    );
    ensure!(tick.timer_failures[0].instance_id == poison, "{tick:?}");
    for id in &healthy {
        ensure!(
            status(&engine, id).await? == "completed",
            "{id} did not end"
        );
    }
    // Within the backoff nothing is tried.
    let tick = scheduler.tick().await?;
    ensure!(tick.is_idle(), "retried inside its backoff: {tick:?}");
    // Second and third attempts (backoff 10 s, then 20 s); the third parks it.
    ctx.clock.advance(Duration::seconds(11));
    let tick = scheduler.tick().await?;
    ensure!(
        tick.timer_failures.len() == 1 && tick.parked.is_empty(),
        "{tick:?}"
    );
    ctx.clock.advance(Duration::seconds(21));
    let tick = scheduler.tick().await?;
    ensure!(tick.parked.len() == 1, "not parked on attempt 3: {tick:?}");

    let parked = engine.store.parked_timers(10).await?;
    ensure!(parked.len() == 1, "{parked:?}");
    ensure!(parked[0].instance_id == poison, "{parked:?}");
    ensure!(parked[0].attempts == 3, "{parked:?}");
    ensure!(
        parked[0].last_error.as_deref() == Some("incident"),
        "{parked:?}"
    );
    // Parked: never claimed again, nor counted as late; the case still waits on it.
    ctx.clock.advance(Duration::days(30));
    let tick = scheduler.tick().await?;
    ensure!(
        tick.is_idle() && tick.oldest_due_timer_lag.is_none(),
        "{tick:?}"
    );
    ensure!(
        status(&engine, &poison).await? == "active",
        "poison case moved"
    );
    // An operator's retry gives it a fresh budget.
    ensure!(
        engine.store.unpark_timer(&parked[0].id, ctx.now()).await?,
        "not unparked"
    );
    let tick = scheduler.tick().await?;
    ensure!(
        tick.timer_failures.len() == 1 && tick.parked.is_empty(),
        "{tick:?}"
    );
    Ok(())
}

async fn a_claim_that_never_reports_back_counts_as_an_attempt(ctx: Ctx) -> Result<()> {
    let engine = ctx.node("n1").await?;
    engine.deploy().await?;
    let case = engine
        .start("healthy", &clerk(), BTreeMap::new())
        .await?
        .instance
        .id;
    ctx.clock.advance(Duration::days(2));
    // Twice a node claims the timer and dies before its firing reports back.
    let lease = SchedulerOptions::default().lease;
    for _ in 0..2 {
        let claimed = engine
            .store
            .claim_due_timers("killed", ctx.now(), lease, 10)
            .await?;
        ensure!(claimed.len() == 1, "{claimed:?}");
        ctx.clock.advance(lease + Duration::seconds(1));
    }
    // With a budget of two, the third claim parks it unfired.
    let survivor = ctx.node("survivor").await?;
    let tick = Scheduler::with_options(&survivor, options(2))
        .tick()
        .await?;
    ensure!(tick.fired.is_empty() && tick.parked.len() == 1, "{tick:?}");
    let parked = survivor.store.parked_timers(10).await?;
    ensure!(parked.len() == 1 && parked[0].attempts == 3, "{parked:?}");
    ensure!(
        parked[0].last_error.as_deref() == Some("attempts_exhausted"),
        "{parked:?}"
    );
    ensure!(status(&survivor, &case).await? == "active", "fired anyway");
    let listed = survivor
        .store
        .list_instances(&InstanceFilter::default())
        .await?;
    ensure!(listed.len() == 1, "{listed:?}");
    Ok(())
}

async fn a_dead_nodes_lease_ends_in_seconds_and_a_live_one_is_renewed(ctx: Ctx) -> Result<()> {
    let engine = ctx.node("n1").await?;
    engine.deploy().await?;
    let first = engine
        .start("healthy", &clerk(), BTreeMap::new())
        .await?
        .instance
        .id;
    ctx.clock.advance(Duration::days(2));
    let lease = SchedulerOptions::default().lease;
    ensure!(lease <= Duration::seconds(30), "a lease of {lease}");

    // A node claims the timer and keeps renewing: nobody else takes it.
    let live = engine
        .store
        .claim_due_timers("live", ctx.now(), lease, 10)
        .await?;
    ensure!(live.len() == 1, "{live:?}");
    let other = ctx.node("other").await?;
    let scheduler = Scheduler::new(&other);
    for _ in 0..4 {
        ctx.clock.advance(Duration::seconds(20));
        let renewed = engine
            .store
            .renew_timer_leases("live", ctx.now(), lease)
            .await?;
        ensure!(renewed == 1, "renewed {renewed}");
        let tick = scheduler.tick().await?;
        ensure!(tick.fired.is_empty(), "taken from a live node: {tick:?}");
    }
    // The node dies: within one lease (seconds, not minutes) another node fires it.
    ctx.clock.advance(lease + Duration::seconds(1));
    ensure!(
        engine
            .store
            .renew_timer_leases("live", ctx.now(), lease)
            .await?
            == 0,
        "a lease that ran out was renewed"
    );
    let tick = scheduler.tick().await?;
    ensure!(
        tick.fired.len() == 1 && tick.fired[0].instance_id == first,
        "{tick:?}"
    );
    Ok(())
}
