//! Definitions: the deployed versions, validating a source, deploying the project's
//! definitions. Administrators only ([`authz::admin`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use jiuzhu_adapters::notify::check_project_templates;
use jiuzhu_engine::lang::load_definition;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, AppResult, rfc3339};
use crate::app::AppState;
use crate::authz::{self, Principal};
use crate::problem::{ApiError, Problem};

/// A deployed version of a process.
#[derive(Serialize, ToSchema)]
pub struct DeploymentView {
    pub process: String,
    pub version: i64,
    /// SHA-256 of the source (hex).
    pub hash: String,
    pub deployed_at: String,
}

/// A definition's source to check.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// The YAML text of one definition.
    pub source: String,
    /// The name diagnostics give the source (default `definition.yaml`).
    pub name: Option<String>,
}

/// What validation found: every problem as `file:line:column: CODE: message`.
#[derive(Serialize, ToSchema)]
pub struct Validation {
    pub ok: bool,
    /// The process id, when the source loaded.
    pub process: Option<String>,
    pub diagnostics: Vec<String>,
}

/// Every deployed version of every process.
#[utoipa::path(get, path = "/api/definitions", tag = "definitions", responses(
    (status = 200, description = "the deployments", body = Vec<DeploymentView>),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "administrators only", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> AppResult<Json<Vec<DeploymentView>>> {
    authz::admin(&principal, "definitions")?;
    let deployments = state.engine.store.deployments().await?;
    Ok(Json(
        deployments
            .into_iter()
            .map(|d| DeploymentView {
                process: d.process_id,
                version: d.version,
                hash: d.hash,
                deployed_at: rfc3339(d.deployed_at),
            })
            .collect(),
    ))
}

/// Checks a definition's source against the project's roles and calendars; nothing is
/// stored. Problems are an answer, not an error: `ok` says whether there were any.
#[utoipa::path(post, path = "/api/definitions/validate", tag = "definitions",
    request_body = ValidateRequest, responses(
    (status = 200, description = "the problems found (none when ok)", body = Validation),
    (status = 400, description = "a body that is not JSON", body = Problem),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "administrators only", body = Problem),
    (status = 413, description = "the body is too large", body = Problem),
    (status = 415, description = "not application/json", body = Problem),
    (status = 422, description = "a body of the wrong shape", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn validate(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiJson(body): ApiJson<ValidateRequest>,
) -> AppResult<Json<Validation>> {
    authz::admin(&principal, "validating definitions")?;
    let name = body.name.unwrap_or_else(|| "definition.yaml".to_string());
    let answer = match load_definition(&body.source, &name, &state.engine.project.context) {
        Ok(def) => Validation {
            ok: true,
            process: Some(def.id),
            diagnostics: Vec::new(),
        },
        Err(diagnostics) => Validation {
            ok: false,
            process: None,
            diagnostics: diagnostics.iter().map(ToString::to_string).collect(),
        },
    };
    Ok(Json(answer))
}

/// Deploys the project's definitions as the server loaded them: a changed one gets a new
/// version, running cases keep theirs.
#[utoipa::path(post, path = "/api/definitions/deploy", tag = "definitions", responses(
    (status = 200, description = "the versions now deployed", body = Vec<DeploymentView>),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "administrators only", body = Problem),
    (status = 422, description = "a definition or a notification template does not load (the problem names it)", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn deploy(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> AppResult<Json<Vec<DeploymentView>>> {
    authz::admin(&principal, "deploying definitions")?;
    // The same template check as `jiuzhu deploy`: a notice that cannot render is refused
    // now, with the template and part it is in, not when a reminder fires.
    check_project_templates(&state.engine.project)
        .map_err(|e| ApiError::new("invalid_definition", format!("{e}\nnothing deployed")))?;
    let deployed = state.engine.deploy().await?;
    Ok(Json(
        deployed
            .into_iter()
            .map(|d| DeploymentView {
                process: d.process_id,
                version: d.version,
                hash: d.hash,
                deployed_at: rfc3339(d.deployed_at),
            })
            .collect(),
    ))
}
