//! Archives, on SQLite and PostgreSQL alike: finished cases older than the age move to the
//! archive tables with their history, a batch per transaction; active cases, cases holding
//! a business key or with an effect still in flight stay; an archived case is still found
//! (show, history, verification, search) and refuses steps with `conflict`; a tampered
//! archived history row fails verification; two nodes archiving at once move each case
//! once; a batch that fails midway leaves nothing behind.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use chrono::{DateTime, Duration, Utc};
use jiuzhu_engine::clock::{Clock as _, ManualClock};
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::{Engine, EngineError};
use jiuzhu_engine::store::search::CaseQuery;
use jiuzhu_engine::store::{ConflictReason, InstanceFilter, Store, StoreError};
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};

/// A procedure that ends as it starts, and one that waits for a clerk.
const QUICK: &str = r#"
process: quick
name: 速办
calendar: cn
start: done
variables:
  n: {type: int, required: true, label: 序号}
nodes:
  - {id: done, type: end, name: 完成, outcome: done}
"#;

const SLOW: &str = r#"
process: slow
name: 慢办
calendar: cn
start: wait
variables:
  n: {type: int, required: true, label: 序号}
nodes:
  - {id: wait, type: timer, name: 等待, wait: 400d, next: done}
  - {id: done, type: end, name: 完成, outcome: done}
"#;

fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
        .expect("valid time")
        .with_timezone(&Utc)
}

struct Ctx {
    db: Db,
    url: String,
    engine: Arc<Engine>,
    clock: Arc<ManualClock>,
    project: Arc<Project>,
    _dir: tempfile::TempDir,
}

impl Ctx {
    async fn raw(&self, sql: &str) -> Result<()> {
        jiuzhu_testkit::raw(self.db, &self.url, sql).await
    }

    /// Another node on the same database.
    async fn node(&self, name: &str) -> Result<Arc<Engine>> {
        let store = Store::open(&self.url).await?;
        let engine = Engine::new(store, self.project.clone(), self.clock.clone(), name)
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok(Arc::new(engine))
    }

    /// Starts `count` quick cases (each completed at once); their ids.
    async fn quick_cases(&self, from: i64, count: i64) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for n in from..from + count {
            let data = BTreeMap::from([("n".to_string(), jiuzhu_rules::Value::Int(n))]);
            ids.push(
                self.engine
                    .start("quick", &actor(), data)
                    .await?
                    .instance
                    .id,
            );
        }
        Ok(ids)
    }

    fn store(&self) -> &Store {
        &self.engine.store
    }
}

fn actor() -> Actor {
    Actor {
        user: "clerk".into(),
        roles: Vec::new(),
        unit: "双鸭山市/尖山区".into(),
    }
}

struct Teardown {
    database: TestDatabase,
    store: Store,
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("quick.yaml"), QUICK).expect("write definition");
    std::fs::write(dir.path().join("slow.yaml"), SLOW).expect("write definition");
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
    let project = Arc::new(
        Project::load(dir.path())
            .unwrap_or_else(|problems| panic!("project does not load:\n{}", problems.join("\n"))),
    );
    let database = TestDatabase::create(db, "archive").await;
    let store = Store::open(&database.url).await.expect("open store");
    let clock = Arc::new(ManualClock::new(start_time()));
    let engine =
        Engine::new(store.clone(), project.clone(), clock.clone(), "node-a").expect("engine");
    engine.deploy().await.expect("deploy");
    let ctx = Ctx {
        db,
        url: database.url.clone(),
        engine: Arc::new(engine),
        clock,
        project,
        _dir: dir,
    };
    (ctx, Teardown { database, store })
}

