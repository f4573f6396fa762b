//! The case lifecycle on the durable store: deploy, start, tasks, claim,
//! complete, message, show, history, run, and the demo.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow};
use jiuzhu_adapters::dispatch::{DispatchConfig, Dispatcher};
use jiuzhu_adapters::notify::{Notifier, NotifyConfig, TemplateSet};
use jiuzhu_adapters::payments::{Ledger, PaymentsConfig};
use jiuzhu_engine::calendar::Calendar;
use jiuzhu_engine::clock::{Clock, SystemClock};
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::group_commit::{GroupCommitOptions, GroupCommitter};
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::{Engine, EngineError, TIMER_CONCURRENCY};
use jiuzhu_engine::scheduler::{Scheduler, TickReport};
use jiuzhu_engine::store::{InstanceFilter, Store};
use jiuzhu_rules::Value;

use crate::archive_cmd::ArchiveSchedule;
use crate::cli_args::{Paths, read_data};
use crate::errors::CliError;
use crate::output::short_id;
use crate::views::{self, View, resolve_instance, resolve_task};

pub struct Session {
    /// Shared with the dispatcher, which starts processes for `start_process` effects.
    pub engine: Arc<Engine>,
    /// Where the project, definitions and database are.
    pub paths: Paths,
}

impl Session {
    /// Loads the project and opens the database; only with `create` may a missing SQLite
    /// file be created (deploy, demo), else it is an error naming the path.
    pub async fn open(paths: &Paths, create: bool) -> Result<Session> {
        if !create {
            paths.require_database()?;
        }
        let definitions = paths.definitions.as_path();
        let project = Project::load(definitions).map_err(|problems| {
            CliError::usage(
                "invalid_definition",
                format!("{}:\n{}", definitions.display(), problems.join("\n")),
            )
            .hint("`jiuzhu validate` checks the definitions; --project DIR names another project")
        })?;
        let url = paths.db.clone();
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
        // The payment ledger keeps its own tables in the same database: a node that writes
        // creates them now, so read commands (which never migrate) find them.
        Ledger::open(&store)
            .await
            .with_context(|| format!("opening the payment ledger in {url}"))?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        // Concurrent steps share a commit (a node firing timers, several requests at once);
        // a lone step still commits at once, on its own.
        let committer = GroupCommitter::spawn(store.clone(), GroupCommitOptions::default());
        let engine = Engine::new(store, Arc::new(project), clock, &node_name())
            .map_err(|e| anyhow!(e))?
            .with_group_commit(committer, TIMER_CONCURRENCY);
        Ok(Session {
            engine: Arc::new(engine),
            paths: paths.clone(),
        })
    }

    /// A user of the org directory, as an actor.
    pub fn actor(&self, user: &str) -> Result<Actor> {
        let org = self.engine.project.org.as_ref().ok_or_else(|| {
            CliError::usage("invalid_input", "no org.yaml beside the definitions")
        })?;
        let u = org.user(user).ok_or_else(|| {
            CliError::usage("unknown_user", format!("no user {user} in org.yaml"))
        })?;
        Ok(u.actor())
    }

    /// What the read commands need, for the demo's queues.
    pub fn view(&self) -> View<'_> {
        let project = &self.engine.project;
        View {
            store: &self.engine.store,
            org: Ok(project.org.as_ref()),
            context: &project.context,
            offset: project
                .calendars
                .get("cn")
                .map(Calendar::utc_offset)
                .unwrap_or_else(|| Calendar::china_national().utc_offset()),
            reveal: false,
        }
    }
}

fn node_name() -> String {
    format!("node-{}", std::process::id())
}

/// Prints an engine error as `error[CODE]: message` and returns exit code 1.
pub fn fail(e: &EngineError) -> i32 {
    crate::errors::engine(e)
}

fn emit_invalid(problem: &str) {
    crate::errors::emit(
        "invalid_definition",
        &format!("{problem}\nnothing deployed"),
        &[],
    );
}

