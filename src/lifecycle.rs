//! The case lifecycle on the durable store: deploy, start, tasks, claim,
//! complete, message, show, history, run, and the demo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};
use jiuzhu_adapters::dispatch::{DispatchConfig, Dispatcher};
use jiuzhu_adapters::notify::{Notifier, NotifyConfig, TemplateSet};
use jiuzhu_adapters::payments::{Ledger, PaymentsConfig};
use jiuzhu_engine::clock::{Clock, SystemClock};
use jiuzhu_engine::core::{Actor, InstanceState};
use jiuzhu_engine::group_commit::{GroupCommitOptions, GroupCommitter};
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::{Engine, EngineError, TIMER_CONCURRENCY};
use jiuzhu_engine::scheduler::{Scheduler, TickReport};
use jiuzhu_engine::store::{InstanceFilter, Store};
use jiuzhu_rules::Value;

/// Where the database is: `--db`, else `JIUZHU_DB`, else `data/jiuzhu.db` under the data directory.
pub fn database_url(db: Option<&str>) -> String {
    if let Some(db) = db {
        return db.to_string();
    }
    if let Ok(db) = std::env::var("JIUZHU_DB")
        && !db.is_empty()
    {
        return db;
    }
    let dir = std::env::var("JIUZHU_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("data"));
    dir.join("jiuzhu.db").display().to_string()
}

pub struct Session {
    /// Shared with the dispatcher, which starts processes for `start_process` effects.
    pub engine: Arc<Engine>,
}

impl Session {
    pub async fn open(db: Option<&str>, definitions: &Path) -> Result<Session> {
        let project =
            Project::load(definitions).map_err(|problems| anyhow!(problems.join("\n")))?;
        let url = database_url(db);
        if !url.starts_with("postgres")
            && let Some(parent) = Path::new(
                url.trim_start_matches("sqlite:")
                    .split('?')
                    .next()
                    .unwrap_or_default(),
            )
            .parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let store = Store::open(&url)
            .await
            .with_context(|| format!("opening the database {url}"))?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        // Concurrent steps share a commit (a node firing timers, several requests at once);
        // a lone step still commits at once, on its own.
        let committer = GroupCommitter::spawn(store.clone(), GroupCommitOptions::default());
        let engine = Engine::new(store, Arc::new(project), clock, &node_name())
            .map_err(|e| anyhow!(e))?
            .with_group_commit(committer, TIMER_CONCURRENCY);
        Ok(Session {
            engine: Arc::new(engine),
        })
    }

    /// A user of the org directory, as an actor.
    pub fn actor(&self, user: &str) -> Result<Actor> {
        let org = self
            .engine
            .project
            .org
            .as_ref()
            .ok_or_else(|| anyhow!("no org.yaml beside the definitions"))?;
        let u = org
            .user(user)
            .ok_or_else(|| anyhow!("not_found: no user {user} in org.yaml"))?;
        Ok(Actor {
            user: u.id.clone(),
            roles: u.roles.clone(),
            unit: u.unit.clone(),
        })
    }
}

fn node_name() -> String {
    format!("node-{}", std::process::id())
}

/// Reads `--data FILE` (JSON or YAML) into a map.
pub fn read_data(file: Option<&Path>) -> Result<BTreeMap<String, Value>> {
    let Some(file) = file else {
        return Ok(BTreeMap::new());
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let json: serde_json::Value = if file.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", file.display()))?
    } else {
        serde_saphyr::from_str(&text).map_err(|e| anyhow!("{}: {e}", file.display()))?
    };
    match Value::from_json(&json) {
        Value::Object(map) => Ok(map),
        _ => bail!("invalid_data: {}: expected an object at $", file.display()),
    }
}

/// Prints an engine error as `CODE: message` and returns exit code 1.
pub fn fail(e: &EngineError) -> i32 {
    eprintln!("{}: {e}", e.code());
    1
}

pub async fn deploy(session: &Session) -> Result<i32> {
    // Notices are checked now, not at 3 a.m.: every template must load (no unknown
    // variables) and every template a definition names must exist.
    let templates_dir = session.engine.project.dir.join("templates");
    if templates_dir.is_dir() {
        let templates = match TemplateSet::load_dir(&templates_dir) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("invalid_definition: {e}\nnothing deployed");
                return Ok(1);
            }
        };
        let mut used: Vec<String> = vec!["task_reminder".into(), "escalation".into()];
        for def in session.engine.project.definitions.values() {
            used.extend(def.notification_templates());
        }
        let names: Vec<&str> = used.iter().map(String::as_str).collect();
        if let Err(e) = templates.check_names(&names) {
            eprintln!("invalid_definition: {e}\nnothing deployed");
            return Ok(1);
        }
    }
    let deployments = match session.engine.deploy().await {
        Ok(d) => d,
        Err(e) => return Ok(fail(&e)),
    };
    for d in deployments {
        println!("{}@{} {}", d.process_id, d.version, &d.hash[..12]);
    }
    Ok(0)
}

