//! The store's one test suite, run against SQLite (a temp file) and PostgreSQL alike.
//!
//! PostgreSQL comes from `JIUZHU_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each test gets a fresh schema (via `search_path`) that is dropped afterwards. When no
//! server answers, the PostgreSQL half fails and says how to start one.

use anyhow::{Context, Result, bail, ensure};
use chrono::{DateTime, Duration, Utc};
use jiuzhu_engine::store::{
    CommitProblem, ConflictReason, Deployment, HistoryEntry, InstanceFilter, InstanceRow,
    NewDeployment, OutboxRow, StepCommit, Store, StoreError, TamperKind, TaskAssignment,
    TaskCompletion, TaskRow, TimerRow, Unchanged, sha256_hex,
};
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};
use serde_json::json;
use sqlx::{Connection as _, Executor as _};
use std::collections::{HashMap, HashSet};

/// What a test body gets: the store, and the means to open more nodes and to reach the
/// database behind the store's back.
#[derive(Clone)]
struct Ctx {
    db: Db,
    store: Store,
    url: String,
    /// The same database with commits that skip the fsync (for bulk tests).
    fast_url: String,
}

impl Ctx {
    /// Another engine node on the same database.
    async fn node(&self) -> Result<Store> {
        Ok(Store::open(&self.url).await?)
    }

    /// Runs SQL on a connection of its own (tampering, fault injection).
    async fn raw(&self, sql: &str) -> Result<()> {
        jiuzhu_testkit::raw(self.db, &self.url, sql).await
    }
}

/// What to clean up after a test.
struct Teardown {
    database: TestDatabase,
    store: Store,
}

/// Creates the test database and opens a store on it.
async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "store").await;
    let store = Store::open(&database.url).await.expect("open store");
    let ctx = Ctx {
        db,
        store: store.clone(),
        url: database.url.clone(),
        fast_url: database.fast_url.clone(),
    };
    (ctx, Teardown { database, store })
}

