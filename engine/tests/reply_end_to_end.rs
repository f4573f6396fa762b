//! `start_process` with `reply` and `on_end`, end to end through the store: a parent case
//! starts a child and waits for it; the engine starts the child and replies; the child's
//! task is completed and it ends; its `on_end` message, read back from the outbox as the
//! dispatcher reads it (`effects::parse_outbox`), steps the parent, which goes on to its
//! end with the child's outcome. On SQLite and PostgreSQL (`JIUZHU_TEST_PG`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use chrono::{DateTime, Utc};
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::effects::parse_outbox;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::runtime::internal::InternalOutcome;
use jiuzhu_engine::store::{OutboxRow, Store};
use jiuzhu_rules::Value;
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};

const UNIT: &str = "双鸭山市/尖山区/中心站街道";

/// Starts a child and waits for its reply, then for its end.
const PARENT: &str = r#"
process: relay_parent
name: 转办
calendar: cn
start: hand_over
variables:
  applicant_name: {type: string, required: true, label: 申请人}
  child: {type: string, label: 转办案件}
  child_outcome: {type: string, label: 转办结果}
nodes:
  - id: hand_over
    type: compute
    name: 转办
    emit:
      - start_process:
          process: relay_child
          data: {applicant_name: "=applicant_name"}
          reply: child_started
          on_end: child_ended
    next: started
  - id: started
    type: receive
    name: 等待受理
    on:
      child_started:
        form:
          case: {type: string, label: 案件编号}
          process: {type: string, label: 流程}
          status: {type: string, required: true, label: 结果}
          code: {type: string, label: 错误代码}
          outcome: {type: string, label: 办理结果}
        set: {child: "message.case"}
        next: waiting
  - id: waiting
    type: receive
    name: 等待办结
    on:
      child_ended:
        form:
          case: {type: string, label: 案件编号}
          process: {type: string, label: 流程}
          status: {type: string, required: true, label: 结果}
          code: {type: string, label: 错误代码}
          outcome: {type: string, label: 办理结果}
        set: {child_outcome: "message.outcome"}
        next: done
  - id: done
    type: end
    name: 办结
    outcome: relayed
"#;

const CHILD: &str = r#"
process: relay_child
name: 承办
calendar: cn
start: work
variables:
  applicant_name: {type: string, required: true, label: 申请人}
nodes:
  - id: work
    type: task
    name: 办理
    role: township_staff
    next: done
  - id: done
    type: end
    name: 办结
    outcome: handled
"#;

#[derive(Clone)]
struct Ctx {
    url: String,
    clock: Arc<ManualClock>,
    project: Arc<Project>,
}

struct Teardown {
    database: TestDatabase,
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "reply_e2e").await;
    let dir = database.dir().join("processes");
    jiuzhu_testkit::copy_project(&repo("processes"), &dir, &["org.yaml"], &["policies"]);
    std::fs::write(dir.join("relay_parent.yaml"), PARENT).expect("parent");
    std::fs::write(dir.join("relay_child.yaml"), CHILD).expect("child");
    let project = Project::load(&dir).unwrap_or_else(|problems| {
        panic!("{} does not load:\n{}", dir.display(), problems.join("\n"))
    });
    let ctx = Ctx {
        url: database.url.clone(),
        clock: Arc::new(ManualClock::new(now())),
        project: Arc::new(project),
    };
    (ctx, Teardown { database })
}

async fn finish(db: Db, teardown: Teardown, outcome: Outcome) {
    teardown.database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(a_parent_waits_for_its_child_and_goes_on_when_it_ends);

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
        .expect("a valid time")
        .with_timezone(&Utc)
}

/// Delivers an outbox row as the dispatcher does: read typed, then carried out.
async fn deliver(engine: &Engine, row: &OutboxRow) -> Result<()> {
    let effect = parse_outbox(row).map_err(|e| anyhow::anyhow!("{e}"))?;
    let outcome = engine.deliver_outward(&effect, row.created_at, now()).await;
    ensure!(outcome == InternalOutcome::Done, "{}: {outcome:?}", row.id);
    Ok(())
}

async fn a_parent_waits_for_its_child_and_goes_on_when_it_ends(ctx: Ctx) -> Result<()> {
    let store = Store::open(&ctx.url).await?;
    let engine = Engine::new(store, ctx.project.clone(), ctx.clock.clone(), "n1")
        .map_err(|e| anyhow::anyhow!(e))?;
    engine.deploy().await?;
    let clerk = Actor {
        user: "zx_clerk".into(),
        roles: vec!["township_clerk".into()],
        unit: UNIT.into(),
    };
    let data = BTreeMap::from([("applicant_name".to_string(), Value::Str("张秀兰".into()))]);
    let started = engine.start("relay_parent", &clerk, data).await?;
    let parent = started.instance.id.clone();
    let start = started
        .outbox
        .iter()
        .find(|row| row.kind == "start_process")
        .context("the start_process effect")?;
    // The engine starts the child and replies at once: the parent records the child.
    deliver(&engine, start).await?;
    let (_, _, state) = engine.load(&parent).await?;
    let child = match state.vars.get("child") {
        Some(Value::Str(child)) => child.clone(),
        other => anyhow::bail!("the reply names the child: {other:?}"),
    };
    ensure!(
        state.tokens.iter().any(|t| t.node == "waiting"),
        "waits for the child's end: {:?}",
        state.tokens
    );
    // Delivered again (a node died before acknowledging): no second child, no second reply.
    deliver(&engine, start).await?;
    let (row, _, state) = engine.load(&parent).await?;
    ensure!(row.status == "active", "{}", row.status);
    ensure!(state.tokens.iter().any(|t| t.node == "waiting"));

    // The child's task is done: the child ends and queues its `on_end` message.
    let (_, _, child_state) = engine.load(&child).await?;
    let task = child_state
        .tasks
        .first()
        .context("the child's task")?
        .id
        .clone();
    let staff = Actor {
        user: "zx_staff1".into(),
        roles: vec!["township_staff".into()],
        unit: UNIT.into(),
    };
    let ended = engine.complete(&task, &staff, BTreeMap::new()).await?;
    ensure!(
        ended.instance.status == "completed",
        "{}",
        ended.instance.status
    );
    let notice = ended
        .outbox
        .iter()
        .find(|row| row.kind == "message")
        .context("the on_end message")?;
    deliver(&engine, notice).await?;

    // The parent goes on to its end, knowing how the child ended.
    let (row, _, state) = engine.load(&parent).await?;
    ensure!(
        row.status == "completed" && row.outcome.as_deref() == Some("relayed"),
        "{} {:?}",
        row.status,
        row.outcome
    );
    ensure!(
        state.vars.get("child_outcome") == Some(&Value::Str("handled".into())),
        "{:?}",
        state.vars
    );
    ensure!(state.received.len() == 2, "{:?}", state.received);
    Ok(())
}
