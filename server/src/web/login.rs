//! The login form, logging in (the API's rules: argon2id, failed logins counted per
//! account and per address in the database, a lockout after too many) and logging out.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::post::Posted;
use super::{Staff, WebError, WebResult, csrf, page, render};
use crate::app::AppState;
use crate::auth;
use crate::secrets;
use crate::users::UserRecord;

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `next` if it is a path on this site (never another host: no open redirect).
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_string()
        }
        _ => "/queue".to_string(),
    }
}

/// Percent-encodes a path for the `next` query parameter.
pub fn encode_next(path: &str) -> String {
    let mut out = String::new();
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn login_page(next: &str, user: &str, error: Option<&str>) -> WebResult {
    let mut context = tera::Context::new();
    context.insert("next", next);
    context.insert("user_name", user);
    context.insert("error", &error);
    Ok(page(render::render("login.html", &context)?))
}

/// `GET /login`.
pub async fn page_get(Query(query): Query<LoginQuery>) -> WebResult {
    login_page(&local_path(query.next.as_deref()), "", None)
}

/// The address a login comes from (a trusted proxy's last `X-Forwarded-For` entry, or the
/// peer).
pub(super) fn client_address(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> String {
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

/// A browser says where a form came from; a login posted from another site is refused
/// (login CSRF). Requests without `Origin` (old clients) pass.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    origin == "null" && host.is_empty() || origin_host == host
}

/// Why a password login was refused.
enum Refusal {
    Wrong,
    Limited,
}

/// Checks a password with the lockout rules; the user on success.
async fn password_login(
    state: &AppState,
    user: &str,
    password: String,
    address: &str,
) -> Result<Result<UserRecord, Refusal>, WebError> {
    let config = &state.config.auth;
    let now = state.engine.now();
    let since = now - config.failure_window;
    let address = format!("addr:{address}");
    let account = format!("user:{user}");
    if state.db.login_failures(&address, since).await? >= config.max_failures_per_address
        || state.db.login_failures(&account, since).await? >= config.max_failures_per_account
    {
        return Ok(Err(Refusal::Limited));
    }
    let found = state.db.user_with_hash(user).await?;
    let stored = found
        .as_ref()
        .and_then(|(_, hash)| hash.clone())
        .unwrap_or_else(|| secrets::dummy_hash().to_string());
    let matches = tokio::task::spawn_blocking(move || secrets::verify_password(&password, &stored))
        .await
        .unwrap_or(false);
    match found {
        Some((record, Some(_))) if matches && !record.disabled => {
            state.db.clear_login_failures(&account).await?;
            Ok(Ok(record))
        }
        _ => {
            state
                .db
                .record_login_failure(&[account, address], now, since)
                .await?;
            Ok(Err(Refusal::Wrong))
        }
    }
}

/// `POST /login`: on success the session cookie and a redirect to `next`.
pub async fn submit(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Posted,
) -> WebResult {
    let next = local_path(form.one("next"));
    let user = form.one("user").unwrap_or_default().trim().to_string();
    let password = form.one("password").unwrap_or_default().to_string();
    if !same_origin(&headers) {
        return Err(WebError::new("csrf", "登录请求来自其他网站，已拒绝。"));
    }
    if user.is_empty() || password.is_empty() {
        return login_page(&next, &user, Some("请输入用户名和密码。"));
    }
    let address = client_address(&state, &headers, peer);
    let record = match password_login(&state, &user, password, &address).await? {
        Ok(record) => record,
        Err(refusal) => {
            let (status, text) = match refusal {
                Refusal::Wrong => (StatusCode::UNAUTHORIZED, "用户名或密码不正确。"),
                Refusal::Limited => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "登录失败次数过多，账号或地址已被暂时锁定，请稍后再试。",
                ),
            };
            let mut response = login_page(&next, &user, Some(text))?;
            *response.status_mut() = status;
            return Ok(response);
        }
    };
    let session = state
        .db
        .create_session(&record.id, state.engine.now())
        .await?;
    let cookie = auth::session_cookie(&session.id, auth::over_tls(&state, &headers));
    let mut response = Redirect::to(&next).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// `POST /logout` (with the form's token): ends the session.
pub async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    staff: Staff,
    form: Posted,
) -> WebResult {
    // The session's own token: logging out ends the session, so it is used once.
    let sent = form.one(csrf::FIELD).unwrap_or_default();
    if sent.is_empty() || !crate::auth::same(sent, staff.session_csrf()) {
        return Err(WebError::new("csrf", super::error::plain_message("csrf")));
    }
    state.db.delete_session(&staff.session).await?;
    let cleared = auth::cleared_cookie(auth::over_tls(&state, &headers));
    let mut response = Redirect::to("/login").into_response();
    if let Ok(value) = HeaderValue::from_str(&cleared) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(local_path(Some("/cases/1")), "/cases/1");
        assert_eq!(local_path(Some("//evil.example/")), "/queue");
        assert_eq!(local_path(Some("https://evil.example/")), "/queue");
        assert_eq!(local_path(Some("/\\evil")), "/queue");
        assert_eq!(local_path(None), "/queue");
        assert_eq!(encode_next("/cases?q=王"), "/cases%3Fq%3D%E7%8E%8B");
    }
}
