//! `jiuzhu bench http`: the server in front of the engine. C concurrent clients (half
//! logged in with a session, half with an API token) drive dibao-lite cases from start to
//! payment through the API over loopback, and the engine drives as many directly with the
//! same concurrency in the same run, on the same database; then the first page of a
//! township user's queue (`GET /api/tasks`) is timed among a million open tasks.

use std::collections::btree_map::Entry;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use jiuzhu_engine::clock::SystemClock;
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::group_commit::GroupCommitOptions;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_server::{AppState, ServerConfig, ServerDb, UserRecord};
use serde_json::{Value as Json, json};

use super::dibao_lite::{self, ClientTally};
use super::http_client::Connection;
use super::inbox::{percentile_ms, township};
use super::setup::{self, BenchDb};
use super::{DbOptions, round};

pub(super) const PROCESS: &str = "dibao_lite";
pub(super) const UNIT: &str = "bench/county/town";
const PASSWORD: &str = "bench password of a client";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Concurrent clients, in the API run and in the engine's run alike.
    #[arg(long, default_value_t = 64)]
    pub clients: u64,
    /// dibao-lite cases driven start to payment in each run (API and engine).
    #[arg(long, default_value_t = 2_000)]
    pub instances: u64,
    /// Rounds the runs are cut into, alternating engine and API, so both rates cover the
    /// same stretch of a noisy machine's time.
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
    /// Open tasks seeded before the queue page is timed.
    #[arg(long, default_value_t = 1_000_000)]
    pub queue_tasks: u64,
    /// Township units the open tasks are spread over.
    #[arg(long, default_value_t = 1_000)]
    pub units: u64,
    /// Queue pages fetched and timed.
    #[arg(long, default_value_t = 2_000)]
    pub queries: u64,
    /// Cases per seeding transaction.
    #[arg(long, default_value_t = 5_000)]
    pub seed_batch: usize,
    /// Tiny sizes (8 clients, 32 cases, 2,000 open tasks, 50 pages): checks that it runs.
    #[arg(long)]
    pub quick: bool,
    #[command(flatten)]
    pub db: DbOptions,
}

pub async fn run(args: &Args) -> Result<serde_json::Value> {
    let mut sizes = Sizes {
        clients: args.clients,
        instances: args.instances,
        rounds: args.rounds,
        queue_tasks: args.queue_tasks,
        units: args.units,
        queries: args.queries,
    };
    if args.quick {
        sizes = Sizes {
            clients: 8,
            instances: 32,
            rounds: 1,
            queue_tasks: 2_000,
            units: 20,
            queries: 50,
        };
    }
    ensure!(
        sizes.clients > 0 && sizes.instances > 0 && sizes.rounds > 0,
        "--clients, --instances and --rounds must be at least 1"
    );
    ensure!(
        sizes.queue_tasks > 0 && sizes.units > 0 && sizes.queries > 0,
        "--queue-tasks, --units and --queries must be at least 1"
    );
    setup::with_db(&args.db, async |db| measure(db, args, &sizes).await).await
}

struct Sizes {
    clients: u64,
    instances: u64,
    rounds: u32,
    queue_tasks: u64,
    units: u64,
    queries: u64,
}

/// The server on a loopback port, over `engine`; stops when dropped.
struct Served {
    base: String,
    state: Arc<AppState>,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn serve(engine: Arc<Engine>) -> Result<Served> {
    let state = AppState::new(engine, ServerConfig::default())
        .await
        .map_err(|e| anyhow!(e))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    tokio::spawn(jiuzhu_server::serve(listener, state.clone(), shutdown));
    Ok(Served {
        base,
        state,
        _stop: stop,
    })
}

/// How a client authenticates: the headers it sends on every request.
#[derive(Clone)]
pub(super) struct Credentials {
    headers: reqwest::header::HeaderMap,
}

async fn measure(db: &BenchDb, args: &Args, sizes: &Sizes) -> Result<serde_json::Value> {
    let group = Some((GroupCommitOptions::default(), 1));
    let engine = setup::engine(db, &args.db.definitions, Arc::new(SystemClock), group).await?;
    let served = serve(engine.clone()).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::try_from(sizes.clients)?)
        .build()?;

    // One user per client; even clients log in (session cookie + CSRF header), odd ones
    // hold an API token.
    let now = engine.now();
    let mut credentials = Vec::new();
    for client in 0..sizes.clients {
        let actor = setup::actor(&format!("bench-{client}"), UNIT);
        credentials.push(login(&served, &http, &actor, client % 2 == 0, now).await?);
    }

