//! Administration pages under `/admin`, for administrators only: the check is the
//! [`Admin`] extractor, which asks `authz` (`Principal::require_admin`) — every page and
//! action of this module takes it. Procedures and their versions (edit, check with
//! errors at their lines, diff, deploy, run the scenarios), users and API tokens,
//! incidents with retry and calendar coverage.
//! Every form post consumes a single-use token and lists the fields it accepts: a
//! missing, extra or malformed field is explained on the page and nothing changes.

mod access;
mod operations;
mod payments;
mod procedures;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::post::Posted;
use super::{Staff, WebError, WebResult, csrf};
use crate::app::AppState;

/// The administration templates (registered with the others by `render`).
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "admin/index.html",
        include_str!("../../../templates/admin/index.html"),
    ),
    (
        "admin/procedure.html",
        include_str!("../../../templates/admin/procedure.html"),
    ),
    (
        "admin/users.html",
        include_str!("../../../templates/admin/users.html"),
    ),
    (
        "admin/operations.html",
        include_str!("../../../templates/admin/operations.html"),
    ),
    (
        "admin/tokens.html",
        include_str!("../../../templates/admin/tokens.html"),
    ),
    (
        "admin/payments.html",
        include_str!("../../../templates/admin/payments.html"),
    ),
];

/// The `/admin` routes.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin", get(procedures::index))
        .route("/admin/procedures/{id}", get(procedures::edit))
        .route("/admin/procedures/{id}/check", post(procedures::check))
        .route("/admin/procedures/{id}/deploy", post(procedures::deploy))
        .route(
            "/admin/procedures/{id}/scenarios",
            post(procedures::scenarios),
        )
        .route("/admin/users", get(access::users).post(access::user_action))
        .route(
            "/admin/tokens",
            get(access::tokens).post(access::token_action),
        )
        .route(
            "/admin/operations",
            get(operations::operations).post(operations::retry),
        )
        .merge(payments::router())
}

/// A logged-in administrator. Anyone else gets the 403 page; no session, the login form.
pub struct Admin(pub Staff);

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Admin, Response> {
        let staff = Staff::from_request_parts(parts, state).await?;
        match staff.principal.require_admin() {
            Ok(()) => Ok(Admin(staff)),
            Err(refusal) => Err(WebError::from(refusal).into_response()),
        }
    }
}

impl Admin {
    /// The page context with the administration nav entry active.
    fn context(&self, state: &AppState, section: &str) -> tera::Context {
        let mut context = self.0.context(state, "admin");
        context.insert("section", section);
        context
    }

    /// Checks a posted form: only `allowed` fields (and the form token), the token
    /// unused and issued to this session. Consumes the token.
    async fn accept(&self, state: &AppState, form: &Posted, allowed: &[&str]) -> WebResult<()> {
        accept(state, &self.0, form, allowed).await
    }
}

/// Checks a posted form of `staff`: only `allowed` fields (and the form token), the token
/// unused and issued to this session. Consumes the token.
async fn accept(state: &AppState, staff: &Staff, form: &Posted, allowed: &[&str]) -> WebResult<()> {
    {
        if let Some((extra, _)) = form
            .0
            .iter()
            .find(|(key, _)| key != csrf::FIELD && !allowed.contains(&key.as_str()))
        {
            return Err(WebError::bad_request(format!(
                "表单含有不认识的字段“{}”，已拒绝，没有任何内容被修改。",
                extra.chars().take(40).collect::<String>()
            )));
        }
        csrf::check(
            &state.db,
            &staff.session,
            form.one(csrf::FIELD),
            state.engine.now(),
        )
        .await
    }
}

/// The value of a required field, trimmed; its absence is explained.
fn required<'a>(form: &'a Posted, name: &str, label: &str) -> WebResult<&'a str> {
    match form.one(name).map(str::trim) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(WebError::bad_request(format!(
            "缺少“{label}”，没有任何内容被修改。"
        ))),
    }
}

/// The rendered page.
fn show(name: &str, context: &tera::Context) -> WebResult {
    Ok(super::page(super::render::render(name, context)?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_admin_template_is_registered() {
        for (name, text) in super::TEMPLATES {
            assert!(text.contains("{% extends \"base.html\" %}"), "{name}");
        }
    }
}
