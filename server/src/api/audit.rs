//! The access log: every view of unmasked personal data (who, what, when, from where),
//! written before the data is sent, and read by administrators.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::session::client_address;
use super::{ApiQuery, AppResult, rfc3339};
use crate::access_log::AccessRecord;
use crate::app::AppState;
use crate::authz::{self, Credential, Principal};
use crate::db::{DbError, on_read_pool};
use crate::problem::{ApiError, Problem};

/// The address a request comes from (the peer, or a trusted proxy's `X-Forwarded-For`).
pub struct ClientAddress(pub String);

impl FromRequestParts<Arc<AppState>> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<ClientAddress, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| *peer);
        Ok(ClientAddress(match peer {
            Some(peer) => client_address(state, &parts.headers, peer),
            None => "unknown".to_string(),
        }))
    }
}

/// Writes one access-log row; the view is refused if it cannot be recorded.
pub(super) async fn record(
    state: &AppState,
    principal: &Principal,
    address: &ClientAddress,
    what: &str,
    subject: &str,
) -> AppResult<()> {
    let via = match principal.credential {
        Credential::Session { .. } => "session",
        Credential::Token => "token",
    };
    state
        .db
        .record_access(
            state.engine.now(),
            &AccessRecord {
                user: &principal.user,
                what,
                subject,
                address: &address.0,
                via,
            },
        )
        .await?;
    Ok(())
}

/// One view of unmasked personal data.
#[derive(Serialize, ToSchema)]
pub struct AccessEntry {
    pub at: String,
    /// The user who saw it.
    pub user: String,
    /// `case`, `history` or `cases` (a listing).
    pub what: String,
    /// The case id, or the ids a listing showed (comma-separated).
    pub subject: String,
    pub address: String,
    /// `session` or `token`.
    pub via: String,
}

/// Which entries to read.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccessQuery {
    /// Only this user's views.
    pub user: Option<String>,
    /// At most this many, newest first (1–500, default 100).
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

type AccessRow = (i64, String, String, String, String, String);

/// The access log, newest first (administrators).
#[utoipa::path(get, path = "/api/access-log", tag = "audit", params(AccessQuery), responses(
    (status = 200, description = "the entries", body = Vec<AccessEntry>),
    (status = 400, description = "a malformed query", body = Problem),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "administrators only", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn access_log(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(query): ApiQuery<AccessQuery>,
) -> AppResult<Json<Vec<AccessEntry>>> {
    authz::admin(&principal, "the access log")?;
    let limit = i64::from(query.limit.unwrap_or(100).clamp(1, 500));
    let offset = i64::from(query.offset.unwrap_or(0));
    let rows: Vec<AccessRow> = on_read_pool!(state.db, pool => sqlx::query_as(
        "SELECT at, user_id, what, subject, address, via FROM server_access_log \
         WHERE (CAST($1 AS TEXT) IS NULL OR user_id = CAST($1 AS TEXT)) ORDER BY at DESC, user_id LIMIT $2 OFFSET $3",
    )
    .bind(query.user.as_deref())
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await)
    .map_err(DbError::from)?;
    Ok(Json(
        rows.into_iter()
            .map(|(at, user, what, subject, address, via)| AccessEntry {
                at: Utc
                    .timestamp_millis_opt(at)
                    .single()
                    .map(rfc3339)
                    .unwrap_or_default(),
                user,
                what,
                subject,
                address,
                via,
            })
            .collect(),
    ))
}
