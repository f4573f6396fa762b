//! `jiuzhu serve`: the HTTP API and the node's scheduler and dispatcher loop in one
//! process, until Ctrl-C or SIGTERM; `--demo` seeds the demo first.

use std::path::PathBuf;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use chrono::Duration;
use jiuzhu_engine::clock::{Clock, ManualClock};
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::runtime::{Engine, EngineError};
use jiuzhu_engine::scheduler::Scheduler;
use jiuzhu_engine::store::InstanceFilter;
use jiuzhu_rules::Value;
use jiuzhu_server::{AppState, ServerConfig, ServerDb};
use serde_json::json;

use crate::lifecycle::{self, Session};
use crate::output::short_id;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Deploy the processes, seed the org's users with demo passwords and a few cases.
    #[arg(long)]
    pub demo: bool,
    /// Behind a reverse proxy: believe its X-Forwarded-For and X-Forwarded-Proto headers.
    #[arg(long)]
    trust_proxy: bool,
    /// Mark the session cookie Secure on every response (TLS terminates in front).
    #[arg(long)]
    secure_cookies: bool,
    /// Notification channels (SMTP, webhook) and retry settings, as for `jiuzhu run`.
    #[arg(long)]
    notify_config: Option<PathBuf>,
    /// The monthly run's schedule and bank-file settings, as for `jiuzhu run`.
    #[arg(long)]
    payments_config: Option<PathBuf>,
    /// Archive cases that ended more than this many days ago, hourly, as for `jiuzhu run`.
    #[arg(long, value_name = "DAYS")]
    archive_after_days: Option<u32>,
}

/// The demo password of a user: printed by `serve --demo`, never used otherwise.
fn demo_password(user: &str) -> String {
    format!("demo-{user}")
}

/// The server's tables, migrated, with every user of org.yaml present (without a password
/// unless `demo`).
pub async fn server_db(session: &Session, demo: bool) -> Result<ServerDb> {
    let engine = &session.engine;
    let db = ServerDb::open(&engine.store)
        .await
        .context("opening the server's tables")?;
    if let Some(org) = engine.project.org.as_ref() {
        let password = |user: &str| demo_password(user);
        let password: Option<&dyn Fn(&str) -> String> = demo.then_some(&password as _);
        db.seed_from_org(org, password, engine.now())
            .await
            .map_err(|e| anyhow!(e))?;
    }
    Ok(db)
}

