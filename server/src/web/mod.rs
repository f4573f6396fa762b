//! The web pages: server-rendered HTML (tera templates embedded in the binary), in
//! Chinese, for staff working cases in a browser. Logins use the same server-side
//! sessions as the API; every form post carries a single-use token ([`csrf`]). Static
//! files, the vendored scripts included, are embedded too ([`assets`]), so the binary
//! serves the site from any working directory with no CDN.

pub mod admin;
pub mod assets;
pub mod case;
pub mod csrf;
pub mod error;
pub mod fields;
pub mod login;
pub mod post;
pub mod print;
pub mod progress;
pub mod queue;
pub mod render;
pub mod task;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::app::AppState;
use crate::auth::{SESSION_COOKIE, cookie};
use crate::authz::{Credential, Principal};
pub use error::WebError;

/// The result of a page handler.
pub type WebResult<T = Response> = Result<T, WebError>;

/// The pages' routes (the API has its own router; the two are merged in `app::router`).
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.body_limit;
    Router::new()
        .route("/", get(home))
        .route("/login", get(login::page_get).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/static/{*path}", get(assets::serve))
        .route("/queue", get(queue::page_get))
        .route("/tasks/{id}", get(task::page_get).post(task::complete))
        .route("/tasks/{id}/claim", post(queue::claim))
        .route("/tasks/{id}/unclaim", post(queue::unclaim))
        .route("/tasks/{id}/handover", post(queue::handover))
        .route("/cases", get(case::search))
        .route("/cases/new", get(case::new_form).post(case::start))
        .route("/cases/{id}", get(case::file))
        .route("/cases/{id}/notice", get(print::notice))
        .route("/cases/{id}/corrections", post(case::correct))
        .merge(print::router())
        .merge(progress::router())
        .merge(admin::router())
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// A logged-in staff member on a page: the session's user. Without a live session the
/// page answers with a redirect to the login form (and back here after it).
pub struct Staff {
    pub principal: Principal,
    /// The session cookie's value (form tokens are bound to it).
    pub session: String,
}

impl Staff {
    /// The base template's view of the user: name, unit, roles (with their labels).
    pub fn view(&self, state: &AppState) -> serde_json::Value {
        let labels: Vec<String> = self
            .principal
            .roles
            .iter()
            .map(|role| role_label(state, role))
            .collect();
        serde_json::json!({
            "id": self.principal.user,
            "name": self.principal.name,
            "unit": self.principal.unit,
            "roles": self.principal.roles,
            "role_labels": labels,
            "pays": crate::authz::payments(&self.principal).is_ok(),
        })
    }
}

impl Staff {
    /// The context every page starts from: the user, the active nav entry and the
    /// logout form's token (the session's own: logging out ends the session, so the
    /// token cannot be used twice).
    pub fn context(&self, state: &AppState, nav: &str) -> tera::Context {
        let mut context = tera::Context::new();
        context.insert("me", &self.view(state));
        context.insert("nav", nav);
        context.insert("logout_token", self.session_csrf());
        context
    }

    /// The session's CSRF token.
    pub fn session_csrf(&self) -> &str {
        match &self.principal.credential {
            Credential::Session { csrf_token, .. } => csrf_token,
            Credential::Token => "",
        }
    }

    /// A new single-use token for a form on the page being rendered.
    pub async fn form_token(&self, state: &AppState) -> WebResult<String> {
        Ok(state
            .db
            .new_form_token(&self.session, state.engine.now())
            .await?)
    }
}

/// The Chinese label of a role from the org file, or its id.
pub fn role_label(state: &AppState, role: &str) -> String {
    state
        .engine
        .project
        .org
        .as_ref()
        .and_then(|org| org.role_label(role))
        .map(str::to_string)
        .unwrap_or_else(|| role.to_string())
}

impl FromRequestParts<Arc<AppState>> for Staff {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Staff, Response> {
        let to_login = |parts: &Parts| {
            let here = parts
                .extensions
                .get::<OriginalUri>()
                .map(|uri| uri.0.to_string())
                .unwrap_or_else(|| parts.uri.to_string());
            let next = if parts.method == axum::http::Method::GET {
                here
            } else {
                "/".to_string()
            };
            Redirect::to(&format!("/login?next={}", login::encode_next(&next))).into_response()
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login(parts));
        };
        let now = state.engine.now();
        // One read: the session joined to its user, as the API's credential check does.
        let found = state
            .db
            .session_user(&id, now, &state.config.auth)
            .await
            .map_err(|e| WebError::from(e).into_response())?;
        let (session, user) = match found {
            Some((session, Some(user))) if !user.disabled => (session, user),
            _ => return Err(to_login(parts)),
        };
        let principal = Principal::new(
            user,
            Credential::Session {
                id: id.clone(),
                csrf_token: session.csrf_token,
            },
        );
        Ok(Staff {
            principal,
            session: id,
        })
    }
}

/// The home page: the staff queue.
async fn home(staff: Result<Staff, Response>) -> Response {
    match staff {
        Ok(_) => Redirect::to("/queue").into_response(),
        Err(to_login) => to_login,
    }
}

/// The case `id` with its definition and state, if `staff` may see it; the same not-found
/// page as for a case that does not exist otherwise.
pub async fn visible_case(
    state: &AppState,
    staff: &Staff,
    id: &str,
) -> WebResult<(
    jiuzhu_engine::store::InstanceRow,
    Arc<jiuzhu_engine::lang::model::Definition>,
    jiuzhu_engine::core::InstanceState,
)> {
    // Live or archived (an archived case is shown as it ended; it takes no step).
    match state.engine.load_for_reading(id).await? {
        Some((row, def, case, _)) if staff.principal.can_see(&row.unit) => Ok((row, def, case)),
        _ => Err(WebError::not_found()),
    }
}

/// An HTML response that is never cached (pages show personal data and form tokens).
pub fn page(html: String) -> Response {
    let mut response = Html(html).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}
