//! The JSON API: the route table, request bodies with problem-details rejections, the
//! request metrics, and the OpenAPI document generated from the handlers. One module per
//! resource; what a caller may do is decided in [`crate::authz`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::Method;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter, on};
use chrono::{DateTime, Utc};
use jiuzhu_rules::Value;
use serde::de::DeserializeOwned;
use utoipa::OpenApi;

use crate::app::AppState;
use crate::problem::ApiError;

pub mod assess;
pub mod audit;
pub mod bank_files;
pub mod batches;
pub mod cases;
pub mod corrections;
pub mod definitions;
pub mod incidents;
pub mod ops;
pub mod payment_gateway;
pub mod payments;
pub mod reserves;
pub mod session;
pub mod standard_changes;
pub mod tasks;

pub(crate) type AppResult<T> = Result<T, ApiError>;
type Handler = MethodRouter<Arc<AppState>>;

/// Every route of the API: method, path template, handler. The router is built from this
/// table, and the tests compare it with the OpenAPI document and the authorization matrix,
/// so a route cannot be added without both.
fn routes() -> Vec<(Method, &'static str, Handler)> {
    vec![
        (Method::GET, "/healthz", on(MethodFilter::GET, ops::healthz)),
        (Method::GET, "/readyz", on(MethodFilter::GET, ops::readyz)),
        (Method::GET, "/metrics", on(MethodFilter::GET, ops::metrics)),
        (
            Method::GET,
            "/api/openapi.json",
            on(MethodFilter::GET, ops::openapi_json),
        ),
        (
            Method::POST,
            "/api/login",
            on(MethodFilter::POST, session::login),
        ),
        (
            Method::POST,
            "/api/logout",
            on(MethodFilter::POST, session::logout),
        ),
        (Method::GET, "/api/me", on(MethodFilter::GET, session::me)),
        (
            Method::GET,
            "/api/cases",
            on(MethodFilter::GET, cases::list_cases),
        ),
        (
            Method::POST,
            "/api/cases",
            on(MethodFilter::POST, cases::start_case),
        ),
        (
            Method::GET,
            "/api/cases/{id}",
            on(MethodFilter::GET, cases::get_case),
        ),
        (
            Method::GET,
            "/api/cases/{id}/history",
            on(MethodFilter::GET, cases::history),
        ),
        (
            Method::POST,
            "/api/cases/{id}/messages/{name}",
            on(MethodFilter::POST, cases::send_message),
        ),
        (
            Method::POST,
            "/api/cases/{id}/corrections",
            on(MethodFilter::POST, corrections::correct),
        ),
        (
            Method::GET,
            "/api/tasks",
            on(MethodFilter::GET, tasks::list_tasks),
        ),
        (
            Method::POST,
            "/api/tasks/{id}/claim",
            on(MethodFilter::POST, tasks::claim_task),
        ),
        (
            Method::POST,
            "/api/tasks/{id}/unclaim",
            on(MethodFilter::POST, tasks::unclaim_task),
        ),
        (
            Method::POST,
            "/api/tasks/{id}/reassign",
            on(MethodFilter::POST, tasks::reassign_task),
        ),
        (
            Method::POST,
            "/api/tasks/{id}/delegate",
            on(MethodFilter::POST, tasks::delegate_task),
        ),
        (
            Method::POST,
            "/api/tasks/{id}/complete",
            on(MethodFilter::POST, tasks::complete_task),
        ),
        (
            Method::GET,
            "/api/definitions",
            on(MethodFilter::GET, definitions::list),
        ),
        (
            Method::POST,
            "/api/definitions/validate",
            on(MethodFilter::POST, definitions::validate),
        ),
        (
            Method::POST,
            "/api/definitions/deploy",
            on(MethodFilter::POST, definitions::deploy),
        ),
        (
            Method::GET,
            "/api/incidents",
            on(MethodFilter::GET, incidents::list),
        ),
        (
            Method::POST,
            "/api/incidents/{id}/retry",
            on(MethodFilter::POST, incidents::retry),
        ),
        (
            Method::POST,
            "/api/payments/runs",
            on(MethodFilter::POST, payments::run),
        ),
        (
            Method::POST,
            "/api/payments/results",
            on(MethodFilter::POST, payments::import_results),
        ),
        (
            Method::POST,
            "/api/payments/bank-files",
            on(MethodFilter::POST, bank_files::export),
        ),
        (
            Method::GET,
            "/api/payments/bank-files/{id}",
            on(MethodFilter::GET, bank_files::download),
        ),
        (
            Method::POST,
            "/api/payments/send",
            on(MethodFilter::POST, payment_gateway::send),
        ),
        (
            Method::GET,
            "/api/payments/reports/{month}",
            on(MethodFilter::GET, payments::report),
        ),
        (
            Method::GET,
            "/api/batches",
            on(MethodFilter::GET, batches::list),
        ),
        (
            Method::GET,
            "/api/batches/{id}",
            on(MethodFilter::GET, batches::get),
        ),
        (
            Method::GET,
            "/api/reserves",
            on(MethodFilter::GET, reserves::list),
        ),
        (
            Method::POST,
            "/api/reserves/{unit}/replenish",
            on(MethodFilter::POST, reserves::replenish),
        ),
        (
            Method::GET,
            "/api/payments/standard-changes",
            on(MethodFilter::GET, standard_changes::list),
        ),
        (
            Method::POST,
            "/api/assess",
            on(MethodFilter::POST, assess::assess),
        ),
        (
            Method::GET,
            "/api/access-log",
            on(MethodFilter::GET, audit::access_log),
        ),
    ]
}

/// The (method, path template) of every route, in table order.
pub fn route_list() -> Vec<(Method, &'static str)> {
    routes()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// The routes of the API, with the body limit, the metrics and problem-details fallbacks.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.body_limit;
    routes()
        .into_iter()
        .fold(Router::new(), |router, (_, path, handler)| {
            router.route(path, handler)
        })
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

/// Query parameters; a malformed or unknown one is a `bad_query` problem.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|e: QueryRejection| ApiError::bad_request("bad_query", e.body_text()))
    }
}

/// A JSON object body as the engine's data map.
pub(crate) fn data_map(json: serde_json::Value) -> AppResult<BTreeMap<String, Value>> {
    match Value::from_json(&json) {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::new("invalid_data", "expected a JSON object")),
    }
}

pub(crate) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339()
}

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
                crate::auth::SESSION_COOKIE,
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
    info(title = "Jiuzhu API", description = "Cases, tasks, definitions, incidents, payments and sessions of the Jiuzhu server."),
    paths(
        ops::healthz, ops::readyz, ops::metrics, ops::openapi_json,
        session::login, session::logout, session::me,
        cases::list_cases, cases::get_case, cases::start_case, cases::history, cases::send_message,
        corrections::correct,
        tasks::list_tasks, tasks::claim_task, tasks::unclaim_task, tasks::reassign_task,
        tasks::delegate_task, tasks::complete_task,
        definitions::list, definitions::validate, definitions::deploy,
        incidents::list, incidents::retry,
        payments::run, payments::report, payments::import_results, standard_changes::list,
        bank_files::export, bank_files::download, payment_gateway::send,
        batches::list, batches::get,
        reserves::list, reserves::replenish,
        assess::assess,
        audit::access_log,
    ),
    components(schemas(crate::problem::Problem, crate::problem::DataProblem)),
    modifiers(&Security)
)]
pub struct ApiDoc;