/// Cleans up (whatever the outcome), then reports the test body's outcome.
async fn finish(db: Db, teardown: Teardown, outcome: Outcome) {
    teardown.store.close().await;
    teardown.database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(
    deploy_unchanged_keeps_version_and_changed_gets_next,
    deploy_is_all_or_nothing,
    commit_and_load_round_trip,
    load_instances_reads_many_across_chunks,
    same_expected_version_exactly_one_wins,
    concurrent_commits_on_one_instance_exactly_one_wins,
    group_commit_fails_conflicting_steps_alone,
    a_group_update_refuses_only_the_rows_another_node_moved,
    invalid_commits_are_refused,
    claim_steps_race_and_one_wins,
    a_two_role_task_shows_in_both_queues,
    migration_6_backfills_the_roles_of_open_tasks,
    a_completion_commits_only_for_the_claim_holder,
    tasks_for_filters_by_unit_role_and_orders_by_due_date,
    timer_leases_hold_until_expiry,
    outbox_claim_deliver_and_fail,
    history_chain_verifies_and_detects_tampering,
    schema_too_new_is_refused,
    three_nodes_claim_ten_thousand_timers_exactly_once,
);

// ---------------------------------------------------------------- fixtures

fn at(seconds: i64) -> DateTime<Utc> {
    // 2025-01-01T00:00:00Z; whole milliseconds, the precision the store keeps.
    DateTime::from_timestamp(1_735_689_600 + seconds, 0).expect("valid time")
}

fn new_deployment(process_id: &str, source: &str) -> NewDeployment {
    NewDeployment {
        process_id: process_id.to_owned(),
        source: source.to_owned(),
        hash: sha256_hex(source.as_bytes()),
    }
}

async fn deploy_dibao(store: &Store) -> Result<Deployment> {
    let mut deployed = store
        .deploy(&[new_deployment("dibao", "id: dibao\nnodes: []\n")], at(0))
        .await?;
    deployed.pop().context("one deployment back")
}

fn instance(id: &str, unit: &str) -> InstanceRow {
    InstanceRow {
        id: id.to_owned(),
        process_id: "dibao".to_owned(),
        process_version: 1,
        status: "running".to_owned(),
        outcome: None,
        unit: unit.to_owned(),
        state: json!({"household": {"size": 3, "income": "1250.50"}, "node": "intake"}).into(),
        version: 1,
        created_at: at(10),
        updated_at: at(10),
    }
}

fn history(event: &str, when: DateTime<Utc>) -> HistoryEntry {
    HistoryEntry {
        at: when,
        actor: Some("clerk-li".to_owned()),
        event: event.to_owned(),
        node: Some("intake".to_owned()),
        data: json!({"z": 1, "a": [1, 2, {"k": "v"}], "note": "申请"}),
    }
}

/// The first step of a new instance.
fn start(id: &str, unit: &str) -> StepCommit {
    StepCommit {
        instance: instance(id, unit),
        expected_version: None,
        history: history("started", at(10)),
        tasks_opened: vec![],
        tasks_closed: vec![],
        timers_set: vec![],
        timers_cancelled: vec![],
        outbox: vec![],
        tasks_assigned: vec![],
        tasks_rescheduled: vec![],
        completes: None,
        unchanged: Unchanged::default(),
        business_key: None,
    }
}

/// A follow-up step on `previous`.
fn next(previous: &InstanceRow, event: &str, when: DateTime<Utc>) -> StepCommit {
    let mut instance = previous.clone();
    instance.version += 1;
    instance.updated_at = when;
    let mut state = instance.state.to_value();
    state["last"] = json!(event);
    instance.state = state.into();
    StepCommit {
        instance,
        expected_version: Some(previous.version),
        history: history(event, when),
        tasks_opened: vec![],
        tasks_closed: vec![],
        timers_set: vec![],
        timers_cancelled: vec![],
        outbox: vec![],
        tasks_assigned: vec![],
        tasks_rescheduled: vec![],
        completes: None,
        unchanged: Unchanged::default(),
        business_key: None,
    }
}

fn task(id: &str, instance_id: &str, role: &str, unit: &str, due: Option<i64>) -> TaskRow {
    TaskRow {
        id: id.to_owned(),
        instance_id: instance_id.to_owned(),
        node_id: "review".to_owned(),
        label: format!("Review {instance_id}"),
        role: role.to_owned(),
        unit: unit.to_owned(),
        assignee: None,
        due_at: due.map(at),
        created_at: at(10),
        form: json!({"fields": ["income"]}),
        roles: vec![role.to_owned()],
        provisional: false,
    }
}

/// A step on `previous` that hands `task_id` to `user` (a claim, as the engine commits it).
fn assign(previous: &InstanceRow, task_id: &str, user: Option<&str>, when: i64) -> StepCommit {
    let mut step = next(previous, "claim", at(when));
    step.tasks_assigned = vec![TaskAssignment {
        task_id: task_id.to_owned(),
        assignee: user.map(str::to_owned),
    }];
    step
}

fn timer(id: &str, instance_id: &str, due: i64) -> TimerRow {
    TimerRow {
        id: id.to_owned(),
        instance_id: instance_id.to_owned(),
        due_at: at(due),
        payload: json!({"timer": id}),
        provisional: false,
        attempts: 0,
    }
}

fn outbox(id: &str, instance_id: &str) -> OutboxRow {
    OutboxRow {
        id: id.to_owned(),
        instance_id: instance_id.to_owned(),
        kind: "notify".to_owned(),
        payload: json!({"to": "applicant", "template": "received"}),
        created_at: at(10),
    }
}

fn conflict_reason(result: &Result<(), StoreError>) -> Option<ConflictReason> {
    match result {
        Err(StoreError::Conflict { reason, .. }) => Some(*reason),
        _ => None,
    }
}

// ---------------------------------------------------------------- deployments

async fn deploy_unchanged_keeps_version_and_changed_gets_next(ctx: Ctx) -> Result<()> {
    let store = &ctx.store;
    let first = store
        .deploy(&[new_deployment("dibao", "v: 1")], at(0))
        .await?;
    assert_eq!(first[0].version, 1);
    assert_eq!(first[0].deployed_at, at(0));

    let again = store
        .deploy(&[new_deployment("dibao", "v: 1")], at(5))
        .await?;
    assert_eq!(again, first, "unchanged source keeps version and time");

    let changed = store
        .deploy(
            &[
                new_deployment("dibao", "v: 2"),
                new_deployment("tekun", "t: 1"),
            ],
            at(9),
        )
        .await?;
    assert_eq!(
        changed
            .iter()
            .map(|d| (d.process_id.as_str(), d.version))
            .collect::<Vec<_>>(),
        [("dibao", 2), ("tekun", 1)]
    );

    assert_eq!(
        store.latest_deployment("dibao").await?.map(|d| d.version),
        Some(2)
    );
    assert_eq!(
        store.deployment("dibao", 1).await?.map(|d| d.source),
        Some("v: 1".to_owned())
    );
    assert_eq!(store.deployment("dibao", 3).await?, None);
    assert_eq!(store.latest_deployment("linshi").await?, None);
    assert_eq!(store.deployments().await?.len(), 3);
    Ok(())
}

async fn deploy_is_all_or_nothing(ctx: Ctx) -> Result<()> {
    let store = &ctx.store;
    let mut wrong = new_deployment("dibao", "v: 1");
    wrong.hash = sha256_hex(b"something else");
    let refused = store
        .deploy(&[new_deployment("tekun", "t: 1"), wrong], at(0))
        .await;
    ensure!(
        matches!(refused, Err(StoreError::HashMismatch { .. })),
        "{refused:?}"
    );
    ensure!(store.deployments().await?.is_empty());

    // A failure inside the transaction, after the first row was written, keeps nothing.
    match ctx.db {
        Db::Sqlite => {
            ctx.raw(
                "CREATE TRIGGER poison BEFORE INSERT ON deployments WHEN NEW.process_id = 'poison' \
                 BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
            )
            .await?
        }
        Db::Postgres => {
            ctx.raw(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF NEW.process_id = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$; \
                 CREATE TRIGGER poison BEFORE INSERT ON deployments FOR EACH ROW EXECUTE FUNCTION poison();",
            )
            .await?
        }
    }
    let failed = store
        .deploy(
            &[
                new_deployment("tekun", "t: 1"),
                new_deployment("poison", "p"),
            ],
            at(0),
        )
        .await;
    ensure!(failed.is_err(), "{failed:?}");
    ensure!(
        store.deployments().await?.is_empty(),
        "first row was rolled back"
    );
    Ok(())
}

// ---------------------------------------------------------------- commits

async fn commit_and_load_round_trip(ctx: Ctx) -> Result<()> {
    let store = &ctx.store;
    deploy_dibao(store).await?;
    let mut step = start("case-1", "gd/sz/futian");
    step.tasks_opened = vec![
        task("t1", "case-1", "clerk", "gd/sz/futian", Some(100)),
        task("t2", "case-1", "clerk", "gd/sz/futian", None),
    ];
    step.timers_set = vec![timer("tm1", "case-1", 500)];
    step.outbox = vec![outbox("case-1/notify/1", "case-1")];
    store.commit(&step).await?;

    let loaded = store.load_instance("case-1").await?.context("instance")?;
    assert_eq!(loaded, step.instance);
    assert_eq!(store.task("t1").await?, Some(step.tasks_opened[0].clone()));
    assert_eq!(store.task("t2").await?, Some(step.tasks_opened[1].clone()));
    assert_eq!(store.load_instance("nope").await?, None);

    let records = store.history("case-1").await?;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].seq, 1);
    assert_eq!(records[0].data, step.history.data);
    assert_eq!(records[0].actor.as_deref(), Some("clerk-li"));

    // The second step closes a task, cancels the timer, opens another task.
    let mut second = next(&loaded, "reviewed", at(20));
    second.instance.status = "done".to_owned();
    second.instance.outcome = Some("approved".to_owned());
    second.tasks_closed = vec!["t1".to_owned()];
    second.timers_cancelled = vec!["tm1".to_owned()];
    second.tasks_opened = vec![task("t3", "case-1", "head", "gd/sz", Some(50))];
    store.commit(&second).await?;
    assert_eq!(
        store.load_instance("case-1").await?,
        Some(second.instance.clone())
    );
    assert_eq!(
        store
            .claim_due_timers("n1", at(10_000), Duration::seconds(30), 10)
            .await?,
        vec![],
        "cancelled timer is gone"
    );
    let inbox = store
        .tasks_for(&["clerk".to_owned()], &["gd".to_owned()], "li", 10)
        .await?;
    assert_eq!(
        inbox.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["t2"]
    );

    store.commit(&start("case-2", "gd/gz")).await?;
    let filtered = |filter: InstanceFilter| async move {
        Ok::<_, StoreError>(
            store
                .list_instances(&filter)
                .await?
                .into_iter()
                .map(|i| i.id)
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        filtered(InstanceFilter::default()).await?,
        ["case-1", "case-2"]
    );
    assert_eq!(
        filtered(InstanceFilter {
            status: Some("running".to_owned()),
            ..InstanceFilter::default()
        })
        .await?,
        ["case-2"]
    );
    assert_eq!(
        filtered(InstanceFilter {
            unit: Some("gd/sz".to_owned()),
            process_id: Some("dibao".to_owned()),
            ..InstanceFilter::default()
        })
        .await?,
        ["case-1"]
    );
    assert_eq!(
        filtered(InstanceFilter {
            limit: 1,
            offset: 1,
            ..InstanceFilter::default()
        })
        .await?,
        ["case-2"]
    );
    store.verify_history("case-1").await?;
    Ok(())
}