pub async fn run(session: &Session, args: &ServeArgs) -> Result<i32> {
    if args.demo && seed_demo(session).await? != 0 {
        return Ok(1);
    }
    server_db(session, args.demo).await?;
    let config = ServerConfig {
        trust_proxy: args.trust_proxy,
        secure_cookies: args.secure_cookies,
        payments: (args.payments_config.as_deref())
            .map(jiuzhu_adapters::payments::PaymentsConfig::load)
            .transpose()?,
        ..ServerConfig::default()
    };
    let state = AppState::new(session.engine.clone(), config)
        .await
        .map_err(|e| anyhow!(e))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr()?;
    // The logins first: the address is the last line a reader (or a test) waits for.
    if args.demo {
        print_logins(session);
    }
    println!("staff pages: http://{address}/ (log in in a browser)");
    println!("Jiuzhu is serving on http://{address}");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signals = tokio::spawn(async move {
        lifecycle::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let server = jiuzhu_server::serve(listener, state, until(stopped.clone()));
    let scheduler = lifecycle::run_until(
        session,
        false,
        args.notify_config.as_deref(),
        args.payments_config.as_deref(),
        crate::archive_cmd::ArchiveSchedule::from_flag(args.archive_after_days)?,
        until(stopped),
    );
    let (served, ran) = tokio::join!(server, scheduler);
    signals.abort();
    served.context("serving HTTP")?;
    let code = ran?;
    println!("Jiuzhu stopped");
    Ok(code)
}

/// Prints the demo's logins: user, role, unit and password.
fn print_logins(session: &Session) {
    println!(
        "demo logins (POST /api/login {{\"user\":…,\"password\":…}}; API tokens: jiuzhu tokens create --user USER):"
    );
    println!("  {:<14} {:<18} {:<22} unit", "user", "role", "password");
    for user in session.engine.project.org.iter().flat_map(|o| o.users()) {
        println!(
            "  {:<14} {:<18} {:<22} {}",
            user.id,
            user.roles.join(","),
            demo_password(&user.id),
            user.unit
        );
    }
}

/// Deploys `processes/` and, on a database without cases, seeds the demo's dibao cases
/// at different steps. The two that have been through the 7-day publicity are run on a
/// clock of their own set ten days back, whose timers the scheduler fires when it has
/// moved eight days on, so their history reads as it would have happened.
async fn seed_demo(session: &Session) -> Result<i32> {
    if lifecycle::deploy(session).await? != 0 {
        return Ok(1);
    }
    let engine = &session.engine;
    let existing = engine
        .store
        .list_instances(&InstanceFilter {
            limit: 1,
            ..InstanceFilter::default()
        })
        .await?;
    if !existing.is_empty() {
        println!("(demo data already present: nothing seeded)");
        return Ok(0);
    }
    let now = engine.now();
    let clock = Arc::new(ManualClock::new(now - Duration::days(10)));
    let past = Engine::new(
        engine.store.clone(),
        engine.project.clone(),
        clock.clone() as Arc<dyn Clock>,
        "demo-seed",
    )
    .map_err(|e| anyhow!(e))?;
    let demo = Demo { session };
    let approved = demo.to_publicity(&past, &DEMO_CASES[5]).await?;
    let refused = demo.to_publicity(&past, &DEMO_CASES[6]).await?;
    clock.advance(Duration::days(8));
    let fired = Scheduler::new(&past).tick().await.map_err(|e| anyhow!(e))?;
    ensure!(
        fired.fired.len() >= 2,
        "the demo's publicity timers did not fire"
    );
    let head = session.actor("zx_head")?;
    let decide = |decision: serde_json::Value| as_map(decision);
    demo.complete_open(
        &past,
        &approved,
        &head,
        decide(json!({"decision": "approve"})),
    )
    .await?;
    demo.complete_open(
        &past,
        &refused,
        &head,
        decide(json!({"decision": "reject", "reason": "家庭存款超过规定标准"})),
    )
    .await?;
    // Today's cases, on the server's own clock.
    let mut rows = Vec::new();
    for (i, case) in DEMO_CASES[..5].iter().enumerate() {
        let id = demo.start(engine, case).await?;
        let stage = match i {
            0 | 1 => {
                demo.accept(engine, &id).await?;
                if i == 1 {
                    demo.complete_node(engine, &id, "verify").await?;
                }
                "waiting for the home survey (入户调查)"
            }
            2 | 3 => {
                demo.accept(engine, &id).await?;
                demo.complete_node(engine, &id, "survey").await?;
                "in verification (信息核对)"
            }
            _ => {
                demo.through_opinion(engine, &id).await?;
                "in publicity (公示, 7 days)"
            }
        };
        rows.push((id, case, stage));
    }
    rows.push((
        approved,
        &DEMO_CASES[5],
        "approved, monthly payment in the ledger",
    ));
    rows.push((refused, &DEMO_CASES[6], "refused (不予批准)"));
    println!("demo cases (dibao):");
    for (id, case, stage) in rows {
        println!(
            "  {:<10} {}  {:<24} {stage}",
            short_id(&id),
            jiuzhu_engine::privacy::mask_name(case.name),
            case.unit_short
        );
    }
    Ok(0)
}

/// A demo applicant: name, ID number, wage, the clerk who takes the application, and
/// the township for the printout.
struct DemoCase {
    name: &'static str,
    id_number: &'static str,
    wage: &'static str,
    clerk: &'static str,
    unit_short: &'static str,
}

const fn case(
    name: &'static str,
    id_number: &'static str,
    wage: &'static str,
    township: bool,
) -> DemoCase {
    DemoCase {
        name,
        id_number,
        wage,
        clerk: if township { "zx_clerk" } else { "fa_clerk" },
        unit_short: if township {
            "中心站街道"
        } else {
            "富安街道"
        },
    }
}

const DEMO_CASES: [DemoCase; 7] = [
    case("张秀兰", "230509195005011228", "1000.00", true),
    case("王建华", "230518196203154415", "900.00", true),
    case("李淑芬", "230502197809123326", "1200.00", true),
    case("赵桂兰", "230507196611082124", "800.00", false),
    case("刘德明", "230506195809270031", "700.00", true),
    case("陈玉珍", "230503197112056625", "600.00", true),
    case("孙国强", "230507198304193317", "2600.00", true),
];

fn as_map(json: serde_json::Value) -> BTreeMap<String, Value> {
    match Value::from_json(&json) {
        Value::Object(map) => map,
        _ => BTreeMap::new(),
    }
}

fn engine_error(e: EngineError) -> anyhow::Error {
    anyhow!("{}: {e}", e.code())
}

struct Demo<'a> {
    session: &'a Session,
}

impl Demo<'_> {
    async fn start(&self, engine: &Engine, case: &DemoCase) -> Result<String> {
        let data = json!({
            "applicant_name": case.name,
            "area": "urban",
            "contact": {"phone": "13800000000"},
            "bank": {"account": "6222020200112233445", "id_number": case.id_number},
            "household": {
                "members": [
                    {"id": "m1", "birth_date": "1950-05-01", "income": [{"kind": "pension_basic", "monthly": "180.00"}]},
                    {"id": "m2", "birth_date": "1978-09-12", "income": [{"kind": "wage", "monthly": case.wage}]}
                ],
                "savings": "6000.00"
            }
        });
        let clerk = self.session.actor(case.clerk)?;
        let report = engine
            .start("dibao", &clerk, as_map(data))
            .await
            .map_err(engine_error)?;
        Ok(report.instance.id)
    }

    /// Completes the open task at `node` of case `id` as the user its role names here.
    async fn complete_node(&self, engine: &Engine, id: &str, node: &str) -> Result<()> {
        let (_, _, state) = engine.load(id).await.map_err(engine_error)?;
        let task = state
            .tasks
            .iter()
            .find(|t| t.node == node)
            .ok_or_else(|| anyhow!("demo case {id}: no open task {node}"))?;
        let township = task.unit.ends_with("中心站街道");
        let (user, data) = match node {
            "accept" => (
                if township { "zx_clerk" } else { "fa_clerk" },
                json!({"complete": true}),
            ),
            "survey" => (
                if township { "zx_staff1" } else { "fa_staff1" },
                json!({"surveyors": ["李强", "赵敏"]}),
            ),
            "verify" => ("county_staff1", json!({"verification_ok": true})),
            "initial_opinion" => (
                if township { "zx_staff1" } else { "fa_staff1" },
                json!({"proposal": "approve"}),
            ),
            other => bail!("the demo does not complete {other}"),
        };
        let actor = self.session.actor(user)?;
        engine
            .complete(&task.id, &actor, as_map(data))
            .await
            .map_err(engine_error)?;
        Ok(())
    }

    /// Completes the one open task of case `id` as `actor`.
    async fn complete_open(
        &self,
        engine: &Engine,
        id: &str,
        actor: &Actor,
        data: BTreeMap<String, Value>,
    ) -> Result<()> {
        let (_, _, state) = engine.load(id).await.map_err(engine_error)?;
        let task = state
            .tasks
            .first()
            .ok_or_else(|| anyhow!("demo case {id}: no open task"))?;
        engine
            .complete(&task.id, actor, data)
            .await
            .map_err(engine_error)?;
        Ok(())
    }

    async fn accept(&self, engine: &Engine, id: &str) -> Result<()> {
        self.complete_node(engine, id, "accept").await
    }

    /// Accepted, surveyed, verified, assessed and proposed: the case waits in publicity.
    async fn through_opinion(&self, engine: &Engine, id: &str) -> Result<()> {
        for node in ["accept", "survey", "verify", "initial_opinion"] {
            self.complete_node(engine, id, node).await?;
        }
        Ok(())
    }

    async fn to_publicity(&self, engine: &Engine, case: &DemoCase) -> Result<String> {
        let id = self.start(engine, case).await?;
        self.through_opinion(engine, &id).await?;
        Ok(id)
    }
}
