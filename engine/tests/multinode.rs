//! Three engine nodes — separate store connections, separate node ids — tick one database
//! at once while 10,000 timers come due: every timer fires exactly once and no instance is
//! left in a state its definition cannot reach. Run on PostgreSQL (`JIUZHU_TEST_PG`,
//! default `postgres://postgres@127.0.0.1:5432/test`, a fresh schema per run) and on SQLite
//! (one temp file shared by the three nodes). Time is a manual clock; nothing sleeps.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use chrono::{DateTime, Duration, Utc};
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::scheduler::{Scheduler, SchedulerOptions};
use jiuzhu_engine::store::{InstanceFilter, Store};
use jiuzhu_testkit::{Db, TestDatabase};

/// 2,000 instances, each waiting on five timers of its own: 10,000 timers.
const INSTANCES: usize = 2_000;
const TIMERS_PER_INSTANCE: usize = 5;

/// A small process: five parallel branches, each waiting on a timer, joined, then done.
const FANOUT: &str = r#"
process: fanout
name: 多定时器并行等待
calendar: cn
start: split
variables:
  batch: {type: int, required: true, label: 批次}
nodes:
  - {id: split, type: parallel, name: 分支, branches: [wait1, wait2, wait3, wait4, wait5]}
  - {id: wait1, type: timer, name: 等待一, wait: 1h, next: joined}
  - {id: wait2, type: timer, name: 等待二, wait: 2h, next: joined}
  - {id: wait3, type: timer, name: 等待三, wait: 3h, next: joined}
  - {id: wait4, type: timer, name: 等待四, wait: 4h, next: joined}
  - {id: wait5, type: timer, name: 等待五, wait: 5h, next: joined}
  - {id: joined, type: join, name: 汇合, of: split, next: done}
  - {id: done, type: end, name: 完成, outcome: done}
"#;

fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
        .expect("valid time")
        .with_timezone(&Utc)
}

struct Fixture {
    _dir: tempfile::TempDir,
    project: Arc<Project>,
    clock: Arc<ManualClock>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("fanout.yaml"), FANOUT).expect("write definition");
    // The engine loads the project's policies and calendars beside the definition.
    let shipped = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../processes");
    for folder in ["policies", "calendars"] {
        let target = dir.path().join(folder);
        std::fs::create_dir_all(&target).expect("create folder");
        for entry in std::fs::read_dir(shipped.join(folder)).expect("shipped folder") {
            let entry = entry.expect("folder entry");
            // Files only: the policy section declarations (`sections/`) are built in.
            if !entry.path().is_file() {
                continue;
            }
            std::fs::copy(entry.path(), target.join(entry.file_name())).expect("copy file");
        }
    }
    let project = Project::load(dir.path())
        .unwrap_or_else(|problems| panic!("fanout does not load:\n{}", problems.join("\n")));
    Fixture {
        project: Arc::new(project),
        clock: Arc::new(ManualClock::new(start_time())),
        _dir: dir,
    }
}

