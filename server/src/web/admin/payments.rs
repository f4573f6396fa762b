//! Payments in administration (`/admin/payments`): the month's run, the payment batches of
//! a month with their totals, the month's report, exporting bank files and downloading
//! one, and importing the bank's results file. Open to whoever may pay benefits
//! ([`authz::payments`]: the county's staff, heads and administrators), not only to
//! administrators. Every action goes through the JSON API's own handlers, so the page and
//! the API cannot drift apart (a download writes its access-log row there).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiuzhu_adapters::payments::{Ledger, YearMonth};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::{accept, required, show};
use crate::api::audit::ClientAddress;
use crate::api::{ApiJson, bank_files, payments};
use crate::app::AppState;
use crate::authz;
use crate::web::post::Posted;
use crate::web::{Staff, WebError, WebResult, render};

/// The `/admin/payments` routes.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/payments", get(page).post(action))
        .route("/admin/payments/bank-files/{id}", get(download))
}

/// A logged-in user who may pay benefits; anyone else gets the 403 page.
pub struct Payer(pub Staff);

impl FromRequestParts<Arc<AppState>> for Payer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Payer, Response> {
        let staff = Staff::from_request_parts(parts, state).await?;
        match authz::payments(&staff.principal) {
            Ok(()) => Ok(Payer(staff)),
            Err(refusal) => Err(WebError::from(refusal).into_response()),
        }
    }
}

#[derive(Deserialize, Default)]
pub struct MonthQuery {
    month: Option<String>,
}

/// The month shown when none is asked for: this month in local time.
fn this_month(state: &AppState) -> YearMonth {
    YearMonth::of(
        state
            .engine
            .now()
            .with_timezone(&render::local_offset())
            .date_naive(),
    )
}

/// The asked month, or a plain refusal.
fn parse_month(text: &str) -> WebResult<YearMonth> {
    text.trim().parse().map_err(|_| {
        WebError::bad_request(format!(
            "“{}”不是月份，请按 2026-03 的格式填写。",
            text.chars().take(20).collect::<String>()
        ))
    })
}

/// The page for `month`, with `outcome` (what an action did) on top.
async fn render_page(
    state: &Arc<AppState>,
    payer: &Payer,
    month: YearMonth,
    outcome: Option<Json>,
) -> WebResult {
    let principal = payer.0.principal.clone();
    let report = payments::report(State(state.clone()), principal, Path(month.to_string()))
        .await?
        .0;
    let instructions = Ledger::new(&state.engine.store)
        .instructions(Some(month), None)
        .await
        .map_err(payments::ledger_error)?;
    let mut batches: BTreeMap<String, (usize, Decimal)> = BTreeMap::new();
    for instruction in &instructions {
        let key = instruction
            .batch_id
            .clone()
            .unwrap_or_else(|| String::from("—"));
        let entry = batches.entry(key).or_insert((0, Decimal::ZERO));
        entry.0 += 1;
        entry.1 += instruction.amount;
    }
    let batches: Vec<Json> = batches
        .into_iter()
        .map(|(batch, (count, total))| {
            json!({"batch": batch, "file": batch != "—", "count": count, "total": total.to_string()})
        })
        .collect();
    let mut context = payer.0.context(state, "admin");
    context.insert("section", "payments");
    context.insert("month", &month.to_string());
    context.insert("report", &report);
    context.insert("batches", &batches);
    context.insert("outcome", &outcome);
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(payer.0.form_token(state).await?);
    }
    context.insert("tokens", &tokens);
    show("admin/payments.html", &context)
}

/// `GET /admin/payments?month=2026-03`.
pub async fn page(
    State(state): State<Arc<AppState>>,
    payer: Payer,
    Query(query): Query<MonthQuery>,
) -> WebResult {
    let month = match query.month.as_deref().filter(|m| !m.trim().is_empty()) {
        Some(text) => parse_month(text)?,
        None => this_month(&state),
    };
    render_page(&state, &payer, month, None).await
}

/// `POST /admin/payments`: `action` is `run` (the month's instructions), `export` (bank
/// files of the due payments) or `import` (the bank's results file).
pub async fn action(State(state): State<Arc<AppState>>, payer: Payer, form: Posted) -> WebResult {
    accept(
        &state,
        &payer.0,
        &form,
        &["action", "month", "file_name", "csv"],
    )
    .await?;
    let month = match form.one("month").filter(|m| !m.trim().is_empty()) {
        Some(text) => parse_month(text)?,
        None => this_month(&state),
    };
    let principal = payer.0.principal.clone();
    let outcome = match form.one("action") {
        Some("run") => {
            let run = payments::run(
                State(state.clone()),
                principal,
                ApiJson(payments::RunRequest {
                    month: month.to_string(),
                }),
            )
            .await?
            .0;
            json!({"kind": "run", "month": run.month, "created": run.created, "existing": run.existing})
        }
        Some("export") => {
            let export = bank_files::export(State(state.clone()), principal).await?.0;
            serde_json::to_value(&export)
                .map(|files| json!({"kind": "export", "export": files}))
                .map_err(|_| WebError::new("internal", "导出结果无法显示。"))?
        }
        Some("import") => {
            let file_name = required(&form, "file_name", "文件名")?.to_string();
            let csv = required(&form, "csv", "结果文件内容")?.to_string();
            let results = payments::import_results(
                State(state.clone()),
                principal,
                ApiJson(payments::ResultUpload { file_name, csv }),
            )
            .await?
            .0;
            serde_json::to_value(&results)
                .map(|results| json!({"kind": "import", "results": results}))
                .map_err(|_| WebError::new("internal", "导入结果无法显示。"))?
        }
        _ => {
            return Err(WebError::bad_request("不认识的操作，没有任何内容被修改。"));
        }
    };
    render_page(&state, &payer, month, Some(outcome)).await
}

/// `GET /admin/payments/bank-files/{id}`: the bank file, as the API serves it (full
/// account and ID numbers, so the API's handler writes the access-log row first).
pub async fn download(
    State(state): State<Arc<AppState>>,
    payer: Payer,
    address: ClientAddress,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    Ok(bank_files::download(State(state), payer.0.principal, address, Path(id)).await?)
}
