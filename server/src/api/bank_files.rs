//! Bank files: writing the due payments to a bank file in the configured bank folder
//! (`jiuzhu payments export` over HTTP), and downloading a bank file by its batch id. A
//! bank file carries full account and ID numbers, so every download is in the access log.
//! Who may: as for the other payment endpoints ([`authz::payments`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use jiuzhu_adapters::payments::{Ledger, PaymentError, PaymentsConfig};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppResult;
use super::audit::{self, ClientAddress};
use super::payments::FixCase;
use crate::app::AppState;
use crate::authz::{self, Principal};
use crate::problem::{ApiError, Problem};

/// A bank file written by an export.
#[derive(Serialize, ToSchema)]
pub struct BankFileView {
    /// The batch id (`YYYYMMDD-NNN`), for `GET /api/payments/bank-files/{id}`.
    pub batch_id: String,
    /// The file's name in the bank folder.
    pub file_name: String,
    pub count: usize,
    /// Sum of the amounts (decimal string).
    pub total: String,
    /// Rewritten from a batch whose acknowledgement was lost.
    pub resumed: bool,
}

/// What an export did.
#[derive(Serialize, ToSchema)]
pub struct ExportView {
    pub files: Vec<BankFileView>,
    /// Due payments without a bank account (references): not written, recorded as
    /// failed, each with a `payment_fix` case for the township staff.
    pub without_account: Vec<String>,
    /// The `payment_fix` case opened for each of them.
    pub fix_cases: Vec<FixCase>,
}

fn config(state: &AppState) -> PaymentsConfig {
    state.config.payments.clone().unwrap_or_default()
}

fn ledger(state: &AppState, config: &PaymentsConfig) -> Ledger {
    Ledger::new(&state.engine.store).with_utc_offset(config.utc_offset())
}

fn ledger_error(error: PaymentError) -> ApiError {
    match error {
        PaymentError::Conflict(_) => ApiError::new("conflict", error.to_string()),
        other => ApiError::internal(&other),
    }
}

/// Writes the due, unsent payments to a new bank file in the server's bank folder (and
/// rewrites a file whose acknowledgement was lost); they are then sent.
#[utoipa::path(post, path = "/api/payments/bank-files", tag = "payments", responses(
    (status = 200, description = "the files written (none when nothing is due)", body = ExportView),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "the caller's role does not pay benefits", body = Problem),
    (status = 409, description = "a concurrent ledger write; retry", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(crate) async fn export(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> AppResult<Json<ExportView>> {
    authz::payments(&principal)?;
    let config = config(&state);
    let summary = ledger(&state, &config)
        .export_bank_file(
            &config.bank_dir,
            &config.bank_file,
            &state.engine,
            state.engine.now(),
        )
        .await
        .map_err(ledger_error)?;
    Ok(Json(ExportView {
        files: summary
            .files
            .into_iter()
            .map(|file| BankFileView {
                file_name: config.bank_file.file_name(&file.batch_id),
                batch_id: file.batch_id,
                count: file.count,
                total: file.total.to_string(),
                resumed: file.resumed,
            })
            .collect(),
        without_account: summary.without_account,
        fix_cases: summary
            .fix_tasks
            .into_iter()
            .map(|(reference, case_id)| FixCase { reference, case_id })
            .collect(),
    }))
}

/// One bank file as CSV, the same bytes as the file written to the bank folder. Full
/// account and ID numbers: the download is written to the access log first.
#[utoipa::path(get, path = "/api/payments/bank-files/{id}", tag = "payments",
    params(("id" = String, Path, description = "the batch id, YYYYMMDD-NNN")), responses(
    (status = 200, description = "the bank file", content_type = "text/csv", body = String),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "the caller's role does not pay benefits", body = Problem),
    (status = 404, description = "no bank file has that batch id", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(crate) async fn download(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    address: ClientAddress,
    Path(id): Path<String>,
) -> AppResult<Response> {
    authz::payments(&principal)?;
    let config = config(&state);
    let batch = ledger(&state, &config)
        .batch(&id)
        .await
        .map_err(ledger_error)?
        .ok_or_else(|| ApiError::not_found(format!("no bank file {id:?}")))?;
    let bytes = config
        .bank_file
        .render(&batch.instructions)
        .map_err(|e| ApiError::internal(&e))?;
    audit::record(&state, &principal, &address, "bank_file", &batch.batch_id).await?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        config.bank_file.file_name(&batch.batch_id)
    );
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
