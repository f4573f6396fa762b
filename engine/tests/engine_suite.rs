//! The engine's one test suite — deploy, cases end to end, races, refusals, the audit
//! chain and the scheduler — run against SQLite (a temp file) and PostgreSQL alike.
//!
//! PostgreSQL comes from `JIUZHU_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each test gets a fresh schema (via `search_path`) that is dropped afterwards. When no
//! server answers, the PostgreSQL half fails and says how to start one. Time is a manual
//! clock: nothing here sleeps.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail, ensure};
use chrono::{DateTime, Duration, Utc};
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::group_commit::{GroupCommitOptions, GroupCommitter};
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::{Engine, EngineError, StepReport};
use jiuzhu_engine::scheduler::{FiredTimer, Scheduler, occurrence_instance_id};
use jiuzhu_engine::store::{InstanceFilter, Store, StoreError};
use jiuzhu_rules::Value;
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};

/// What a test body gets: a database, a clock, and the means to open engine nodes on them.
#[derive(Clone)]
struct Ctx {
    db: Db,
    url: String,
    clock: Arc<ManualClock>,
    project: Arc<Project>,
}

impl Ctx {
    /// An engine node on the test database, with its own connections.
    async fn node(&self, name: &str) -> Result<Engine> {
        self.node_on(name, self.project.clone()).await
    }

    async fn node_on(&self, name: &str, project: Arc<Project>) -> Result<Engine> {
        let store = Store::open(&self.url).await?;
        Engine::new(store, project, self.clock.clone(), name).map_err(|e| anyhow::anyhow!(e))
    }

    fn actor(&self, user: &str) -> Result<Actor> {
        let org = self.project.org.as_ref().context("org.yaml")?;
        let user = org.user(user).with_context(|| format!("no user {user}"))?;
        Ok(Actor {
            user: user.id.clone(),
            roles: user.roles.clone(),
            unit: user.unit.clone(),
        })
    }

    /// Runs SQL on a connection of its own, behind the engine's back.
    async fn raw(&self, sql: &str) -> Result<()> {
        jiuzhu_testkit::raw(self.db, &self.url, sql).await
    }
}

fn processes_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../processes")
}

fn load_project(dir: &Path) -> Arc<Project> {
    Arc::new(Project::load(dir).unwrap_or_else(|problems| {
        panic!("{} does not load:\n{}", dir.display(), problems.join("\n"))
    }))
}

/// What to clean up after a test.
struct Teardown {
    database: TestDatabase,
}

/// 2026-03-02 09:00 Beijing time, a Monday.
fn monday_morning() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
        .expect("valid time")
        .with_timezone(&Utc)
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "engine").await;
    let url = database.url.clone();
    let ctx = Ctx {
        db,
        url,
        clock: Arc::new(ManualClock::new(monday_morning())),
        project: load_project(&processes_dir()),
    };
    (ctx, Teardown { database })
}

async fn finish(db: Db, teardown: Teardown, outcome: Outcome) {
    teardown.database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(
    deploy_keeps_unchanged_versions_and_running_instances_keep_theirs,
    dibao_case_end_to_end_with_publicity_fired_by_the_scheduler,
    concurrent_completions_of_one_task_have_exactly_one_winner,
    a_node_behind_another_steps_on_the_current_state,
    a_claimed_task_is_completed_only_by_its_holder,
    claim_unclaim_delegate_and_reassign_are_steps_in_the_history,
    a_refused_claim_leaves_no_history_row,
    racing_claims_have_one_winner,
    a_steps_history_time_is_the_steps_now,
    a_case_is_started_for_a_unit_whose_users_can_act_on_it,
    bad_form_data_is_refused_and_changes_nothing,
    unknown_task_instance_and_message_are_not_found,
    history_chain_verifies_and_detects_tampering,
    expired_timer_leases_are_claimed_again,
    a_timer_batch_fires_once_on_instances_moved_after_their_prefetch,
    prefetch_skips_instances_that_do_not_load,
    cron_schedule_starts_each_occurrence_once,
    redeployed_cron_expression_moves_the_schedule,
);

// ---------------------------------------------------------------- fixtures

fn data(json: serde_json::Value) -> BTreeMap<String, Value> {
    match Value::from_json(&json) {
        Value::Object(map) => map,
        _ => BTreeMap::new(),
    }
}

fn application(wage: &str) -> BTreeMap<String, Value> {
    data(serde_json::json!({
        "applicant_name": "张秀兰",
        "area": "urban",
        "household": {
            "members": [
                {"id": "m1", "birth_date": "1950-05-01", "income": [{"kind": "pension_basic", "monthly": "180.00"}]},
                {"id": "m2", "birth_date": "1978-09-12", "income": [{"kind": "wage", "monthly": wage}]}
            ],
            "savings": "6000.00"
        }
    }))
}

fn task_of<'r>(report: &'r StepReport, node: &str) -> Result<&'r str> {
    report
        .tasks_opened
        .iter()
        .find(|t| t.node_id == node)
        .map(|t| t.id.as_str())
        .with_context(|| format!("no {node} task opened by this step"))
}

/// Open tasks of an instance by node id (from the inbox table, as staff see them).
async fn open_tasks(engine: &Engine, instance: &str) -> Result<BTreeMap<String, String>> {
    let (_, _, state) = engine.load(instance).await.map_err(anyhow::Error::new)?;
    Ok(state
        .tasks
        .iter()
        .map(|t| (t.node.clone(), t.id.clone()))
        .collect())
}

/// Starts a dibao case and takes it to the open `survey` task; returns (instance, survey task).
async fn case_at_survey(ctx: &Ctx, engine: &Engine) -> Result<(String, String)> {
    let clerk = ctx.actor("zx_clerk")?;
    let started = engine
        .start("dibao", &clerk, application("1000.00"))
        .await?;
    let accept = task_of(&started, "accept")?.to_string();
    let accepted = engine
        .complete(&accept, &clerk, data(serde_json::json!({"complete": true})))
        .await?;
    Ok((
        started.instance.id.clone(),
        task_of(&accepted, "survey")?.to_string(),
    ))
}