/// Many instances in one call: more ids than one statement takes, an unknown id among
/// them, each instance as last committed.
async fn load_instances_reads_many_across_chunks(ctx: Ctx) -> Result<()> {
    const CASES: usize = 450;
    let store = Store::open(&ctx.fast_url).await?;
    deploy_dibao(&store).await?;
    let started: Vec<StepCommit> = (0..CASES)
        .map(|i| start(&format!("case-{i:03}"), "gd"))
        .collect();
    for outcome in store.commit_group(&started).await? {
        outcome?;
    }
    // Every third case moves on, so what is read must be the latest version.
    let moved: Vec<StepCommit> = started
        .iter()
        .step_by(3)
        .map(|step| next(&step.instance, "moved", at(20)))
        .collect();
    for outcome in store.commit_group(&moved).await? {
        outcome?;
    }
    let mut expected: HashMap<String, InstanceRow> = started
        .iter()
        .map(|step| (step.instance.id.clone(), step.instance.clone()))
        .collect();
    for step in &moved {
        expected.insert(step.instance.id.clone(), step.instance.clone());
    }

    // Asked for in reverse, with an unknown id in the middle: it is simply not there.
    let mut ids: Vec<String> = expected.keys().cloned().collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.insert(CASES / 2, "nope".to_owned());
    let loaded = ctx.store.load_instances(&ids).await?;
    ensure!(
        loaded.len() == CASES,
        "{} rows for {CASES} cases",
        loaded.len()
    );
    let by_id: HashMap<String, InstanceRow> = loaded
        .into_iter()
        .map(|instance| (instance.id.clone(), instance))
        .collect();
    ensure!(by_id.len() == CASES, "an instance came back twice");
    assert_eq!(by_id, expected);

    // A few ids, and none.
    let few = ctx
        .store
        .load_instances(&[
            "case-003".to_owned(),
            "nope".to_owned(),
            "case-004".to_owned(),
        ])
        .await?;
    let mut few: Vec<(String, i64)> = few.into_iter().map(|i| (i.id, i.version)).collect();
    few.sort();
    assert_eq!(
        few,
        [("case-003".to_owned(), 2), ("case-004".to_owned(), 1)]
    );
    ensure!(ctx.store.load_instances(&[]).await?.is_empty());
    store.close().await;
    Ok(())
}

async fn same_expected_version_exactly_one_wins(ctx: Ctx) -> Result<()> {
    let store = &ctx.store;
    deploy_dibao(store).await?;
    let first = start("case-1", "gd");
    store.commit(&first).await?;
    let duplicate = store.commit(&first).await;
    assert_eq!(conflict_reason(&duplicate), Some(ConflictReason::Duplicate));

    let mut winner = next(&first.instance, "approve", at(20));
    winner.tasks_opened = vec![task("win", "case-1", "clerk", "gd", None)];
    let mut loser = next(&first.instance, "reject", at(21));
    loser.tasks_opened = vec![task("lose", "case-1", "clerk", "gd", None)];
    loser.outbox = vec![outbox("lose-notice", "case-1")];
    store.commit(&winner).await?;
    let lost = store.commit(&loser).await;
    assert_eq!(
        conflict_reason(&lost),
        Some(ConflictReason::VersionMismatch)
    );

    // Nothing of the loser was kept.
    assert_eq!(
        store.load_instance("case-1").await?,
        Some(winner.instance.clone())
    );
    assert_eq!(store.task("lose").await?, None);
    assert!(store.task("win").await?.is_some());
    assert!(
        store
            .claim_outbox("n", at(100), Duration::seconds(5), 10)
            .await?
            .is_empty()
    );
    assert_eq!(store.history("case-1").await?.len(), 2);

    // The loser's node, with an empty head cache, also loses.
    let other = ctx.node().await?;
    let stale = other.commit(&loser).await;
    assert_eq!(
        conflict_reason(&stale),
        Some(ConflictReason::VersionMismatch)
    );
    // And that node continues the chain after a fresh load.
    let reloaded = other.load_instance("case-1").await?.context("instance")?;
    other.commit(&next(&reloaded, "pay", at(30))).await?;
    other.close().await;
    store.verify_history("case-1").await?;
    Ok(())
}

async fn concurrent_commits_on_one_instance_exactly_one_wins(ctx: Ctx) -> Result<()> {
    let store = ctx.store.clone();
    deploy_dibao(&store).await?;
    let node_b = ctx.node().await?;
    let mut current = start("case-1", "gd").instance;
    store.commit(&start("case-1", "gd")).await?;
    for round in 0..20_i64 {
        let mut left = next(&current, "left", at(100 + round));
        left.tasks_opened = vec![task(&format!("left-{round}"), "case-1", "r", "gd", None)];
        let mut right = next(&current, "right", at(100 + round));
        right.tasks_opened = vec![task(&format!("right-{round}"), "case-1", "r", "gd", None)];
        let (a, b) = (store.clone(), node_b.clone());
        let (left_step, right_step) = (left.clone(), right.clone());
        let left_task = tokio::spawn(async move { a.commit(&left_step).await });
        let right_task = tokio::spawn(async move { b.commit(&right_step).await });
        let outcomes = [left_task.await?, right_task.await?];
        let wins = outcomes.iter().filter(|o| o.is_ok()).count();
        ensure!(wins == 1, "round {round}: {outcomes:?}");
        for outcome in &outcomes {
            if let Err(error) = outcome {
                ensure!(error.is_conflict(), "round {round}: {error:?}");
            }
        }
        current = if outcomes[0].is_ok() {
            left.instance
        } else {
            right.instance
        };
        assert_eq!(store.load_instance("case-1").await?, Some(current.clone()));
    }
    assert_eq!(store.history("case-1").await?.len(), 21);
    store.verify_history("case-1").await?;
    node_b.close().await;
    Ok(())
}

