//! The one place errors become HTTP: the contract's JSON shape
//! `{"error": {"code": "snake_case", "message": "…"}}` with the fitting status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::FORBIDDEN, code: "invalid_signature", message: message.into() }
    }

    /// 403: a carrier request with no signature where signatures are required.
    pub fn unsigned_refused(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::FORBIDDEN, code: "signature_required", message: message.into() }
    }

    pub fn too_many_requests(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::TOO_MANY_REQUESTS, code: "rate_limited", message: message.into() }
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::UNSUPPORTED_MEDIA_TYPE, code: "unsupported_media_type", message: message.into() }
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, code, message: message.into() }
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::UNAUTHORIZED, code: "unauthorized", message: message.into() }
    }

    pub fn forbidden_api(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::FORBIDDEN, code: "forbidden", message: message.into() }
    }

    /// 422 naming the field.
    pub fn invalid(field: &str, problem: &str) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_field",
            message: format!("{field}: {problem}"),
        }
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError { status: StatusCode::NOT_FOUND, code: "not_found", message: format!("no such {what}") }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::CONFLICT, code, message: message.into() }
    }

    /// Its `{"code", "message"}` (an item of a batch's answer).
    pub fn body(&self) -> super::openapi::ErrorBody {
        super::openapi::ErrorBody { code: self.code.to_string(), message: self.message.clone() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, code, message: message.into() }
    }
}

/// A field a body got wrong: 422 naming it.
impl From<super::call_request::FieldError> for ApiError {
    fn from(e: super::call_request::FieldError) -> ApiError {
        ApiError::invalid(&e.field, &e.problem)
    }
}

/// A store failure reaches a client as a fixed message: the database's own text (paths, SQL,
/// SQLite's wording) is logged here, once, and never sent.
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        tracing::error!(error = %e, "store error");
        ApiError::unavailable("store_unavailable", "the database is unavailable; retry later")
    }
}

/// Rejections from axum's extractors (a body over the limit, a malformed path…) come as plain
/// text; they are rewritten into the contract's error envelope, so every error is JSON.
pub async fn envelope_plain_errors(response: Response) -> Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    };
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { text };
    (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": {"code": self.code, "message": self.message}}))).into_response()
    }
}