pub async fn start(
    session: &Session,
    process: &str,
    data: Option<&Path>,
    user: &str,
) -> Result<i32> {
    let actor = session.actor(user)?;
    let data = read_data(data)?;
    match session.engine.start(process, &actor, data).await {
        Ok(report) => {
            println!("{}", report.instance.id);
            for task in report.tasks_opened {
                println!(
                    "  task {} {} ({}, {})",
                    task.id, task.label, task.node_id, task.role
                );
            }
            Ok(0)
        }
        Err(e) => Ok(fail(&e)),
    }
}

pub async fn tasks(session: &Session, user: &str) -> Result<i32> {
    let actor = session.actor(user)?;
    let tasks = session
        .engine
        .store
        .tasks_for(
            &actor.roles,
            std::slice::from_ref(&actor.unit),
            &actor.user,
            200,
        )
        .await?;
    if tasks.is_empty() {
        println!("(no tasks for {user})");
    }
    for task in tasks {
        let due = task
            .due_at
            .map(|d| {
                d.with_timezone(
                    &chrono::FixedOffset::east_opt(8 * 3600)
                        .unwrap_or(chrono::FixedOffset::east_opt(0).expect("UTC")),
                )
                .format("%Y-%m-%d %H:%M")
                .to_string()
            })
            .unwrap_or_else(|| "-".into());
        let holder = task
            .assignee
            .as_deref()
            .map(|a| format!(" [{a}]"))
            .unwrap_or_default();
        println!(
            "{}  due {due}  {}  {}  {}{holder}",
            task.id, task.label, task.instance_id, task.unit
        );
    }
    Ok(0)
}

pub async fn claim(session: &Session, task: &str, user: &str) -> Result<i32> {
    let actor = session.actor(user)?;
    match session.engine.claim(task, &actor).await {
        Ok(t) => {
            println!("claimed {} ({}) for {user}", t.id, t.label);
            Ok(0)
        }
        Err(e) => Ok(fail(&e)),
    }
}

pub async fn complete(
    session: &Session,
    task: &str,
    data: Option<&Path>,
    user: &str,
) -> Result<i32> {
    let actor = session.actor(user)?;
    let data = read_data(data)?;
    match session.engine.complete(task, &actor, data).await {
        Ok(report) => {
            print_step(&report);
            Ok(0)
        }
        Err(e) => Ok(fail(&e)),
    }
}

pub async fn message(
    session: &Session,
    instance: &str,
    name: &str,
    data: Option<&Path>,
    user: Option<&str>,
) -> Result<i32> {
    let actor = user.map(|u| session.actor(u)).transpose()?;
    let data = read_data(data)?;
    match session
        .engine
        .message(instance, name, actor.as_ref(), data)
        .await
    {
        Ok(report) => {
            print_step(&report);
            Ok(0)
        }
        Err(e) => Ok(fail(&e)),
    }
}

fn print_step(report: &jiuzhu_engine::runtime::StepReport) {
    let outcome = report
        .instance
        .outcome
        .as_deref()
        .map(|o| format!(" outcome {o}"))
        .unwrap_or_default();
    println!("{} {}{outcome}", report.instance.id, report.instance.status);
    for task in &report.tasks_opened {
        println!(
            "  task {} {} ({}, {})",
            task.id, task.label, task.node_id, task.role
        );
    }
    for effect in &report.outbox {
        println!("  effect {}", effect.payload);
    }
}