async fn group_commit_fails_conflicting_steps_alone(ctx: Ctx) -> Result<()> {
    let store = &ctx.store;
    deploy_dibao(store).await?;
    for id in ["a", "b", "c"] {
        let mut step = start(id, "gd");
        step.outbox = vec![outbox(&format!("{id}-0"), id)];
        store.commit(&step).await?;
    }
    let a = store.load_instance("a").await?.context("a")?;
    let b = store.load_instance("b").await?.context("b")?;
    let c = store.load_instance("c").await?.context("c")?;

    // Only version conflicts: the fast path.
    let a2 = next(&a, "a2", at(20));
    let a3 = next(&a2.instance, "a3", at(21));
    let mut stale_b = next(&b, "stale", at(20));
    stale_b.expected_version = Some(7);
    stale_b.instance.version = 8;
    let results = store
        .commit_group(&[a2.clone(), stale_b, a3.clone(), start("d", "gd")])
        .await?;
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(
        conflict_reason(&results[1]),
        Some(ConflictReason::VersionMismatch)
    );
    assert!(
        results[2].is_ok(),
        "same instance twice, in order: {results:?}"
    );
    assert!(results[3].is_ok(), "{results:?}");
    assert_eq!(store.load_instance("a").await?.map(|i| i.version), Some(3));

    // A key violation in one step (duplicate outbox key) fails that step alone.
    let b2 = next(&b, "b2", at(30));
    let mut c2_duplicate = next(&c, "c2", at(30));
    c2_duplicate.outbox = vec![outbox("c-0", "c")];
    c2_duplicate.tasks_opened = vec![task("c-task", "c", "r", "gd", None)];
    let a4 = next(&a3.instance, "a4", at(30));
    let results = store
        .commit_group(&[b2.clone(), c2_duplicate, a4.clone(), start("a", "gd")])
        .await?;
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(
        conflict_reason(&results[1]),
        Some(ConflictReason::Duplicate)
    );
    assert!(results[2].is_ok(), "{results:?}");
    assert_eq!(
        conflict_reason(&results[3]),
        Some(ConflictReason::Duplicate)
    );
    assert_eq!(store.load_instance("b").await?, Some(b2.instance));
    assert_eq!(store.load_instance("c").await?, Some(c));
    assert_eq!(store.load_instance("a").await?, Some(a4.instance));
    assert_eq!(store.task("c-task").await?, None);
    for id in ["a", "b", "c", "d"] {
        store.verify_history(id).await?;
    }
    assert!(store.commit_group(&[]).await?.is_empty());
    Ok(())
}

/// The group's instance rows go out in one multi-row UPDATE; when another node moved one
/// of them after this node cached its head, that row alone is refused and the rest of the
/// group commits.
async fn a_group_update_refuses_only_the_rows_another_node_moved(ctx: Ctx) -> Result<()> {
    let store = &ctx.store;
    deploy_dibao(store).await?;
    for id in ["a", "b", "c"] {
        store.commit(&start(id, "gd")).await?;
    }
    let a = store.load_instance("a").await?.context("a")?;
    let b = store.load_instance("b").await?.context("b")?;
    let c = store.load_instance("c").await?.context("c")?;
    // Another node moves b: this node's cached head of b is now one version old.
    let other = ctx.node().await?;
    let b2_elsewhere = next(&b, "elsewhere", at(15));
    other.commit(&b2_elsewhere).await?;

    let a2 = next(&a, "a2", at(20));
    let b2 = next(&b, "b2", at(20));
    let c2 = next(&c, "c2", at(20));
    let results = store.commit_group(&[a2.clone(), b2, c2.clone()]).await?;
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(
        conflict_reason(&results[1]),
        Some(ConflictReason::VersionMismatch)
    );
    assert!(results[2].is_ok(), "{results:?}");
    assert_eq!(store.load_instance("a").await?, Some(a2.instance));
    assert_eq!(
        store.load_instance("b").await?,
        Some(b2_elsewhere.instance.clone())
    );
    assert_eq!(store.load_instance("c").await?, Some(c2.instance));
    // The refused row's head was forgotten: the next step on b reads it and commits.
    store
        .commit(&next(&b2_elsewhere.instance, "b3", at(30)))
        .await?;
    for id in ["a", "b", "c"] {
        store.verify_history(id).await?;
    }
    ensure!(store.history("b").await?.len() == 3);
    other.close().await;
    Ok(())
}

async fn invalid_commits_are_refused(ctx: Ctx) -> Result<()> {
    let store = &ctx.store;
    let undeployed = store.commit(&start("case-1", "gd")).await;
    ensure!(
        matches!(undeployed, Err(StoreError::Dangling { .. })),
        "{undeployed:?}"
    );
    deploy_dibao(store).await?;
    let mut skipping = start("case-1", "gd");
    skipping.instance.version = 2;
    let refused = store.commit(&skipping).await;
    ensure!(
        matches!(
            refused,
            Err(StoreError::InvalidCommit {
                problem: CommitProblem::VersionNotNext,
                ..
            })
        ),
        "{refused:?}"
    );
    let mut foreign = start("case-1", "gd");
    foreign.timers_set = vec![timer("t", "case-9", 5)];
    let refused = store.commit(&foreign).await;
    ensure!(
        matches!(
            refused,
            Err(StoreError::InvalidCommit {
                problem: CommitProblem::ForeignInstance,
                ..
            })
        ),
        "{refused:?}"
    );
    let missing = store
        .commit(&next(&instance("ghost", "gd"), "x", at(20)))
        .await;
    ensure!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    ensure!(store.load_instance("case-1").await?.is_none());
    Ok(())
}

// ---------------------------------------------------------------- tasks

