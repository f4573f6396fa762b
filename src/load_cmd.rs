//! `jiuzhu load` (hidden, for the crash test): drives dibao cases through the engine and
//! prints one `ack` line per step right after its commit returned.
//!
//! It resumes from whatever the database holds, so it can be killed at any moment and
//! started again. Business time is a manual clock that starts at the latest time the
//! database has seen and moves on by itself (a few minutes per round, a day when nothing
//! else is left to do), so a run never waits on the wall clock. Cases vary by number:
//! some lack materials at first, some meet an objection during publicity, some fail the
//! information check, some are rejected.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow};
use chrono::{DateTime, Duration, Utc};
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::core::{Actor, InstanceState};
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::{Engine, StepReport};
use jiuzhu_engine::scheduler::Scheduler;
use jiuzhu_engine::store::{InstanceFilter, InstanceRow, Store};
use jiuzhu_rules::Value;

/// Where business time starts in an empty database (a Monday morning in Beijing).
const FIRST_DAY: &str = "2026-03-02T09:00:00+08:00";

pub fn run(db: &str, definitions: &Path, instances: usize) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            crate::errors::emit(
                "runtime",
                &format!("cannot start the async runtime: {e}"),
                &[],
            );
            return 1;
        }
    };
    match runtime.block_on(drive(db, definitions, instances)) {
        Ok(()) => 0,
        Err(e) => crate::errors::report(&e),
    }
}

async fn drive(db: &str, definitions: &Path, instances: usize) -> Result<()> {
    let project = Project::load(definitions).map_err(|problems| anyhow!(problems.join("\n")))?;
    let store = Store::open(db)
        .await
        .with_context(|| format!("opening {db}"))?;
    let resume_at = latest_time(&store).await?;
    let clock = Arc::new(ManualClock::new(resume_at));
    let engine = Engine::new(
        store,
        Arc::new(project),
        clock.clone(),
        &format!("load-{}", std::process::id()),
    )
    .map_err(|e| anyhow!(e))?;
    engine.deploy().await.map_err(|e| anyhow!(e))?;
    let driver = Driver {
        engine: &engine,
        scheduler: Scheduler::new(&engine),
    };
    loop {
        clock.advance(Duration::minutes(10));
        let cases = driver.cases(instances).await?;
        let mut moved = false;
        if cases.len() < instances {
            driver.start(cases.len()).await?;
            moved = true;
        }
        let mut active = 0;
        for row in cases.iter().filter(|c| c.status == "active") {
            active += 1;
            moved |= driver.advance_case(row).await?;
        }
        if cases.len() >= instances && active == 0 {
            println!("done");
            engine.store.close().await;
            return Ok(());
        }
        if !moved {
            // Only timers can move the cases on: let a day pass.
            clock.advance(Duration::days(1));
            let report = driver.scheduler.tick().await.map_err(|e| anyhow!(e))?;
            for fired in report.fired {
                println!(
                    "ack {} {} timer {}",
                    fired.instance_id, fired.version, fired.timer_id
                );
            }
            // A case whose timer fails as an incident (a poison case the crash test adds)
            // is retried and then parked by the scheduler; anything else is a fault.
            if let Some(failure) = report
                .timer_failures
                .iter()
                .find(|f| f.error.code() != "incident")
            {
                return Err(anyhow!(
                    "timer {} of {}: {}",
                    failure.timer_id,
                    failure.instance_id,
                    failure.error
                ));
            }
        }
    }
}

/// The latest business time the database has seen, so a restarted run never goes back.
async fn latest_time(store: &Store) -> Result<DateTime<Utc>> {
    let mut latest = DateTime::parse_from_rfc3339(FIRST_DAY)?.with_timezone(&Utc);
    let mut offset = 0;
    loop {
        let page = store
            .list_instances(&InstanceFilter {
                limit: 500,
                offset,
                ..InstanceFilter::default()
            })
            .await?;
        if page.is_empty() {
            return Ok(latest);
        }
        offset += u32::try_from(page.len())?;
        for row in page {
            latest = latest.max(row.updated_at);
        }
    }
}

struct Driver<'e> {
    engine: &'e Engine,
    scheduler: Scheduler<'e>,
}

