//! The server's state and configuration, and serving it on a listener until shutdown:
//! the router with the layers every request goes through (a request id, set or kept from
//! the caller's `X-Request-Id`, in the request's tracing span and echoed in the response;
//! the metrics exposition).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use jiuzhu_adapters::payments::PaymentsConfig;
use jiuzhu_engine::runtime::Engine;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::db::{DbError, ServerDb};
use crate::metrics::{Gauge, Metrics, escape};
use crate::sessions::AuthConfig;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub auth: AuthConfig,
    /// Believe `X-Forwarded-For` / `X-Forwarded-Proto` (the server runs behind a reverse
    /// proxy that sets them); otherwise they are ignored.
    pub trust_proxy: bool,
    /// Mark the session cookie `Secure` on every response (TLS terminates in front).
    pub secure_cookies: bool,
    /// Largest request body accepted.
    pub body_limit: usize,
    /// Bank folder, bank-file shape and gateway (`--payments-config`); the defaults, as
    /// for `jiuzhu payments`, when absent.
    pub payments: Option<PaymentsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            auth: AuthConfig::default(),
            trust_proxy: false,
            secure_cookies: false,
            body_limit: 1024 * 1024,
            payments: None,
        }
    }
}

/// What every request handler shares. Nothing of a user's state lives here: sessions,
/// tokens and login failures are in the database, so nodes are interchangeable.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub db: ServerDb,
    pub config: ServerConfig,
    pub metrics: Metrics,
}

impl AppState {
    /// The server's state over `engine`, migrating the server's tables.
    pub async fn new(engine: Arc<Engine>, config: ServerConfig) -> Result<Arc<AppState>, DbError> {
        let db = ServerDb::open(&engine.store).await?;
        Ok(Arc::new(AppState {
            engine,
            db,
            config,
            metrics: Metrics::default(),
        }))
    }
}

/// The header carrying a request's id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The whole site: the web pages and the JSON API, inside the layers every request passes.
pub fn router(state: Arc<AppState>) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    crate::web::router(state.clone())
        .merge(crate::api::router(state.clone()))
        .layer(middleware::from_fn_with_state(state, metrics_exposition))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// The span of one request: method, path (never the query, which may carry a name) and
/// the request id, so every event logged while answering it carries the id.
fn request_span(request: &Request) -> tracing::Span {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
    )
}

/// `GET /metrics`: the request figures of this node, then the work figures of the
/// database. Answered here, in front of the API's routes, so the exposition has one owner.
async fn metrics_exposition(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() != "/metrics" || request.method() != Method::GET {
        return next.run(request).await;
    }
    let mut gauges = Vec::new();
    // A database that does not answer leaves the work figures out, not the request ones.
    if let Ok(summary) = state.engine.store.summary().await {
        let active = summary
            .active_instances
            .iter()
            .map(|(process, n)| (format!("process=\"{}\"", escape(process)), *n))
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
    let mut text = state.metrics.render(&gauges);
    match state.db.work_figures(state.engine.now()).await {
        Ok(figures) => text.push_str(&figures.render()),
        Err(e) => tracing::warn!(error = %e, "metrics: the work figures could not be read"),
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// Serves the API on `listener` until `shutdown` completes: the listener stops accepting,
/// and the requests in flight finish (their steps committed) before this returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
