//! Tasks: the caller's queue, claim, unclaim, reassign, delegate, complete. A task outside
//! the caller's units is not found; role, unit, holder and separation of duties are the
//! engine core's decisions.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use jiuzhu_engine::runtime::EngineError;
use jiuzhu_engine::store::TaskRow;
use serde::Deserialize;
use utoipa::ToSchema;

use super::cases::{StepView, TaskView, step_view, task_view};
use super::{ApiJson, AppResult, data_map};
use crate::app::AppState;
use crate::authz::{Credential, Principal, not_found};
use crate::problem::{ApiError, Problem};

/// The caller's queue: open tasks for their roles in their units, unclaimed or claimed
/// by them, due date first.
#[utoipa::path(get, path = "/api/tasks", tag = "tasks", responses(
    (status = 200, description = "the queue", body = Vec<TaskView>),
    (status = 401, description = "not logged in", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn list_tasks(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> AppResult<Json<Vec<TaskView>>> {
    let tasks = state
        .engine
        .store
        .tasks_for(
            &principal.roles,
            std::slice::from_ref(&principal.unit),
            &principal.user,
            200,
        )
        .await?;
    Ok(Json(tasks.iter().map(task_view).collect()))
}

/// The open task `id` if the caller may see its case; not found otherwise.
async fn visible_task(state: &AppState, principal: &Principal, id: &str) -> AppResult<TaskRow> {
    match state.engine.store.task(id).await? {
        Some(task) => {
            principal.require_visible(&task.unit, "open task", id)?;
            Ok(task)
        }
        None => Err(not_found("open task", id)),
    }
}

/// The task row after a step on it (a claim, a hand-over).
async fn task_after(state: &AppState, id: &str) -> AppResult<Json<TaskView>> {
    let task = state
        .engine
        .store
        .task(id)
        .await
        .map_err(EngineError::from)?
        .ok_or_else(|| EngineError::NotFound {
            what: "open task",
            id: id.to_string(),
        })?;
    Ok(Json(task_view(&task)))
}

/// Claims a task for the caller.
#[utoipa::path(post, path = "/api/tasks/{id}/claim", tag = "tasks",
    params(("id" = String, Path, description = "task id")), responses(
    (status = 200, description = "claimed", body = TaskView),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "the caller's role or unit may not do this task", body = Problem),
    (status = 404, description = "no such open task, or not in the caller's units", body = Problem),
    (status = 409, description = "claimed by someone else", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn claim_task(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> AppResult<Json<TaskView>> {
    visible_task(&state, &principal, &id).await?;
    state.engine.claim(&id, &principal.actor()).await?;
    task_after(&state, &id).await
}

/// Releases a claimed task (its holder, or a head of the unit).
#[utoipa::path(post, path = "/api/tasks/{id}/unclaim", tag = "tasks",
    params(("id" = String, Path, description = "task id")), responses(
    (status = 200, description = "released", body = TaskView),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "neither the holder nor a head of the unit", body = Problem),
    (status = 404, description = "no such open task, or not in the caller's units", body = Problem),
    (status = 409, description = "not claimed", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn unclaim_task(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> AppResult<Json<TaskView>> {
    visible_task(&state, &principal, &id).await?;
    state.engine.unclaim(&id, &principal.actor()).await?;
    task_after(&state, &id).await
}

/// Whom a task is handed to.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandOver {
    /// A user of the server.
    pub to: String,
}

/// The user `to` as the engine's actor; an unknown or disabled user is invalid data.
async fn target(state: &AppState, to: &str) -> AppResult<jiuzhu_engine::core::Actor> {
    match state.db.user(to).await? {
        Some(user) if !user.disabled => Ok(Principal::new(user, Credential::Token).actor()),
        _ => Err(ApiError::new(
            "invalid_data",
            format!("no active user {to}"),
        )),
    }
}

/// Hands a task to another user (a head of the unit).
#[utoipa::path(post, path = "/api/tasks/{id}/reassign", tag = "tasks",
    params(("id" = String, Path, description = "task id")), request_body = HandOver, responses(
    (status = 200, description = "reassigned", body = TaskView),
    (status = 400, description = "a body that is not JSON", body = Problem),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "not a head of the unit, or the target may not do the task", body = Problem),
    (status = 404, description = "no such open task, or not in the caller's units", body = Problem),
    (status = 409, description = "the task changed meanwhile", body = Problem),
    (status = 415, description = "not application/json", body = Problem),
    (status = 422, description = "no such user", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn reassign_task(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<HandOver>,
) -> AppResult<Json<TaskView>> {
    visible_task(&state, &principal, &id).await?;
    let to = target(&state, &body.to).await?;
    state.engine.reassign(&id, &principal.actor(), &to).await?;
    task_after(&state, &id).await
}

/// Hands a task the caller holds to a named colleague.
#[utoipa::path(post, path = "/api/tasks/{id}/delegate", tag = "tasks",
    params(("id" = String, Path, description = "task id")), request_body = HandOver, responses(
    (status = 200, description = "delegated", body = TaskView),
    (status = 400, description = "a body that is not JSON", body = Problem),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "not the holder, or the target may not do the task", body = Problem),
    (status = 404, description = "no such open task, or not in the caller's units", body = Problem),
    (status = 409, description = "not held by the caller", body = Problem),
    (status = 415, description = "not application/json", body = Problem),
    (status = 422, description = "no such user", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn delegate_task(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<HandOver>,
) -> AppResult<Json<TaskView>> {
    visible_task(&state, &principal, &id).await?;
    let to = target(&state, &body.to).await?;
    state.engine.delegate(&id, &principal.actor(), &to).await?;
    task_after(&state, &id).await
}

/// Completes a task with its form's data (the engine validates it against the form).
#[utoipa::path(post, path = "/api/tasks/{id}/complete", tag = "tasks",
    params(("id" = String, Path, description = "task id")),
    request_body(content = Object, description = "the form data (a JSON object)"), responses(
    (status = 200, description = "completed", body = StepView),
    (status = 400, description = "a body that is not JSON", body = Problem),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "not allowed (role, unit, separation of duties)", body = Problem),
    (status = 404, description = "no such open task, or not in the caller's units", body = Problem),
    (status = 409, description = "claimed by someone else, or already done", body = Problem),
    (status = 413, description = "the body is too large", body = Problem),
    (status = 415, description = "not application/json", body = Problem),
    (status = 422, description = "the form data is invalid", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn complete_task(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> AppResult<Json<StepView>> {
    // No read of the task first: the core completes a task only for an actor whose unit
    // covers the task's (the same `unit_contains` as `can_see`), so a completion that
    // succeeds was visible. Any refusal is answered as before: not found when the caller
    // may not see the task (or there is none), the refusal itself otherwise.
    let outcome = match data_map(body) {
        Ok(data) => state
            .engine
            .complete(&id, &principal.actor(), data)
            .await
            .map_err(ApiError::from),
        Err(error) => Err(error),
    };
    match outcome {
        Ok(report) => Ok(Json(step_view(&report))),
        Err(error) => {
            visible_task(&state, &principal, &id).await?;
            Err(error)
        }
    }
}