    let rounds = u64::from(sizes.rounds);
    let (mut engine_time, mut api_time) = (Duration::ZERO, Duration::ZERO);
    let (mut engine_steps, mut api_steps, mut api_paid) = (0u64, 0u64, 0u64);
    // Commits (groups) each side's steps shared: how well each fills the group commit.
    let (mut engine_groups, mut api_groups) = (0u64, 0u64);
    let groups = || engine.group_committer().map_or(0, |c| c.stats().groups());
    for r in 0..rounds {
        let share = sizes.instances * (r + 1) / rounds - sizes.instances * r / rounds;
        let (started, before) = (Instant::now(), groups());
        engine_steps += engine_round(&engine, sizes.clients, share, r).await?;
        engine_time += started.elapsed();
        engine_groups += groups() - before;
        let (started, before) = (Instant::now(), groups());
        let bases = [served.base.clone()];
        let (steps, paid) = api_round(&bases, &credentials, share).await?;
        api_time += started.elapsed();
        api_groups += groups() - before;
        api_steps += steps;
        api_paid += paid;
    }
    let counts = db.store.bench_counts().await?;
    let cases = i64::try_from(sizes.instances * 2)?;
    ensure!(
        counts.completed_instances == cases,
        "{} of {cases} cases completed",
        counts.completed_instances
    );
    ensure!(
        counts.open_tasks == 0,
        "{} tasks left open",
        counts.open_tasks
    );
    ensure!(
        api_paid == sizes.instances,
        "{api_paid} of {} API cases were paid",
        sizes.instances
    );
    let engine_rate = engine_steps as f64 / engine_time.as_secs_f64();
    let api_rate = api_steps as f64 / api_time.as_secs_f64();

    // The queue page among a million open tasks.
    let units = sizes.units;
    let seeded = setup::seed(
        &engine,
        PROCESS,
        sizes.queue_tasks,
        args.seed_batch,
        move |i| {
            let unit = i % units;
            (
                setup::actor(&format!("clerk-{unit}"), &township(unit)),
                Default::default(),
            )
        },
    )
    .await?;
    let per_unit =
        |unit: u64| sizes.queue_tasks / units + u64::from(unit < sizes.queue_tasks % units);
    let mut latencies = Vec::with_capacity(usize::try_from(sizes.queries)?);
    let mut tokens = std::collections::BTreeMap::<u64, Credentials>::new();
    for q in 0..sizes.queries {
        let unit = (q * 7919) % units;
        let headers = match tokens.entry(unit) {
            Entry::Occupied(known) => known.get().headers.clone(),
            Entry::Vacant(new) => {
                let actor = Actor {
                    user: format!("staff-{unit}"),
                    roles: vec!["township_staff".into()],
                    unit: township(unit),
                };
                let credentials = login(&served, &http, &actor, false, now).await?;
                new.insert(credentials).headers.clone()
            }
        };
        let started = Instant::now();
        let response = http
            .get(format!("{}/api/tasks", served.base))
            .headers(headers)
            .send()
            .await?;
        let status = response.status();
        let page: Json = response.json().await?;
        latencies.push(started.elapsed());
        ensure!(status.is_success(), "queue page: {status} {page}");
        let rows = page.as_array().map(Vec::len).unwrap_or_default() as u64;
        ensure!(
            rows == per_unit(unit).min(200),
            "queue of {}: {rows} rows, expected {}",
            township(unit),
            per_unit(unit).min(200)
        );
    }
    let ratio = api_rate / engine_rate;
    let p99 = percentile_ms(&mut latencies, 0.99);
    Ok(json!({
        "bench": "http",
        "db": db.kind(),
        "synchronous": db.synchronous(),
        "clients": sizes.clients,
        "instances_per_run": sizes.instances,
        "rounds": sizes.rounds,
        "engine_steps_per_s": round(engine_rate, 1),
        "api_steps_per_s": round(api_rate, 1),
        "api_to_engine": round(ratio, 3),
        "api_target_met": ratio >= 0.7,
        "engine_steps_per_commit": round(engine_steps as f64 / engine_groups.max(1) as f64, 2),
        "api_steps_per_commit": round(api_steps as f64 / api_groups.max(1) as f64, 2),
        "open_tasks": sizes.queue_tasks,
        "units": sizes.units,
        "queries": sizes.queries,
        "queue_page_p50_ms": percentile_ms(&mut latencies, 0.50),
        "queue_page_p99_ms": p99,
        "queue_page_max_ms": percentile_ms(&mut latencies, 1.0),
        "queue_target_met": p99 < 25.0,
        "seed_seconds": round(seeded.elapsed.as_secs_f64(), 3),
        "peak_rss_mib": setup::memory_mib().0,
    }))
}