pub async fn deploy(session: &Session) -> Result<i32> {
    // Notices are checked now, not at 3 a.m. (the API's deploy makes the same check).
    if let Err(e) = jiuzhu_adapters::notify::check_project_templates(&session.engine.project) {
        emit_invalid(&e.to_string());
        return Ok(1);
    }
    let deployments = match session.engine.deploy().await {
        Ok(d) => d,
        Err(e) => return Ok(fail(&e)),
    };
    for d in deployments {
        println!("{}@{} {}", d.process_id, d.version, &d.hash[..12]);
    }
    crate::calendar_check::after_deploy(&session.engine).await?;
    Ok(0)
}

pub async fn start(
    session: &Session,
    process: &str,
    data: Option<&str>,
    user: &str,
    unit: Option<&str>,
) -> Result<i32> {
    let actor = session.actor(user)?;
    let data = read_data(data)?;
    match session.engine.start_in(process, &actor, unit, data).await {
        Ok(report) => {
            println!("{}", report.instance.id);
            for task in report.tasks_opened {
                println!(
                    "  task {} {} ({}, {})",
                    short_id(&task.id),
                    task.label,
                    task.node_id,
                    task.role
                );
            }
            Ok(0)
        }
        Err(e) => Ok(fail(&e)),
    }
}

pub async fn claim(session: &Session, task: &str, user: &str) -> Result<i32> {
    let actor = session.actor(user)?;
    let task = &resolve_task(&session.engine.store, task).await?;
    match session.engine.claim(task, &actor).await {
        Ok(_) => {
            println!("claimed {task} for {user}");
            Ok(0)
        }
        Err(e) => Ok(fail(&e)),
    }
}

pub async fn unclaim(session: &Session, task: &str, user: &str) -> Result<i32> {
    let actor = session.actor(user)?;
    let task = &resolve_task(&session.engine.store, task).await?;
    match session.engine.unclaim(task, &actor).await {
        Ok(_) => {
            println!("released {task}");
            Ok(0)
        }
        Err(e) => Ok(fail(&e)),
    }
}

/// Reassign (by a head of the unit) or delegate (by the holder) a task to `to`, a user of
/// the org directory.
pub async fn hand_on(
    session: &Session,
    task: &str,
    user: &str,
    to: &str,
    reassign: bool,
) -> Result<i32> {
    let actor = session.actor(user)?;
    let target = session.actor(to)?;
    let task = &resolve_task(&session.engine.store, task).await?;
    let outcome = if reassign {
        session.engine.reassign(task, &actor, &target).await
    } else {
        session.engine.delegate(task, &actor, &target).await
    };
    match outcome {
        Ok(_) => {
            println!("{task} is now held by {to}");
            Ok(0)
        }
        Err(e) => Ok(fail(&e)),
    }
}

pub async fn complete(
    session: &Session,
    task: &str,
    data: Option<&str>,
    user: &str,
) -> Result<i32> {
    let actor = session.actor(user)?;
    let data = read_data(data)?;
    let task = &resolve_task(&session.engine.store, task).await?;
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
    data: Option<&str>,
    user: Option<&str>,
) -> Result<i32> {
    let actor = user.map(|u| session.actor(u)).transpose()?;
    let data = read_data(data)?;
    let instance = &resolve_instance(&session.engine.store, instance).await?;
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
            short_id(&task.id),
            task.label,
            task.node_id,
            task.role
        );
    }
    // Effects carry payees, accounts and ID numbers: masked, as every view is.
    for effect in &report.outbox {
        println!(
            "  effect {}",
            jiuzhu_engine::privacy::mask_json(&effect.payload)
        );
    }
}

/// The scheduler loop: every second, fires due timers and starts due cron occurrences
/// (see `jiuzhu_engine::scheduler`), printing what it did and how late the oldest due
/// timer is, until interrupted (Ctrl-C or SIGTERM; the tick under way is finished first).
/// The node's loop: fire due timers and cron occurrences, then deliver the
/// outbox (notifications, payments into the ledger, process starts), every second.
pub async fn run(
    session: &Session,
    once: bool,
    notify_config: Option<&Path>,
    payments_config: Option<&Path>,
    archive: Option<ArchiveSchedule>,
) -> Result<i32> {
    run_until(
        session,
        once,
        notify_config,
        payments_config,
        archive,
        shutdown_signal(),
    )
    .await
}

