//! Printed documents: pages laid out for A4 paper (print style sheet, no navigation) —
//! the decision notice of a case (approval with the amount and the first month paid, or
//! refusal with the reasons and the time limits for review and lawsuit), the approval
//! form (审批表) of a case, and the 公示 list of a township. Personal data is masked as
//! everywhere else; the 公示 list shows names (masked) and amounts, never ID numbers or
//! accounts. Who may print is decided as for the case page (the unit check of `authz`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use chrono::{Datelike, NaiveDate};
use jiuzhu_engine::core::InstanceState;
use jiuzhu_engine::lang::model::Definition;
use jiuzhu_engine::privacy::mask_json;
use jiuzhu_engine::store::search::CaseQuery;
use serde::Deserialize;

use super::{Staff, WebError, WebResult, page, render, visible_case};
use crate::app::AppState;

/// The printed documents' templates (registered with the others by `render`).
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "print/notice.html",
        include_str!("../../templates/print/notice.html"),
    ),
    (
        "print/approval.html",
        include_str!("../../templates/print/approval.html"),
    ),
    (
        "print/publicity.html",
        include_str!("../../templates/print/publicity.html"),
    ),
];

/// Days from receipt of a refusal within which the applicant may apply for
/// administrative review (行政复议法 art. 20).
pub const REVIEW_DAYS: u32 = 60;
/// Months from receipt within which the applicant may sue (行政诉讼法 art. 46).
pub const LAWSUIT_MONTHS: u32 = 6;

/// The node of a procedure where a case is publicly posted (公示).
const PUBLICITY_NODE: &str = "publicity";
/// Cases read for one 公示 list at most.
const PUBLICITY_LIMIT: u32 = 500;

/// The printed documents' routes other than the notice (whose route is the foundation's).
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/cases/{id}/approval-form", get(approval_form))
        .route("/print/publicity", get(publicity))
}

fn var(case: &InstanceState, name: &str) -> serde_json::Value {
    case.vars
        .get(name)
        .map(|v| v.to_json())
        .unwrap_or(serde_json::Value::Null)
}

