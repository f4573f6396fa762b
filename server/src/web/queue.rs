//! My queue: the open tasks of the user's roles in their unit and below, unclaimed or
//! claimed by them, with applicant (masked), procedure, step and due date; overdue and
//! due-soon rows highlighted; filters by procedure, step and unit; counts; and the
//! claim, unclaim and hand-over actions (each a form with a single-use token).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use chrono::Duration;
use serde::{Deserialize, Serialize};

use super::post::Posted;
use super::{Staff, WebError, WebResult, csrf, page, render};
use crate::app::AppState;
use crate::authz::{Credential, Principal};

/// A task due within this is "due soon".
const DUE_SOON: Duration = Duration::hours(48);

#[derive(Deserialize, Default)]
pub struct QueueFilter {
    process: Option<String>,
    step: Option<String>,
    unit: Option<String>,
    done: Option<String>,
}

#[derive(Serialize)]
struct Row {
    id: String,
    case_id: String,
    applicant: String,
    process: String,
    process_name: String,
    step: String,
    node: String,
    unit: String,
    due_at: Option<String>,
    urgency: &'static str,
    mine: bool,
    holder: Option<String>,
    claim_token: String,
}

fn nonempty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// `GET /queue`.
pub async fn page_get(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Query(filter): Query<QueueFilter>,
) -> WebResult {
    let now = state.engine.now();
    let principal = &staff.principal;
    let tasks = state
        .engine
        .store
        .tasks_for(
            &principal.roles,
            std::slice::from_ref(&principal.unit),
            &principal.user,
            500,
        )
        .await?;
    let ids: Vec<String> = tasks
        .iter()
        .map(|t| t.instance_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let cases: BTreeMap<String, _> = state
        .engine
        .store
        .load_instances(&ids)
        .await?
        .into_iter()
        .map(|row| (row.id.clone(), row))
        .collect();
    let mut names: BTreeMap<(String, i64), String> = BTreeMap::new();
    for row in cases.values() {
        let key = (row.process_id.clone(), row.process_version);
        if let std::collections::btree_map::Entry::Vacant(slot) = names.entry(key) {
            let name = match state
                .engine
                .definition(&row.process_id, row.process_version)
                .await
            {
                Ok(def) => def.name.clone(),
                Err(_) => row.process_id.clone(),
            };
            slot.insert(name);
        }
    }
    let mut processes = BTreeMap::new();
    let mut steps = BTreeSet::new();
    let mut units = BTreeSet::new();
    let mut rows = Vec::new();
    let (mut overdue, mut due_soon, mut mine_count) = (0, 0, 0);
    for task in &tasks {
        let Some(case) = cases.get(&task.instance_id) else {
            continue;
        };
        if !principal.can_see(&task.unit) {
            continue;
        }
        let process_name = names
            .get(&(case.process_id.clone(), case.process_version))
            .cloned()
            .unwrap_or_else(|| case.process_id.clone());
        processes.insert(case.process_id.clone(), process_name.clone());
        steps.insert(task.label.clone());
        units.insert(task.unit.clone());
        if nonempty(&filter.process).is_some_and(|p| p != case.process_id)
            || nonempty(&filter.step).is_some_and(|s| s != task.label)
            || nonempty(&filter.unit).is_some_and(|u| u != task.unit)
        {
            continue;
        }
        let urgency = match task.due_at {
            Some(due) if due < now => "overdue",
            Some(due) if due - now < DUE_SOON => "due-soon",
            _ => "",
        };
        match urgency {
            "overdue" => overdue += 1,
            "due-soon" => due_soon += 1,
            _ => {}
        }
        let mine = task.assignee.as_deref() == Some(principal.user.as_str());
        if mine {
            mine_count += 1;
        }
        let applicant = case
            .state
            .to_value()
            .get("vars")
            .and_then(|v| v.get("applicant_name"))
            .and_then(|n| n.as_str())
            .map(jiuzhu_engine::privacy::mask_name)
            .unwrap_or_default();
        rows.push(Row {
            id: task.id.clone(),
            case_id: task.instance_id.clone(),
            applicant,
            process: case.process_id.clone(),
            process_name,
            step: task.label.clone(),
            node: task.node_id.clone(),
            unit: task.unit.clone(),
            due_at: task.due_at.map(render::local_time),
            urgency,
            mine,
            holder: task.assignee.clone(),
            claim_token: String::new(),
        });
    }
    // Overdue first, then by due date (none last).
    rows.sort_by(|a, b| {
        (a.due_at.is_none(), &a.due_at, &a.id).cmp(&(b.due_at.is_none(), &b.due_at, &b.id))
    });
    for row in &mut rows {
        row.claim_token = staff.form_token(&state).await?;
    }
    let mut context = staff.context(&state, "queue");
    context.insert("rows", &rows);
    context.insert(
        "counts",
        &serde_json::json!({
            "total": rows.len(), "mine": mine_count, "overdue": overdue, "due_soon": due_soon,
        }),
    );
    context.insert("processes", &processes);
    context.insert("steps", &steps);
    context.insert("units", &units);
    context.insert(
        "filter",
        &serde_json::json!({
            "process": filter.process, "step": filter.step, "unit": filter.unit,
        }),
    );
    if filter.done.as_deref() == Some("1") {
        context.insert("flash", "已提交，案件已进入下一环节。");
    }
    Ok(page(render::render("queue.html", &context)?))
}

/// Where to go after an action: the page the form came from, if it is on this site.
fn back_to(form: &Posted, default: &str) -> String {
    match form.one("_back") {
        Some(path) if path.starts_with('/') && !path.starts_with("//") => path.to_string(),
        _ => default.to_string(),
    }
}

/// `POST /tasks/{id}/claim`.
pub async fn claim(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
    form: Posted,
) -> WebResult {
    let now = state.engine.now();
    csrf::check(&state.db, &staff.session, form.one(csrf::FIELD), now).await?;
    visible_open_task(&state, &staff, &id).await?;
    state.engine.claim(&id, &staff.principal.actor()).await?;
    Ok(Redirect::to(&back_to(&form, &format!("/tasks/{id}"))).into_response())
}

/// `POST /tasks/{id}/unclaim`.
pub async fn unclaim(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
    form: Posted,
) -> WebResult {
    let now = state.engine.now();
    csrf::check(&state.db, &staff.session, form.one(csrf::FIELD), now).await?;
    visible_open_task(&state, &staff, &id).await?;
    state.engine.unclaim(&id, &staff.principal.actor()).await?;
    Ok(Redirect::to(&back_to(&form, "/queue")).into_response())
}

/// `POST /tasks/{id}/handover`: to a named colleague (`to`); a head reassigns, the
/// holder delegates.
pub async fn handover(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
    form: Posted,
) -> WebResult {
    let now = state.engine.now();
    csrf::check(&state.db, &staff.session, form.one(csrf::FIELD), now).await?;
    visible_open_task(&state, &staff, &id).await?;
    let to = form.one("to").unwrap_or_default();
    let target = match state.db.user(to).await? {
        Some(user) if !user.disabled => Principal::new(user, Credential::Token).actor(),
        _ => return Err(WebError::bad_request("请选择要移交的同事。")),
    };
    let actor = staff.principal.actor();
    if actor
        .roles
        .iter()
        .any(|r| jiuzhu_engine::core::is_supervisor_role(r))
    {
        state.engine.reassign(&id, &actor, &target).await?;
    } else {
        state.engine.delegate(&id, &actor, &target).await?;
    }
    Ok(Redirect::to("/queue").into_response())
}

/// The task `id` if it is open and the user may see its case; otherwise the page says
/// it was finished by someone else (a stale page) or does not exist.
pub async fn visible_open_task(
    state: &AppState,
    staff: &Staff,
    id: &str,
) -> WebResult<jiuzhu_engine::store::TaskRow> {
    let Some(task) = state.engine.store.task(id).await? else {
        return Err(WebError::not_found());
    };
    if !staff.principal.can_see(&task.unit) {
        return Err(WebError::not_found());
    }
    let (_, _, case) = state.engine.load(&task.instance_id).await?;
    if !case.tasks.iter().any(|t| t.id == id) {
        return Err(WebError::new(
            "conflict",
            "这项任务已经办理完毕（可能是其他人刚刚完成的），您看到的页面已过期。没有任何内容被重复保存。",
        ));
    }
    Ok(task)
}
