//! `jiuzhu incidents` and `jiuzhu retry ID`: the effects the dispatcher gave up on, and
//! giving one of them a fresh start.
//!
//! An incident is a dead outbox entry: its last error, attempts and times say what went
//! wrong; once the cause is fixed (an address corrected, a receiver back up, a process
//! deployed), `retry` puts it back in the outbox with a new attempt budget and the next
//! dispatcher tick delivers it. A parked timer (its firing failed on every attempt the
//! scheduler allows) is an incident on its case too, listed after the effects in the text
//! view; `retry TIMER_ID` lets the scheduler fire it again. A rule step that failed on a
//! case (kind `rule_failed`: no policy in force, data the rules refuse) waits at its node;
//! once the data is corrected (`jiuzhu correct`) or the policy deployed, `retry ID --as
//! USER` runs the step again as that user (who may: as for a correction).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use jiuzhu_adapters::dispatch::{Incident, incidents};
use jiuzhu_engine::core::RULE_FAILED;
use jiuzhu_engine::runtime::instance_of_incident;
use jiuzhu_engine::store::{OutboxStatus, ParkedTimer, Store, StoreError};
use serde_json::{Value as Json, json};

use crate::lifecycle::{Session, fail};

/// The `kind` of a parked timer in the JSON list (a dead effect's `kind` is its effect
/// type: `notification`, `payment`, `tampered` …; no effect type is called `timer`).
const TIMER_KIND: &str = "timer";

/// A parked timer as the JSON list shows it: the fields a dead effect has too (`id`, what
/// `jiuzhu retry` takes, `instance_id`, `kind`, `summary`, `attempts`, `last_error`,
/// `given_up_at`), and when it was due.
fn timer_incident(timer: &ParkedTimer) -> Json {
    json!({
        "id": timer.id,
        "instance_id": timer.instance_id,
        "kind": TIMER_KIND,
        "summary": format!("timer due {}, parked", timer.due_at.format("%Y-%m-%d %H:%M:%S UTC")),
        "attempts": timer.attempts,
        "last_error": timer.last_error,
        "due_at": timer.due_at,
        "given_up_at": timer.parked_at,
    })
}

/// Prints the incidents, oldest first: text blocks, or with `json` one JSON array: the
/// dead effects, then the parked timers (as the text lists them), each with its `kind`.
/// Exit code 0 (an empty list is not an error).
pub async fn incidents(store: &Store, json: bool, limit: u32, offset: u32) -> Result<i32> {
    let dead = store
        .dead_outbox(limit, offset)
        .await
        .context("listing the incidents")?;
    let listed: Vec<Incident> = dead.iter().map(Incident::from).collect();
    let parked = store
        .parked_timers(limit)
        .await
        .context("listing the parked timers")?;
    if json {
        let mut all = Vec::with_capacity(listed.len() + parked.len());
        for incident in &listed {
            all.push(serde_json::to_value(incident)?);
        }
        all.extend(parked.iter().map(timer_incident));
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        if !listed.is_empty() || parked.is_empty() {
            print!("{}", incidents::render_text(&listed));
        }
        for timer in &parked {
            println!(
                "timer {} of case {}: parked after {} attempts (last error: {}); `jiuzhu retry {}` fires it again",
                timer.id,
                timer.instance_id,
                timer.attempts,
                timer.last_error.as_deref().unwrap_or("none"),
                timer.id
            );
        }
    }
    Ok(0)
}

/// Retries incident `id`: a case's failed rule step (run again as `user`), a parked timer
/// or a dead effect. Exit code 1 when it is refused or fails again, 2 when a case's
/// incident is retried without `--as`.
pub async fn retry(session: &Session, id: &str, user: Option<&str>) -> Result<i32> {
    let store = &session.engine.store;
    let entry = store.outbox_entry(id).await?;
    let of_case = match &entry {
        Some(entry) => entry.entry.kind == RULE_FAILED,
        None => instance_of_incident(id).is_some(),
    };
    if !of_case {
        return retry_delivery(store, id, session.engine.now()).await;
    }
    let Some(user) = user else {
        return Err(crate::errors::CliError::usage(
            "invalid_input",
            format!("{id} is a failed rule step of a case: retrying it needs --as USER"),
        )
        .hint("the user must be one who may correct the case (`jiuzhu correct`)")
        .into());
    };
    let actor = session.actor(user)?;
    match session.engine.retry_incident(id, &actor).await {
        Ok(report) => {
            println!(
                "{id}: the rule step ran again; case {} is {} (version {})",
                report.instance.id, report.instance.status, report.instance.version
            );
            Ok(0)
        }
        Err(error) => Ok(fail(&error)),
    }
}

/// Puts the dead effect `id` back in the outbox, due at `now` with a new attempt budget.
/// Exit code 1 with `error[not_found]: …` when `id` is no incident (unknown, or not dead).
async fn retry_delivery(store: &Store, id: &str, now: DateTime<Utc>) -> Result<i32> {
    if store
        .unpark_timer(id, now)
        .await
        .with_context(|| format!("retrying {id}"))?
    {
        println!("{id}: the timer is due again; the next scheduler tick fires it");
        return Ok(0);
    }
    match store.retry_outbox(id, now).await {
        Ok(()) => {
            println!("{id}: back in the outbox; the next dispatcher tick delivers it");
            Ok(0)
        }
        Err(StoreError::NotFound { .. }) => {
            let why = match store.outbox_entry(id).await? {
                None => "no effect has this id".to_string(),
                Some(entry) => match entry.status {
                    OutboxStatus::Pending => {
                        "it is not an incident: it is still being tried".to_string()
                    }
                    OutboxStatus::Delivered => "it is not an incident: it was delivered".into(),
                    // Dead again by now? Only another operator's retry and a failure in
                    // between could do that; say so rather than guess.
                    OutboxStatus::Dead => "it changed while retrying; run the command again".into(),
                },
            };
            crate::errors::emit(
                "not_found",
                &format!("{id}: {why}"),
                &["`jiuzhu incidents` lists the effects that can be retried".to_string()],
            );
            Ok(crate::errors::REFUSED)
        }
        Err(error) => Err(error).with_context(|| format!("retrying {id}")),
    }
}
