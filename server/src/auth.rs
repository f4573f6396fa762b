//! Who is calling: the session cookie or the bearer token of a request, resolved to a
//! [`Principal`]; the CSRF check of cookie-authenticated state-changing requests; and the
//! session cookie itself.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};

use crate::app::AppState;
use crate::authz::{Credential, Principal};
use crate::problem::ApiError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "jiuzhu_session";
/// The header carrying the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// The bearer token of an `Authorization` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether the request reached us over TLS: only a trusted proxy's
/// `X-Forwarded-Proto` says so (the server itself speaks plain HTTP), or the operator
/// declared that every request does.
pub fn over_tls(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.secure_cookies
        || (state.config.trust_proxy
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https")))
}

/// The `Set-Cookie` value of a new session.
pub fn session_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{secure}")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn cleared_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}")
}

/// Equal without an early exit, so comparing a guessed CSRF token does not leak how many
/// leading characters were right.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Principal, ApiError> {
        let now = state.engine.now();
        let mut scope = None;
        // One indexed read per request: the credential joined to its user.
        let (user, credential) = if let Some(token) = bearer(&parts.headers) {
            let (grant, user) = state
                .db
                .token_user_grant(token)
                .await?
                .ok_or_else(|| ApiError::unauthenticated("the token is unknown or revoked"))?;
            scope = Some(grant.scope);
            (user, Credential::Token)
        } else if let Some(id) = cookie(&parts.headers, SESSION_COOKIE) {
            let (session, user) = state
                .db
                .session_user(&id, now, &state.config.auth)
                .await?
                .ok_or_else(|| ApiError::unauthenticated("the session has ended; log in again"))?;
            (
                user,
                Credential::Session {
                    id,
                    csrf_token: session.csrf_token,
                },
            )
        } else {
            return Err(ApiError::unauthenticated(
                "log in, or send an API token as Authorization: Bearer",
            ));
        };
        let user = match user {
            Some(user) if !user.disabled => user,
            _ => return Err(ApiError::unauthenticated("the account is disabled")),
        };
        if let Credential::Session { csrf_token, .. } = &credential
            && changes_state(&parts.method)
        {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !same(sent, csrf_token) {
                return Err(ApiError::forbidden(
                    "csrf",
                    "missing or wrong X-CSRF-Token for this session",
                ));
            }
        }
        let mut principal = Principal::new(user, credential);
        if let Some(scope) = scope
            && !principal.narrow(&scope)
        {
            return Err(ApiError::unauthenticated(
                "the token's role or unit is no longer the user's",
            ));
        }
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cookies_and_bearer_tokens_are_read_from_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; jiuzhu_session=abc"),
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  jzt_x "),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "b"), None);
        assert_eq!(bearer(&headers), Some("jzt_x"));
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
