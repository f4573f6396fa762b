//! Batch runs (heating aid, price subsidies …): how far each got, for the roles that pay
//! benefits ([`authz::payments`]) — the county's staff and heads, administrators — and
//! only the runs of cases in the caller's units (another unit's run is not found).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use jiuzhu_adapters::payments::{BatchProgress, Ledger};
use jiuzhu_engine::store::OutboxStatus;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppResult;
use super::payments::ledger_error;
use crate::app::AppState;
use crate::authz::{self, Principal};
use crate::problem::Problem;

/// One batch run and its progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchView {
    /// The run's key: a second run under it pays nobody twice.
    pub run_key: String,
    /// The case whose batch node asked for the run.
    pub case_id: String,
    /// That case's unit.
    pub unit: String,
    /// `running`, `done`, or `failed` (the run's delivery was given up: an incident).
    pub status: String,
    /// The date the recipients were listed for (`YYYY-MM-DD`).
    pub as_of: String,
    /// Recipients listed when the run started.
    pub recipients: i64,
    /// Recipients worked off.
    pub done: i64,
    /// Recipients still to do while the run goes on.
    pub pending: i64,
    /// Recipients left undone by a run given up (retried from the incidents).
    pub failed: i64,
    /// Recipients paid (a recipient with nothing due is done, not paid).
    pub paid: i64,
    /// The amount paid so far, a decimal string.
    pub total: String,
}

/// The runs the caller may see, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchList {
    pub batches: Vec<BatchView>,
}

/// The run's view, when its case is in the caller's units.
async fn view(
    state: &AppState,
    principal: &Principal,
    run: BatchProgress,
) -> AppResult<Option<BatchView>> {
    let Some(case) = state.engine.store.load_instance(&run.case_id).await? else {
        return Ok(None);
    };
    if !principal.can_see(&case.unit) {
        return Ok(None);
    }
    let undone = (run.recipients - run.done).max(0);
    let given_up = run.status != "done"
        && state
            .engine
            .store
            .outbox_entry(&run.effect_id)
            .await?
            .is_some_and(|entry| entry.status == OutboxStatus::Dead);
    let (status, pending, failed) = if given_up {
        ("failed".to_string(), 0, undone)
    } else {
        (run.status, undone, 0)
    };
    Ok(Some(BatchView {
        run_key: run.run_key,
        case_id: run.case_id,
        unit: case.unit,
        status,
        as_of: run.as_of,
        recipients: run.recipients,
        done: run.done,
        pending,
        failed,
        paid: run.paid,
        total: format!("{:.2}", run.total),
    }))
}

/// Every batch run of a case in the caller's units, with its progress.
#[utoipa::path(get, path = "/api/batches", tag = "payments", responses(
    (status = 200, description = "the runs, newest first", body = BatchList),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "the caller's role does not pay benefits", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> AppResult<Json<BatchList>> {
    authz::payments(&principal)?;
    let runs = Ledger::new(&state.engine.store)
        .batches(None)
        .await
        .map_err(ledger_error)?;
    let mut batches = Vec::new();
    for run in runs {
        if let Some(view) = view(&state, &principal, run).await? {
            batches.push(view);
        }
    }
    Ok(Json(BatchList { batches }))
}

/// One batch run by its key, when its case is in the caller's units.
#[utoipa::path(get, path = "/api/batches/{id}", tag = "payments",
    params(("id" = String, Path, description = "the run key")), responses(
    (status = 200, description = "the run", body = BatchView),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "the caller's role does not pay benefits", body = Problem),
    (status = 404, description = "no such run, or its case is outside the caller's units", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> AppResult<Json<BatchView>> {
    authz::payments(&principal)?;
    let run = Ledger::new(&state.engine.store)
        .batches(Some(&id))
        .await
        .map_err(ledger_error)?
        .into_iter()
        .next();
    let view = match run {
        Some(run) => view(&state, &principal, run).await?,
        None => None,
    };
    view.map(Json)
        .ok_or_else(|| authz::not_found("batch run", &id))
}
