//! JSON request bodies read the way the CLI reads `--data` and case files: a JSON media
//! type, within the body limit, valid UTF-8, parsed strictly (a repeated key is refused,
//! as `jiuzhu_rules::parse_strict` does, instead of serde_json's last-one-wins) and then
//! shaped into the handler's type with the JSON path of the first misfit. Each refusal
//! is a problem response; nothing reaches a handler.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// A JSON request body; a body that is not JSON, too large, of another content type, has
/// a repeated key or is of the wrong shape becomes a problem response.
pub struct ApiJson<T>(pub T);

/// `application/json` or any `application/*+json`, parameters (charset) allowed.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !is_json(content_type) {
            return Err(ApiError::new(
                "unsupported_media_type",
                "expected a body of Content-Type application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new("payload_too_large", rejection.body_text())
                } else {
                    ApiError::new("bad_json", rejection.body_text())
                }
            })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Reads a body's bytes as a `T`: strict JSON, then the type's shape.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ApiError::new(
            "bad_json",
            format!("the body is not UTF-8 (byte {})", e.valid_up_to()),
        )
    })?;
    let json = jiuzhu_rules::parse_strict(text).map_err(|e| {
        let code = match e.code() {
            "duplicate_key" => "duplicate_key",
            _ => "bad_json",
        };
        ApiError::new(code, e.to_string())
    })?;
    serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            "$".to_string()
        } else {
            format!("$.{path}")
        };
        ApiError::new("invalid_request", format!("{path}: {}", e.inner()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Login {
        user: String,
        password: String,
    }

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json(""));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }

    #[test]
    fn refusals_have_their_codes_and_paths() {
        let dup = parse::<serde_json::Value>(br#"{"a": {"b": 1, "b": 2}}"#).unwrap_err();
        assert_eq!(dup.code, "duplicate_key");
        assert!(dup.detail.contains("$.a.b"), "{}", dup.detail);
        let syntax = parse::<serde_json::Value>(b"{\"a\": ").unwrap_err();
        assert_eq!(syntax.code, "bad_json");
        let utf8 = parse::<serde_json::Value>(b"\"\xff\"").unwrap_err();
        assert_eq!(utf8.code, "bad_json");
        let shape = parse::<Login>(br#"{"user": 5, "password": "x"}"#).unwrap_err();
        assert_eq!(shape.code, "invalid_request");
        assert!(shape.detail.starts_with("$.user"), "{}", shape.detail);
        let unknown =
            parse::<Login>(br#"{"user": "u", "password": "x", "admin": true}"#).unwrap_err();
        assert_eq!(unknown.code, "invalid_request");
        assert!(parse::<Login>(br#"{"user": "u", "password": "x"}"#).is_ok());
    }
}