async fn three_nodes_fire_ten_thousand_timers_exactly_once(
    url: &str,
    fixture: &Fixture,
) -> Result<()> {
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b", "node-c"] {
        let store = Store::open(url).await?;
        let engine = Engine::new(store, fixture.project.clone(), fixture.clock.clone(), name)
            .map_err(|e| anyhow::anyhow!(e))?;
        nodes.push(Arc::new(engine));
    }
    nodes[0].deploy().await?;

    // Start the instances from all three nodes at once.
    let actor = Actor {
        user: "loader".into(),
        roles: Vec::new(),
        unit: "双鸭山市/尖山区".into(),
    };
    let mut starters = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        let (node, actor) = (node.clone(), actor.clone());
        starters.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for batch in (index..INSTANCES).step_by(3) {
                let data = BTreeMap::from([(
                    "batch".to_string(),
                    jiuzhu_rules::Value::Int(i64::try_from(batch)?),
                )]);
                ids.push(node.start("fanout", &actor, data).await?.instance.id);
            }
            anyhow::Ok(ids)
        }));
    }
    let mut instances = BTreeSet::new();
    for starter in starters {
        instances.extend(starter.await??);
    }
    ensure!(instances.len() == INSTANCES);
    let summary = nodes[0].store.summary().await?;
    ensure!(
        summary.pending_timers == (INSTANCES * TIMERS_PER_INSTANCE) as i64,
        "{summary:?}"
    );

    // Every timer is due; the three nodes tick side by side until none is left. A timer
    // that kept losing races with its instance's other timers waits out its lease.
    fixture.clock.advance(Duration::hours(6));
    let mut fired_per_node = vec![0usize; nodes.len()];
    let mut fired_ids = BTreeSet::new();
    for round in 0.. {
        ensure!(round < 20, "timers still pending after {round} rounds");
        let mut ticking = Vec::new();
        for node in &nodes {
            let node = node.clone();
            ticking.push(tokio::spawn(async move {
                let options = SchedulerOptions {
                    timer_batch: 100,
                    ..SchedulerOptions::default()
                };
                Scheduler::with_options(&node, options).tick().await
            }));
        }
        for (index, handle) in ticking.into_iter().enumerate() {
            let report = handle.await??;
            ensure!(
                report.timer_failures.is_empty(),
                "{:?}",
                report.timer_failures
            );
            fired_per_node[index] += report.fired.len();
            for fired in report.fired {
                ensure!(
                    fired_ids.insert(fired.timer_id.clone()),
                    "{} reported fired twice",
                    fired.timer_id
                );
            }
        }
        if nodes[0].store.summary().await?.pending_timers == 0 {
            break;
        }
        fixture.clock.advance(Duration::seconds(61));
    }
    ensure!(
        fired_ids.len() == INSTANCES * TIMERS_PER_INSTANCE,
        "{} fired",
        fired_ids.len()
    );
    ensure!(
        fired_per_node.iter().all(|&n| n > 0),
        "every node took a share: {fired_per_node:?}"
    );

    // The database agrees: each instance took exactly its five timer steps, one per timer,
    // ended, and its stored state keeps the core's invariants.
    let mut offset = 0;
    let mut seen = 0;
    loop {
        let page = nodes[1]
            .store
            .list_instances(&InstanceFilter {
                process_id: Some("fanout".into()),
                limit: 500,
                offset,
                ..InstanceFilter::default()
            })
            .await?;
        if page.is_empty() {
            break;
        }
        offset += u32::try_from(page.len())?;
        for row in page {
            seen += 1;
            ensure!(row.status == "completed", "{} is {}", row.id, row.status);
            let history = nodes[1].store.history(&row.id).await?;
            let timers: Vec<&str> = history
                .iter()
                .filter(|h| h.event == "timer")
                .map(|h| h.data["input"]["timer"].as_str().unwrap_or("?"))
                .collect();
            let distinct: BTreeSet<&str> = timers.iter().copied().collect();
            ensure!(
                timers.len() == TIMERS_PER_INSTANCE && distinct.len() == TIMERS_PER_INSTANCE,
                "{}: timer steps {timers:?}",
                row.id
            );
            ensure!(history.len() == 1 + TIMERS_PER_INSTANCE);
            let (_, def, state) = nodes[1].load(&row.id).await?;
            state.check_invariants(&def)?;
        }
    }
    ensure!(seen == INSTANCES, "{seen} instances listed");
    let summary = nodes[2].store.summary().await?;
    ensure!(
        summary.pending_timers == 0 && summary.active_instances.is_empty(),
        "{summary:?}"
    );
    // Spot-check the chains of a few instances.
    for id in instances.iter().step_by(250) {
        nodes[2].store.verify_history(id).await?;
    }
    for node in nodes {
        node.store.close().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_three_nodes_fire_ten_thousand_timers_exactly_once() {
    on(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_three_nodes_fire_ten_thousand_timers_exactly_once() {
    on(Db::Postgres).await;
}

/// Runs the test on a database of its own. Durability is not under test here: commits
/// skip the fsync to keep the run short, and SQLite's writers wait long for each other.
async fn on(db: Db) {
    let database = TestDatabase::create(db, "multinode").await;
    let url = match db {
        Db::Sqlite => format!("{}&busy_timeout_ms=30000", database.fast_url),
        Db::Postgres => database.fast_url.clone(),
    };
    let fixture = fixture();
    let outcome = three_nodes_fire_ten_thousand_timers_exactly_once(&url, &fixture).await;
    database.drop().await;
    outcome.context(format!("{db:?}")).expect("three nodes");
}