pub async fn show(session: &Session, instance: &str) -> Result<i32> {
    let (row, def, state) = match session.engine.load(instance).await {
        Ok(loaded) => loaded,
        Err(e) => return Ok(fail(&e)),
    };
    println!(
        "{} · {} ({}@{})",
        row.id, def.name, row.process_id, row.process_version
    );
    println!(
        "status: {}  outcome: {}",
        row.status,
        row.outcome.as_deref().unwrap_or("-")
    );
    println!(
        "unit: {}  started: {} by {}",
        state.unit, state.started_at, state.started_by
    );
    print_state(&def, &state);
    Ok(0)
}

fn print_state(def: &jiuzhu_engine::lang::model::Definition, state: &InstanceState) {
    println!("variables:");
    for decl in &def.variables {
        if let Some(value) = state.vars.get(&decl.name) {
            let label = decl.label.as_deref().unwrap_or(&decl.name);
            let text = match value {
                Value::Object(_) | Value::List(_) => value.to_json().to_string(),
                other => other.to_string(),
            };
            let text: String = if text.chars().count() > 100 {
                text.chars().take(100).chain("…".chars()).collect()
            } else {
                text
            };
            println!("  {} ({label}): {text}", decl.name);
        }
    }
    println!("open tasks:");
    for task in &state.tasks {
        let due = task
            .due_at
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "  {} {} role {} unit {} due {due}",
            task.id,
            task.label,
            task.roles.join("|"),
            task.unit
        );
    }
    println!("timers:");
    for timer in &state.timers {
        println!(
            "  {} at {} ({})",
            timer.id,
            timer.due_at,
            serde_json::to_value(&timer.kind).unwrap_or_default()
        );
    }
}

pub async fn history(session: &Session, instance: &str, verify: bool) -> Result<i32> {
    let rows = session.engine.store.history(instance).await?;
    if rows.is_empty() {
        eprintln!("not_found: no history for {instance}");
        return Ok(1);
    }
    for row in &rows {
        println!(
            "#{} {} {} {} {} {}",
            row.seq,
            row.at.to_rfc3339(),
            row.actor.as_deref().unwrap_or("system"),
            row.event,
            row.node.as_deref().unwrap_or("-"),
            row.data
        );
    }
    if verify {
        match session.engine.store.verify_history(instance).await {
            Ok(()) => println!(
                "hash chain verified: {} rows, head {}",
                rows.len(),
                &rows[rows.len() - 1].hash[..16]
            ),
            Err(e) => {
                eprintln!("tampered: {e}");
                return Ok(1);
            }
        }
    }
    Ok(0)
}

/// The scheduler loop: every second, fires due timers and starts due cron occurrences
/// (see `jiuzhu_engine::scheduler`), printing what it did and how late the oldest due
/// timer is, until interrupted.
/// The node's loop: fire due timers and cron occurrences, then deliver the
/// outbox (notifications, payments into the ledger, process starts), every second.
pub async fn run(
    session: &Session,
    once: bool,
    notify_config: Option<&Path>,
    payments_config: Option<&Path>,
) -> Result<i32> {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    run_until(session, once, notify_config, payments_config, ctrl_c).await
}