/// Adds `actor` as a server user and returns the headers of a session (login) or of a
/// new API token.
async fn login(
    served: &Served,
    http: &reqwest::Client,
    actor: &Actor,
    session: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Credentials> {
    let db = &served.state.db;
    if !session {
        return token_user(db, actor, now).await;
    }
    add_user(db, actor, Some(PASSWORD), now).await?;
    let mut headers = reqwest::header::HeaderMap::new();
    {
        let response = http
            .post(format!("{}/api/login", served.base))
            .json(&json!({"user": actor.user, "password": PASSWORD}))
            .send()
            .await?;
        ensure!(
            response.status().is_success(),
            "login: {}",
            response.status()
        );
        let cookie = response
            .headers()
            .get(reqwest::header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .context("login set no cookie")?
            .to_string();
        let me: Json = response.json().await?;
        let csrf = me["csrf_token"]
            .as_str()
            .context("login gave no CSRF token")?;
        headers.insert(reqwest::header::COOKIE, cookie.parse()?);
        headers.insert("x-csrf-token", csrf.parse()?);
    }
    Ok(Credentials { headers })
}

/// Adds `actor` as a server user (with `password` if given).
async fn add_user(
    db: &ServerDb,
    actor: &Actor,
    password: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let user = UserRecord {
        id: actor.user.clone(),
        name: actor.user.clone(),
        unit: actor.unit.clone(),
        roles: actor.roles.clone(),
        disabled: false,
        has_password: false,
    };
    db.add_user(&user, password, now)
        .await
        .map_err(|e| anyhow!(e))
}

/// Adds `actor` as a server user holding a new API token; the headers that send it.
pub(super) async fn token_user(
    db: &ServerDb,
    actor: &Actor,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Credentials> {
    add_user(db, actor, None, now).await?;
    let token = db
        .create_token(&actor.user, "bench", now)
        .await
        .map_err(|e| anyhow!(e))?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", token.token).parse()?,
    );
    Ok(Credentials { headers })
}

/// The engine drives `count` cases with `clients` concurrent clients; returns the steps.
async fn engine_round(engine: &Arc<Engine>, clients: u64, count: u64, round: u64) -> Result<u64> {
    let mut tasks = Vec::new();
    for client in 0..clients {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let actor = setup::actor(&format!("direct-{client}"), UNIT);
            let mut tally = ClientTally::default();
            let mut i = client;
            while i < count {
                dibao_lite::run_instance(&engine, &actor, round * 1_000_000 + i, &mut tally)
                    .await?;
                i += clients;
            }
            anyhow::Ok(tally.steps)
        }));
    }
    let mut steps = 0;
    for task in tasks {
        steps += task.await??;
    }
    Ok(steps)
}

/// The API's clients drive `count` cases; client `c` calls `bases[c mod len]` (one server
/// here, several nodes in `bench nodes`) on a keep-alive connection of its own. Returns the
/// steps and the payments made.
pub(super) async fn api_round(
    bases: &[String],
    credentials: &[Credentials],
    count: u64,
) -> Result<(u64, u64)> {
    let clients = credentials.len() as u64;
    let mut tasks = Vec::new();
    for (client, credentials) in credentials.iter().enumerate() {
        let base = bases[client % bases.len().max(1)].clone();
        let credentials = credentials.clone();
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(&base).await?;
            let (mut steps, mut paid) = (0u64, 0u64);
            let mut i = client as u64;
            while i < count {
                let (s, p) = api_instance(&mut connection, &credentials, i).await?;
                steps += s;
                paid += p;
                i += clients;
            }
            anyhow::Ok((steps, paid))
        }));
    }
    let (mut steps, mut paid) = (0, 0);
    for task in tasks {
        let (s, p) = task.await??;
        steps += s;
        paid += p;
    }
    Ok((steps, paid))
}

/// What a client reads of a step's answer (`StepView`): the rest is left unread.
#[derive(serde::Deserialize)]
struct StepReply {
    status: String,
    outcome: Option<String>,
    tasks_opened: Vec<OpenedTask>,
}

#[derive(serde::Deserialize)]
struct OpenedTask {
    id: String,
    node: String,
}

/// One case through the API, as `dibao_lite::run_instance` drives it through the engine;
/// returns its steps and whether it was paid (approved).
async fn api_instance(
    connection: &mut Connection,
    credentials: &Credentials,
    i: u64,
) -> Result<(u64, u64)> {
    let headers = &credentials.headers;
    let start = json!({"process": PROCESS, "data": {}});
    let mut step: StepReply = connection.post_json("/api/cases", headers, &start).await?;
    let mut steps = 1;
    let (supplement, disputed) = (i % 2 == 0, i % 4 == 0);
    while let Some(task) = step.tasks_opened.first() {
        let data = match task.node.as_str() {
            "verify" => json!({
                "income": "300", "standard": "700",
                "supplement": supplement, "disputed": disputed,
            }),
            "review" => json!({"review_passed": true}),
            "approve" => json!({"approved": true}),
            other => bail!("case {i}: unexpected task {other}"),
        };
        let path = format!("/api/tasks/{}/complete", task.id);
        step = connection.post_json(&path, headers, &data).await?;
        steps += 1;
    }
    ensure!(
        step.status == "completed",
        "case {i} stopped at status {}",
        step.status
    );
    let paid = u64::from(step.outcome.as_deref() == Some("approved"));
    Ok((steps, paid))
}
