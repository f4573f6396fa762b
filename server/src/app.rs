//! The server's state and configuration, and serving it on a listener until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use jiuzhu_adapters::payments::PaymentsConfig;
use jiuzhu_engine::runtime::Engine;

use crate::db::{DbError, ServerDb};
use crate::metrics::Metrics;
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

/// Serves the API on `listener` until `shutdown` completes; requests in flight then
/// finish before this returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = crate::api::router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
