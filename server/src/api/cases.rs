//! Cases: list and search, start, show, history, messages. Personal data is masked unless
//! the caller asks with `reveal=true`, may see it ([`authz::reveal`]), and the view is
//! written to the access log.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiuzhu_engine::privacy;
use jiuzhu_engine::runtime::StepReport;
use jiuzhu_engine::store::search::{CaseQuery as SearchQuery, CaseSummary as Found};
use jiuzhu_engine::store::{InstanceRow, TaskRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::audit::{self, ClientAddress};
use super::{ApiJson, ApiQuery, AppResult, data_map, rfc3339};
use crate::app::AppState;
use crate::authz::{self, Principal, not_found};
use crate::problem::{ApiError, Problem};

/// A case in a listing; personal data masked unless revealed.
#[derive(Serialize, ToSchema)]
pub struct CaseSummary {
    pub id: String,
    pub process: String,
    pub process_version: i64,
    pub status: String,
    pub outcome: Option<String>,
    pub unit: String,
    /// The applicant's name, masked (surname only).
    pub applicant: Option<String>,
    /// The first ID number of the case, masked (first 3 and last 4 characters).
    pub id_number: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The case is in the archive (ended long ago; read-only).
    pub archived: bool,
}

/// A page of cases.
#[derive(Serialize, ToSchema)]
pub struct CaseList {
    pub items: Vec<CaseSummary>,
    pub limit: u32,
    pub offset: u32,
    /// True when personal data is shown unmasked (the view was logged).
    pub revealed: bool,
}

/// An open task of a case.
#[derive(Serialize, ToSchema)]
pub struct TaskView {
    pub id: String,
    pub case_id: String,
    pub node: String,
    pub label: String,
    pub role: String,
    pub unit: String,
    pub assignee: Option<String>,
    pub due_at: Option<String>,
    /// `due_at` was counted in working days through a year the deployed calendar does
    /// not cover (暂定): it moves when that year's calendar is deployed.
    pub provisional: bool,
    pub created_at: String,
}

/// A case with its variables (personal data masked unless revealed) and open tasks.
#[derive(Serialize, ToSchema)]
pub struct CaseDetail {
    #[serde(flatten)]
    pub case: CaseSummary,
    #[schema(value_type = Object)]
    pub variables: serde_json::Value,
    pub open_tasks: Vec<TaskView>,
    pub revealed: bool,
}

/// Which cases to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CaseQuery {
    /// Only cases of this process.
    pub process: Option<String>,
    /// Only cases in this status (`active`, `completed`, …).
    pub status: Option<String>,
    /// Only cases of this unit and below (within the caller's).
    pub unit: Option<String>,
    /// Cases whose applicant's name contains this text.
    pub name: Option<String>,
    /// Cases holding this ID number.
    pub id_number: Option<String>,
    /// At most this many (1–200, default 50).
    pub limit: Option<u32>,
    pub offset: Option<u32>,
    /// Show names and ID numbers unmasked (roles that need it; the view is logged).
    pub reveal: Option<bool>,
}

/// Whether to show a case unmasked.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RevealQuery {
    /// Show personal data unmasked (roles that need it; the view is logged).
    pub reveal: Option<bool>,
}

/// What a step did: the case's new status and the tasks it opened.
#[derive(Serialize, ToSchema)]
pub struct StepView {
    pub case_id: String,
    pub status: String,
    pub outcome: Option<String>,
    pub tasks_opened: Vec<TaskView>,
}

/// A new case: its process and start data.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartCase {
    pub process: String,
    /// Start in this unit (within the caller's) instead of the caller's own.
    pub unit: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// One row of a case's history.
#[derive(Serialize, ToSchema)]
pub struct HistoryEntry {
    pub seq: i64,
    pub at: String,
    /// Who acted (`null`: the system, a timer).
    pub actor: Option<String>,
    /// For whom the actor acted (`applicant`: a message recorded on their behalf).
    pub on_behalf_of: Option<String>,
    pub event: String,
    pub node: Option<String>,
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    #[schema(value_type = Object)]
    pub changed: serde_json::Value,
    /// A correction's `[{path, old, new}]`, masked where personal even when revealed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub corrections: Option<serde_json::Value>,
    pub hash: String,
}

