//! The console's JSON errors: a real HTTP status and `{"error": "..."}` naming what was wrong.
//!
//! The console's routes are not the bilibili API: they answer honest HTTP statuses (400, 401, 404, 409,
//! 503), never the API's 200-with-a-code envelope.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// A failed console request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct ConsoleError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the operator.
    pub message: String,
}

impl ConsoleError {
    /// 400: the request itself is wrong.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    /// Any other status.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}
