//! The township reserve fund (乡镇临时救助备用金): balances, and replenishment by county
//! staff or an administrator of a unit above the township, never above the ceiling of the
//! policy in force ([`authz::reserves`], [`authz::reserve_replenish`]).

use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use jiuzhu_adapters::payments::{Ledger, ReserveError, known_unit, reserve_ceiling};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::payments::ledger_error;
use super::{ApiJson, AppResult};
use crate::app::AppState;
use crate::authz::{self, Principal};
use crate::problem::{ApiError, DataProblem, Problem};

/// One township's reserve.
#[derive(Serialize, ToSchema)]
pub struct ReserveView {
    pub unit: String,
    /// Yuan, a decimal string.
    pub balance: String,
    /// `reserve_fund.ceiling` of the policy in force today; absent: no limit.
    pub ceiling: Option<String>,
    /// Movements recorded (draws, refusals, replenishments).
    pub entries: u64,
    /// The balance equals the sum of the entries.
    pub verified: bool,
}

/// A replenishment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replenishment {
    /// Yuan, a decimal string such as `"5000.00"`: positive, whole fen.
    pub amount: String,
    /// Why (kept on the entry).
    #[serde(default)]
    pub note: Option<String>,
}

fn amount_problem(detail: String) -> ApiError {
    ApiError {
        errors: vec![DataProblem {
            path: "$.amount".into(),
            message: detail.clone(),
        }],
        ..ApiError::new("invalid_data", detail)
    }
}

/// The reserves the caller may read: their township's, or those below their county.
#[utoipa::path(get, path = "/api/reserves", tag = "payments", responses(
    (status = 200, description = "the reserves, by unit", body = [ReserveView]),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "the caller's role reads no reserve", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> AppResult<Json<Vec<ReserveView>>> {
    authz::reserves(&principal)?;
    let ledger = Ledger::new(&state.engine.store);
    let today = ledger.today(state.engine.now());
    let reserves = ledger.reserves().await.map_err(ledger_error)?;
    Ok(Json(
        reserves
            .into_iter()
            .filter(|r| authz::reserve_visible(&principal, &r.unit))
            .map(|r| ReserveView {
                ceiling: reserve_ceiling(&state.engine, &r.unit, today).map(|c| c.to_string()),
                verified: r.verified(),
                unit: r.unit,
                balance: r.balance.to_string(),
                entries: r.entries,
            })
            .collect(),
    ))
}

/// Adds to a township's reserve (the unit percent-encoded in the path, `/` as `%2F`).
#[utoipa::path(post, path = "/api/reserves/{unit}/replenish", tag = "payments",
    params(("unit" = String, Path, description = "the township unit, e.g. 双鸭山市/尖山区/中心站街道")),
    request_body = Replenishment, responses(
    (status = 200, description = "the reserve after the replenishment", body = ReserveView),
    (status = 400, description = "a body that is not JSON", body = Problem),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "not county staff or an administrator above the unit", body = Problem),
    (status = 404, description = "no such unit", body = Problem),
    (status = 409, description = "a concurrent ledger write; retry", body = Problem),
    (status = 415, description = "not application/json", body = Problem),
    (status = 422, description = "a malformed, zero or negative amount, or one above the ceiling (the room left is named)", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(crate) async fn replenish(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(unit): Path<String>,
    ApiJson(body): ApiJson<Replenishment>,
) -> AppResult<Json<ReserveView>> {
    authz::reserve_replenishers(&principal)?;
    if !known_unit(&state.engine, &unit) {
        return Err(authz::not_found("unit", &unit));
    }
    authz::reserve_replenish(&principal, &unit)?;
    let amount = Decimal::from_str(body.amount.trim()).map_err(|_| {
        amount_problem(format!(
            "amount {:?} is not a decimal amount such as \"5000.00\"",
            body.amount
        ))
    })?;
    let ledger = Ledger::new(&state.engine.store);
    let now = state.engine.now();
    let ceiling = reserve_ceiling(&state.engine, &unit, ledger.today(now));
    match ledger
        .replenish_reserve(
            &unit,
            amount,
            ceiling,
            &principal.user,
            body.note.as_deref(),
            now,
        )
        .await
    {
        Ok(_) => {}
        // Malformed, zero or negative, or above the ceiling (the message names the room left).
        Err(ReserveError::Refused(problem)) => return Err(amount_problem(problem.to_string())),
        Err(ReserveError::Payment(error)) => return Err(ledger_error(error)),
    }
    let reserve = ledger
        .reserve_map()
        .await
        .map_err(ledger_error)?
        .remove(&unit)
        .ok_or_else(|| authz::not_found("unit", &unit))?;
    Ok(Json(ReserveView {
        ceiling: ceiling.map(|c| c.to_string()),
        verified: reserve.verified(),
        balance: reserve.balance.to_string(),
        entries: reserve.entries,
        unit,
    }))
}
