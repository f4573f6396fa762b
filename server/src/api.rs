//! The JSON API: routes, handlers, request bodies with problem-details rejections, the
//! request metrics, and the OpenAPI document generated from these handlers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use jiuzhu_engine::runtime::{EngineError, StepReport};
use jiuzhu_engine::store::{InstanceFilter, InstanceRow, TaskRow};
use jiuzhu_rules::Value;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::app::AppState;
use crate::auth;
use crate::authz::{Credential, Principal, not_found};
use crate::mask::{mask_json, mask_name};
use crate::metrics::Gauge;
use crate::problem::{ApiError, Problem};
use crate::secrets;

type AppResult<T> = Result<T, ApiError>;

/// The routes of the API, with the body limit, the metrics and problem-details fallbacks.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.body_limit;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(openapi_json))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/cases", get(list_cases).post(start_case))
        .route("/api/cases/{id}", get(get_case))
        .route("/api/cases/{id}/messages/{name}", post(send_message))
        .route("/api/tasks", get(list_tasks))
        .route("/api/tasks/{id}/claim", post(claim_task))
        .route("/api/tasks/{id}/complete", post(complete_task))
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new("method_not_allowed", "this route does not take that method")
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Counts every request by route template and status, and times it.
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    state.metrics.observe(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

pub use crate::body::ApiJson;

/// A JSON object body as the engine's data map.
fn data_map(json: serde_json::Value) -> AppResult<BTreeMap<String, Value>> {
    match Value::from_json(&json) {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::new("invalid_data", "expected a JSON object")),
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339()
}

// ------------------------------------------------------------------- probes

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "probes", responses((status = 200, description = "up", body = Status)))]
async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
    })
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", tag = "probes", responses(
    (status = 200, description = "ready", body = Status),
    (status = 503, description = "the database does not answer", body = Problem)))]
async fn readyz(State(state): State<Arc<AppState>>) -> AppResult<Json<Status>> {
    if state.db.ping().await {
        Ok(Json(Status {
            status: "ready".into(),
        }))
    } else {
        Err(ApiError::new("unavailable", "the database does not answer"))
    }
}

/// A probe's answer.
#[derive(Serialize, ToSchema)]
pub struct Status {
    pub status: String,
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "probes", responses((status = 200, description = "Prometheus text", content_type = "text/plain", body = String)))]
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut gauges = Vec::new();
    // Cheap aggregate counts; a database that does not answer just leaves them out.
    if let Ok(summary) = state.engine.store.summary().await {
        let active = summary
            .active_instances
            .iter()
            .map(|(process, n)| {
                (
                    format!("process=\"{}\"", crate::metrics::escape(process)),
                    *n,
                )
            })
            .collect();
        gauges.push(Gauge {
            name: "jiuzhu_active_cases",
            help: "Active cases by process.",
            values: active,
        });
        gauges.push(Gauge {
            name: "jiuzhu_open_tasks",
            help: "Open tasks.",
            values: vec![(String::new(), summary.open_tasks)],
        });
    }
    let text = state.metrics.render(&gauges);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta", responses((status = 200, description = "the OpenAPI document")))]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

// ------------------------------------------------------------------- login

/// Credentials for a login.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub user: String,
    pub password: String,
}

/// The caller: who they are, their roles and unit, and (for a session) the CSRF token
/// to send as `X-CSRF-Token` with every state-changing request.
#[derive(Serialize, ToSchema)]
pub struct Me {
    pub user: String,
    pub name: String,
    pub roles: Vec<String>,
    pub unit: String,
    /// How the caller authenticated: `session` or `token`.
    pub via: String,
    pub csrf_token: Option<String>,
}

/// The address a login comes from: the socket's peer, or with a trusted proxy the
/// address it appended to `X-Forwarded-For` (the last one).
fn client_address(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> String {
    if state.config.trust_proxy
        && let Some(forwarded) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    {
        return forwarded.to_string();
    }
    peer.ip().to_string()
}

/// Logs in with a password; sets the session cookie and returns the CSRF token.
#[utoipa::path(post, path = "/api/login", tag = "session", request_body = LoginRequest, responses(
    (status = 200, description = "logged in; the session cookie is set", body = Me),
    (status = 401, description = "wrong user or password, or the account is disabled", body = Problem),
    (status = 429, description = "too many failed logins for the account or from the address", body = Problem),
    (status = 422, description = "malformed body", body = Problem)))]