/// A case's history, oldest first.
#[derive(Serialize, ToSchema)]
pub struct History {
    pub case_id: String,
    pub entries: Vec<HistoryEntry>,
    /// The hash chain recomputed and found intact.
    pub verified: bool,
    pub revealed: bool,
}

/// Masks `value` unless `reveal`.
fn shown(value: &serde_json::Value, reveal: bool) -> serde_json::Value {
    if reveal {
        value.clone()
    } else {
        privacy::mask_json(value)
    }
}

fn shown_name(name: &str, reveal: bool) -> String {
    if reveal {
        name.to_string()
    } else {
        privacy::mask_name(name)
    }
}

fn found_summary(case: &Found, reveal: bool) -> CaseSummary {
    CaseSummary {
        id: case.id.clone(),
        process: case.process_id.clone(),
        process_version: case.process_version,
        status: case.status.clone(),
        outcome: case.outcome.clone(),
        unit: case.unit.clone(),
        applicant: case
            .applicant_name
            .as_deref()
            .map(|n| shown_name(n, reveal)),
        id_number: case.id_number.as_deref().map(|n| {
            if reveal {
                n.to_string()
            } else {
                privacy::mask_id_number(n)
            }
        }),
        created_at: rfc3339(case.created_at),
        updated_at: rfc3339(case.updated_at),
        archived: case.archived,
    }
}

pub(super) fn task_view(task: &TaskRow) -> TaskView {
    TaskView {
        id: task.id.clone(),
        case_id: task.instance_id.clone(),
        node: task.node_id.clone(),
        label: task.label.clone(),
        role: task.role.clone(),
        unit: task.unit.clone(),
        assignee: task.assignee.clone(),
        due_at: task.due_at.map(rfc3339),
        provisional: task.provisional,
        created_at: rfc3339(task.created_at),
    }
}

pub(super) fn step_view(report: &StepReport) -> StepView {
    StepView {
        case_id: report.instance.id.clone(),
        status: report.instance.status.clone(),
        outcome: report.instance.outcome.clone(),
        tasks_opened: report.tasks_opened.iter().map(task_view).collect(),
    }
}

/// Whether the caller asked to reveal and may: `Ok(false)` when not asked.
fn wants_reveal(principal: &Principal, asked: Option<bool>) -> AppResult<bool> {
    if asked == Some(true) {
        authz::reveal(principal)?;
        Ok(true)
    } else {
        Ok(false)
    }
}

/// The cases the caller may see (their unit and below), oldest first; filters combine.
#[utoipa::path(get, path = "/api/cases", tag = "cases", params(CaseQuery), responses(
    (status = 200, description = "a page of cases", body = CaseList),
    (status = 400, description = "a malformed query", body = Problem),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "reveal asked by a role that may not", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn list_cases(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    address: ClientAddress,
    ApiQuery(query): ApiQuery<CaseQuery>,
) -> AppResult<Json<CaseList>> {
    let reveal = wants_reveal(&principal, query.reveal)?;
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let offset = query.offset.unwrap_or(0);
    let unit = match query.unit {
        Some(unit) if principal.can_see(&unit) => unit,
        // A unit above or beside the caller's: nothing of it is theirs to list.
        Some(_) => {
            return Ok(Json(CaseList {
                items: Vec::new(),
                limit,
                offset,
                revealed: reveal,
            }));
        }
        None => principal.unit.clone(),
    };
    let search = SearchQuery {
        process_id: query.process,
        status: query.status,
        unit: Some(unit),
        name: query.name,
        id_number: query.id_number,
        limit,
        offset,
    };
    let found = state.engine.store.search_cases(&search).await?;
    // The store filters by unit already; checked again here so visibility has one rule.
    let items: Vec<CaseSummary> = found
        .iter()
        .filter(|case| principal.can_see(&case.unit))
        .map(|case| found_summary(case, reveal))
        .collect();
    if reveal {
        let ids: Vec<&str> = items.iter().map(|c| c.id.as_str()).collect();
        audit::record(&state, &principal, &address, "cases", &ids.join(",")).await?;
    }
    Ok(Json(CaseList {
        items,
        limit,
        offset,
        revealed: reveal,
    }))
}