/// [`run`] until `shutdown` completes (`jiuzhu serve` stops it with the HTTP server); a
/// tick under way when it does is finished first.
pub async fn run_until(
    session: &Session,
    once: bool,
    notify_config: Option<&Path>,
    payments_config: Option<&Path>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<i32> {
    let mut shutdown = std::pin::pin!(shutdown);
    let scheduler = Scheduler::new(&session.engine);
    let dispatcher = dispatcher(session, notify_config)?;
    let payments = match payments_config {
        Some(path) => PaymentsConfig::load(path).map_err(|e| anyhow!(e))?,
        None => PaymentsConfig::default(),
    };
    let ledger = Ledger::new(&session.engine.store);
    loop {
        let report = scheduler.tick().await.map_err(|e| anyhow!(e))?;
        print_tick(&report);
        // The monthly payment run, once its cron occurrence of the month has passed.
        if let Some(run) = ledger
            .run_due(&payments.run_schedule, session.engine.now())
            .await
            .map_err(|e| anyhow!(e))?
        {
            println!(
                "payment run {}: {} instruction(s) created, {} already there",
                run.month, run.created, run.existing
            );
        }
        let delivered = dispatcher
            .tick(session.engine.now())
            .await
            .map_err(|e| anyhow!(e))?;
        if delivered.claimed() > 0 {
            println!(
                "outbox: {} delivered, {} deferred, {} retrying, {} dead (see `jiuzhu incidents`)",
                delivered.delivered(),
                delivered.deferred(),
                delivered.retrying(),
                delivered.dead()
            );
        }
        if once {
            return Ok(0);
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(0),
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

/// The outbox dispatcher of this node: notification channels from `--notify-config`
/// (or `JIUZHU_NOTIFY_*` variables), templates from `templates/` beside the
/// definitions, and the payments ledger in the same database.
fn dispatcher(session: &Session, notify_config: Option<&Path>) -> Result<Dispatcher> {
    let engine = &session.engine;
    let configured = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty());
    let config = match notify_config {
        Some(path) => Some(NotifyConfig::load(path).map_err(|e| anyhow!(e))?),
        None if configured("JIUZHU_NOTIFY_SMTP_HOST")
            || configured("JIUZHU_NOTIFY_WEBHOOK_URL") =>
        {
            Some(NotifyConfig::from_env(|name| std::env::var(name).ok()).map_err(|e| anyhow!(e))?)
        }
        None => None,
    };
    let mut dispatch = DispatchConfig::new(&engine.node_id);
    let mut dispatcher = match config {
        Some(config) => {
            let templates = TemplateSet::load_dir(&engine.project.dir.join("templates"))
                .map_err(|e| anyhow!(e))?;
            let org = engine.project.org.clone().unwrap_or_default();
            let notifier =
                Notifier::from_config(&config, templates, org).map_err(|e| anyhow!(e))?;
            dispatch.retry = config.retry;
            Dispatcher::new(engine.clone(), dispatch).with_notifier(Arc::new(notifier))
        }
        None => {
            eprintln!(
                "warning: no notification channel configured (--notify-config FILE or \
                 JIUZHU_NOTIFY_SMTP_HOST / JIUZHU_NOTIFY_WEBHOOK_URL): notifications are \
                 retried, then listed by `jiuzhu incidents`"
            );
            Dispatcher::new(engine.clone(), dispatch)
        }
    };
    dispatcher = dispatcher.with_payments(Arc::new(Ledger::new(&engine.store)));
    Ok(dispatcher)
}

/// One line per started occurrence and failure, one summary line when timers moved or
/// are waiting; nothing for an idle tick with no backlog.
fn print_tick(report: &TickReport) {
    for start in &report.started {
        println!(
            "started {} ({} schedule {}, occurrence {})",
            start.instance_id,
            start.process_id,
            start.schedule_id,
            start.occurrence.to_rfc3339()
        );
    }
    for failure in &report.schedule_failures {
        eprintln!(
            "schedule {} {}: {}",
            failure.process_id, failure.schedule_id, failure.error
        );
    }
    for failure in &report.timer_failures {
        eprintln!(
            "timer {} of {}: {}: {}",
            failure.timer_id,
            failure.instance_id,
            failure.error.code(),
            failure.error
        );
    }
    let moved = !report.fired.is_empty() || report.stale > 0 || report.busy > 0;
    if moved || report.oldest_due_timer_lag.is_some() {
        println!(
            "fired {} timer(s), {} stale, {} busy; oldest due timer {}",
            report.fired.len(),
            report.stale,
            report.busy,
            lag_text(report.oldest_due_timer_lag)
        );
    }
}

fn lag_text(lag: Option<chrono::Duration>) -> String {
    match lag {
        None => "none waiting".to_string(),
        Some(lag) => {
            let millis = lag.num_milliseconds();
            format!("{}.{}s late", millis / 1000, (millis % 1000) / 100)
        }
    }
}

/// A time as offices read it (+08:00), falling back to UTC.
fn beijing(at: chrono::DateTime<chrono::Utc>) -> String {
    chrono::FixedOffset::east_opt(8 * 3600)
        .map(|offset| at.with_timezone(&offset).to_rfc3339())
        .unwrap_or_else(|| at.to_rfc3339())
}

/// What the database holds: deployments, active cases per process, open tasks, pending
/// timers and outbox, the cron schedules and how late the oldest due timer is.
pub async fn status(session: &Session) -> Result<i32> {
    let engine = &session.engine;
    let store = &engine.store;
    let now = engine.now();
    let summary = store.summary().await?;
    let active: BTreeMap<String, i64> = summary.active_instances.into_iter().collect();
    println!("deployments:");
    let versions = store.latest_versions().await?;
    if versions.is_empty() {
        println!("  (none: run `jiuzhu deploy`)");
    }
    for (process, version) in versions {
        println!(
            "  {process}@{version}  active instances: {}",
            active.get(&process).copied().unwrap_or(0)
        );
    }
    println!("open tasks: {}", summary.open_tasks);
    println!("pending timers: {}", summary.pending_timers);
    println!("pending outbox effects: {}", summary.pending_outbox);
    println!(
        "oldest due timer: {}",
        lag_text(store.oldest_due_timer_lag(now).await?)
    );
    let schedules = store.schedules().await?;
    if !schedules.is_empty() {
        println!("schedules:");
    }
    for schedule in schedules {
        println!(
            "  {} {} `{}` next {}",
            schedule.process_id,
            schedule.schedule_id,
            schedule.cron,
            beijing(schedule.next_due_at)
        );
    }
    Ok(0)
}

/// Seeds a fresh database with the shipped procedures and a few dibao cases at
/// different stages, then prints each user's queue and what to try next.
pub async fn demo(session: &Session, seed_only: bool) -> Result<i32> {
    println!("Jiuzhu demo · database {}", database_url(None));
    if deploy(session).await? != 0 {
        return Ok(1);
    }
    let existing = session
        .engine
        .store
        .list_instances(&InstanceFilter {
            limit: 1,
            ..InstanceFilter::default()
        })
        .await?;
    let example = if existing.is_empty() {
        seed_demo(session).await?
    } else {
        println!("\n(demo data already present: nothing seeded)");
        existing[0].id.clone()
    };
    for user in ["zx_clerk", "zx_staff1", "zx_head", "county_staff1"] {
        println!("\nqueue of {user}:");
        tasks(session, user).await?;
    }
    println!(
        "\nin another terminal: cargo run -- show {example}\n                      cargo run -- history {example} --verify\n                      cargo run -- tasks --as zx_staff1"
    );
    if seed_only {
        return Ok(0);
    }
    println!(
        "\nJiuzhu is running: timers, cron schedules and the outbox are served every second. Ctrl-C stops it."
    );
    run(session, false, None, None).await
}

/// Two dibao cases: one just applied, one surveyed, verified and assessed.
/// Returns the id of the second.
async fn seed_demo(session: &Session) -> Result<String> {
    let household = |wage: &str| {
        serde_json::json!({
            "applicant_name": "张秀兰",
            "area": "urban",
            "contact": {"phone": "13800000000"},
            "household": {
                "members": [
                    {"id": "m1", "birth_date": "1950-05-01", "income": [{"kind": "pension_basic", "monthly": "180.00"}]},
                    {"id": "m2", "birth_date": "1978-09-12", "income": [{"kind": "wage", "monthly": wage}]}
                ],
                "savings": "6000.00"
            }
        })
    };
    let as_map = |json: serde_json::Value| match Value::from_json(&json) {
        Value::Object(map) => map,
        _ => BTreeMap::new(),
    };
    let engine = &session.engine;
    let clerk = session.actor("zx_clerk")?;
    let staff = session.actor("zx_staff1")?;
    let county = session.actor("county_staff1")?;
    // Case 1: just applied.
    let first = engine
        .start("dibao", &clerk, as_map(household("1000.00")))
        .await
        .map_err(|e| anyhow!(e))?;
    // Case 2: accepted, surveyed and verified: waiting for the initial opinion.
    let second = engine
        .start("dibao", &clerk, as_map(household("1200.00")))
        .await
        .map_err(|e| anyhow!(e))?;
    let accept = second
        .tasks_opened
        .first()
        .map(|t| t.id.clone())
        .ok_or_else(|| anyhow!("no accept task"))?;
    let step = engine
        .complete(
            &accept,
            &clerk,
            as_map(serde_json::json!({"complete": true})),
        )
        .await
        .map_err(|e| anyhow!(e))?;
    for task in &step.tasks_opened {
        let (actor, data) = match task.node_id.as_str() {
            "survey" => (&staff, serde_json::json!({"surveyors": ["李强", "赵敏"]})),
            _ => (&county, serde_json::json!({"verification_ok": true})),
        };
        engine
            .complete(&task.id, actor, as_map(data))
            .await
            .map_err(|e| anyhow!(e))?;
    }
    println!(
        "\ncases: {} (new), {} (surveyed and assessed)",
        first.instance.id, second.instance.id
    );
    Ok(second.instance.id)
}