async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginRequest>,
) -> AppResult<Response> {
    let config = &state.config.auth;
    let now = state.engine.now();
    let since = now - config.failure_window;
    let retry = config.failure_window.num_seconds();
    let address = format!("addr:{}", client_address(&state, &headers, peer));
    let account = format!("user:{}", body.user);
    if state.db.login_failures(&address, since).await? >= config.max_failures_per_address {
        return Err(ApiError::new(
            "rate_limited",
            "too many failed logins from this address; try again later",
        )
        .with_retry_after(retry));
    }
    // Counted by the name given, whether or not such a user exists, so a lockout does not
    // tell which accounts exist.
    if state.db.login_failures(&account, since).await? >= config.max_failures_per_account {
        return Err(ApiError::new(
            "locked",
            "too many failed logins for this account; try again later",
        )
        .with_retry_after(retry));
    }
    let found = state.db.user_with_hash(&body.user).await?;
    let stored = found
        .as_ref()
        .and_then(|(_, hash)| hash.clone())
        .unwrap_or_else(|| secrets::dummy_hash().to_string());
    let password = body.password;
    // argon2 takes tens of milliseconds of CPU: off the async workers.
    let matches = tokio::task::spawn_blocking(move || secrets::verify_password(&password, &stored))
        .await
        .unwrap_or(false);
    let user = match found {
        Some((user, Some(_))) if matches && !user.disabled => user,
        _ => {
            state
                .db
                .record_login_failure(&[account, address], now, since)
                .await?;
            return Err(ApiError::unauthenticated("wrong user or password"));
        }
    };
    state.db.clear_login_failures(&account).await?;
    let session = state.db.create_session(&user.id, now).await?;
    let cookie = auth::session_cookie(&session.id, auth::over_tls(&state, &headers));
    let me = Me {
        user: user.id,
        name: user.name,
        roles: user.roles,
        unit: user.unit,
        via: "session".into(),
        csrf_token: Some(session.csrf_token),
    };
    let mut response = Json(me).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Ends the caller's session (a session's CSRF token is required).
#[utoipa::path(post, path = "/api/logout", tag = "session", responses(
    (status = 204, description = "logged out; the cookie is cleared"),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "missing or wrong CSRF token", body = Problem)))]
async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    principal: Principal,
) -> AppResult<Response> {
    if let Credential::Session { id, .. } = &principal.credential {
        state.db.delete_session(id).await?;
    }
    let cleared = auth::cleared_cookie(auth::over_tls(&state, &headers));
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cleared) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// Who the caller is.
#[utoipa::path(get, path = "/api/me", tag = "session", responses(
    (status = 200, description = "the caller", body = Me),
    (status = 401, description = "not logged in", body = Problem)),
    security(("session" = []), ("token" = [])))]
async fn me(principal: Principal) -> Json<Me> {
    let (via, csrf_token) = match principal.credential {
        Credential::Session { csrf_token, .. } => ("session", Some(csrf_token)),
        Credential::Token => ("token", None),
    };
    Json(Me {
        user: principal.user,
        name: principal.name,
        roles: principal.roles,
        unit: principal.unit,
        via: via.into(),
        csrf_token,
    })
}

// ------------------------------------------------------------------- cases

/// A case in a listing; personal data masked.
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
    pub created_at: String,
    pub updated_at: String,
}

/// A page of cases.
#[derive(Serialize, ToSchema)]
pub struct CaseList {
    pub items: Vec<CaseSummary>,
    pub limit: u32,
    pub offset: u32,
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
    pub created_at: String,
}

/// A case with its variables (personal data masked) and open tasks.
#[derive(Serialize, ToSchema)]
pub struct CaseDetail {
    #[serde(flatten)]
    pub case: CaseSummary,
    #[schema(value_type = Object)]
    pub variables: serde_json::Value,
    pub open_tasks: Vec<TaskView>,
}

/// Which cases to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CaseQuery {
    /// Only cases of this process.
    pub process: Option<String>,
    /// Only cases in this status (`active`, `completed`, …).
    pub status: Option<String>,
    /// At most this many (1–200, default 50).
    pub limit: Option<u32>,
    pub offset: Option<u32>,
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
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