/// A case the caller may see, with its variables and open tasks.
#[utoipa::path(get, path = "/api/cases/{id}", tag = "cases",
    params(("id" = String, Path, description = "case id"), RevealQuery), responses(
    (status = 200, description = "the case", body = CaseDetail),
    (status = 400, description = "a malformed query", body = Problem),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "reveal asked by a role that may not", body = Problem),
    (status = 404, description = "no such case, or not in the caller's units", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn get_case(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    address: ClientAddress,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<RevealQuery>,
) -> AppResult<Json<CaseDetail>> {
    visible_case(&state, &principal, &id).await?;
    let reveal = wants_reveal(&principal, query.reveal)?;
    // Live or archived: an archived case is shown as it ended.
    let Some((row, _, case_state, archived)) = state.engine.load_for_reading(&id).await? else {
        return Err(not_found("case", &id));
    };
    let variables = serde_json::Value::Object(
        case_state
            .vars
            .iter()
            .map(|(name, value)| (name.clone(), value.to_json()))
            .collect(),
    );
    let variables = shown(&variables, reveal);
    let open_tasks = case_state
        .tasks
        .iter()
        .map(|task| TaskView {
            id: task.id.clone(),
            case_id: id.clone(),
            node: task.node.clone(),
            label: task.label.clone(),
            role: task.roles.join("|"),
            unit: task.unit.clone(),
            assignee: task.claimed_by.clone().or_else(|| task.assignee.clone()),
            due_at: task.due_at.map(|d| d.to_rfc3339()),
            provisional: task.provisional,
            created_at: task.opened_at.to_rfc3339(),
        })
        .collect();
    if reveal {
        audit::record(&state, &principal, &address, "case", &id).await?;
    }
    Ok(Json(CaseDetail {
        case: row_summary(&row, &variables, archived),
        variables,
        open_tasks,
        revealed: reveal,
    }))
}

/// A case row's summary; names and ID numbers from the (already masked or revealed)
/// variables.
fn row_summary(row: &InstanceRow, variables: &serde_json::Value, archived: bool) -> CaseSummary {
    CaseSummary {
        id: row.id.clone(),
        process: row.process_id.clone(),
        process_version: row.process_version,
        status: row.status.clone(),
        outcome: row.outcome.clone(),
        unit: row.unit.clone(),
        applicant: ["applicant_name", "payee"]
            .iter()
            .find_map(|k| variables[*k].as_str().map(str::to_string)),
        id_number: first_id_number(variables),
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
        archived,
    }
}

fn first_id_number(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| match v {
            serde_json::Value::String(s) if k == "id_number" => Some(s.clone()),
            other => first_id_number(other),
        }),
        serde_json::Value::Array(items) => items.iter().find_map(first_id_number),
        _ => None,
    }
}