/// Ctrl-C, or SIGTERM (what service managers send). The handlers are installed when this
/// is called, not when it is first awaited, so a signal during the node's first tick still
/// ends it gracefully (after that tick) rather than killing it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let interrupt = signal(SignalKind::interrupt()).ok();
        async move {
            match (term, interrupt) {
                (Some(mut term), Some(mut interrupt)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// [`run`] until `shutdown` completes (`jiuzhu serve` stops it with the HTTP server); a
/// tick under way when it does is finished first.
pub async fn run_until(
    session: &Session,
    once: bool,
    notify_config: Option<&Path>,
    payments_config: Option<&Path>,
    mut archive: Option<ArchiveSchedule>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<i32> {
    let mut shutdown = std::pin::pin!(shutdown);
    let scheduler = Scheduler::new(&session.engine);
    let (dispatcher, batch) = dispatcher(session, notify_config)?;
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
        // Finished cases past the configured age move to the archive (hourly).
        if let Some(archive) = archive.as_mut() {
            let moved = archive.tick(session).await?;
            if moved > 0 {
                println!("archive: {moved} finished case(s) moved");
            }
        }
        if once {
            return Ok(0);
        }
        // A full outbox batch, or due timers left after the tick, means work is waiting:
        // go round again at once (a node would otherwise deliver one batch a second).
        let backlog = delivered.claimed() >= batch || report.oldest_due_timer_lag.is_some();
        if backlog {
            tokio::select! {
                biased;
                _ = &mut shutdown => return Ok(0),
                _ = std::future::ready(()) => {}
            }
            continue;
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
fn dispatcher(session: &Session, notify_config: Option<&Path>) -> Result<(Dispatcher, usize)> {
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
    let batch = usize::try_from(dispatch.batch).unwrap_or(usize::MAX);
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
    Ok((dispatcher, batch))
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

pub fn lag_text(lag: Option<chrono::Duration>) -> String {
    match lag {
        None => "none waiting".to_string(),
        Some(lag) => {
            let millis = lag.num_milliseconds();
            format!("{}.{}s late", millis / 1000, (millis % 1000) / 100)
        }
    }
}

/// Seeds a fresh database with the shipped procedures and a few dibao cases at
/// different stages, then prints each user's queue and what to try next.
pub async fn demo(session: &Session, seed_only: bool) -> Result<i32> {
    println!("Jiuzhu demo · database {}", session.paths.db);
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
        views::tasks(&session.view(), user).await?;
    }
    // The hints name the database when it is not the default one, so they work as printed.
    let db = if session.paths.db_named {
        format!(" --db {}", session.paths.db)
    } else {
        String::new()
    };
    let example = short_id(&example);
    println!(
        "\nin another terminal: cargo run -- show {example}{db}\n                      cargo run -- history {example} --verify{db}\n                      cargo run -- tasks --as zx_staff1{db}\n                      cargo run -- cases --name 张{db}"
    );
    if seed_only {
        return Ok(0);
    }
    println!(
        "\nJiuzhu is running: timers, cron schedules and the outbox are served every second. Ctrl-C stops it."
    );
    run(session, false, None, None, None).await
}

/// Two dibao cases: one just applied, one surveyed, verified and assessed.
/// Returns the id of the second.
async fn seed_demo(session: &Session) -> Result<String> {
    let household = |name: &str, id_number: &str, wage: &str| {
        serde_json::json!({
            "applicant_name": name,
            "area": "urban",
            "contact": {"phone": "13800000000"},
            "bank": {"account": "6222020200112233445", "id_number": id_number},
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
        .start(
            "dibao",
            &clerk,
            as_map(household("张秀兰", "230509195005011228", "1000.00")),
        )
        .await
        .map_err(|e| anyhow!(e))?;
    // Case 2: accepted, surveyed and verified: waiting for the initial opinion.
    let second = engine
        .start(
            "dibao",
            &clerk,
            as_map(household("李淑芬", "230502197809123326", "1200.00")),
        )
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