fn applicant(row: &InstanceRow) -> Option<String> {
    let state = row.state.to_value();
    state
        .get("vars")
        .and_then(|vars| vars.get("applicant_name"))
        .and_then(|name| name.as_str())
        .map(mask_name)
}

fn summary(row: &InstanceRow) -> CaseSummary {
    CaseSummary {
        id: row.id.clone(),
        process: row.process_id.clone(),
        process_version: row.process_version,
        status: row.status.clone(),
        outcome: row.outcome.clone(),
        unit: row.unit.clone(),
        applicant: applicant(row),
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
    }
}

fn task_view(task: &TaskRow) -> TaskView {
    TaskView {
        id: task.id.clone(),
        case_id: task.instance_id.clone(),
        node: task.node_id.clone(),
        label: task.label.clone(),
        role: task.role.clone(),
        unit: task.unit.clone(),
        assignee: task.assignee.clone(),
        due_at: task.due_at.map(rfc3339),
        created_at: rfc3339(task.created_at),
    }
}

fn step_view(report: &StepReport) -> StepView {
    StepView {
        case_id: report.instance.id.clone(),
        status: report.instance.status.clone(),
        outcome: report.instance.outcome.clone(),
        tasks_opened: report.tasks_opened.iter().map(task_view).collect(),
    }
}

/// The cases the caller may see (their unit and below), oldest first.
#[utoipa::path(get, path = "/api/cases", tag = "cases", params(CaseQuery), responses(
    (status = 200, description = "a page of cases", body = CaseList),
    (status = 401, description = "not logged in", body = Problem)),
    security(("session" = []), ("token" = [])))]
async fn list_cases(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    query: Result<Query<CaseQuery>, axum::extract::rejection::QueryRejection>,
) -> AppResult<Json<CaseList>> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let offset = query.offset.unwrap_or(0);
    let rows = state
        .engine
        .store
        .list_instances(&InstanceFilter {
            process_id: query.process,
            status: query.status,
            unit: Some(principal.unit.clone()),
            limit,
            offset,
        })
        .await?;
    // The store filters by unit already; checked again here so visibility has one rule.
    let items = rows
        .iter()
        .filter(|row| principal.can_see(&row.unit))
        .map(summary)
        .collect();
    Ok(Json(CaseList {
        items,
        limit,
        offset,
    }))
}

/// A case the caller may see, with masked variables and its open tasks.
#[utoipa::path(get, path = "/api/cases/{id}", tag = "cases",
    params(("id" = String, Path, description = "case id")), responses(
    (status = 200, description = "the case", body = CaseDetail),
    (status = 404, description = "no such case, or not in the caller's units", body = Problem)),
    security(("session" = []), ("token" = [])))]
async fn get_case(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> AppResult<Json<CaseDetail>> {
    let row = visible_case(&state, &principal, &id).await?;
    let (_, _, case_state) = state.engine.load(&id).await?;
    let mut variables = serde_json::Value::Object(
        case_state
            .vars
            .iter()
            .map(|(name, value)| (name.clone(), value.to_json()))
            .collect(),
    );
    mask_json(&mut variables);
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
            created_at: task.opened_at.to_rfc3339(),
        })
        .collect();
    Ok(Json(CaseDetail {
        case: summary(&row),
        variables,
        open_tasks,
    }))
}

/// The case `id` if the caller may see it; not found otherwise, as for a missing one.
async fn visible_case(state: &AppState, principal: &Principal, id: &str) -> AppResult<InstanceRow> {
    match state.engine.store.load_instance(id).await? {
        Some(row) if principal.can_see(&row.unit) => Ok(row),
        _ => Err(not_found("case", id)),
    }
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

/// Starts a case of a process as the caller (the engine checks the caller may).
#[utoipa::path(post, path = "/api/cases", tag = "cases", request_body = StartCase, responses(
    (status = 201, description = "started", body = StepView),
    (status = 403, description = "the caller may not start this process", body = Problem),
    (status = 404, description = "no such process", body = Problem),
    (status = 422, description = "the start data is invalid", body = Problem)),
    security(("session" = []), ("token" = [])))]
