//! Incidents: the effects the dispatcher gave up on, and a case's rule steps that failed
//! (kind `rule_failed`), and retrying one. Heads and administrators
//! ([`authz::incidents`]), for the cases of their units; a rule step is run again as the
//! caller, whom the engine must also allow to correct the case.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use jiuzhu_adapters::dispatch::Incident;
use jiuzhu_engine::core::{RULE_FAILED, StepError};
use jiuzhu_engine::privacy;
use jiuzhu_engine::runtime::EngineError;
use jiuzhu_engine::store::{OutboxStatus, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiQuery, AppResult, rfc3339};
use crate::app::AppState;
use crate::authz::{self, Principal, not_found};
use crate::problem::{ApiError, Problem};

/// A failed delivery; the effect's personal data masked.
#[derive(Serialize, ToSchema)]
pub struct IncidentView {
    /// The effect id (what retry takes).
    pub id: String,
    pub case_id: String,
    pub kind: String,
    pub summary: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: String,
    pub given_up_at: String,
    #[schema(value_type = Object)]
    pub effect: serde_json::Value,
}

/// A page of incidents.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// At most this many (1–200, default 50).
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

/// The instances' units of `ids`, for the visibility check.
async fn units(
    state: &AppState,
    ids: &[String],
) -> AppResult<std::collections::HashMap<String, String>> {
    Ok(state
        .engine
        .store
        .load_instances(ids)
        .await?
        .into_iter()
        .map(|row| (row.id, row.unit))
        .collect())
}

/// The incidents of the cases in the caller's units, oldest first.
#[utoipa::path(get, path = "/api/incidents", tag = "incidents", params(Page), responses(
    (status = 200, description = "the incidents", body = Vec<IncidentView>),
    (status = 400, description = "a malformed query", body = Problem),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "heads and administrators only", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(page): ApiQuery<Page>,
) -> AppResult<Json<Vec<IncidentView>>> {
    authz::incidents(&principal)?;
    let limit = page.limit.unwrap_or(50).clamp(1, 200);
    let dead = state
        .engine
        .store
        .dead_outbox(limit, page.offset.unwrap_or(0))
        .await?;
    let ids: Vec<String> = dead.iter().map(|e| e.entry.instance_id.clone()).collect();
    let units = units(&state, &ids).await?;
    Ok(Json(
        dead.iter()
            .map(Incident::from)
            .filter(|i| {
                units
                    .get(&i.instance_id)
                    .is_some_and(|u| principal.can_see(u))
            })
            .map(|i| IncidentView {
                id: i.id,
                case_id: i.instance_id,
                kind: i.kind,
                summary: i.summary,
                attempts: i.attempts,
                last_error: i.last_error,
                created_at: rfc3339(i.created_at),
                given_up_at: rfc3339(i.given_up_at),
                effect: privacy::mask_json(&i.effect),
            })
            .collect(),
    ))
}

/// What a retry did.
#[derive(Serialize, ToSchema)]
pub struct Retried {
    pub id: String,
    /// `pending`: back in the outbox; the next dispatcher tick delivers it. `resolved`: a
    /// case's rule step ran again and the case went on.
    pub status: String,
}

/// Puts a dead effect back in the outbox with a fresh attempt budget.
#[utoipa::path(post, path = "/api/incidents/{id}/retry", tag = "incidents",
    params(("id" = String, Path, description = "effect id")), responses(
    (status = 200, description = "back in the outbox", body = Retried),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "heads and administrators only", body = Problem),
    (status = 404, description = "no incident with this id in the caller's units", body = Problem),
    (status = 409, description = "the effect is pending or delivered, not dead; or a case's rule step failed again", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn retry(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> AppResult<Json<Retried>> {
    authz::incidents(&principal)?;
    let entry = state
        .engine
        .store
        .outbox_entry(&id)
        .await?
        .ok_or_else(|| not_found("incident", &id))?;
    let units = units(&state, std::slice::from_ref(&entry.entry.instance_id)).await?;
    match units.get(&entry.entry.instance_id) {
        Some(unit) if principal.can_see(unit) => {}
        _ => return Err(not_found("incident", &id)),
    }
    if entry.entry.kind == RULE_FAILED {
        if entry.status != OutboxStatus::Dead {
            return Err(ApiError::new(
                "conflict",
                format!("{id} is not an incident any more: the case went on"),
            ));
        }
        match state.engine.retry_incident(&id, &principal.actor()).await {
            Ok(_) => {}
            // Failing again is no server fault: the data or the policy still needs fixing.
            Err(EngineError::Step(StepError::Incident { message, .. })) => {
                return Err(ApiError::new(
                    "conflict",
                    format!("{id}: the rule step failed again: {message}"),
                ));
            }
            Err(error) => return Err(error.into()),
        }
        return Ok(Json(Retried {
            id,
            status: "resolved".into(),
        }));
    }
    match state
        .engine
        .store
        .retry_outbox(&id, state.engine.now())
        .await
    {
        Ok(()) => Ok(Json(Retried {
            id,
            status: "pending".into(),
        })),
        Err(StoreError::NotFound { .. }) => Err(ApiError::new(
            "conflict",
            format!("{id} is not an incident: it is pending or delivered"),
        )),
        Err(error) => Err(error.into()),
    }
}
