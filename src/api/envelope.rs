//! The two JSON response shapes of bilibili/discovery (spec §1.4), byte-compatible with kratos blademaster.
//!
//! Invariants:
//! - Every business outcome is HTTP **200**; the outcome is the integer `code` in the body.
//! - Every response carries `Content-Type: application/json; charset=utf-8` and `kratos-status-code: <code>`.
//! - Standard envelope: keys in the order `code`, `message`, `ttl`, `data`; `ttl` is always `1`; `data` is
//!   omitted, `null` or a value as chosen by [`Data`] (the original omits it for a literal nil and writes `null`
//!   for a typed nil, and clients can tell the difference only by looking, so each endpoint picks).
//! - Map envelope (polls success, poll "not found"): keys `code`, `message`, then `data` and `error` when
//!   present; **no `ttl`**. `error` is `{"-404": [...]}` or `{"-404": null}` when nothing is missing (never
//!   `[]`, as Go's nil slice). Go sorts map keys (`code`, `data`, `error`, `message`); JSON clients do not care.
//! - Building a response never panics: a value that fails to serialize yields a -500 envelope instead.

use std::borrow::Cow;

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// `Content-Type` of every response.
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";
/// Header that repeats the business code (kratos sets it on every response).
pub(crate) use crate::service::headers::STATUS_CODE_HEADER;

/// What the standard envelope says under `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Data<T> {
    /// No `data` key at all (Go handler passed a literal nil).
    Omitted,
    /// `"data":null` (Go handler passed a typed nil pointer).
    Null,
    /// `"data":<value>`.
    Value(T),
}

impl<T> Data<T> {
    fn as_wire(&self) -> Option<Option<&T>> {
        match self {
            Data::Omitted => None,
            Data::Null => Some(None),
            Data::Value(v) => Some(Some(v)),
        }
    }
}

/// The standard envelope `{"code":..,"message":..,"ttl":1[,"data":..]}` as a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope<T = ()> {
    /// Business code: 0 or a negative ecode.
    pub code: i32,
    /// `"0"`, `"-404"`... or a -400 explanation.
    pub message: Cow<'static, str>,
    /// The payload.
    pub data: Data<T>,
}

impl Envelope<()> {
    /// `{"code":0,"message":"0","ttl":1}`: success without data (register, cancel, set).
    pub(crate) fn ok() -> Self {
        Envelope { code: 0, message: Cow::Borrowed("0"), data: Data::Omitted }
    }
}

impl<T> Envelope<T> {
    /// `{"code":0,"message":"0","ttl":1,"data":<data>}`.
    pub(crate) fn ok_data(data: T) -> Self {
        Envelope { code: 0, message: Cow::Borrowed("0"), data: Data::Value(data) }
    }

    /// Any code, with the message the original uses for it: the code as a decimal string.
    pub(crate) fn with_code(code: i32, data: Data<T>) -> Self {
        Envelope { code, message: Cow::Owned(code.to_string()), data }
    }
}

#[derive(Serialize)]
struct StandardWire<'a, T> {
    code: i32,
    message: &'a str,
    ttl: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Option<&'a T>>,
}

impl<T: Serialize> Envelope<T> {
    /// The exact body bytes.
    pub(crate) fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&StandardWire { code: self.code, message: &self.message, ttl: 1, data: self.data.as_wire() })
    }
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        respond(self.code, self.to_json())
    }
}

/// The map envelope (spec §1.4 b): `{"code":..,"message":..[,"data":..][,"error":{"-404":..}]}`, no `ttl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MapEnvelope<T> {
    /// Business code.
    pub code: i32,
    /// Message, e.g. `"0"` or `"<appid> not found"`.
    pub message: Cow<'static, str>,
    /// `data` key, if any.
    pub data: Option<T>,
    /// `error` key, if any: the appids that were not found (`Some(vec![])` renders `{"-404":null}`).
    pub missing: Option<Vec<String>>,
}

impl<T> MapEnvelope<T> {
    /// Polls success: `{"code":0,"message":"0","data":<data>,"error":{"-404":<missing or null>}}`.
    pub(crate) fn polls(data: T, missing: Vec<String>) -> Self {
        MapEnvelope { code: 0, message: Cow::Borrowed("0"), data: Some(data), missing: Some(missing) }
    }
}

impl MapEnvelope<()> {
    /// Poll of an unknown app: `{"code":-404,"message":"<appid> not found"}`.
    pub(crate) fn poll_not_found(appid: &str) -> Self {
        MapEnvelope { code: -404, message: Cow::Owned(format!("{appid} not found")), data: None, missing: None }
    }
}

#[derive(Serialize)]
struct MapWire<'a, T> {
    code: i32,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<MissingWire<'a>>,
}