/// `2026年4月`: the month after `date`, when monthly payments start.
pub fn start_month(date: NaiveDate) -> String {
    let (year, month) = if date.month() == 12 {
        (date.year() + 1, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    format!("{year}年{month}月")
}

/// `GET /cases/{id}/notice`: the decision notice of a decided case; a case still being
/// worked shows that no decision has been made yet.
pub async fn notice(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
) -> WebResult {
    let (row, def, case) = visible_case(&state, &staff, &id).await?;
    let decided = row.updated_at.with_timezone(&render::local_offset());
    let approved = row.outcome.as_deref() == Some("approved")
        || (row.outcome.is_some() && var(&case, "decision") == "approve");
    let mut context = tera::Context::new();
    context.insert("case_id", &row.id);
    context.insert("process_name", &def.name);
    context.insert("unit", &row.unit);
    context.insert("status", &row.status);
    context.insert("outcome", &row.outcome);
    context.insert("approved", &approved);
    context.insert("applicant_name", &var(&case, "applicant_name"));
    context.insert("monthly_amount", &var(&case, "monthly_amount"));
    context.insert("reasons", &reasons(&case));
    context.insert("start_month", &start_month(decided.date_naive()));
    context.insert("review_days", &REVIEW_DAYS);
    context.insert("lawsuit_months", &LAWSUIT_MONTHS);
    context.insert("decided_at", &render::local_time(row.updated_at));
    context.insert("decided_on", &decided.format("%Y年%-m月%-d日").to_string());
    Ok(page(render::render("print/notice.html", &context)?))
}

/// The reasons of a refusal: `reason`, and `findings` of a failed check, as written.
fn reasons(case: &InstanceState) -> Vec<String> {
    ["reason", "findings"]
        .iter()
        .filter_map(|name| var(case, name).as_str().map(str::trim).map(String::from))
        .filter(|text| !text.is_empty())
        .collect()
}

/// `GET /cases/{id}/approval-form`: the case's approval form — its data (masked) with
/// their labels, and every step with who took it and when.
pub async fn approval_form(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
) -> WebResult {
    let (row, def, case) = visible_case(&state, &staff, &id).await?;
    let history = state.engine.store.history(&row.id).await?;
    let steps: Vec<serde_json::Value> = history
        .iter()
        .map(|entry| {
            serde_json::json!({
                "at": render::local_time(entry.at),
                "actor": entry.actor,
                "event": entry.event,
                "node": entry.node.as_deref().map(|node| node_name(&def, node)),
            })
        })
        .collect();
    let mut context = tera::Context::new();
    context.insert("case_id", &row.id);
    context.insert("process_name", &def.name);
    context.insert("unit", &row.unit);
    context.insert("status", &row.status);
    context.insert("outcome", &row.outcome);
    context.insert("fields", &fields(&def, &case));
    context.insert("steps", &steps);
    context.insert("started_at", &render::local_time(row.created_at));
    Ok(page(render::render("print/approval.html", &context)?))
}

/// The display name of node `id`.
fn node_name(def: &Definition, id: &str) -> String {
    def.node_index(id)
        .and_then(|i| def.nodes.get(i))
        .map_or_else(|| id.to_string(), |node| node.name.clone())
}

/// The case's variables that have a value, with their labels, masked, as text.
fn fields(def: &Definition, case: &InstanceState) -> Vec<(String, String)> {
    def.variables
        .iter()
        .filter_map(|decl| {
            let value = case.vars.get(&decl.name)?.to_json();
            if value.is_null() {
                return None;
            }
            let mut wrapped = serde_json::Map::new();
            wrapped.insert(decl.name.clone(), value);
            let masked = mask_json(&serde_json::Value::Object(wrapped));
            let shown = match masked.get(&decl.name) {
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            Some((
                decl.label.clone().unwrap_or_else(|| decl.name.clone()),
                shown,
            ))
        })
        .collect()
}

#[derive(Deserialize)]
pub struct PublicityQuery {
    /// The township; the staff member's own unit when absent.
    pub unit: Option<String>,
}

/// `GET /print/publicity?unit=…`: the cases of a township (and the units below it)
/// that are being publicly posted: masked name, household size, proposed amount and the
/// end of the posting. No ID numbers, no accounts.
pub async fn publicity(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Query(query): Query<PublicityQuery>,
) -> WebResult {
    let unit = query
        .unit
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| staff.principal.unit.clone());
    if !staff.principal.can_see(&unit) {
        return Err(WebError::not_found());
    }
    let found = state
        .engine
        .store
        .search_cases(&CaseQuery {
            unit: Some(unit.clone()),
            status: Some("active".into()),
            limit: PUBLICITY_LIMIT,
            ..CaseQuery::default()
        })
        .await?;
    let mut rows = Vec::new();
    for summary in found {
        let (_, def, case) = state.engine.load(&summary.id).await?;
        if !case.tokens.iter().any(|t| t.node == PUBLICITY_NODE) {
            continue;
        }
        let members = var(&case, "household")
            .get("members")
            .and_then(|m| m.as_array())
            .map(Vec::len);
        let until = case.timers.iter().map(|t| t.due_at).max().map(|at| {
            at.with_timezone(&render::local_offset())
                .format("%Y-%m-%d")
                .to_string()
        });
        rows.push(serde_json::json!({
            "case_id": summary.id,
            "process_name": def.name,
            "unit": summary.unit,
            "name": summary.applicant_name,
            "members": members,
            "amount": var(&case, "monthly_amount"),
            "until": until,
        }));
    }
    let mut context = tera::Context::new();
    context.insert("unit", &unit);
    context.insert("rows", &rows);
    context.insert(
        "today",
        &state
            .engine
            .now()
            .with_timezone(&render::local_offset())
            .format("%Y年%-m月%-d日")
            .to_string(),
    );
    Ok(page(render::render("print/publicity.html", &context)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payments_start_the_month_after_the_decision() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("date");
        assert_eq!(start_month(d(2026, 3, 31)), "2026年4月");
        assert_eq!(start_month(d(2026, 12, 1)), "2027年1月");
    }
}
