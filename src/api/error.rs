//! [`ApiError`]: every non-success outcome of the HTTP API, and its one mapping to the bilibili envelope.
//!
//! Invariants:
//! - This is the only place that turns an error into a response: HTTP 200, the standard envelope, the
//!   kratos ecode in `code` (-304, -400, -404, -409, -500, -503) and in `kratos-status-code`.
//! - `message` is the code as a decimal string (as the original, which registers no message table), except
//!   for -400, -500 and -503, whose message is the explanation carried by the variant. Those texts are shown to
//!   clients, so they must name the offending parameter (-400) and never leak internals (-500, -503).
//! - The response carries a clone of the error in its extensions, so a logging middleware can see it without
//!   `into_response` logging anything itself.

use serde::Serialize;
use serde_json::Value;

use axum::response::{IntoResponse, Response};

use super::envelope::{Data, Envelope};
use crate::registry::command::Outcome;

/// kratos `NotModified`.
pub(crate) const CODE_NOT_MODIFIED: i32 = -304;
/// kratos `RequestErr`.
pub(crate) const CODE_REQUEST_ERR: i32 = -400;
/// kratos `NothingFound`.
pub(crate) const CODE_NOTHING_FOUND: i32 = -404;
/// kratos `Conflict`.
pub(crate) const CODE_CONFLICT: i32 = -409;
/// kratos `ServerErr`.
pub(crate) const CODE_SERVER_ERR: i32 = -500;
/// kratos `ServiceUnavailable` (overload protection).
pub(crate) const CODE_OVERLOAD: i32 = -503;

/// A failed API call, as the client will see it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiError {
    /// -304: a long poll ended with no change.
    #[error("not modified")]
    NotModified,
    /// -400: bad parameters; the text names the parameter and is the wire `message`.
    #[error("{0}")]
    RequestErr(String),
    /// -404: unknown instance or app; `data` omitted, `null` or a value, per endpoint (spec §2).
    #[error("nothing found")]
    NothingFound(Data<Value>),
    /// -409: the receiver's copy is newer; `data` is that copy.
    #[error("conflict")]
    Conflict(Value),
    /// -500: the node cannot serve the request (no leader, apply failed...); safe text for the client.
    #[error("server error: {0}")]
    ServerErr(String),
    /// -503: overloaded, retry later; safe text for the client.
    #[error("overloaded: {0}")]
    Overload(String),
}

impl ApiError {
    /// -400 with the given explanation.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::RequestErr(message.into())
    }

    /// -404 without a `data` key (cancel, set).
    pub(crate) fn not_found() -> Self {
        ApiError::NothingFound(Data::Omitted)
    }

    /// -404 with `"data":null` (fetch, renew of an unknown app).
    pub(crate) fn not_found_null() -> Self {
        ApiError::NothingFound(Data::Null)
    }

    /// -404 with a value under `data` (renew of an unknown host in a known zone, stale replicated renew).
    pub(crate) fn not_found_with<T: Serialize>(data: &T) -> Self {
        match serde_json::to_value(data) {
            Ok(v) => ApiError::NothingFound(Data::Value(v)),
            Err(e) => ApiError::ServerErr(format!("response serialization failed: {e}")),
        }
    }

    /// -409 with the receiver's instance under `data`.
    pub(crate) fn conflict_with<T: Serialize>(data: &T) -> Self {
        match serde_json::to_value(data) {
            Ok(v) => ApiError::Conflict(v),
            Err(e) => ApiError::ServerErr(format!("response serialization failed: {e}")),
        }
    }

    /// The kratos ecode.
    pub(crate) fn code(&self) -> i32 {
        match self {
            ApiError::NotModified => CODE_NOT_MODIFIED,
            ApiError::RequestErr(_) => CODE_REQUEST_ERR,
            ApiError::NothingFound(_) => CODE_NOTHING_FOUND,
            ApiError::Conflict(_) => CODE_CONFLICT,
            ApiError::ServerErr(_) => CODE_SERVER_ERR,
            ApiError::Overload(_) => CODE_OVERLOAD,
        }
    }

    /// The wire envelope of this error.
    pub(crate) fn envelope(&self) -> Envelope<Value> {
        let code = self.code();
        match self {
            ApiError::RequestErr(text) | ApiError::ServerErr(text) | ApiError::Overload(text) => {
                Envelope { code, message: text.clone().into(), data: Data::Omitted }
            }
            ApiError::NotModified => Envelope::with_code(code, Data::Omitted),
            ApiError::NothingFound(data) => Envelope::with_code(code, data.clone()),
            ApiError::Conflict(value) => Envelope::with_code(code, Data::Value(value.clone())),
        }
    }

    /// Result of a register or cancel command: `NotFound` is -404 without data (spec §2.3).
    pub(crate) fn from_write_outcome(outcome: Outcome) -> Result<(), ApiError> {
        match outcome {
            Outcome::Ok | Outcome::Evicted(_) => Ok(()),
            Outcome::NotFound => Err(ApiError::not_found()),
            Outcome::Invalid(reason) => Err(ApiError::RequestErr(reason)),
        }
    }

    /// Result of a set command: the original answers -400 for an unknown app, zone or host (spec §2.4).
    pub(crate) fn from_set_outcome(outcome: Outcome) -> Result<(), ApiError> {
        match outcome {
            Outcome::NotFound => Err(ApiError::bad_request("set: no such instance (appid, env, zone, hostname)")),
            other => Self::from_write_outcome(other),
        }
    }
}

