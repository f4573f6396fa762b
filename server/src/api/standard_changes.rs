//! `GET /api/payments/standard-changes`: running monthly benefits whose amount changed from
//! a date on (a raised standard), who changed by how much — for the caller's unit and the
//! units below it. The payment roles ([`authz::payments`]); names and ID numbers masked.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use jiuzhu_adapters::payments::{Ledger, StandardChangeReport};
use jiuzhu_engine::core::unit_contains;
use serde::Deserialize;
use utoipa::IntoParams;

use super::payments::ledger_error;
use super::{ApiQuery, AppResult};
use crate::app::AppState;
use crate::authz::{self, Principal};
use crate::problem::{ApiError, Problem};

/// Which changes to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// `YYYY-MM-DD`: changes taking effect in this date's month or later.
    pub from: String,
    /// A unit within the caller's (default: the caller's unit).
    pub unit: Option<String>,
}

/// Benefits whose monthly amount changed from `from` on: old and new amount, the
/// difference, the payee (masked), and the total difference a month.
#[utoipa::path(get, path = "/api/payments/standard-changes", tag = "payments", params(ChangesQuery), responses(
    (status = 200, description = "the report (amounts as decimal strings)", body = Object),
    (status = 400, description = "a malformed query", body = Problem),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "the caller's role does not pay benefits, or the unit is not the caller's", body = Problem),
    (status = 422, description = "not a date", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ChangesQuery>,
) -> AppResult<Json<StandardChangeReport>> {
    authz::payments(&principal)?;
    let from = chrono::NaiveDate::parse_from_str(&query.from, "%Y-%m-%d").map_err(|e| {
        ApiError::new(
            "invalid_data",
            format!("from {:?}: {e} (written YYYY-MM-DD)", query.from),
        )
    })?;
    let unit = query.unit.unwrap_or_else(|| principal.unit.clone());
    if !unit_contains(&principal.unit, &unit) {
        return Err(ApiError::forbidden(
            "forbidden",
            "the unit is outside the caller's own",
        ));
    }
    let report = Ledger::new(&state.engine.store)
        .standard_changes(from, Some(&unit))
        .await
        .map_err(ledger_error)?;
    Ok(Json(report))
}
