//! `policy_changed` delivered by the scheduler (`runtime/policy_change.rs`): when a policy
//! with a later `effective_from` takes effect, every active case waiting for the message
//! receives it once — two scheduler nodes sweeping at once, and a node started afresh (as
//! after a crash) sweeping again, tell nobody twice. The shipped orphan allowance follows
//! the raised standard with a new monthly payment from the policy's day; a case whose
//! figure did not change records the day and pays nothing new; a case still in its
//! survey is not told. On SQLite and PostgreSQL (`JIUZHU_TEST_PG`). Manual clock.

use jiuzhu_testkit::copy_dir;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use chrono::{DateTime, Duration, Utc};
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::scheduler::Scheduler;
use jiuzhu_engine::store::{Store, TaskRow};
use jiuzhu_rules::Value;
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};
use serde_json::json;

const ZX: &str = "双鸭山市/尖山区/中心站街道";
const COUNTY: &str = "双鸭山市/尖山区";

struct Ctx {
    url: String,
    clock: Arc<ManualClock>,
    project: Arc<Project>,
}

struct Teardown {
    database: TestDatabase,
    _dir: tempfile::TempDir,
}

/// The shipped project, with the policies of the orphan allowance scenario: the file of
/// 2026-07-01 raises the scattered figure 1200.00 → 1300.00 and keeps institution 1600.00.
async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "policy_change").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../processes");
    let processes = dir.path().join("processes");
    copy_dir(&shipped, &processes);
    std::fs::remove_dir_all(processes.join("policies")).expect("remove policies");
    copy_dir(
        &shipped.join("scenarios/orphan_allowance/policies-raised"),
        &processes.join("policies"),
    );
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

jiuzhu_testkit::on_both_databases!(a_raised_standard_reaches_each_waiting_case_once,);

fn actor(user: &str, role: &str, unit: &str) -> Actor {
    Actor {
        user: user.into(),
        roles: vec![role.into()],
        unit: unit.into(),
    }
}

fn data(value: serde_json::Value) -> BTreeMap<String, Value> {
    match Value::from_json(&value) {
        Value::Object(map) => map,
        _ => BTreeMap::new(),
    }
}

fn child(name: &str, placement: &str, id_number: &str, birth: &str) -> BTreeMap<String, Value> {
    data(json!({
        "applicant_name": name,
        "area": "urban",
        "member": "c1",
        "kind": "orphan",
        "placement": placement,
        "bank": {"account": "6217000011112222444", "id_number": id_number},
        "household": {"members": [{"id": "c1", "id_number": id_number, "birth_date": birth}], "savings": "0.00"},
    }))
}

/// Completes the task at `node` among `opened` (the tasks the step before opened); the
/// tasks this step opens.
async fn complete(
    engine: &Engine,
    opened: &[TaskRow],
    node: &str,
    by: &Actor,
    form: serde_json::Value,
) -> Result<Vec<TaskRow>> {
    let task = opened
        .iter()
        .find(|t| t.node_id == node)
        .with_context(|| format!("no open {node}"))?;
    Ok(engine
        .complete(&task.id, by, data(form))
        .await?
        .tasks_opened)
}

