//! Payments: the monthly run and the monthly report, on the payments ledger. The county's
//! staff, heads and administrators ([`authz::payments`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use jiuzhu_adapters::payments::{Ledger, PaymentError, YearMonth, parse_result_file};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, AppResult};
use crate::app::AppState;
use crate::authz::{self, Principal};
use crate::problem::{ApiError, Problem};

/// A monthly run to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// `YYYY-MM`.
    pub month: String,
}

/// What a monthly run did.
#[derive(Serialize, ToSchema)]
pub struct RunView {
    pub month: String,
    /// Instructions created now.
    pub created: u64,
    /// Instructions that existed already (a rerun creates nothing twice).
    pub existing: u64,
}

pub(crate) fn month(text: &str) -> AppResult<YearMonth> {
    text.parse().map_err(|e| {
        ApiError::new(
            "invalid_data",
            format!("month {text:?}: {e} (written YYYY-MM)"),
        )
    })
}

pub(crate) fn ledger_error(error: PaymentError) -> ApiError {
    match error {
        PaymentError::Conflict(_) => ApiError::new("conflict", error.to_string()),
        // A bank's file that does not read: the uploader's to fix (it names a line).
        PaymentError::ResultFile { .. } => ApiError::new("invalid_data", error.to_string()),
        // A month not yet begun, or closed: nothing was written.
        PaymentError::MonthNotDue { .. } => ApiError::new("invalid_data", error.to_string()),
        PaymentError::MonthClosed { .. } | PaymentError::RunUnfinished { .. } => {
            ApiError::new("conflict", error.to_string())
        }
        other => ApiError::internal(&other),
    }
}

/// Creates one instruction per benefit active in the month (unique per benefit and month).
#[utoipa::path(post, path = "/api/payments/runs", tag = "payments", request_body = RunRequest, responses(
    (status = 200, description = "the run", body = RunView),
    (status = 400, description = "a body that is not JSON", body = Problem),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "the caller's role does not pay benefits", body = Problem),
    (status = 409, description = "a concurrent ledger write; retry", body = Problem),
    (status = 415, description = "not application/json", body = Problem),
    (status = 422, description = "not a month", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(crate) async fn run(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiJson(body): ApiJson<RunRequest>,
) -> AppResult<Json<RunView>> {
    authz::payments(&principal)?;
    let month = month(&body.month)?;
    let summary = Ledger::new(&state.engine.store)
        .run_month(month, state.engine.now())
        .await
        .map_err(ledger_error)?;
    Ok(Json(RunView {
        month: summary.month.to_string(),
        created: summary.created,
        existing: summary.existing,
    }))
}

/// Totals per program and unit for a month (amounts as decimal strings).
#[utoipa::path(get, path = "/api/payments/reports/{month}", tag = "payments",
    params(("month" = String, Path, description = "YYYY-MM")), responses(
    (status = 200, description = "the report", body = Object),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "the caller's role does not pay benefits", body = Problem),
    (status = 422, description = "not a month", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(crate) async fn report(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(text): Path<String>,
) -> AppResult<Json<serde_json::Value>> {
    authz::payments(&principal)?;
    let month = month(&text)?;
    let report = Ledger::new(&state.engine.store)
        .month_report(month)
        .await
        .map_err(ledger_error)?;
    serde_json::to_value(&report)
        .map(Json)
        .map_err(|e| ApiError::internal(&e))
}

/// The bank's result file, uploaded.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultUpload {
    /// The file's name, recorded as the results' source.
    pub file_name: String,
    /// The file's text: CSV with `reference`, `status` and `reason` columns.
    pub csv: String,
}

/// What recording a result file did, by payment reference.
#[derive(Serialize, ToSchema)]
pub struct ResultsView {
    pub paid: Vec<String>,
    pub failed: Vec<String>,
    /// Reported before with the same verdict.
    pub repeated: Vec<String>,
    /// Reported before with another verdict: the first stands.
    pub contradicting: Vec<String>,
    pub unknown: Vec<String>,
    /// The `payment_fix` case opened for each failed reference.
    pub fix_cases: Vec<FixCase>,
}

/// A failed payment and the case opened to fix it.
#[derive(Serialize, ToSchema)]
pub struct FixCase {
    pub reference: String,
    pub case_id: String,
}

/// Records the bank's results (`jiuzhu payments import-result` over HTTP): paid and
/// failed payments; each failure opens a `payment_fix` case.
#[utoipa::path(post, path = "/api/payments/results", tag = "payments", request_body = ResultUpload, responses(
    (status = 200, description = "recorded", body = ResultsView),
    (status = 400, description = "a body that is not JSON", body = Problem),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "the caller's role does not pay benefits", body = Problem),
    (status = 409, description = "a concurrent ledger write; retry", body = Problem),
    (status = 413, description = "the body is too large", body = Problem),
    (status = 415, description = "not application/json", body = Problem),
    (status = 422, description = "the file does not read (the problem names its line)", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(crate) async fn import_results(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiJson(body): ApiJson<ResultUpload>,
) -> AppResult<Json<ResultsView>> {
    authz::payments(&principal)?;
    let name = std::path::Path::new(&body.file_name);
    let results = parse_result_file(body.csv.as_bytes(), name).map_err(ledger_error)?;
    let summary = Ledger::new(&state.engine.store)
        .record_results(&results, &body.file_name, &state.engine, state.engine.now())
        .await
        .map_err(ledger_error)?;
    Ok(Json(ResultsView {
        paid: summary.paid,
        failed: summary.failed,
        repeated: summary.repeated,
        contradicting: summary.contradicting,
        unknown: summary.unknown,
        fix_cases: summary
            .fix_tasks
            .into_iter()
            .map(|(reference, case_id)| FixCase { reference, case_id })
            .collect(),
    }))
}
