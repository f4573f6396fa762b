//! Assessing a household (`jiuzhu assess` over HTTP): the case in the body, the policy in
//! force for the unit and the case's date, the project's rule files.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use jiuzhu_engine::assessor::Policies;
use jiuzhu_rules::{check_policy_applies, parse_case, try_assess};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{ApiJson, AppResult};
use crate::app::AppState;
use crate::authz::{self, Principal};
use crate::problem::{ApiError, Problem};

/// A household to assess.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssessRequest {
    /// The case, as `jiuzhu assess --case` reads it (program, as_of, area, household, …).
    #[schema(value_type = Object)]
    pub case: serde_json::Value,
    /// The unit whose policy applies (default: the caller's).
    pub unit: Option<String>,
    /// Include the trace of every rule applied.
    #[serde(default)]
    pub explain: bool,
}

/// The assessment of a household: eligibility, category, amounts, reasons (and the trace
/// with `explain`). Nothing is stored.
#[utoipa::path(post, path = "/api/assess", tag = "assess", request_body = AssessRequest, responses(
    (status = 200, description = "the assessment", body = Object),
    (status = 400, description = "a body that is not JSON", body = Problem),
    (status = 401, description = "not logged in", body = Problem),
    (status = 403, description = "the caller's role does not assess", body = Problem),
    (status = 413, description = "the body is too large", body = Problem),
    (status = 415, description = "not application/json", body = Problem),
    (status = 422, description = "the case is invalid, or no policy is in force for it", body = Problem)),
    security(("session" = []), ("token" = [])))]
pub(super) async fn assess(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiJson(body): ApiJson<AssessRequest>,
) -> AppResult<Json<serde_json::Value>> {
    authz::assess(&principal)?;
    let case = parse_case(&body.case).map_err(|errors| {
        ApiError::new(
            "invalid_data",
            errors
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let assessor = state
        .engine
        .project
        .assessor(None)
        .map_err(|e| ApiError::internal(&e))?;
    let unit = body.unit.unwrap_or_else(|| principal.unit.clone());
    let policy = match &assessor.policies {
        Policies::Fixed(policy) => Some(policy.as_ref()),
        Policies::Set(set) => set.select(&unit, case.as_of),
    }
    .ok_or_else(|| {
        ApiError::new(
            "invalid_data",
            format!("no policy in force for {unit} on {}", case.as_of),
        )
    })?;
    check_policy_applies(policy, &case)
        .map_err(|e| ApiError::new("invalid_data", format!("{}: {}", e.path, e.message)))?;
    // A rule failing on valid input is a defect of the rule files, not the caller's.
    let assessment =
        try_assess(&assessor.rules, policy, &case).map_err(|e| ApiError::internal(&e))?;
    Ok(Json(if body.explain {
        assessment.to_json_with_trace()
    } else {
        assessment.to_json()
    }))
}