fn code<T: std::fmt::Debug>(result: &Result<T, EngineError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

// ---------------------------------------------------------------- deploy

async fn deploy_keeps_unchanged_versions_and_running_instances_keep_theirs(ctx: Ctx) -> Result<()> {
    let engine = ctx.node("n1").await?;
    let first = engine.deploy().await?;
    ensure!(!first.is_empty(), "nothing deployed");
    ensure!(first.iter().all(|d| d.version == 1), "{first:?}");
    let again = engine.deploy().await?;
    ensure!(
        again
            .iter()
            .map(|d| (&d.process_id, d.version))
            .collect::<Vec<_>>()
            == first
                .iter()
                .map(|d| (&d.process_id, d.version))
                .collect::<Vec<_>>(),
        "an unchanged deploy made new versions: {again:?}"
    );

    let clerk = ctx.actor("zx_clerk")?;
    let old_case = engine
        .start("dibao", &clerk, application("1000.00"))
        .await?;
    ensure!(old_case.instance.process_version == 1);

    // The same project with dibao renamed: a new version of dibao only.
    let dir = tempfile::tempdir()?;
    copy_dir(&processes_dir(), dir.path())?;
    let dibao = dir.path().join("dibao.yaml");
    let source = std::fs::read_to_string(&dibao)?;
    let renamed = source.replacen(
        "name: 最低生活保障审核确认",
        "name: 最低生活保障审核确认（修订）",
        1,
    );
    ensure!(renamed != source, "the rename did not apply");
    std::fs::write(&dibao, renamed)?;
    let changed = ctx.node_on("n2", load_project(dir.path())).await?;
    let deployed = changed.deploy().await?;
    for d in &deployed {
        let expected = if d.process_id == "dibao" { 2 } else { 1 };
        ensure!(d.version == expected, "{}@{}", d.process_id, d.version);
    }

    let new_case = changed
        .start("dibao", &clerk, application("1000.00"))
        .await?;
    ensure!(new_case.instance.process_version == 2);
    // The running case stays on version 1, whichever node moves it on.
    let accept = task_of(&old_case, "accept")?;
    let step = changed
        .complete(accept, &clerk, data(serde_json::json!({"complete": true})))
        .await?;
    ensure!(step.instance.process_version == 1);
    let (_, old_def, _) = changed.load(&old_case.instance.id).await?;
    let (_, new_def, _) = changed.load(&new_case.instance.id).await?;
    ensure!(old_def.name == "最低生活保障审核确认", "{}", old_def.name);
    ensure!(
        new_def.name == "最低生活保障审核确认（修订）",
        "{}",
        new_def.name
    );
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- a case end to end

async fn dibao_case_end_to_end_with_publicity_fired_by_the_scheduler(ctx: Ctx) -> Result<()> {
    let engine = ctx.node("n1").await?;
    engine.deploy().await?;
    let scheduler = Scheduler::new(&engine);
    let (instance, survey) = case_at_survey(&ctx, &engine).await?;
    let tasks = open_tasks(&engine, &instance).await?;
    ensure!(
        tasks.keys().cloned().collect::<Vec<_>>() == ["survey", "verify"],
        "{tasks:?}"
    );
    // The inbox shows the survey to township staff of the unit.
    let staff = ctx.actor("zx_staff1")?;
    let inbox = engine
        .store
        .tasks_for(
            &staff.roles,
            std::slice::from_ref(&staff.unit),
            &staff.user,
            50,
        )
        .await?;
    ensure!(inbox.iter().any(|t| t.id == survey), "{inbox:?}");

    engine
        .complete(
            &survey,
            &staff,
            data(serde_json::json!({"surveyors": ["李强", "赵敏"]})),
        )
        .await?;
    let verify = open_tasks(&engine, &instance).await?["verify"].clone();
    let step = engine
        .complete(
            &verify,
            &ctx.actor("county_staff1")?,
            data(serde_json::json!({"verification_ok": true})),
        )
        .await?;
    let opinion = task_of(&step, "initial_opinion")?.to_string();
    ctx.clock.advance(Duration::hours(2));
    let step = engine
        .complete(
            &opinion,
            &ctx.actor("zx_staff2")?,
            data(serde_json::json!({"proposal": "approve"})),
        )
        .await?;
    ensure!(step.tasks_opened.is_empty(), "publicity opens no task");

    // Six days on, publicity is still running.
    ctx.clock.advance(Duration::days(6));
    let tick = scheduler.tick().await?;
    ensure!(
        tick.fired.iter().all(|f| f.instance_id == instance),
        "{tick:?}"
    );
    ensure!(
        !open_tasks(&engine, &instance)
            .await?
            .contains_key("approve")
    );

    // A day later the publicity timer fires and the approval opens.
    ctx.clock.advance(Duration::days(1));
    let tick = scheduler.tick().await?;
    ensure!(!tick.fired.is_empty(), "no timer fired: {tick:?}");
    ensure!(tick.timer_failures.is_empty(), "{tick:?}");
    ensure!(
        tick.oldest_due_timer_lag.is_none(),
        "due timers left: {tick:?}"
    );
    let approve = open_tasks(&engine, &instance).await?["approve"].clone();
    let step = engine
        .complete(
            &approve,
            &ctx.actor("zx_head")?,
            data(serde_json::json!({"decision": "approve"})),
        )
        .await?;
    ensure!(step.instance.status == "completed", "{:?}", step.instance);
    ensure!(step.instance.outcome.as_deref() == Some("approved"));

    // The decision's effects wait in the outbox, each once.
    let outbox = engine
        .store
        .claim_outbox("dispatcher", engine.now(), Duration::seconds(30), 100)
        .await?;
    let kinds: BTreeMap<&str, usize> = outbox
        .iter()
        .filter(|o| o.entry.instance_id == instance)
        .fold(BTreeMap::new(), |mut kinds, o| {
            *kinds.entry(o.entry.kind.as_str()).or_default() += 1;
            kinds
        });
    for kind in ["payment", "start_process"] {
        ensure!(kinds.get(kind) == Some(&1), "{kind}: {kinds:?}");
    }
    let payment = outbox
        .iter()
        .find(|o| o.entry.kind == "payment")
        .context("payment")?;
    ensure!(
        payment.entry.payload["purpose"] == "dibao"
            && payment.entry.payload["schedule"] == "monthly",
        "{}",
        payment.entry.payload
    );
    ensure!(
        payment.entry.payload["id"] == payment.entry.id.as_str(),
        "the effect id is the idempotency key"
    );

    // The audit trail: start, four completions, the timer, the approval.
    let history = engine.store.history(&instance).await?;
    let events: Vec<&str> = history.iter().map(|h| h.event.as_str()).collect();
    ensure!(
        events
            == [
                "start", "complete", "complete", "complete", "complete", "timer", "complete"
            ],
        "{events:?}"
    );
    let timer_row = &history[5];
    ensure!(timer_row.actor.is_none(), "a timer acts for nobody");
    ensure!(
        timer_row.data["input"]["timer"].is_string(),
        "the fired timer is named: {}",
        timer_row.data
    );
    engine.store.verify_history(&instance).await?;
    let (_, def, state) = engine.load(&instance).await?;
    state.check_invariants(&def)?;
    Ok(())
}

// ---------------------------------------------------------------- races and refusals

async fn concurrent_completions_of_one_task_have_exactly_one_winner(ctx: Ctx) -> Result<()> {
    let setup = ctx.node("n0").await?;
    setup.deploy().await?;
    // Two nodes, two users of the same role, racing on the same task, several times over.
    let first = Arc::new(ctx.node("n1").await?);
    let second = Arc::new(ctx.node("n2").await?);
    let staff1 = ctx.actor("zx_staff1")?;
    let staff2 = ctx.actor("zx_staff2")?;
    for _ in 0..8 {
        let (instance, survey) = case_at_survey(&ctx, &setup).await?;
        let form = data(serde_json::json!({"surveyors": ["李强", "赵敏"]}));
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let race = |engine: Arc<Engine>, actor: Actor| {
            let (survey, form, barrier) = (survey.clone(), form.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                engine.complete(&survey, &actor, form).await
            })
        };
        let one = race(first.clone(), staff1.clone());
        let two = race(second.clone(), staff2.clone());
        let outcomes = [one.await?, two.await?];
        let codes: Vec<&str> = outcomes.iter().map(code).collect();
        let winners = codes.iter().filter(|c| **c == "ok").count();
        ensure!(winners == 1, "expected exactly one winner: {codes:?}");
        ensure!(
            codes
                .iter()
                .all(|c| matches!(*c, "ok" | "conflict" | "not_found")),
            "{codes:?}"
        );
        // The case took the step once: start, accept, survey.
        let history = setup.store.history(&instance).await?;
        ensure!(history.len() == 3, "{} history rows", history.len());
        let tasks = open_tasks(&setup, &instance).await?;
        ensure!(!tasks.contains_key("survey"), "{tasks:?}");
        setup.store.verify_history(&instance).await?;
    }
    Ok(())
}

/// A node keeps the state it last committed and steps on it without reading it back; when
/// another node has moved the case since, the step must still land on the current state:
/// the commit's version check refuses the stale one and the step runs again on a fresh load.
async fn a_node_behind_another_steps_on_the_current_state(ctx: Ctx) -> Result<()> {
    let behind = ctx.node("n1").await?;
    behind.deploy().await?;
    let ahead = ctx.node("n2").await?;
    let staff = ctx.actor("zx_staff1")?;
    let county = ctx.actor("county_staff1")?;

    // `behind` starts and accepts the case: it holds the case with survey and verify open.
    let (instance, survey) = case_at_survey(&ctx, &behind).await?;
    let verify = open_tasks(&behind, &instance).await?["verify"].clone();
    // `ahead` completes the survey: `behind`'s copy is now one version old.
    ahead
        .complete(
            &survey,
            &staff,
            data(serde_json::json!({"surveyors": ["李强", "赵敏"]})),
        )
        .await?;

    // Verify is open in both the stale and the current state: the stale run reaches the
    // commit and loses the version check; the retry sees the survey done, so the join
    // completes and the initial opinion opens. A commit of the stale state could not.
    let verified = behind
        .complete(
            &verify,
            &county,
            data(serde_json::json!({"verification_ok": true})),
        )
        .await?;
    ensure!(
        verified.instance.version == 4,
        "version {}",
        verified.instance.version
    );
    let opinion = task_of(&verified, "initial_opinion")?.to_string();

    // Now `ahead` is the one behind. Its next step is on a task its copy has never seen:
    // the core refuses it on the stale state, the retry on a fresh load completes it.
    let opined = ahead
        .complete(
            &opinion,
            &staff,
            data(serde_json::json!({"proposal": "approve"})),
        )
        .await?;
    ensure!(
        opined.instance.version == 5,
        "version {}",
        opined.instance.version
    );
    let tasks = open_tasks(&ahead, &instance).await?;
    ensure!(!tasks.contains_key("initial_opinion"), "{tasks:?}");

    // Each step landed once, in order, on an unbroken chain.
    let history = ahead.store.history(&instance).await?;
    ensure!(history.len() == 5, "{} history rows", history.len());
    ahead.store.verify_history(&instance).await?;
    // And what the store refuses, the retry still refuses: the opinion is done.
    let again = behind
        .complete(
            &opinion,
            &staff,
            data(serde_json::json!({"proposal": "approve"})),
        )
        .await;
    ensure!(
        matches!(code(&again), "not_found" | "conflict"),
        "{}",
        code(&again)
    );
    Ok(())
}

/// A claim binds on every node: whoever else completes the task is refused and the case
/// does not move, whether or not that node has the case in memory.
async fn a_claimed_task_is_completed_only_by_its_holder(ctx: Ctx) -> Result<()> {
    let warm = ctx.node("n1").await?;
    warm.deploy().await?;
    let cold = ctx.node("n2").await?;
    let holder = ctx.actor("zx_staff1")?;
    let other = ctx.actor("zx_staff2")?;
    let (instance, survey) = case_at_survey(&ctx, &warm).await?;
    cold.claim(&survey, &holder).await?;
    let form = data(serde_json::json!({"surveyors": ["李强", "赵敏"]}));
    for node in [&warm, &cold] {
        let refused = node.complete(&survey, &other, form.clone()).await;
        ensure!(code(&refused) == "conflict", "{refused:?}");
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        ensure!(message.contains("zx_staff1"), "{message}");
    }
    // start, accept, claim.
    ensure!(warm.store.history(&instance).await?.len() == 3);
    let done = warm.complete(&survey, &holder, form).await?;
    ensure!(
        done.instance.version == 4,
        "version {}",
        done.instance.version
    );
    let tasks = open_tasks(&cold, &instance).await?;
    ensure!(!tasks.contains_key("survey"), "{tasks:?}");
    Ok(())
}

/// Who may see a task in their queue (the inbox, as staff see it).
async fn queue_of(ctx: &Ctx, engine: &Engine, user: &str) -> Result<Vec<String>> {
    let actor = ctx.actor(user)?;
    Ok(engine
        .store
        .tasks_for(
            &actor.roles,
            std::slice::from_ref(&actor.unit),
            &actor.user,
            200,
        )
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect())
}

async fn claim_unclaim_delegate_and_reassign_are_steps_in_the_history(ctx: Ctx) -> Result<()> {
    let engine = ctx.node("n1").await?;
    engine.deploy().await?;
    let (instance, survey) = case_at_survey(&ctx, &engine).await?;
    let staff1 = ctx.actor("zx_staff1")?;
    let staff2 = ctx.actor("zx_staff2")?;
    let head = ctx.actor("zx_head")?;
    let holder = |engine: &Engine| {
        let engine = engine.store.clone();
        let survey = survey.clone();
        async move { Ok::<_, anyhow::Error>(engine.task(&survey).await?.context("task")?.assignee) }
    };

    engine.claim(&survey, &staff1).await?;
    ensure!(holder(&engine).await? == Some("zx_staff1".into()));
    ensure!(
        queue_of(&ctx, &engine, "zx_staff1")
            .await?
            .contains(&survey)
    );
    ensure!(
        !queue_of(&ctx, &engine, "zx_staff2")
            .await?
            .contains(&survey)
    );
    // The core's claim is what the engine steps on: a colleague is refused.
    let (_, _, state) = engine.load(&instance).await?;
    ensure!(state.task(&survey).and_then(|t| t.claimed_by.clone()) == Some("zx_staff1".into()));

    engine.unclaim(&survey, &staff1).await?;
    ensure!(holder(&engine).await?.is_none());
    ensure!(
        queue_of(&ctx, &engine, "zx_staff2")
            .await?
            .contains(&survey)
    );

    engine.claim(&survey, &staff2).await?;
    engine.delegate(&survey, &staff2, &staff1).await?;
    ensure!(holder(&engine).await? == Some("zx_staff1".into()));
    engine.reassign(&survey, &head, &staff2).await?;
    ensure!(holder(&engine).await? == Some("zx_staff2".into()));
    let refused = engine
        .complete(
            &survey,
            &staff1,
            data(serde_json::json!({"surveyors": ["李强", "赵敏"]})),
        )
        .await;
    ensure!(code(&refused) == "conflict", "{refused:?}");

    let history = engine.store.history(&instance).await?;
    let steps: Vec<(&str, Option<&str>, Option<&str>)> = history
        .iter()
        .skip(2)
        .map(|h| (h.event.as_str(), h.actor.as_deref(), h.node.as_deref()))
        .collect();
    ensure!(
        steps
            == [
                ("claim", Some("zx_staff1"), Some("survey")),
                ("unclaim", Some("zx_staff1"), Some("survey")),
                ("claim", Some("zx_staff2"), Some("survey")),
                ("delegate", Some("zx_staff2"), Some("survey")),
                ("reassign", Some("zx_head"), Some("survey")),
            ],
        "{steps:?}"
    );
    ensure!(
        history[5].data["input"]["to"] == "zx_staff1",
        "{:?}",
        history[5].data
    );
    engine.store.verify_history(&instance).await?;
    Ok(())
}

async fn a_refused_claim_leaves_no_history_row(ctx: Ctx) -> Result<()> {
    let engine = ctx.node("n1").await?;
    engine.deploy().await?;
    let (instance, survey) = case_at_survey(&ctx, &engine).await?;
    let before = engine.store.history(&instance).await?;
    // No township_staff role; the role but another township; a head who is not the holder
    // of an unclaimed task cannot release it either.
    for (user, expected) in [
        ("zx_clerk", "forbidden"),
        ("fa_staff1", "forbidden"),
        ("county_staff1", "forbidden"),
    ] {
        let refused = engine.claim(&survey, &ctx.actor(user)?).await;
        ensure!(code(&refused) == expected, "{user}: {refused:?}");
        ensure!(refused.as_ref().err().is_some_and(|e| e.status() == 403));
    }
    let refused = engine.unclaim(&survey, &ctx.actor("zx_head")?).await;
    ensure!(code(&refused) == "conflict", "{refused:?}");
    let refused = engine
        .reassign(&survey, &ctx.actor("zx_staff1")?, &ctx.actor("zx_staff2")?)
        .await;
    ensure!(code(&refused) == "forbidden", "{refused:?}");
    let refused = engine
        .reassign(&survey, &ctx.actor("zx_head")?, &ctx.actor("fa_staff1")?)
        .await;
    ensure!(code(&refused) == "forbidden", "{refused:?}");
    let missing = engine
        .claim("dibao-nope-t1", &ctx.actor("zx_staff1")?)
        .await;
    ensure!(code(&missing) == "not_found", "{missing:?}");
    ensure!(engine.store.history(&instance).await? == before);
    ensure!(
        engine
            .store
            .task(&survey)
            .await?
            .context("task")?
            .assignee
            .is_none()
    );
    Ok(())
}

async fn racing_claims_have_one_winner(ctx: Ctx) -> Result<()> {
    let n1 = ctx.node("n1").await?;
    n1.deploy().await?;
    let n2 = ctx.node("n2").await?;
    let (instance, survey) = case_at_survey(&ctx, &n1).await?;
    // Both nodes hold the case's state before they race.
    n2.prefetch(std::slice::from_ref(&instance)).await?;
    let (staff1, staff2) = (ctx.actor("zx_staff1")?, ctx.actor("zx_staff2")?);
    let (one, two) = tokio::join!(n1.claim(&survey, &staff1), n2.claim(&survey, &staff2));
    let codes = [code(&one), code(&two)];
    ensure!(
        codes == ["ok", "conflict"] || codes == ["conflict", "ok"],
        "{one:?} {two:?}"
    );
    let winner = if one.is_ok() {
        "zx_staff1"
    } else {
        "zx_staff2"
    };
    let claims: Vec<_> = n1
        .store
        .history(&instance)
        .await?
        .into_iter()
        .filter(|h| h.event == "claim")
        .collect();
    ensure!(claims.len() == 1, "{claims:?}");
    ensure!(claims[0].actor.as_deref() == Some(winner));
    ensure!(
        n1.store
            .task(&survey)
            .await?
            .context("task")?
            .assignee
            .as_deref()
            == Some(winner)
    );
    Ok(())
}

async fn a_steps_history_time_is_the_steps_now(ctx: Ctx) -> Result<()> {
    let engine = ctx.node("n1").await?;
    engine.deploy().await?;
    // A time with milliseconds, which the store keeps.
    let at = monday_morning() + Duration::milliseconds(1_234);
    ctx.clock.set(at);
    let clerk = ctx.actor("zx_clerk")?;
    let started = engine
        .start("dibao", &clerk, application("1000.00"))
        .await?;
    let instance = started.instance.id.clone();
    ensure!(started.instance.updated_at == at);
    ensure!(started.tasks_opened.iter().all(|t| t.created_at == at));
    let later = at + Duration::minutes(90);
    ctx.clock.set(later);
    let accept = task_of(&started, "accept")?.to_string();
    let accepted = engine
        .complete(&accept, &clerk, data(serde_json::json!({"complete": true})))
        .await?;
    let survey = task_of(&accepted, "survey")?.to_string();
    ensure!(accepted.instance.updated_at == later);
    let claimed_at = later + Duration::seconds(7);
    ctx.clock.set(claimed_at);
    engine.claim(&survey, &ctx.actor("zx_staff1")?).await?;
    let history = engine.store.history(&instance).await?;
    let times: Vec<_> = history.iter().map(|h| h.at).collect();
    ensure!(times == [at, later, claimed_at], "{times:?}");
    let row = engine
        .store
        .load_instance(&instance)
        .await?
        .context("row")?;
    ensure!(row.updated_at == claimed_at);
    let task = engine.store.task(&survey).await?.context("task")?;
    ensure!(task.created_at == later);
    Ok(())
}

async fn a_case_is_started_for_a_unit_whose_users_can_act_on_it(ctx: Ctx) -> Result<()> {
    let engine = ctx.node("n1").await?;
    engine.deploy().await?;
    let county = ctx.actor("county_staff1")?;
    // In the county's own unit nobody could accept it: refused, nothing stored.
    let nowhere = engine.start("dibao", &county, application("1000.00")).await;
    ensure!(code(&nowhere) == "invalid_data", "{nowhere:?}");
    ensure!(
        engine
            .store
            .list_instances(&InstanceFilter::default())
            .await?
            .is_empty()
    );
    // Not for a unit outside the county.
    let outside = engine
        .start_in(
            "dibao",
            &county,
            Some("双鸭山市/宝山区/七星街道"),
            application("1000.00"),
        )
        .await;
    ensure!(code(&outside) == "forbidden", "{outside:?}");
    // For a township of the county: in the township clerk's queue.
    let township = "双鸭山市/尖山区/中心站街道";
    let started = engine
        .start_in("dibao", &county, Some(township), application("1000.00"))
        .await?;
    ensure!(started.instance.unit == township);
    let accept = task_of(&started, "accept")?.to_string();
    ensure!(queue_of(&ctx, &engine, "zx_clerk").await?.contains(&accept));
    ensure!(!queue_of(&ctx, &engine, "fa_clerk").await?.contains(&accept));
    Ok(())
}

async fn bad_form_data_is_refused_and_changes_nothing(ctx: Ctx) -> Result<()> {
    let engine = ctx.node("n1").await?;
    engine.deploy().await?;
    let (instance, survey) = case_at_survey(&ctx, &engine).await?;
    let before = engine
        .store
        .load_instance(&instance)
        .await?
        .context("row")?;
    let history_before = engine.store.history(&instance).await?;
    let staff = ctx.actor("zx_staff1")?;
    for bad in [
        serde_json::json!({"surveyors": ["李强"]}),
        serde_json::json!({"surveyors": "李强"}),
        serde_json::json!({}),
        serde_json::json!({"surveyors": ["李强", "赵敏"], "bogus": 1}),
    ] {
        let outcome = engine.complete(&survey, &staff, data(bad.clone())).await;
        ensure!(code(&outcome) == "invalid_data", "{bad}: {outcome:?}");
    }
    let after = engine
        .store
        .load_instance(&instance)
        .await?
        .context("row")?;
    ensure!(after == before, "the instance changed");
    ensure!(engine.store.history(&instance).await? == history_before);
    ensure!(engine.store.task(&survey).await?.is_some());
    ensure!(open_tasks(&engine, &instance).await?.contains_key("survey"));
    // The same task still takes good data.
    engine
        .complete(
            &survey,
            &staff,
            data(serde_json::json!({"surveyors": ["李强", "赵敏"]})),
        )
        .await?;
    Ok(())
}

async fn unknown_task_instance_and_message_are_not_found(ctx: Ctx) -> Result<()> {
    let engine = ctx.node("n1").await?;
    engine.deploy().await?;
    let (instance, survey) = case_at_survey(&ctx, &engine).await?;
    let staff = ctx.actor("zx_staff1")?;
    let outcomes = [
        (
            "unknown task",
            code(
                &engine
                    .complete("dibao-nope-t1", &staff, BTreeMap::new())
                    .await,
            ),
        ),
        (
            "unknown instance",
            code(
                &engine
                    .message("dibao-nope", "withdraw", None, BTreeMap::new())
                    .await,
            ),
        ),
        (
            "unknown message",
            code(
                &engine
                    .message(&instance, "bogus", None, BTreeMap::new())
                    .await,
            ),
        ),
        (
            "load of unknown instance",
            code(&engine.load("dibao-nope").await),
        ),
        (
            "unknown process",
            code(&engine.start("nope", &staff, BTreeMap::new()).await),
        ),
    ];
    for (what, code) in outcomes {
        ensure!(code == "not_found", "{what}: {code}");
    }
    // A task that was completed is gone for the next user.
    let form = data(serde_json::json!({"surveyors": ["李强", "赵敏"]}));
    engine.complete(&survey, &staff, form.clone()).await?;
    let again = engine
        .complete(&survey, &ctx.actor("zx_staff2")?, form)
        .await;
    ensure!(
        matches!(code(&again), "not_found" | "conflict"),
        "{again:?}"
    );
    Ok(())
}

async fn history_chain_verifies_and_detects_tampering(ctx: Ctx) -> Result<()> {
    let engine = ctx.node("n1").await?;
    engine.deploy().await?;
    let (instance, survey) = case_at_survey(&ctx, &engine).await?;
    engine
        .complete(
            &survey,
            &ctx.actor("zx_staff1")?,
            data(serde_json::json!({"surveyors": ["李强", "赵敏"]})),
        )
        .await?;
    let history = engine.store.history(&instance).await?;
    ensure!(history.len() == 3);
    for pair in history.windows(2) {
        ensure!(
            pair[1].prev_hash == pair[0].hash,
            "broken link at {}",
            pair[1].seq
        );
    }
    engine.store.verify_history(&instance).await?;
    // Someone edits who completed the survey, straight in the database.
    ctx.raw(&format!(
        "UPDATE history SET actor = 'zx_staff2' WHERE instance_id = '{instance}' AND seq = 3"
    ))
    .await?;
    match engine.store.verify_history(&instance).await {
        Err(StoreError::Tampered(_)) => Ok(()),
        other => bail!("tampering went unnoticed: {other:?}"),
    }
}

// ---------------------------------------------------------------- scheduler

async fn expired_timer_leases_are_claimed_again(ctx: Ctx) -> Result<()> {
    let engine = ctx.node("n1").await?;
    engine.deploy().await?;
    let (instance, _) = case_at_survey(&ctx, &engine).await?;
    // The survey's reminder (4 working days on) and more become due.
    ctx.clock.advance(Duration::days(30));
    // A node claims every due timer, then dies before firing any.
    let crashed = ctx.node("crashed").await?;
    let claimed = crashed
        .store
        .claim_due_timers("crashed", ctx.clock_now(), Duration::seconds(60), 1000)
        .await?;
    ensure!(!claimed.is_empty(), "nothing was due");
    let claimed_ids: BTreeSet<String> = claimed.iter().map(|t| t.id.clone()).collect();

    let survivor = ctx.node("survivor").await?;
    let scheduler = Scheduler::new(&survivor);
    let tick = scheduler.tick().await?;
    ensure!(
        tick.fired.is_empty(),
        "fired under another node's lease: {tick:?}"
    );
    ensure!(
        tick.oldest_due_timer_lag.is_none(),
        "leased timers are not claimable, so not late yet"
    );

    // The lease runs out: now they are late, and the survivor fires them.
    ctx.clock.advance(Duration::seconds(61));
    let lag = survivor.store.oldest_due_timer_lag(ctx.clock_now()).await?;
    ensure!(
        lag.is_some_and(|lag| lag >= Duration::seconds(1)),
        "{lag:?}"
    );
    let tick = scheduler.tick().await?;
    let fired: BTreeSet<String> = tick.fired.iter().map(|f| f.timer_id.clone()).collect();
    ensure!(
        claimed_ids.is_subset(&fired),
        "claimed {claimed_ids:?}, fired {fired:?}, stale {}",
        tick.stale
    );
    ensure!(tick.oldest_due_timer_lag.is_none(), "{tick:?}");
    // Every timer event is in the history once.
    let history = survivor.store.history(&instance).await?;
    let mut seen = BTreeSet::new();
    for row in history.iter().filter(|h| h.event == "timer") {
        let timer = row.data["input"]["timer"].as_str().context("timer id")?;
        ensure!(seen.insert(timer.to_string()), "{timer} fired twice");
    }
    ensure!(seen == fired, "history {seen:?} vs fired {fired:?}");
    let (_, def, state) = survivor.load(&instance).await?;
    state.check_invariants(&def)?;
    Ok(())
}

/// The scheduler reads a claimed batch's instances in a few statements before it fires
/// them. When another node moves one of them after that read, the firing node's copy is
/// stale: the commit's version check refuses the step on it, and the timer fires once, on
/// a fresh load, after the other node's step.
async fn a_timer_batch_fires_once_on_instances_moved_after_their_prefetch(ctx: Ctx) -> Result<()> {
    let starter = ctx.node("starter").await?;
    starter.deploy().await?;
    let mut cases = Vec::new();
    for _ in 0..3 {
        cases.push(case_at_survey(&ctx, &starter).await?);
    }
    let ids: Vec<String> = cases.iter().map(|(id, _)| id.clone()).collect();
    // Every deadline timer of the three cases comes due.
    ctx.clock.advance(Duration::days(30));

    // A node that has none of them in memory, firing several instances at once through
    // the group committer, as a node under load does.
    let store = Store::open(&ctx.url).await?;
    let committer = GroupCommitter::spawn(store.clone(), GroupCommitOptions::default());
    let firing = Engine::new(store, ctx.project.clone(), ctx.clock.clone(), "firing")
        .map_err(|e| anyhow::anyhow!(e))?
        .with_group_commit(committer.clone(), 4);
    let read = firing.prefetch(&ids).await?;
    ensure!(read == ids.len(), "prefetch read {read} of {}", ids.len());
    let again = firing.prefetch(&ids).await?;
    ensure!(again == 0, "held instances were read again: {again}");
    let unknown = firing.prefetch(&["no-such-case".to_string()]).await?;
    ensure!(unknown == 0, "an unknown instance was kept");

    // Another node completes the survey of the middle case: the firing node's copy of it
    // is now one version behind. The survey's timers go with it; verify's stay due.
    let (moved, survey) = &cases[1];
    let other = ctx.node("other").await?;
    let surveyed = other
        .complete(
            survey,
            &ctx.actor("zx_staff1")?,
            data(serde_json::json!({"surveyors": ["李强", "赵敏"]})),
        )
        .await?;
    ensure!(
        surveyed.instance.version == 3,
        "version {}",
        surveyed.instance.version
    );

    let tick = Scheduler::new(&firing).tick().await?;
    ensure!(
        tick.stale == 0 && tick.busy == 0 && tick.timer_failures.is_empty(),
        "{tick:?}"
    );
    ensure!(
        tick.oldest_due_timer_lag.is_none(),
        "a due timer is left: {tick:?}"
    );
    // One step more than fired reached the commit: the first on the stale copy, which the
    // version check refused.
    let committed = committer.stats().steps();
    ensure!(
        committed == tick.fired.len() as u64 + 1,
        "{committed} steps committed for {} firings",
        tick.fired.len()
    );
    for id in &ids {
        // Exactly one step per timer: each fired timer is one history row, the versions
        // follow one another, and nothing else moved the case.
        let fired: Vec<&FiredTimer> = tick.fired.iter().filter(|f| &f.instance_id == id).collect();
        ensure!(!fired.is_empty(), "no timer of {id} fired");
        let mut versions: Vec<i64> = fired.iter().map(|f| f.version).collect();
        versions.sort_unstable();
        let first = if id == moved { 4 } else { 3 };
        let expected: Vec<i64> = (first..first + versions.len() as i64).collect();
        ensure!(versions == expected, "{id}: fired at versions {versions:?}");
        let history = firing.store.history(id).await?;
        ensure!(
            history.len() as i64 == first - 1 + fired.len() as i64,
            "{id}: {} history rows for {} firings",
            history.len(),
            fired.len()
        );
        let mut seen = BTreeSet::new();
        for row in history.iter().filter(|h| h.event == "timer") {
            let timer = row.data["input"]["timer"].as_str().context("timer id")?;
            ensure!(seen.insert(timer.to_string()), "{id}: {timer} fired twice");
        }
        let fired_ids: BTreeSet<String> = fired.iter().map(|f| f.timer_id.clone()).collect();
        ensure!(
            seen == fired_ids,
            "{id}: history {seen:?}, fired {fired_ids:?}"
        );
        firing.store.verify_history(id).await?;
        let (_, def, state) = firing.load(id).await?;
        state.check_invariants(&def)?;
    }
    // The other node's step is kept: the stale copy did not overwrite it.
    let history = firing.store.history(moved).await?;
    ensure!(
        history.get(2).is_some_and(|row| row.event == "complete"),
        "{:?}",
        history.iter().map(|row| &row.event).collect::<Vec<_>>()
    );
    let tasks = open_tasks(&firing, moved).await?;
    ensure!(!tasks.contains_key("survey"), "survey reopened: {tasks:?}");
    Ok(())
}

/// A prefetch keeps only what loads; an instance whose stored state was changed behind
/// the engine's back is left to its firing, which refuses it as `tampered`.
async fn prefetch_skips_instances_that_do_not_load(ctx: Ctx) -> Result<()> {
    let starter = ctx.node("starter").await?;
    starter.deploy().await?;
    let (sound, _) = case_at_survey(&ctx, &starter).await?;
    let (broken, _) = case_at_survey(&ctx, &starter).await?;
    // A state edited in the database no longer matches the case's signed head.
    ctx.raw(&format!(
        "UPDATE instances SET state = '{{\"broken\": true}}' WHERE id = '{broken}'"
    ))
    .await?;
    ctx.clock.advance(Duration::days(30));

    let firing = ctx.node("firing").await?;
    let read = firing.prefetch(&[sound.clone(), broken.clone()]).await?;
    ensure!(read == 1, "prefetch kept {read}");
    let tick = Scheduler::new(&firing).tick().await?;
    ensure!(
        tick.fired.iter().any(|f| f.instance_id == sound),
        "{tick:?}"
    );
    ensure!(
        tick.fired.iter().all(|f| f.instance_id == sound),
        "{tick:?}"
    );
    ensure!(
        !tick.timer_failures.is_empty()
            && tick
                .timer_failures
                .iter()
                .all(|f| f.instance_id == broken && f.error.code() == "tampered"),
        "{tick:?}"
    );
    Ok(())
}

impl Ctx {
    fn clock_now(&self) -> DateTime<Utc> {
        use jiuzhu_engine::clock::Clock as _;
        self.clock.now()
    }
}

fn beijing(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("valid time")
        .with_timezone(&Utc)
}

async fn cron_schedule_starts_each_occurrence_once(ctx: Ctx) -> Result<()> {
    ctx.clock.set(beijing("2026-10-01T09:00:00+08:00"));
    let nodes = [
        Arc::new(ctx.node("n1").await?),
        Arc::new(ctx.node("n2").await?),
        Arc::new(ctx.node("n3").await?),
    ];
    nodes[0].deploy().await?;
    let tick_all = async || -> Result<Vec<String>> {
        let mut handles = Vec::new();
        for node in &nodes {
            let node = node.clone();
            handles.push(tokio::spawn(async move {
                Scheduler::new(&node).tick().await.map(|report| {
                    report
                        .started
                        .into_iter()
                        .map(|s| s.instance_id)
                        .collect::<Vec<_>>()
                })
            }));
        }
        let mut started = Vec::new();
        for handle in handles {
            started.extend(handle.await??);
        }
        started.sort();
        Ok(started)
    };

    // Before the first occurrence nothing starts; the schedule is registered once.
    ensure!(tick_all().await?.is_empty());
    let rows = nodes[0].store.schedules().await?;
    ensure!(rows.len() == 1, "{rows:?}");
    ensure!(rows[0].process_id == "heating_aid" && rows[0].schedule_id == "yearly");
    ensure!(
        rows[0].next_due_at == beijing("2026-10-15T09:00:00+08:00"),
        "cron read in +08:00: {}",
        rows[0].next_due_at
    );

    // One second early: nothing. On the dot: exactly one start across three nodes.
    ctx.clock.set(beijing("2026-10-15T08:59:59+08:00"));
    ensure!(tick_all().await?.is_empty());
    ctx.clock.set(beijing("2026-10-15T09:00:00+08:00"));
    let occurrence = DateTime::parse_from_rfc3339("2026-10-15T09:00:00+08:00")?;
    let expected = occurrence_instance_id("heating_aid", "yearly", occurrence);
    ensure!(tick_all().await? == std::slice::from_ref(&expected));
    ensure!(tick_all().await?.is_empty(), "started twice");

    let (row, def, state) = nodes[1].load(&expected).await?;
    ensure!(row.unit == "双鸭山市/尖山区", "{}", row.unit);
    ensure!(state.vars.get("season") == Some(&Value::Str("2026-2027".into())));
    ensure!(state.started_by == "scheduler");
    state.check_invariants(&def)?;
    // The season's run waits at its batch node for the ledger's report.
    ensure!(
        state.tokens.iter().any(|t| t.node == "pay"),
        "{:?}",
        state.tokens
    );

    // The nodes were down for three seasons: each missed occurrence starts once.
    ctx.clock.set(beijing("2029-11-01T09:00:00+08:00"));
    let started = tick_all().await?;
    ensure!(
        started
            == [
                "heating_aid-yearly-20271015T090000",
                "heating_aid-yearly-20281015T090000",
                "heating_aid-yearly-20291015T090000",
            ],
        "{started:?}"
    );
    ensure!(tick_all().await?.is_empty());
    let all = nodes[0]
        .store
        .list_instances(&InstanceFilter {
            process_id: Some("heating_aid".into()),
            ..InstanceFilter::default()
        })
        .await?;
    ensure!(all.len() == 4, "{} instances", all.len());
    let rows = nodes[0].store.schedules().await?;
    ensure!(rows[0].next_due_at == beijing("2030-10-15T09:00:00+08:00"));
    ensure!(rows[0].last_started_at == Some(beijing("2029-10-15T09:00:00+08:00")));
    Ok(())
}

async fn redeployed_cron_expression_moves_the_schedule(ctx: Ctx) -> Result<()> {
    ctx.clock.set(beijing("2026-10-01T09:00:00+08:00"));
    let engine = ctx.node("n1").await?;
    engine.deploy().await?;
    Scheduler::new(&engine).tick().await?;

    // The office moves the batch to 1 October; the new version replaces the schedule.
    let dir = tempfile::tempdir()?;
    copy_dir(&processes_dir(), dir.path())?;
    let file = dir.path().join("heating_aid.yaml");
    let source = std::fs::read_to_string(&file)?;
    let moved = source.replacen("cron: \"0 0 9 15 10 *\"", "cron: \"0 0 9 1 10 *\"", 1);
    ensure!(moved != source, "the cron edit did not apply");
    std::fs::write(&file, moved)?;
    let changed = ctx.node_on("n2", load_project(dir.path())).await?;
    changed.deploy().await?;
    let tick = Scheduler::new(&changed).tick().await?;
    ensure!(tick.started.is_empty(), "{tick:?}");
    let rows = changed.store.schedules().await?;
    ensure!(rows[0].cron == "0 0 9 1 10 *", "{rows:?}");
    // 1 October 09:00 is now, not after now: next year's.
    ensure!(
        rows[0].next_due_at == beijing("2027-10-01T09:00:00+08:00"),
        "{}",
        rows[0].next_due_at
    );
    Ok(())
}
