//! Operations: incidents (effects the dispatcher gave up on) with retry, and the years
//! each working-day calendar covers (its `covers`; deadlines past them are provisional).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use chrono::Datelike;
use jiuzhu_engine::privacy::mask_json;
use jiuzhu_engine::store::StoreError;

use super::{Admin, required, show};
use crate::app::AppState;
use crate::web::post::Posted;
use crate::web::{WebError, WebResult, render};

/// Incidents listed on one page.
const INCIDENTS_SHOWN: u32 = 200;

async fn operations_page(state: &AppState, admin: &Admin, flash: Option<String>) -> WebResult {
    let dead = state.engine.store.dead_outbox(INCIDENTS_SHOWN, 0).await?;
    let mut incidents = Vec::new();
    for entry in &dead {
        incidents.push(serde_json::json!({
            "id": entry.entry.id,
            "case": entry.entry.instance_id,
            "kind": entry.entry.kind,
            "payload": mask_json(&entry.entry.payload).to_string(),
            "attempts": entry.attempts,
            "last_error": entry.last_error,
            "given_up": render::local_time(entry.available_at),
            "token": admin.0.form_token(state).await?,
        }));
    }
    let calendars: Vec<serde_json::Value> = state
        .engine
        .project
        .calendars
        .iter()
        .map(|calendar| {
            // The years the calendar vouches for (`covers`); a calendar that declares
            // none is shown with the years its listed dates fall in.
            let declared = calendar.covers().is_some();
            let years: BTreeSet<i32> = match calendar.covers() {
                Some(covers) => covers.clone(),
                None => calendar
                    .holidays()
                    .iter()
                    .chain(calendar.workdays())
                    .map(|d| d.year())
                    .collect(),
            };
            serde_json::json!({
                "id": calendar.id(),
                "name": calendar.name(),
                "declared": declared,
                "years": years.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut context = admin.context(state, "operations");
    context.insert("incidents", &incidents);
    context.insert("calendars", &calendars);
    if let Some(flash) = flash {
        context.insert("flash", &flash);
    }
    show("admin/operations.html", &context)
}

/// `GET /admin/operations`.
pub async fn operations(State(state): State<Arc<AppState>>, admin: Admin) -> WebResult {
    operations_page(&state, &admin, None).await
}

/// `POST /admin/operations`: retries the incident `id` (back in the outbox with a new
/// attempt budget; the next dispatcher tick delivers it).
pub async fn retry(State(state): State<Arc<AppState>>, admin: Admin, form: Posted) -> WebResult {
    admin.accept(&state, &form, &["id"]).await?;
    let id = required(&form, "id", "事项编号")?;
    // A case's failed rule step is run again by the engine, never sent by the dispatcher.
    if let Some(entry) = state.engine.store.outbox_entry(id).await?
        && entry.entry.kind == jiuzhu_engine::core::RULE_FAILED
    {
        state
            .engine
            .retry_incident(id, &admin.0.principal.actor())
            .await?;
        let flash = format!("{id} 已重新核算，案件继续办理。");
        return operations_page(&state, &admin, Some(flash)).await;
    }
    match state
        .engine
        .store
        .retry_outbox(id, state.engine.now())
        .await
    {
        Ok(()) => {
            let flash = format!("{id} 已重新排队，调度程序下一轮将再次发送。");
            operations_page(&state, &admin, Some(flash)).await
        }
        Err(StoreError::NotFound { .. }) => Err(WebError::new(
            "duplicate",
            "该事项不是待处理的故障（可能已被重试或已送达），没有重复操作。",
        )),
        Err(error) => Err(error.into()),
    }
}
