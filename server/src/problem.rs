//! Errors as problem details (RFC 9457, `application/problem+json`), and the one mapping
//! from the engine's stable codes to HTTP statuses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiuzhu_engine::runtime::EngineError;
use serde::Serialize;
use utoipa::ToSchema;

/// A problem details body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`urn:jiuzhu:problem:CODE`).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The stable code (the engine's, or the server's own).
    pub code: String,
    /// `invalid_data`: every problem with the data, each at its JSON path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<DataProblem>,
}

/// One problem with a request's data (an extension member of the problem details).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DataProblem {
    /// JSON path, e.g. `$.household.members[1].income[0].kind`.
    pub path: String,
    pub message: String,
}

/// An error a handler returns; becomes a problem response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Seconds for a `Retry-After` header (rate limits).
    pub retry_after: Option<i64>,
    /// Every problem with the data, for `invalid_data` (the body's `errors`).
    pub errors: Vec<DataProblem>,
}

impl ApiError {
    /// An error with a stable code; its status comes from [`status_of`].
    pub fn new(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status: status_of(code),
            code,
            detail: detail.into(),
            retry_after: None,
            errors: Vec::new(),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new("not_found", detail)
    }

    pub fn unauthenticated(detail: impl Into<String>) -> ApiError {
        ApiError::new("unauthenticated", detail)
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(code, detail)
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(code, detail)
    }

    /// An error whose text must not reach the client: it is logged (it names no personal
    /// data: store and engine errors carry ids and codes only), the client gets a
    /// generic problem.
    pub fn internal(error: &dyn std::error::Error) -> ApiError {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        tracing::error!(error = %text, "internal error");
        ApiError::new("internal", "the server could not complete the request")
    }

    pub fn with_retry_after(mut self, seconds: i64) -> ApiError {
        self.retry_after = Some(seconds.max(1));
        self
    }
}

/// The HTTP status of a stable error code: the one mapping for the whole API (the
/// engine's codes and the server's own); an unknown code is an internal error.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "not_found" => StatusCode::NOT_FOUND,
        "forbidden" | "separation_of_duties" | "csrf" => StatusCode::FORBIDDEN,
        "conflict" | "duplicate" | "tampered" | "not_configured" | "too_many_messages" => {
            StatusCode::CONFLICT
        }
        "invalid_data" | "invalid_request" | "invalid_definition" | "no_active_benefit" => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        "bad_json" | "bad_query" | "duplicate_key" => StatusCode::BAD_REQUEST,
        "unauthenticated" => StatusCode::UNAUTHORIZED,
        "payload_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "unsupported_media_type" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "rate_limited" | "locked" => StatusCode::TOO_MANY_REQUESTS,
        "method_not_allowed" => StatusCode::METHOD_NOT_ALLOWED,
        "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        let code = error.code();
        if status_of(code) == StatusCode::INTERNAL_SERVER_ERROR {
            return ApiError::internal(&error);
        }
        let errors = match &error {
            EngineError::Step(step) => step
                .problems()
                .into_iter()
                .map(|p| DataProblem {
                    path: p.path,
                    message: p.message,
                })
                .collect(),
            _ => Vec::new(),
        };
        ApiError {
            errors,
            ..ApiError::new(code, error.to_string())
        }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(error: crate::db::DbError) -> ApiError {
        ApiError::internal(&error)
    }
}

impl From<jiuzhu_engine::store::StoreError> for ApiError {
    fn from(error: jiuzhu_engine::store::StoreError) -> ApiError {
        ApiError::from(EngineError::Store(error))
    }
}

fn title(status: StatusCode) -> String {
    status.canonical_reason().unwrap_or("Error").to_string()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("urn:jiuzhu:problem:{}", self.code),
            title: title(self.status),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code.to_string(),
            errors: self.errors,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, json).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"jiuzhu\", Cookie realm=\"jiuzhu\""),
            );
        }
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            headers.insert(header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_codes_map_to_their_statuses() {
        for (code, status) in [
            ("not_found", 404),
            ("forbidden", 403),
            ("separation_of_duties", 403),
            ("conflict", 409),
            ("duplicate", 409),
            ("invalid_data", 422),
            ("bad_json", 400),
            ("duplicate_key", 400),
            ("unauthenticated", 401),
            ("csrf", 403),
            ("payload_too_large", 413),
            ("unsupported_media_type", 415),
            ("locked", 429),
            ("unavailable", 503),
            ("not_configured", 409),
            ("too_many_messages", 409),
            ("no_active_benefit", 422),
            ("store", 500),
            ("incident", 500),
        ] {
            assert_eq!(status_of(code).as_u16(), status, "{code}");
        }
    }
}
