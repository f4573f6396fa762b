//! Probes, metrics and the OpenAPI document: no login needed.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::{ApiDoc, AppResult};
use crate::app::AppState;
use crate::metrics::Gauge;
use crate::problem::{ApiError, Problem};

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "probes", responses((status = 200, description = "up", body = Status)))]
pub(super) async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
    })
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", tag = "probes", responses(
    (status = 200, description = "ready", body = Status),
    (status = 503, description = "the database does not answer", body = Problem)))]
pub(super) async fn readyz(State(state): State<Arc<AppState>>) -> AppResult<Json<Status>> {
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
pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
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
pub(super) async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