/// The case's payment effects, as (amount, from).
async fn payments(engine: &Engine, case: &str) -> Result<Vec<(String, String)>> {
    Ok(engine
        .store
        .outbox_of_instance(case)
        .await?
        .into_iter()
        .filter(|e| e.entry.kind == "payment")
        .map(|e| {
            let p = &e.entry.payload;
            (
                p["amount"].as_str().unwrap_or("?").to_string(),
                p["from"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect())
}

async fn a_raised_standard_reaches_each_waiting_case_once(ctx: Ctx) -> Result<()> {
    let node_a = Arc::new(Engine::new(
        Store::open(&ctx.url).await?,
        ctx.project.clone(),
        ctx.clock.clone(),
        "node-a",
    )?);
    let node_b = Arc::new(Engine::new(
        Store::open(&ctx.url).await?,
        ctx.project.clone(),
        ctx.clock.clone(),
        "node-b",
    )?);
    node_a.deploy().await?;
    let clerk = actor("clerk1", "township_clerk", ZX);
    let staff = actor("staff1", "township_staff", ZX);
    let county = actor("county1", "county_staff", COUNTY);

    let mut cases = Vec::new();
    let mut waiting = Vec::new();
    for (name, placement, id_number, birth) in [
        ("王秀兰", "scattered", "230502201505101020", "2015-05-10"),
        (
            "双鸭山市儿童福利院",
            "institution",
            "230502201007061062",
            "2010-07-06",
        ),
        ("李桂芝", "scattered", "230502201301201054", "2013-01-20"),
    ] {
        let started = node_a
            .start(
                "orphan_allowance",
                &clerk,
                child(name, placement, id_number, birth),
            )
            .await?;
        let opened = complete(
            &node_a,
            &started.tasks_opened,
            "accept",
            &clerk,
            json!({"complete": true}),
        )
        .await?;
        cases.push(started.instance.id);
        waiting.push(opened);
    }
    let (scattered, institution, surveying) = (&cases[0], &cases[1], &cases[2]);
    for opened in &waiting[..2] {
        let opened = complete(
            &node_a,
            opened,
            "survey",
            &staff,
            json!({"surveyors": ["李强", "赵敏"]}),
        )
        .await?;
        complete(
            &node_a,
            &opened,
            "approve",
            &county,
            json!({"decision": "approve"}),
        )
        .await?;
    }
    ensure!(payments(&node_a, scattered).await? == [("1200.00".into(), "2026-04-01".into())]);
    ensure!(payments(&node_a, institution).await? == [("1600.00".into(), "2026-04-01".into())]);

    // Before the day nothing is told.
    ctx.clock
        .set(DateTime::parse_from_rfc3339("2026-06-30T23:59:00+08:00")?.with_timezone(&Utc));
    let report = Scheduler::new(&node_a).tick().await?;
    ensure!(
        report.policy_changes.is_empty(),
        "{:?}",
        report.policy_changes
    );

    // On 1 July two nodes sweep at once: each waiting case is told once in all.
    ctx.clock.advance(Duration::minutes(2));
    let (a, b) = tokio::join!(async { Scheduler::new(&node_a).tick().await }, async {
        Scheduler::new(&node_b).tick().await
    },);
    let (a, b) = (a?, b?);
    ensure!(
        a.policy_failures.is_empty() && b.policy_failures.is_empty(),
        "{a:?} {b:?}"
    );
    let day = chrono::NaiveDate::from_ymd_opt(2026, 7, 1).context("date")?;
    let mut told: Vec<(String, chrono::NaiveDate)> = a
        .policy_changes
        .into_iter()
        .chain(b.policy_changes)
        .collect();
    told.sort();
    let mut expected = vec![(scattered.clone(), day), (institution.clone(), day)];
    expected.sort();
    ensure!(told == expected, "told {told:?}");

    // The scattered benefit follows the new figure from the policy's day; the
    // institution figure did not change; the case in its survey was not told.
    ensure!(
        payments(&node_a, scattered).await?
            == [
                ("1200.00".into(), "2026-04-01".into()),
                ("1300.00".into(), "2026-07-01".into())
            ]
    );
    ensure!(payments(&node_a, institution).await?.len() == 1);
    let (_, _, state) = node_a.load(scattered).await?;
    ensure!(state.vars.get("monthly_amount") == Some(&Value::Decimal("1300.00".parse()?)));
    ensure!(
        state
            .received
            .iter()
            .filter(|r| *r == "policy_changed:2026-07-01")
            .count()
            == 1
    );
    let (_, _, state) = node_a.load(institution).await?;
    ensure!(state.vars.get("standard_from") == Some(&Value::Date(day)));
    let (_, _, state) = node_a.load(surveying).await?;
    ensure!(
        !state
            .received
            .iter()
            .any(|r| r.starts_with("policy_changed"))
            && state
                .vars
                .get("standard_from")
                .is_none_or(|v| *v == Value::Null)
    );

    // A node started afresh (its memory of the sweep lost, as after a crash) sweeps
    // again and tells nobody twice; the same node's next tick does not sweep at all.
    let node_c = Engine::new(
        Store::open(&ctx.url).await?,
        ctx.project.clone(),
        ctx.clock.clone(),
        "node-c",
    )?;
    let fresh = Scheduler::new(&node_c);
    ensure!(fresh.tick().await?.policy_changes.is_empty());
    ensure!(fresh.tick().await?.policy_changes.is_empty());
    ensure!(payments(&node_a, scattered).await?.len() == 2);
    let history = node_a.store.history(scattered).await?;
    ensure!(
        history
            .iter()
            .filter(|h| h.event == "message:policy_changed")
            .count()
            == 1,
        "{:?}",
        history.iter().map(|h| h.event.clone()).collect::<Vec<_>>()
    );
    Ok(())
}