impl Driver<'_> {
    async fn cases(&self, instances: usize) -> Result<Vec<InstanceRow>> {
        Ok(self
            .engine
            .store
            .list_instances(&InstanceFilter {
                process_id: Some("dibao".into()),
                limit: u32::try_from(instances + 1)?,
                ..InstanceFilter::default()
            })
            .await?)
    }

    fn actor(&self, user: &str) -> Result<Actor> {
        let org = self
            .engine
            .project
            .org
            .as_ref()
            .context("no org.yaml beside the definitions")?;
        let user = org.user(user).with_context(|| format!("no user {user}"))?;
        Ok(user.actor())
    }

    async fn start(&self, number: usize) -> Result<()> {
        let wage = format!("{}.00", 800 + (number % 9) * 50);
        let data = map(serde_json::json!({
            "applicant_name": format!("申请人{number}"),
            "area": if number % 2 == 0 { "urban" } else { "rural" },
            "household": household(&wage),
        }));
        let step = self
            .engine
            .start("dibao", &self.actor("zx_clerk")?, data)
            .await
            .map_err(|e| anyhow!(e))?;
        ack(&step, "start", "");
        Ok(())
    }

    /// Takes every step a case's open tasks and waiting messages allow; true if any ran.
    async fn advance_case(&self, row: &InstanceRow) -> Result<bool> {
        let (_, _, state) = self.engine.load(&row.id).await.map_err(|e| anyhow!(e))?;
        let number = case_number(&state);
        for token in &state.tokens {
            let message = match token.node.as_str() {
                "wait_materials" => Some(("materials_supplied", serde_json::json!({}))),
                "publicity" if number % 4 == 2 && !state.vars.contains_key("review_passed") => {
                    Some((
                        "objection",
                        serde_json::json!({"reason": "邻居反映有经营收入"}),
                    ))
                }
                _ => None,
            };
            if let Some((name, data)) = message {
                let step = self
                    .engine
                    .message(&row.id, name, None, map(data))
                    .await
                    .map_err(|e| anyhow!(e))?;
                ack(&step, &format!("message:{name}"), "");
                return Ok(true);
            }
        }
        // One step per case per round: the step changes the case, the next round reloads it.
        if let Some(task) = state.tasks.first() {
            let (user, data) = match task.node.as_str() {
                "accept" => {
                    let complete = number % 3 != 1 || state.vars.contains_key("missing");
                    (
                        "zx_clerk",
                        if complete {
                            serde_json::json!({"complete": true})
                        } else {
                            serde_json::json!({"complete": false, "missing": ["户口簿"]})
                        },
                    )
                }
                "survey" => (
                    "zx_staff1",
                    serde_json::json!({"surveyors": ["李强", "赵敏"]}),
                ),
                "verify" if number % 5 == 3 => (
                    "county_staff1",
                    serde_json::json!({"verification_ok": false, "findings": "车辆登记不一致"}),
                ),
                "verify" => (
                    "county_staff1",
                    serde_json::json!({"verification_ok": true}),
                ),
                "recheck" => (
                    "zx_staff1",
                    serde_json::json!({"household": household("900.00")}),
                ),
                "initial_opinion" => ("zx_staff2", serde_json::json!({"proposal": "approve"})),
                "democratic_review" => ("zx_staff1", serde_json::json!({"review_passed": true})),
                "county_check" => ("county_staff1", serde_json::json!({"passed": true})),
                "approve" if number % 7 == 6 => (
                    "zx_head",
                    serde_json::json!({"decision": "reject", "reason": "家庭存款超过标准"}),
                ),
                "approve" => ("zx_head", serde_json::json!({"decision": "approve"})),
                other => return Err(anyhow!("{}: no driver for task {other}", row.id)),
            };
            let step = self
                .engine
                .complete(&task.id, &self.actor(user)?, map(data))
                .await
                .map_err(|e| anyhow!("{} {}: {e}", row.id, task.node))?;
            ack(&step, "complete", &task.id);
            return Ok(true);
        }
        Ok(false)
    }
}

/// Printed only after the step's commit returned: the crash test's proof of acknowledgement.
fn ack(step: &StepReport, event: &str, detail: &str) {
    println!(
        "ack {} {} {event} {detail}",
        step.instance.id, step.instance.version
    );
}

fn case_number(state: &InstanceState) -> usize {
    match state.vars.get("applicant_name") {
        Some(Value::Str(name)) => name
            .trim_start_matches("申请人")
            .parse()
            .unwrap_or_default(),
        _ => 0,
    }
}

fn household(wage: &str) -> serde_json::Value {
    serde_json::json!({
        "members": [
            {"id": "m1", "birth_date": "1950-05-01", "income": [{"kind": "pension_basic", "monthly": "180.00"}]},
            {"id": "m2", "birth_date": "1978-09-12", "income": [{"kind": "wage", "monthly": wage}]}
        ],
        "savings": "6000.00"
    })
}

fn map(json: serde_json::Value) -> BTreeMap<String, Value> {
    match Value::from_json(&json) {
        Value::Object(map) => map,
        _ => BTreeMap::new(),
    }
}