/// The history of a case the caller may see: who did what when, masked unless revealed;
/// `verify=true` recomputes the hash chain.
#[utoipa::path(get, path = "/api/cases/{id}/history", tag = "cases",
    params(("id" = String, Path, description = "case id"), HistoryQuery), responses(
    (status = 200, description = "the history", body = History),
    (status = 400, description = "a malformed query", body = Problem),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "reveal asked by a role that may not", body = Problem),
    (status = 404, description = "no such case, or not in the caller's units", body = Problem),
    (status = 409, description = "the hash chain does not verify (the history was altered)", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn history(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    address: ClientAddress,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> AppResult<Json<History>> {
    visible_case(&state, &principal, &id).await?;
    let reveal = wants_reveal(&principal, query.reveal)?;
    let rows = state.engine.store.history(&id).await?;
    let verified = if query.verify == Some(true) {
        state.engine.store.verify_history(&id).await.map_err(|e| {
            ApiError::new("tampered", format!("the history of {id} was altered: {e}"))
        })?;
        true
    } else {
        false
    };
    let entries = rows
        .iter()
        .map(|row| HistoryEntry {
            seq: row.seq,
            at: rfc3339(row.at),
            actor: row.actor.clone(),
            on_behalf_of: row.data["on_behalf_of"].as_str().map(str::to_string),
            event: row.event.clone(),
            node: row.node.clone(),
            input: shown(&row.data["input"], reveal),
            changed: shown(&row.data["changed"], reveal),
            corrections: row.data.get("corrections").cloned(),
            hash: row.hash.clone(),
        })
        .collect();
    if reveal {
        audit::record(&state, &principal, &address, "history", &id).await?;
    }
    Ok(Json(History {
        case_id: id,
        entries,
        verified,
        revealed: reveal,
    }))
}

/// What to show of a history.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Show personal data unmasked (roles that need it; the view is logged).
    pub reveal: Option<bool>,
    /// Recompute the hash chain.
    pub verify: Option<bool>,
}

/// The case `id` if the caller may see it; not found otherwise, as for a missing one.
pub(super) async fn visible_case(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> AppResult<InstanceRow> {
    // Archived cases are found too, under the same rule.
    match state.engine.store.find_instance(id).await? {
        Some((row, _)) if principal.can_see(&row.unit) => Ok(row),
        _ => Err(not_found("case", id)),
    }
}

/// Starts a case of a process as the caller (the engine checks the caller may).
#[utoipa::path(post, path = "/api/cases", tag = "cases", request_body = StartCase, responses(
    (status = 201, description = "started", body = StepView),
    (status = 400, description = "a body that is not JSON", body = Problem),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "the caller may not start this process (role, unit, CSRF)", body = Problem),
    (status = 404, description = "no such process", body = Problem),
    (status = 413, description = "the body is too large", body = Problem),
    (status = 415, description = "not application/json", body = Problem),
    (status = 422, description = "the start data is invalid", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn start_case(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiJson(body): ApiJson<StartCase>,
) -> AppResult<(StatusCode, Json<StepView>)> {
    let data = if body.data.is_null() {
        BTreeMap::new()
    } else {
        data_map(body.data)?
    };
    let report = state
        .engine
        .start_in(
            &body.process,
            &principal.actor(),
            body.unit.as_deref(),
            data,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(step_view(&report))))
}

/// Delivers a named message (objection, withdraw, extend, …) to a case the caller may see.
/// A message that names roles needs one of them; an applicant's own message (one naming
/// none) is recorded by the front desk on the applicant's behalf, and the history says so.
#[utoipa::path(post, path = "/api/cases/{id}/messages/{name}", tag = "cases",
    params(("id" = String, Path, description = "case id"), ("name" = String, Path, description = "message name")),
    request_body(content = Object, description = "the message's data (a JSON object)"), responses(
    (status = 200, description = "delivered", body = StepView),
    (status = 400, description = "a body that is not JSON", body = Problem),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "the caller's role may not send this message", body = Problem),
    (status = 404, description = "no such case or message, or not in the caller's units", body = Problem),
    (status = 409, description = "the case does not wait for this message", body = Problem),
    (status = 413, description = "the body is too large", body = Problem),
    (status = 415, description = "not application/json", body = Problem),
    (status = 422, description = "invalid data", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn send_message(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((id, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> AppResult<Json<StepView>> {
    let row = visible_case(&state, &principal, &id).await?;
    let def = state
        .engine
        .definition(&row.process_id, row.process_version)
        .await?;
    let roles = def.message_roles(&name);
    let on_behalf = authz::message(&principal, &row.unit, &id, &roles)?;
    let data = data_map(body)?;
    let report = state
        .engine
        .message_on_behalf(&id, &name, Some(&principal.actor()), on_behalf, data)
        .await?;
    Ok(Json(step_view(&report)))
}
