//! Printed documents: pages laid out for paper (A4, no navigation). Today the decision
//! notice of a case (审核确认决定通知书); personal data masked as everywhere else.

use std::sync::Arc;

use axum::extract::{Path, State};

use super::{Staff, WebResult, page, render, visible_case};
use crate::app::AppState;

/// The printed documents' templates (registered with the others by `render`).
pub const TEMPLATES: &[(&str, &str)] = &[(
    "print/notice.html",
    include_str!("../../templates/print/notice.html"),
)];

/// `GET /cases/{id}/notice`: the decision notice of a decided case; a case still being
/// worked shows that no decision has been made yet.
pub async fn notice(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
) -> WebResult {
    let (row, def, case) = visible_case(&state, &staff, &id).await?;
    let var = |name: &str| case.vars.get(name).map(|v| v.to_json());
    let mut context = tera::Context::new();
    context.insert("case_id", &row.id);
    context.insert("process_name", &def.name);
    context.insert("unit", &row.unit);
    context.insert("status", &row.status);
    context.insert("outcome", &row.outcome);
    context.insert("applicant_name", &var("applicant_name"));
    context.insert("decision", &var("decision"));
    context.insert("monthly_amount", &var("monthly_amount"));
    context.insert("reason", &var("reason"));
    context.insert("decided_at", &render::local_time(row.updated_at));
    Ok(page(render::render("print/notice.html", &context)?))
}