/// A claim is a step: two claims of one task on two nodes race on the instance's version,
/// one wins and writes the holder; a claim of a closed task changes nothing.
async fn claim_steps_race_and_one_wins(ctx: Ctx) -> Result<()> {
    let store = ctx.store.clone();
    deploy_dibao(&store).await?;
    let mut step = start("case-1", "gd");
    step.tasks_opened = (0..10)
        .map(|i| task(&format!("t{i}"), "case-1", "clerk", "gd", None))
        .collect();
    store.commit(&step).await?;
    let node_b = ctx.node().await?;
    let mut current = step.instance.clone();
    for i in 0..10 {
        let id = format!("t{i}");
        let (a, b) = (store.clone(), node_b.clone());
        let wang = assign(&current, &id, Some("wang"), 50);
        let zhao = assign(&current, &id, Some("zhao"), 50);
        let wang_step = wang.clone();
        let wang = tokio::spawn(async move { a.commit(&wang).await });
        let zhao = tokio::spawn(async move { b.commit(&zhao).await });
        let outcomes = [wang.await?, zhao.await?];
        let winners = outcomes.iter().filter(|o| o.is_ok()).count();
        ensure!(winners == 1, "{id}: {outcomes:?}");
        let winner = if outcomes[0].is_ok() { "wang" } else { "zhao" };
        for outcome in &outcomes {
            if let Err(error) = outcome {
                ensure!(error.is_conflict(), "{error:?}");
            }
        }
        assert_eq!(
            store.task(&id).await?.and_then(|t| t.assignee).as_deref(),
            Some(winner)
        );
        current = wang_step.instance;
    }
    let mut close = next(&current, "done", at(70));
    close.tasks_closed = vec!["t0".to_owned()];
    store.commit(&close).await?;
    let closed = store
        .commit(&assign(&close.instance, "t0", Some("wang"), 80))
        .await;
    ensure!(
        matches!(
            closed,
            Err(StoreError::Conflict {
                reason: ConflictReason::TaskClosed,
                ..
            })
        ),
        "{closed:?}"
    );
    ensure!(store.history("case-1").await?.len() == 12);
    node_b.close().await;
    Ok(())
}

/// Every role of a task is a candidate: a two-role task shows in both roles' queues, once
/// for a user holding both; a claim takes it out of the other users' queues, and closing
/// takes it out of all of them.
async fn a_two_role_task_shows_in_both_queues(ctx: Ctx) -> Result<()> {
    let store = &ctx.store;
    deploy_dibao(store).await?;
    let mut step = start("case-1", "gd/sz");
    let mut both = task("both", "case-1", "staff", "gd/sz", Some(100));
    both.roles = vec!["staff".to_owned(), "head".to_owned()];
    step.tasks_opened = vec![
        both,
        task("staff-only", "case-1", "staff", "gd/sz", Some(200)),
    ];
    store.commit(&step).await?;
    let ids = |tasks: Vec<TaskRow>| tasks.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let unit = ["gd/sz".to_owned()];
    let queue = |roles: &[&str], user: &'static str| {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        let unit = unit.clone();
        async move { store.tasks_for(&roles, &unit, user, 50).await }
    };
    assert_eq!(ids(queue(&["staff"], "li").await?), ["both", "staff-only"]);
    assert_eq!(ids(queue(&["head"], "wang").await?), ["both"]);
    assert_eq!(
        ids(queue(&["staff", "head"], "zhao").await?),
        ["both", "staff-only"]
    );
    let row = store.task("both").await?.context("both")?;
    assert_eq!(row.roles, ["staff", "head"]);
    // Claimed by wang (as head): gone from li's queue, still in wang's.
    let claim = assign(&step.instance, "both", Some("wang"), 50);
    store.commit(&claim).await?;
    assert_eq!(ids(queue(&["staff"], "li").await?), ["staff-only"]);
    assert_eq!(ids(queue(&["head"], "wang").await?), ["both"]);
    // Released: back for everyone.
    let release = assign(&claim.instance, "both", None, 60);
    store.commit(&release).await?;
    assert_eq!(ids(queue(&["staff"], "li").await?), ["both", "staff-only"]);
    let mut close = next(&release.instance, "done", at(70));
    close.tasks_closed = vec!["both".to_owned()];
    store.commit(&close).await?;
    assert_eq!(
        ids(queue(&["staff", "head"], "wang").await?),
        ["staff-only"]
    );
    Ok(())
}

/// Schema 6 gives every open task of an older database all the roles its case's state
/// names (and its queue rows), not only the one the row had.
async fn migration_6_backfills_the_roles_of_open_tasks(ctx: Ctx) -> Result<()> {
    let store = ctx.store.clone();
    deploy_dibao(&store).await?;
    let mut step = start("case-1", "gd/sz");
    step.instance.state = json!({"tasks": [
        {"id": "both", "roles": ["staff", "head"]},
        {"id": "claimed", "roles": ["staff"]}
    ]})
    .into();
    let mut claimed = task("claimed", "case-1", "staff", "gd/sz", Some(300));
    claimed.assignee = Some("wang".to_owned());
    step.tasks_opened = vec![
        task("both", "case-1", "staff", "gd/sz", Some(100)),
        claimed,
        task("closed", "case-1", "staff", "gd/sz", Some(200)),
    ];
    store.commit(&step).await?;
    let mut close = next(&step.instance, "done", at(20));
    close.tasks_closed = vec!["closed".to_owned()];
    store.commit(&close).await?;
    store.close().await;
    // Back to schema 5: no task_roles, no tasks.roles, the old inbox index.
    ctx.raw(
        "DROP TABLE task_roles; ALTER TABLE tasks DROP COLUMN roles; \
         CREATE INDEX tasks_inbox ON tasks (role, unit, due_at) WHERE closed_at IS NULL; \
         DELETE FROM _sqlx_migrations WHERE version = 6",
    )
    .await?;
    let store = Store::open(&ctx.url).await?;
    let ids = |tasks: Vec<TaskRow>| tasks.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let unit = ["gd/sz".to_owned()];
    assert_eq!(
        ids(store
            .tasks_for(&["head".to_owned()], &unit, "li", 50)
            .await?),
        ["both"]
    );
    assert_eq!(
        ids(store
            .tasks_for(&["staff".to_owned()], &unit, "li", 50)
            .await?),
        ["both"]
    );
    assert_eq!(
        ids(store
            .tasks_for(&["staff".to_owned()], &unit, "wang", 50)
            .await?),
        ["both", "claimed"]
    );
    assert_eq!(
        store.task("both").await?.context("both")?.roles,
        ["staff", "head"]
    );
    assert_eq!(
        store.task("closed").await?.context("closed")?.roles,
        ["staff"]
    );
    store.close().await;
    Ok(())
}