async fn finish(db: Db, teardown: Teardown, outcome: Outcome) {
    teardown.store.close().await;
    teardown.database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(
    finished_cases_past_the_age_move_and_the_rest_stay,
    an_archived_case_is_found_verified_and_refuses_steps,
    tampering_with_an_archived_history_row_fails_verification,
    two_nodes_archiving_at_once_move_each_case_once,
    a_batch_failing_midway_leaves_nothing_behind,
    search_lists_archived_cases_after_live_ones,
    todays_queries_read_only_the_live_tables,
);

async fn finished_cases_past_the_age_move_and_the_rest_stay(ctx: Ctx) -> Result<()> {
    let old = ctx.quick_cases(0, 5).await?;
    let waiting = ctx
        .engine
        .start(
            "slow",
            &actor(),
            BTreeMap::from([("n".to_string(), jiuzhu_rules::Value::Int(1))]),
        )
        .await?
        .instance
        .id;
    // One old finished case still holds a business key (as a case whose end failed to
    // release it would), and one has an effect in flight: both stay.
    let (keyed, in_flight) = (&old[0], &old[1]);
    ctx.raw(&format!(
        "INSERT INTO business_keys (process_id, business_key, instance_id) VALUES ('quick', 'k', '{keyed}')"
    ))
    .await?;
    ctx.raw(&format!(
        "INSERT INTO outbox (id, instance_id, kind, payload, created_at, status, attempts, available_at) \
         VALUES ('{in_flight}-e99', '{in_flight}', 'notification', '{{}}', 0, 'pending', 0, 0)"
    ))
    .await?;
    ctx.clock.advance(Duration::days(40));
    let recent = ctx.quick_cases(100, 2).await?;

    let dry = ctx
        .store()
        .archive_candidates(ctx.clock.now() - Duration::days(30), 100)
        .await?;
    ensure!(dry.len() == 3, "dry run lists {dry:?}");
    ensure!(
        ctx.store().archived_count().await? == 0,
        "a dry run moved cases"
    );

    let batches = ctx.engine.archive_finished(Duration::days(30), 2).await?;
    let moved: Vec<&String> = batches.iter().flat_map(|b| &b.instances).collect();
    ensure!(batches.len() == 2, "3 cases in batches of 2: {batches:?}");
    ensure!(moved.len() == 3, "moved {moved:?}");
    for id in &old[2..] {
        ensure!(moved.contains(&id), "{id} was not archived");
        ensure!(
            ctx.store().load_instance(id).await?.is_none(),
            "{id} is still live"
        );
    }
    for id in [keyed, in_flight, &waiting, &recent[0], &recent[1]] {
        ensure!(
            ctx.store().load_instance(id).await?.is_some(),
            "{id} left the live tables"
        );
    }
    // A second run finds nothing more.
    ensure!(
        ctx.engine
            .archive_finished(Duration::days(30), 2)
            .await?
            .is_empty()
    );
    Ok(())
}

async fn an_archived_case_is_found_verified_and_refuses_steps(ctx: Ctx) -> Result<()> {
    let ids = ctx.quick_cases(0, 1).await?;
    let id = &ids[0];
    let before = ctx.store().history(id).await?;
    ctx.clock.advance(Duration::days(31));
    ctx.engine.archive_finished(Duration::days(30), 10).await?;

    let (row, archived) = ctx
        .store()
        .find_instance(id)
        .await?
        .context("archived case not found")?;
    ensure!(archived && row.status == "completed" && row.outcome.as_deref() == Some("done"));
    ensure!(ctx.store().history(id).await? == before, "history changed");
    let chain = ctx.store().verify_history(id).await?;
    ensure!(format!("{chain:?}").contains(&before.len().to_string()));
    let (_, _, state, archived) = ctx
        .engine
        .load_for_reading(id)
        .await?
        .context("not readable")?;
    ensure!(archived && state.vars.contains_key("n"));

    match ctx.engine.load(id).await {
        Err(
            error @ EngineError::Conflict {
                reason: ConflictReason::Archived,
                ..
            },
        ) => ensure!(error.code() == "conflict" && error.to_string().contains("archived")),
        other => anyhow::bail!("a step's load of an archived case gave {other:?}"),
    }
    // A fresh node (no cached state) refuses a retry of it the same way.
    let node = ctx.node("node-b").await?;
    ensure!(matches!(
        node.load(id).await,
        Err(EngineError::Conflict {
            reason: ConflictReason::Archived,
            ..
        })
    ));
    ensure!(matches!(
        node.load("no-such-case").await,
        Err(EngineError::NotFound { .. })
    ));
    Ok(())
}

async fn tampering_with_an_archived_history_row_fails_verification(ctx: Ctx) -> Result<()> {
    let ids = ctx.quick_cases(0, 2).await?;
    ctx.clock.advance(Duration::days(31));
    ctx.engine.archive_finished(Duration::days(30), 10).await?;
    for id in &ids {
        ctx.store().verify_history(id).await?;
    }
    ctx.raw(&format!(
        "UPDATE archived_history SET actor = 'someone-else' WHERE instance_id = '{}' AND seq = 1",
        ids[0]
    ))
    .await?;
    match ctx.store().verify_history(&ids[0]).await {
        Err(StoreError::Tampered(tamper)) => ensure!(tamper.seq == 1, "{tamper:?}"),
        other => anyhow::bail!("tampered archive verified: {other:?}"),
    }
    ctx.store().verify_history(&ids[1]).await?;
    // The archived state edited behind the store's back fails its signed head.
    ctx.raw(&format!(
        "UPDATE archived_instances SET outcome = 'x', version = version + 1 WHERE id = '{}'",
        ids[1]
    ))
    .await?;
    ensure!(ctx.store().verify_history(&ids[1]).await.is_err());
    Ok(())
}

async fn two_nodes_archiving_at_once_move_each_case_once(ctx: Ctx) -> Result<()> {
    let ids = ctx.quick_cases(0, 120).await?;
    ctx.clock.advance(Duration::days(31));
    let (a, b) = (ctx.node("node-a2").await?, ctx.node("node-b").await?);
    let run = |node: Arc<Engine>| {
        tokio::spawn(async move {
            let mut moved = Vec::new();
            // A batch that lost a race to the other node is simply run again.
            loop {
                match node.archive_finished(Duration::days(30), 7).await {
                    Ok(batches) => {
                        moved.extend(batches.into_iter().flat_map(|b| b.instances));
                        return anyhow::Ok(moved);
                    }
                    Err(error) if error.code() == "conflict" => continue,
                    Err(error) => return Err(error.into()),
                }
            }
        })
    };
    let (one, two) = tokio::join!(run(a), run(b));
    let (one, two) = (one??, two??);
    let all: Vec<&String> = one.iter().chain(two.iter()).collect();
    let unique: HashSet<&String> = all.iter().copied().collect();
    ensure!(
        all.len() == ids.len() && unique.len() == ids.len(),
        "{} moved, {} distinct, of {}",
        all.len(),
        unique.len(),
        ids.len()
    );
    ensure!(ctx.store().archived_count().await? == ids.len() as i64);
    let live = ctx
        .store()
        .list_instances(&InstanceFilter::default())
        .await?;
    ensure!(live.is_empty(), "{} cases still live", live.len());
    for id in &ids {
        ctx.store().verify_history(id).await?;
    }
    Ok(())
}

async fn a_batch_failing_midway_leaves_nothing_behind(ctx: Ctx) -> Result<()> {
    let ids = ctx.quick_cases(0, 6).await?;
    ctx.clock.advance(Duration::days(31));
    // The copy of one case's history fails (a disk error, a killed node): the whole batch
    // is undone.
    let victim = &ids[3];
    match ctx.db {
        Db::Sqlite => {
            ctx.raw(&format!(
                "CREATE TRIGGER fail_archive BEFORE INSERT ON archived_history \
                 WHEN NEW.instance_id = '{victim}' BEGIN SELECT RAISE(ABORT, 'injected'); END"
            ))
            .await?
        }
        Db::Postgres => {
            ctx.raw(&format!(
                "CREATE FUNCTION fail_archive() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'injected'; END $$; \
                 CREATE TRIGGER fail_archive BEFORE INSERT ON archived_history FOR EACH ROW \
                 WHEN (NEW.instance_id = '{victim}') EXECUTE FUNCTION fail_archive()"
            ))
            .await?
        }
    }
    ensure!(
        ctx.engine
            .archive_finished(Duration::days(30), 100)
            .await
            .is_err()
    );
    ensure!(
        ctx.store().archived_count().await? == 0,
        "half a batch stayed"
    );
    for id in &ids {
        ensure!(ctx.store().load_instance(id).await?.is_some(), "{id} lost");
        ctx.store().verify_history(id).await?;
    }
    ctx.raw(match ctx.db {
        Db::Sqlite => "DROP TRIGGER fail_archive",
        Db::Postgres => "DROP TRIGGER fail_archive ON archived_history",
    })
    .await?;
    let batches = ctx.engine.archive_finished(Duration::days(30), 100).await?;
    ensure!(batches.iter().map(|b| b.instances.len()).sum::<usize>() == ids.len());
    for id in &ids {
        ctx.store().verify_history(id).await?;
    }
    Ok(())
}

async fn search_lists_archived_cases_after_live_ones(ctx: Ctx) -> Result<()> {
    let old = ctx.quick_cases(0, 3).await?;
    ctx.clock.advance(Duration::days(31));
    ctx.engine.archive_finished(Duration::days(30), 10).await?;
    let new = ctx.quick_cases(10, 2).await?;
    let query = |offset, limit| CaseQuery {
        process_id: Some("quick".into()),
        unit: Some("双鸭山市".into()),
        limit,
        offset,
        ..CaseQuery::default()
    };
    let all = ctx.store().search_cases(&query(0, 10)).await?;
    let listed: Vec<(&str, bool)> = all.iter().map(|c| (c.id.as_str(), c.archived)).collect();
    let expected: Vec<(&str, bool)> = new
        .iter()
        .map(|id| (id.as_str(), false))
        .chain(old.iter().map(|id| (id.as_str(), true)))
        .collect();
    ensure!(listed == expected, "{listed:?}");
    // Pages across the two: offset 1 limit 2 is one live and one archived; offset 3 is
    // in the archive alone.
    let page = ctx.store().search_cases(&query(1, 2)).await?;
    ensure!(page.len() == 2 && page[0].id == new[1] && page[1].id == old[0]);
    let page = ctx.store().search_cases(&query(3, 10)).await?;
    ensure!(page.len() == 2 && page[0].id == old[1] && page[1].id == old[2]);
    // A unit elsewhere sees none of them.
    let elsewhere = ctx
        .store()
        .search_cases(&CaseQuery {
            unit: Some("哈尔滨市".into()),
            limit: 10,
            ..CaseQuery::default()
        })
        .await?;
    ensure!(elsewhere.is_empty());
    // The short id resolves to the archived case.
    let short = &old[0][old[0].len() - 8..];
    ensure!(
        ctx.store().resolve_instance_id(short).await?
            == jiuzhu_engine::store::search::Resolved::One(old[0].clone())
    );
    Ok(())
}

/// The archive tables hidden (renamed away), today's work runs as before: the queue, the
/// timers, the outbox, starting and loading cases, a first page of search that live cases
/// fill. Any of them reading an archive table would fail with "no such table".
async fn todays_queries_read_only_the_live_tables(ctx: Ctx) -> Result<()> {
    let old = ctx.quick_cases(0, 4).await?;
    ctx.clock.advance(Duration::days(31));
    ctx.engine.archive_finished(Duration::days(30), 10).await?;
    let live = ctx.quick_cases(10, 2).await?;
    let tables = [
        "archived_instances",
        "archived_history",
        "archived_tasks",
        "archived_outbox",
        "archived_outbox_deliveries",
    ];
    for table in tables {
        ctx.raw(&format!("ALTER TABLE {table} RENAME TO hidden_{table}"))
            .await?;
    }
    let waiting = ctx
        .engine
        .start(
            "slow",
            &actor(),
            BTreeMap::from([("n".to_string(), jiuzhu_rules::Value::Int(1))]),
        )
        .await?
        .instance
        .id;
    let store = ctx.store();
    ensure!(store.load_instance(&live[0]).await?.is_some());
    ensure!(ctx.engine.load(&waiting).await.is_ok());
    store
        .tasks_for(
            &["clerk".to_string()],
            &["双鸭山市".to_string()],
            "clerk",
            50,
        )
        .await?;
    store
        .claim_due_timers("node-a", ctx.clock.now(), Duration::seconds(30), 10)
        .await?;
    store
        .claim_outbox("node-a", ctx.clock.now(), Duration::seconds(30), 10)
        .await?;
    store.oldest_due_timer_lag(ctx.clock.now()).await?;
    store.list_instances(&InstanceFilter::default()).await?;
    let page = store
        .search_cases(&CaseQuery {
            limit: 2,
            ..CaseQuery::default()
        })
        .await?;
    ensure!(page.len() == 2 && page.iter().all(|c| !c.archived));
    store.verify_history(&live[0]).await?;
    // The check itself can fail: a read that needs the archive does.
    ensure!(store.find_instance(&old[0]).await.is_err());
    for table in tables {
        ctx.raw(&format!("ALTER TABLE hidden_{table} RENAME TO {table}"))
            .await?;
    }
    ensure!(matches!(
        store.find_instance(&old[0]).await?,
        Some((_, true))
    ));
    Ok(())
}