#[derive(Serialize)]
struct MissingWire<'a> {
    #[serde(rename = "-404")]
    not_found: Option<&'a [String]>,
}

impl<T: Serialize> MapEnvelope<T> {
    /// The exact body bytes.
    pub(crate) fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let error = self.missing.as_deref().map(|m| MissingWire { not_found: (!m.is_empty()).then_some(m) });
        serde_json::to_vec(&MapWire { code: self.code, message: &self.message, data: self.data.as_ref(), error })
    }
}

impl<T: Serialize> IntoResponse for MapEnvelope<T> {
    fn into_response(self) -> Response {
        respond(self.code, self.to_json())
    }
}

/// Body used when a payload cannot be serialized: the response is still a valid envelope.
const SERIALIZE_FAILED: &[u8] = br#"{"code":-500,"message":"response serialization failed","ttl":1}"#;

/// HTTP 200 with the JSON headers around an already encoded envelope whose code is `code`.
pub(crate) fn encoded_response(code: i32, body: axum::body::Bytes) -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE)),
        (HeaderName::from_static(STATUS_CODE_HEADER), HeaderValue::from(code)),
    ];
    (StatusCode::OK, headers, body).into_response()
}

/// HTTP 200 with the JSON headers; falls back to a -500 body if serialization failed.
fn respond(code: i32, body: Result<Vec<u8>, serde_json::Error>) -> Response {
    let (code, body) = match body {
        Ok(body) => (code, body),
        Err(err) => {
            tracing::error!(%err, "response serialization failed");
            (-500, SERIALIZE_FAILED.to_vec())
        }
    };
    encoded_response(code, body.into())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use http_body_util::BodyExt;

    use super::*;

    fn json<T: Serialize>(e: &Envelope<T>) -> String {
        String::from_utf8(e.to_json().expect("serializes")).expect("utf8")
    }

    fn map_json<T: Serialize>(e: &MapEnvelope<T>) -> String {
        String::from_utf8(e.to_json().expect("serializes")).expect("utf8")
    }

    #[test]
    fn standard_golden() {
        assert_eq!(json(&Envelope::ok()), r#"{"code":0,"message":"0","ttl":1}"#);
        assert_eq!(json(&Envelope::ok_data(vec![1, 2])), r#"{"code":0,"message":"0","ttl":1,"data":[1,2]}"#);
        assert_eq!(
            json(&Envelope::<u8>::with_code(-404, Data::Null)),
            r#"{"code":-404,"message":"-404","ttl":1,"data":null}"#
        );
        assert_eq!(json(&Envelope::<u8>::with_code(-404, Data::Omitted)), r#"{"code":-404,"message":"-404","ttl":1}"#);
        assert_eq!(json(&Envelope::<u8>::with_code(-304, Data::Omitted)), r#"{"code":-304,"message":"-304","ttl":1}"#);
    }

    #[test]
    fn timestamps_stay_integers() {
        let e = Envelope::ok_data(BTreeMap::from([("latest_timestamp", 1_700_000_000_000_000_001_i64)]));
        assert_eq!(json(&e), r#"{"code":0,"message":"0","ttl":1,"data":{"latest_timestamp":1700000000000000001}}"#);
    }

    #[test]
    fn polls_map_golden() {
        let data = BTreeMap::from([("demo.svc", BTreeMap::from([("latest_timestamp", 5)]))]);
        assert_eq!(
            map_json(&MapEnvelope::polls(data.clone(), vec![])),
            r#"{"code":0,"message":"0","data":{"demo.svc":{"latest_timestamp":5}},"error":{"-404":null}}"#
        );
        assert_eq!(
            map_json(&MapEnvelope::polls(data, vec!["nope".into(), "gone".into()])),
            r#"{"code":0,"message":"0","data":{"demo.svc":{"latest_timestamp":5}},"error":{"-404":["nope","gone"]}}"#
        );
        assert_eq!(map_json(&MapEnvelope::poll_not_found("a.b")), r#"{"code":-404,"message":"a.b not found"}"#);
    }

    #[tokio::test]
    async fn response_is_200_json_with_status_header() {
        let resp = Envelope::<u8>::with_code(-409, Data::Null).into_response();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[CONTENT_TYPE], JSON_CONTENT_TYPE);
        assert_eq!(resp.headers()[STATUS_CODE_HEADER], "-409");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], br#"{"code":-409,"message":"-409","ttl":1,"data":null}"#);
    }

    #[tokio::test]
    async fn unserializable_data_becomes_minus_500_not_a_panic() {
        // A map with non-string keys cannot be a JSON object.
        let bad = BTreeMap::from([((1, 2), 3)]);
        let resp = Envelope::ok_data(bad).into_response();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[STATUS_CODE_HEADER], "-500");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], SERIALIZE_FAILED);
    }
}