/// The claim check of a completion is part of its commit: a step completing a task another
/// user holds fails alone (its group still commits) and leaves nothing behind.
async fn a_completion_commits_only_for_the_claim_holder(ctx: Ctx) -> Result<()> {
    let store = ctx.store.clone();
    deploy_dibao(&store).await?;
    let mut one = start("case-1", "gd");
    one.tasks_opened = vec![task("case-1-t1", "case-1", "clerk", "gd", None)];
    let mut two = start("case-2", "gd");
    two.tasks_opened = vec![task("case-2-t1", "case-2", "clerk", "gd", None)];
    store.commit(&one).await?;
    store.commit(&two).await?;
    let one = assign(&one.instance, "case-1-t1", Some("wang"), 50);
    let two = assign(&two.instance, "case-2-t1", Some("wang"), 50);
    store.commit(&one).await?;
    store.commit(&two).await?;
    let completion = |start: &StepCommit, task_id: &str, user: &str| {
        let mut step = next(&start.instance, "complete", at(60));
        step.tasks_closed = vec![task_id.to_owned()];
        step.completes = Some(TaskCompletion {
            task_id: task_id.to_owned(),
            user: user.to_owned(),
        });
        step
    };

    // zhao completes wang's task of case 1, in one group with wang completing case 2.
    let outcomes = store
        .commit_group(&[
            completion(&one, "case-1-t1", "zhao"),
            completion(&two, "case-2-t1", "wang"),
        ])
        .await?;
    ensure!(outcomes.len() == 2, "{outcomes:?}");
    ensure!(
        conflict_reason(&outcomes[0]) == Some(ConflictReason::ClaimedByOther),
        "{outcomes:?}"
    );
    ensure!(outcomes[1].is_ok(), "{outcomes:?}");
    // Case 1 is untouched: version 2 (the claim), two history rows, its task still held.
    let case_one = store.load_instance("case-1").await?.context("case-1")?;
    ensure!(case_one.version == 2, "version {}", case_one.version);
    ensure!(store.history("case-1").await?.len() == 2);
    assert_eq!(
        store
            .task("case-1-t1")
            .await?
            .and_then(|t| t.assignee)
            .as_deref(),
        Some("wang")
    );
    // Case 2 moved on and its task is closed: it can no longer be handed to anyone.
    ensure!(store.history("case-2").await?.len() == 3);
    let done = completion(&two, "case-2-t1", "wang");
    ensure!(
        matches!(
            store
                .commit(&assign(&done.instance, "case-2-t1", Some("wang"), 70))
                .await,
            Err(StoreError::Conflict {
                reason: ConflictReason::TaskClosed,
                ..
            })
        ),
        "case-2-t1 is still open"
    );

    // The holder completes it.
    store.commit(&completion(&one, "case-1-t1", "wang")).await?;
    ensure!(store.history("case-1").await?.len() == 3);

    // A completion of a task the step does not close is not a valid commit.
    let mut stray = completion(&two, "case-2-t1", "wang");
    stray.instance.version += 1;
    stray.expected_version = Some(3);
    stray.tasks_closed.clear();
    let refused = store.commit(&stray).await;
    ensure!(
        matches!(
            refused,
            Err(StoreError::InvalidCommit {
                problem: CommitProblem::CompletionNotClosed,
                ..
            })
        ),
        "{refused:?}"
    );
    Ok(())
}

async fn tasks_for_filters_by_unit_role_and_orders_by_due_date(ctx: Ctx) -> Result<()> {
    let store = &ctx.store;
    deploy_dibao(store).await?;
    let mut step = start("case-1", "gd/sz");
    step.tasks_opened = vec![
        task("no-due", "case-1", "clerk", "gd/sz", None),
        task("late", "case-1", "clerk", "gd/sz/futian", Some(300)),
        task("early", "case-1", "clerk", "gd/sz/futian/street", Some(100)),
        task("other-role", "case-1", "head", "gd/sz", Some(50)),
        task("sibling-prefix", "case-1", "clerk", "gd/szx", Some(10)),
        task("parent", "case-1", "clerk", "gd", Some(20)),
        task("mine", "case-1", "clerk", "gd/sz", Some(200)),
        task("theirs", "case-1", "clerk", "gd/sz", Some(150)),
        task("other-unit", "case-1", "clerk", "gd/gz", Some(30)),
        task("closed", "case-1", "clerk", "gd/sz", Some(40)),
    ];
    store.commit(&step).await?;
    let mut claims = assign(&step.instance, "mine", Some("li"), 50);
    claims.tasks_assigned.push(TaskAssignment {
        task_id: "theirs".to_owned(),
        assignee: Some("wang".to_owned()),
    });
    store.commit(&claims).await?;
    let mut close = next(&claims.instance, "closed one", at(60));
    close.tasks_closed = vec!["closed".to_owned()];
    store.commit(&close).await?;

    let ids = |tasks: Vec<TaskRow>| tasks.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let clerk = vec!["clerk".to_owned()];
    assert_eq!(
        ids(store
            .tasks_for(&clerk, &["gd/sz".to_owned()], "li", 50)
            .await?),
        ["early", "mine", "late", "no-due"]
    );
    assert_eq!(
        ids(store
            .tasks_for(&clerk, &["gd/sz".to_owned()], "li", 2)
            .await?),
        ["early", "mine"]
    );
    assert_eq!(
        ids(store
            .tasks_for(
                &["clerk".to_owned(), "head".to_owned()],
                &["gd/sz/".to_owned(), "gd/gz".to_owned()],
                "wang",
                50
            )
            .await?),
        [
            "other-unit",
            "other-role",
            "early",
            "theirs",
            "late",
            "no-due"
        ]
    );
    assert_eq!(
        ids(store
            .tasks_for(&clerk, &["gd/sz/futian".to_owned()], "li", 50)
            .await?),
        ["early", "late"]
    );
    assert!(store.tasks_for(&clerk, &[], "li", 50).await?.is_empty());
    assert!(
        store
            .tasks_for(&[], &["gd".to_owned()], "li", 50)
            .await?
            .is_empty()
    );
    Ok(())
}

// ---------------------------------------------------------------- timers and outbox

async fn timer_leases_hold_until_expiry(ctx: Ctx) -> Result<()> {
    let store = &ctx.store;
    deploy_dibao(store).await?;
    let mut step = start("case-1", "gd");
    step.timers_set = vec![
        timer("remind", "case-1", 100),
        timer("escalate", "case-1", 200),
        timer("later", "case-1", 10_000),
    ];
    store.commit(&step).await?;
    let lease = Duration::seconds(30);
    let ids = |timers: Vec<TimerRow>| timers.into_iter().map(|t| t.id).collect::<Vec<_>>();

    assert_eq!(store.oldest_due_timer_lag(at(50)).await?, None);
    assert_eq!(
        store.oldest_due_timer_lag(at(250)).await?,
        Some(Duration::seconds(150))
    );
    let claimed = store.claim_due_timers("node-a", at(250), lease, 10).await?;
    // The claim counts an attempt, before anything fires.
    assert_eq!(
        claimed[0],
        TimerRow {
            attempts: 1,
            ..step.timers_set[0].clone()
        }
    );
    assert_eq!(ids(claimed), ["remind", "escalate"]);
    assert_eq!(
        store.oldest_due_timer_lag(at(250)).await?,
        None,
        "all in hand"
    );

    // Held by node-a until the lease runs out, for every node.
    let node_b = ctx.node().await?;
    assert!(
        node_b
            .claim_due_timers("node-b", at(250), lease, 10)
            .await?
            .is_empty()
    );
    assert!(
        node_b
            .claim_due_timers("node-b", at(279), lease, 10)
            .await?
            .is_empty()
    );

    // node-a completes one; the other's lease expires and node-b takes it over.
    assert!(store.complete_timer("remind").await?);
    assert!(!store.complete_timer("remind").await?);
    assert_eq!(
        ids(node_b
            .claim_due_timers("node-b", at(280), lease, 10)
            .await?),
        ["escalate"]
    );
    assert!(
        store
            .claim_due_timers("node-a", at(300), lease, 10)
            .await?
            .is_empty()
    );
    assert_eq!(
        ids(store
            .claim_due_timers("node-a", at(10_000), lease, 1)
            .await?),
        ["escalate"]
    );
    node_b.close().await;
    Ok(())
}