async fn start_case(
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
        .start(&body.process, &principal.actor(), data)
        .await?;
    Ok((StatusCode::CREATED, Json(step_view(&report))))
}

/// Delivers a named message (objection, withdraw, …) to a case the caller may see.
#[utoipa::path(post, path = "/api/cases/{id}/messages/{name}", tag = "cases",
    params(("id" = String, Path, description = "case id"), ("name" = String, Path, description = "message name")),
    request_body(content = Object, description = "the message's data (a JSON object)"), responses(
    (status = 200, description = "delivered", body = StepView),
    (status = 404, description = "no such case, or not in the caller's units", body = Problem),
    (status = 409, description = "the case does not wait for this message", body = Problem),
    (status = 422, description = "invalid data", body = Problem)),
    security(("session" = []), ("token" = [])))]
async fn send_message(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((id, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> AppResult<Json<StepView>> {
    visible_case(&state, &principal, &id).await?;
    let data = data_map(body)?;
    let report = state
        .engine
        .message(&id, &name, Some(&principal.actor()), data)
        .await?;
    Ok(Json(step_view(&report)))
}

// ------------------------------------------------------------------- tasks

/// The caller's queue: open tasks for their roles in their units, unclaimed or claimed
/// by them, due date first.
#[utoipa::path(get, path = "/api/tasks", tag = "tasks", responses(
    (status = 200, description = "the queue", body = Vec<TaskView>),
    (status = 401, description = "not logged in", body = Problem)),
    security(("session" = []), ("token" = [])))]
async fn list_tasks(
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

/// Claims a task for the caller.
#[utoipa::path(post, path = "/api/tasks/{id}/claim", tag = "tasks",
    params(("id" = String, Path, description = "task id")), responses(
    (status = 200, description = "claimed", body = TaskView),
    (status = 403, description = "the caller's role or unit may not do this task", body = Problem),
    (status = 404, description = "no such open task, or not in the caller's units", body = Problem),
    (status = 409, description = "claimed by someone else", body = Problem)),
    security(("session" = []), ("token" = [])))]
async fn claim_task(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> AppResult<Json<TaskView>> {
    visible_task(&state, &principal, &id).await?;
    state.engine.claim(&id, &principal.actor()).await?;
    // The claim is a step; the task row it wrote is what the caller sees.
    let task = state
        .engine
        .store
        .task(&id)
        .await
        .map_err(EngineError::from)?
        .ok_or_else(|| EngineError::NotFound {
            what: "open task",
            id: id.clone(),
        })?;
    Ok(Json(task_view(&task)))
}

/// Completes a task with its form's data (the engine validates it).
#[utoipa::path(post, path = "/api/tasks/{id}/complete", tag = "tasks",
    params(("id" = String, Path, description = "task id")),
    request_body(content = Object, description = "the form data (a JSON object)"), responses(
    (status = 200, description = "completed", body = StepView),
    (status = 403, description = "not allowed (role, unit, separation of duties)", body = Problem),
    (status = 404, description = "no such open task, or not in the caller's units", body = Problem),
    (status = 409, description = "claimed by someone else, or already done", body = Problem),
    (status = 422, description = "the form data is invalid", body = Problem)),
    security(("session" = []), ("token" = [])))]
async fn complete_task(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> AppResult<Json<StepView>> {
    visible_task(&state, &principal, &id).await?;
    let data = data_map(body)?;
    let report = state.engine.complete(&id, &principal.actor(), data).await?;
    Ok(Json(step_view(&report)))
}

// ------------------------------------------------------------------- OpenAPI

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                auth::SESSION_COOKIE,
                "session cookie from /api/login; state-changing requests also send the X-CSRF-Token header",
            ))),
        );
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's OpenAPI document, from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "Jiuzhu API", description = "Cases, tasks and sessions of the Jiuzhu server."),
    paths(
        healthz, readyz, metrics, openapi_json, login, logout, me, list_cases, get_case,
        start_case, send_message, list_tasks, claim_task, complete_task
    ),
    components(schemas(
        Problem, Status, LoginRequest, Me, CaseSummary, CaseList, CaseDetail, TaskView,
        StepView, StartCase
    )),
    modifiers(&Security)
)]
pub struct ApiDoc;
