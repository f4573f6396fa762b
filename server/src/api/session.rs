//! Logins, logouts and who the caller is.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, AppResult};
use crate::app::AppState;
use crate::auth;
use crate::authz::{Credential, Principal};
use crate::problem::{ApiError, Problem};
use crate::secrets;

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
pub(crate) fn client_address(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> String {
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
pub(super) async fn login(
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
pub(super) async fn logout(
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
pub(super) async fn me(principal: Principal) -> Json<Me> {
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