async fn outbox_claim_deliver_and_fail(ctx: Ctx) -> Result<()> {
    let store = &ctx.store;
    deploy_dibao(store).await?;
    let mut step = start("case-1", "gd");
    step.outbox = vec![
        outbox("pay-1", "case-1"),
        outbox("notify-1", "case-1"),
        outbox("webhook-1", "case-1"),
    ];
    store.commit(&step).await?;
    let lease = Duration::seconds(60);
    let claimed = store.claim_outbox("node-a", at(20), lease, 10).await?;
    assert_eq!(claimed.len(), 3);
    assert!(claimed.iter().all(|c| c.attempts == 0));
    let payment = claimed
        .iter()
        .find(|c| c.entry.id == "pay-1")
        .context("pay-1 claimed")?;
    assert_eq!(payment.entry, step.outbox[0]);
    assert!(
        store
            .claim_outbox("node-b", at(50), lease, 10)
            .await?
            .is_empty()
    );

    store.mark_delivered("pay-1", at(21)).await?;
    store
        .mark_failed("notify-1", "smtp: 451 try later", at(100), false)
        .await?;
    store
        .mark_failed("webhook-1", "410 gone", at(100), true)
        .await?;

    assert!(
        store
            .claim_outbox("node-b", at(99), lease, 10)
            .await?
            .is_empty()
    );
    let retried = store.claim_outbox("node-b", at(100), lease, 10).await?;
    assert_eq!(
        retried
            .iter()
            .map(|c| (c.entry.id.as_str(), c.attempts))
            .collect::<Vec<_>>(),
        [("notify-1", 1)]
    );
    // Lease over without a verdict (node-b died): handed out again.
    let again = store.claim_outbox("node-a", at(160), lease, 10).await?;
    assert_eq!(again.len(), 1);
    store.mark_delivered("notify-1", at(161)).await?;
    assert!(
        store
            .claim_outbox("node-a", at(100_000), lease, 10)
            .await?
            .is_empty()
    );
    let missing = store.mark_delivered("nope", at(1)).await;
    ensure!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------- history

async fn history_chain_verifies_and_detects_tampering(ctx: Ctx) -> Result<()> {
    let store = &ctx.store;
    deploy_dibao(store).await?;
    let first = start("case-1", "gd");
    store.commit(&first).await?;
    let second = next(&first.instance, "reviewed", at(20));
    store.commit(&second).await?;
    let third = next(&second.instance, "approved", at(30));
    store.commit(&third).await?;
    let mut other = start("case-2", "gd");
    other.history.actor = None;
    other.history.node = None;
    store.commit(&other).await?;

    let records = store.history("case-1").await?;
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(records[0].prev_hash, jiuzhu_engine::store::GENESIS_HASH);
    assert_eq!(records[1].prev_hash, records[0].hash);
    assert_eq!(records[2].prev_hash, records[1].hash);
    assert_eq!(records[2].event, "approved");
    assert_eq!(records[2].at, at(30));
    store.verify_history("case-1").await?;
    store.verify_history("case-2").await?;

    ctx.raw("UPDATE history SET event = 'rejected' WHERE instance_id = 'case-1' AND seq = 2")
        .await?;
    match store.verify_history("case-1").await {
        Err(StoreError::Tampered(tamper)) => {
            assert_eq!((tamper.seq, tamper.kind), (2, TamperKind::HashMismatch));
            assert_eq!(tamper.instance_id, "case-1");
        }
        other => bail!("tampering not detected: {other:?}"),
    }
    store.verify_history("case-2").await?;

    ctx.raw("DELETE FROM history WHERE instance_id = 'case-2'")
        .await?;
    match store.verify_history("case-2").await {
        Err(StoreError::Tampered(tamper)) => {
            assert_eq!((tamper.seq, tamper.kind), (1, TamperKind::Truncated));
        }
        other => bail!("deletion not detected: {other:?}"),
    }
    let missing = store.verify_history("nope").await;
    ensure!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------- schema

async fn schema_too_new_is_refused(ctx: Ctx) -> Result<()> {
    // Reopening at the same version is fine.
    ctx.node().await?.close().await;
    match ctx.db {
        Db::Sqlite => {
            ctx.raw(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (999, 'from a newer jiuzhu', TRUE, x'00', 0)",
            )
            .await?
        }
        Db::Postgres => {
            ctx.raw(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (999, 'from a newer jiuzhu', TRUE, '\\x00'::bytea, 0)",
            )
            .await?
        }
    }
    match Store::open(&ctx.url).await {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (999, Store::schema_version()));
            let message = StoreError::SchemaTooNew { found, supported }.to_string();
            ensure!(message.contains("newer"), "{message}");
        }
        other => bail!("expected SchemaTooNew, got {other:?}"),
    }
    Ok(())
}

// ---------------------------------------------------------------- several nodes

