//! Sending the due payments through the payment gateway of `--payments-config`
//! (`jiuzhu payments send` over HTTP). Who may: as for the other payment endpoints
//! ([`authz::payments`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use jiuzhu_adapters::payments::{HttpGateway, Ledger};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppResult;
use crate::app::AppState;
use crate::authz::{self, Principal};
use crate::problem::{ApiError, Problem};

/// What a gateway round did, by payment reference.
#[derive(Serialize, ToSchema)]
pub struct SendView {
    pub sent: Vec<String>,
    /// Refused for good: recorded as failed, a `payment_fix` case is opened.
    pub refused: Vec<String>,
    /// Not reached after retries: sent again next round with the same key.
    pub unreachable: Vec<String>,
    /// No bank account known: not sent, recorded as failed, a `payment_fix` case opened.
    pub without_account: Vec<String>,
}

/// Sends every due, unsent payment through the configured gateway, one request each with
/// its reference as the idempotency key.
#[utoipa::path(post, path = "/api/payments/send", tag = "payments", responses(
    (status = 200, description = "the round", body = SendView),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "the caller's role does not pay benefits", body = Problem),
    (status = 409, description = "a concurrent ledger write (`conflict`; retry), or no payment gateway configured (`not_configured`)", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn send(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> AppResult<Json<SendView>> {
    authz::payments(&principal)?;
    let config = state.config.payments.clone().unwrap_or_default();
    let gateway = config.gateway.clone().ok_or_else(|| {
        ApiError::new(
            "not_configured",
            "no payment gateway: the server's --payments-config has no `gateway`",
        )
    })?;
    let gateway = HttpGateway::new(gateway).map_err(|e| ApiError::internal(&e))?;
    let summary = Ledger::new(&state.engine.store)
        .with_utc_offset(config.utc_offset())
        .send_via_gateway(&gateway, &state.engine, state.engine.now())
        .await
        .map_err(|error| {
            if error.is_conflict() {
                ApiError::new("conflict", error.to_string())
            } else {
                ApiError::internal(&error)
            }
        })?;
    Ok(Json(SendView {
        sent: summary.sent,
        refused: summary.rejected,
        unreachable: summary.unavailable,
        without_account: summary.without_account,
    }))
}