/// A refusal of the service: -503 when overloaded (retry later), -500 otherwise; never -404, which would make
/// every SDK re-register at once.
impl From<crate::service::Refusal> for ApiError {
    fn from(refusal: crate::service::Refusal) -> Self {
        match refusal {
            crate::service::Refusal::Overloaded(reason) => ApiError::Overload(reason),
            crate::service::Refusal::Unavailable(reason) | crate::service::Refusal::OutcomeUnknown(reason) => {
                ApiError::ServerErr(reason)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.envelope().into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// The answer to a request the node refuses before any handler runs (too many connections, a stopped Raft
/// core): the API's envelope with `code` (-503 or -500) on `/discovery/*`, as the SDKs expect, and a plain
/// HTTP 503 everywhere else, so that a health check never reads the node as healthy.
pub(crate) fn refusal(path: &str, message: String, overloaded: bool) -> Response {
    if !path.starts_with("/discovery/") {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    }
    if overloaded {
        ApiError::Overload(message).into_response()
    } else {
        ApiError::ServerErr(message).into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use http_body_util::BodyExt;

    use super::*;
    use crate::api::envelope::{JSON_CONTENT_TYPE, STATUS_CODE_HEADER};

    async fn wire(err: ApiError) -> (String, String) {
        let resp = err.clone().into_response();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[axum::http::header::CONTENT_TYPE], JSON_CONTENT_TYPE);
        assert_eq!(resp.extensions().get::<ApiError>(), Some(&err));
        let header = resp.headers()[STATUS_CODE_HEADER].to_str().expect("ascii").to_owned();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (header, String::from_utf8(body.to_vec()).expect("utf8"))
    }

    #[tokio::test]
    async fn golden_bodies() {
        let cases = [
            (ApiError::NotModified, "-304", r#"{"code":-304,"message":"-304","ttl":1}"#),
            (ApiError::bad_request("zone: bad"), "-400", r#"{"code":-400,"message":"zone: bad","ttl":1}"#),
            (ApiError::not_found(), "-404", r#"{"code":-404,"message":"-404","ttl":1}"#),
            (ApiError::not_found_null(), "-404", r#"{"code":-404,"message":"-404","ttl":1,"data":null}"#),
            (ApiError::not_found_with(&[1]), "-404", r#"{"code":-404,"message":"-404","ttl":1,"data":[1]}"#),
            (ApiError::conflict_with(&"x"), "-409", r#"{"code":-409,"message":"-409","ttl":1,"data":"x"}"#),
            (ApiError::ServerErr("no leader".into()), "-500", r#"{"code":-500,"message":"no leader","ttl":1}"#),
            (ApiError::Overload("busy".into()), "-503", r#"{"code":-503,"message":"busy","ttl":1}"#),
        ];
        for (err, code, body) in cases {
            assert_eq!(wire(err).await, (code.to_owned(), body.to_owned()));
        }
    }

    #[test]
    fn outcome_mapping() {
        assert_eq!(ApiError::from_write_outcome(Outcome::Ok), Ok(()));
        assert_eq!(ApiError::from_write_outcome(Outcome::NotFound), Err(ApiError::not_found()));
        assert_eq!(ApiError::from_write_outcome(Outcome::Invalid("why".into())), Err(ApiError::bad_request("why")));
        assert_eq!(ApiError::from_set_outcome(Outcome::Ok), Ok(()));
        assert_eq!(ApiError::from_set_outcome(Outcome::NotFound).map_err(|e| e.code()), Err(CODE_REQUEST_ERR));
        assert_eq!(ApiError::from_set_outcome(Outcome::Invalid("m".into())), Err(ApiError::bad_request("m")));
    }
}
