//! `jiuzhu incidents` and `jiuzhu retry ID`: the effects the dispatcher gave up on, and
//! giving one of them a fresh start.
//!
//! An incident is a dead outbox entry: its last error, attempts and times say what went
//! wrong; once the cause is fixed (an address corrected, a receiver back up, a process
//! deployed), `retry` puts it back in the outbox with a new attempt budget and the next
//! dispatcher tick delivers it. A parked timer (its firing failed on every attempt the
//! scheduler allows) is an incident on its case too, listed after the effects in the text
//! view; `retry TIMER_ID` lets the scheduler fire it again.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use jiuzhu_adapters::dispatch::{Incident, incidents};
use jiuzhu_engine::store::{OutboxStatus, ParkedTimer, Store, StoreError};
use serde_json::{Value as Json, json};

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

/// Puts the dead effect `id` back in the outbox, due at `now` with a new attempt budget.
/// Exit code 1 with `error[not_found]: …` when `id` is no incident (unknown, or not dead).
pub async fn retry(store: &Store, id: &str, now: DateTime<Utc>) -> Result<i32> {
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
