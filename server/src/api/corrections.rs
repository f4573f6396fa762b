//! Corrections of a case's data: `POST /api/cases/{id}/corrections`. Who may correct what
//! is the engine core's decision (declared variables, typed; staff of the process in the
//! case's unit or above, or a head; open cases only); the caller must see the case.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use jiuzhu_rules::Value;
use serde::Deserialize;
use utoipa::ToSchema;

use super::cases::{StepView, step_view, visible_case};
use super::{ApiJson, AppResult};
use crate::app::AppState;
use crate::authz::{self, Principal};
use crate::problem::Problem;

/// A correction: new values by path into the case's variables, and why.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Correction {
    /// Path → new value, e.g. `{"applicant_name": "张秀英",
    /// "household.members[1].income[0].monthly": "800.00"}`.
    #[schema(value_type = Object)]
    pub changes: serde_json::Map<String, serde_json::Value>,
    /// Why (required, at most 500 characters); kept in the history.
    pub reason: String,
}

/// Corrects a case's data as a step of its own: the history row `correct` keeps the reason
/// and each path's old and new value (masked where personal).
#[utoipa::path(post, path = "/api/cases/{id}/corrections", tag = "cases",
    params(("id" = String, Path, description = "case id")),
    request_body = Correction, responses(
    (status = 200, description = "corrected", body = StepView),
    (status = 400, description = "a body that is not JSON", body = Problem),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "the caller may not correct this case (role, unit, CSRF)", body = Problem),
    (status = 404, description = "no such case, or not in the caller's units", body = Problem),
    (status = 409, description = "the case is closed, or moved meanwhile", body = Problem),
    (status = 413, description = "the body is too large", body = Problem),
    (status = 415, description = "not application/json", body = Problem),
    (status = 422, description = "a value does not fit its path, or no reason", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn correct(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Correction>,
) -> AppResult<Json<StepView>> {
    let row = visible_case(&state, &principal, &id).await?;
    authz::correct(&principal, &row.unit, &id)?;
    let changes = body
        .changes
        .iter()
        .map(|(path, value)| (path.clone(), Value::from_json(value)))
        .collect();
    let report = state
        .engine
        .correct(&id, &principal.actor(), changes, &body.reason)
        .await?;
    Ok(Json(step_view(&report)))
}
