//! The errors the API answers with: `{"error": {"message", "type", "field"?}}`, shared by the
//! HTTP layer (`api`) and the pools (`pool`), which both depend on this module and not on
//! each other's errors.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error as the API answers it: `{"error": {"message", "type", "field"?}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            field: None,
        }
    }
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field}: {}", message.into());
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message).with_field(field)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn store(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            message,
        )
    }
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut e = json!({"message": self.message, "type": self.kind});
        if let Some(f) = self.field {
            e["field"] = json!(f);
        }
        (self.status, Json(json!({ "error": e }))).into_response()
    }
}

/// The field path serde reports (`results[0].correct: invalid type ...`), if any.
fn serde_field(text: &str) -> Option<String> {
    let rest = text.split("target type: ").nth(1)?;
    if let Some(m) = rest.split("missing field `").nth(1) {
        let name = m.split('`').next()?;
        return match rest.split_once(": missing field") {
            Some((path, _)) if !path.contains(' ') => Some(format!("{path}.{name}")),
            _ => Some(name.to_string()),
        };
    }
    let (path, _) = rest.split_once(": ")?;
    (!path.contains(' ') && path != ".").then(|| path.to_string())
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let text = r.body_text();
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(status, "payload_too_large", "request body too large")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                status,
                "invalid_request",
                "expected `Content-Type: application/json`",
            ),
            _ => {
                let mut e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", text.clone());
                e.field = serde_field(&text);
                e
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_paths_name_the_field() {
        assert_eq!(
            serde_field("Failed to deserialize the JSON body into the target type: results[0].correct: invalid type: string \"x\", expected a boolean at line 1 column 9").as_deref(),
            Some("results[0].correct")
        );
        assert_eq!(
            serde_field("Failed to deserialize the JSON body into the target type: missing field `n` at line 1 column 2").as_deref(),
            Some("n")
        );
        assert_eq!(
            serde_field("Failed to deserialize the JSON body into the target type: results[2]: missing field `correct` at line 1 column 40").as_deref(),
            Some("results[2].correct")
        );
    }
}