async fn three_nodes_claim_ten_thousand_timers_exactly_once(ctx: Ctx) -> Result<()> {
    const TIMERS: usize = 10_000;
    let store = Store::open(&ctx.fast_url).await?;
    deploy_dibao(&store).await?;
    // Ten instances, a thousand timers each, written by one group commit.
    let steps: Vec<StepCommit> = (0..10)
        .map(|i| {
            let id = format!("case-{i}");
            let mut step = start(&id, "gd");
            step.timers_set = (0..TIMERS / 10)
                .map(|j| timer(&format!("{id}/timer-{j}"), &id, (j % 97) as i64))
                .collect();
            step
        })
        .collect();
    for outcome in store.commit_group(&steps).await? {
        outcome?;
    }

    let mut nodes = Vec::new();
    for n in 0..3 {
        let node = Store::open(&ctx.fast_url).await?;
        nodes.push(tokio::spawn(async move {
            let name = format!("node-{n}");
            let mut claimed = Vec::new();
            let mut completed = Vec::new();
            loop {
                let batch = node
                    .claim_due_timers(&name, at(1_000), Duration::minutes(10), 50)
                    .await?;
                if batch.is_empty() {
                    break;
                }
                for timer in batch {
                    if node.complete_timer(&timer.id).await? {
                        completed.push(timer.id.clone());
                    }
                    claimed.push(timer.id);
                }
            }
            node.close().await;
            Ok::<_, StoreError>((claimed, completed))
        }));
    }
    let mut claims: HashMap<String, usize> = HashMap::new();
    let mut completions: HashMap<String, usize> = HashMap::new();
    let mut per_node = Vec::new();
    for node in nodes {
        let (claimed, completed) = node.await??;
        per_node.push(claimed.len());
        for id in claimed {
            *claims.entry(id).or_default() += 1;
        }
        for id in completed {
            *completions.entry(id).or_default() += 1;
        }
    }
    let expected: HashSet<String> = steps
        .iter()
        .flat_map(|s| s.timers_set.iter().map(|t| t.id.clone()))
        .collect();
    assert_eq!(claims.len(), TIMERS, "per node: {per_node:?}");
    assert_eq!(claims.keys().cloned().collect::<HashSet<_>>(), expected);
    assert!(
        claims.values().all(|&n| n == 1),
        "a timer was claimed twice"
    );
    assert_eq!(completions.len(), TIMERS);
    assert!(completions.values().all(|&n| n == 1));
    assert!(
        store
            .claim_due_timers("late", at(100_000), Duration::minutes(1), 10)
            .await?
            .is_empty()
    );
    store.close().await;
    Ok(())
}

// ---------------------------------------------------------------- single-database behaviour

/// The page size of `path` as the file's header says.
async fn page_size(path: &std::path::Path) -> Result<i64> {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display())).await?;
    let (size,): (i64,) = sqlx::query_as("PRAGMA page_size")
        .fetch_one(&mut conn)
        .await?;
    Ok(size)
}

#[tokio::test]
async fn sqlite_files_are_created_with_small_pages_and_existing_ones_keep_theirs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let fresh = dir.path().join("fresh.db");
    let store = Store::open(&format!("sqlite:{}", fresh.display())).await?;
    deploy_dibao(&store).await?;
    store.commit(&start("case-1", "gd")).await?;
    store.close().await;
    ensure!(
        page_size(&fresh).await? == 2048,
        "a new file has 2,048-byte pages"
    );

    // A file made elsewhere with SQLite's default pages opens, works and keeps them.
    let older = dir.path().join("older.db");
    let mut conn =
        sqlx::SqliteConnection::connect(&format!("sqlite:{}?mode=rwc", older.display())).await?;
    conn.execute("PRAGMA page_size = 4096; CREATE TABLE made_before (x INTEGER)")
        .await?;
    conn.close().await?;
    let store = Store::open(&format!("sqlite:{}", older.display())).await?;
    deploy_dibao(&store).await?;
    store.commit(&start("case-1", "gd")).await?;
    ensure!(store.load_instance("case-1").await?.is_some());
    store.close().await;
    ensure!(
        page_size(&older).await? == 4096,
        "an existing file keeps its pages"
    );
    Ok(())
}

#[tokio::test]
async fn sqlite_writer_held_elsewhere_is_reported_as_locked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("locked.db");
    let store = Store::open(&format!("sqlite:{}?busy_timeout_ms=50", path.display()))
        .await
        .expect("open");
    deploy_dibao(&store).await.expect("deploy");
    let mut holder = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
        .await
        .expect("second connection");
    holder
        .execute("BEGIN IMMEDIATE")
        .await
        .expect("take the write lock");
    let outcome = store.commit(&start("case-1", "gd")).await;
    assert!(
        matches!(outcome, Err(StoreError::Locked { .. })),
        "{outcome:?}"
    );
    holder.execute("ROLLBACK").await.expect("release");
    store
        .commit(&start("case-1", "gd"))
        .await
        .expect("commits once released");
}

/// A commit waiting for another connection's write lock must not hold the runtime thread:
/// on a single-threaded runtime the lock's holder may need that very thread to reach its
/// own commit. Here the holder is a second store on the same file deploying (a transaction
/// that awaits between its statements) while the first commits steps, both on one thread;
/// a commit asleep in SQLite's busy handler would stall both until the busy timeout and
/// fail as `locked`.
#[tokio::test(flavor = "current_thread")]
async fn sqlite_commit_waiting_for_the_lock_leaves_the_runtime_free() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("waiting.db");
    let url = format!("sqlite:{}?busy_timeout_ms=5000", path.display());
    let store = Store::open(&url).await.expect("open");
    deploy_dibao(&store).await.expect("deploy");
    let other = Store::open(&url).await.expect("second store on the file");
    for round in 0..40 {
        let step = start(&format!("case-{round}"), "gd");
        let deployment = new_deployment(&format!("p{round}"), &format!("process: p{round}\n"));
        let (committed, deployed) = tokio::join!(
            store.commit(&step),
            other.deploy(std::slice::from_ref(&deployment), at(round)),
        );
        committed.unwrap_or_else(|e| panic!("round {round}: commit: {e:?}"));
        deployed.unwrap_or_else(|e| panic!("round {round}: deploy: {e:?}"));
    }
    assert_eq!(
        other
            .list_instances(&InstanceFilter::default())
            .await
            .expect("list")
            .len(),
        40
    );
}

#[tokio::test]
async fn sqlite_in_memory_store_works() {
    let store = Store::open("sqlite::memory:").await.expect("open");
    deploy_dibao(&store).await.expect("deploy");
    store.commit(&start("case-1", "gd")).await.expect("commit");
    assert_eq!(
        store.load_instance("case-1").await.expect("load"),
        Some(start("case-1", "gd").instance)
    );
}

#[tokio::test]
async fn unreachable_postgres_is_a_clear_error() {
    // Port 1 on loopback: nothing listens there.
    let outcome = Store::open_with(
        "postgres://postgres@127.0.0.1:1/test",
        jiuzhu_engine::store::StoreOptions {
            acquire_timeout: std::time::Duration::from_secs(5),
            ..Default::default()
        },
    )
    .await;
    assert!(
        matches!(outcome, Err(StoreError::Unreachable { .. })),
        "{outcome:?}"
    );
}
