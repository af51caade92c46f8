//! Axum extractors for the kratos binding: [`BiliParams`] (the raw [`Params`]) and [`Bind<T>`] (parsed and
//! validated argument structs, kratos' `c.Bind(arg)`).
//!
//! Invariants:
//! - Rejection is always [`ApiError`], so a bad request is the JSON envelope -400, never axum's text/plain.
//! - Parameters = body values first, then URL query values (Go's `req.Form`).
//! - The body is read only for POST, PUT and PATCH (Go's `ParseForm`), and at most [`MAX_BODY_BYTES`] of it;
//!   more is -400. How it is read depends on `Content-Type`:
//!   - `application/x-www-form-urlencoded` (any parameters, e.g. charset): urlencoded.
//!   - **absent**: urlencoded too. Deliberately more lenient than Go (which ignores such a body): the brpc
//!     client sends cancel without a Content-Type (spec §5.6).
//!   - `application/json`: a JSON object; see [`json_params`]. Go matches its field names case-insensitively.
//!   - `multipart/form-data`, `application/xml`, `text/xml`: -400 "not supported" (no known client uses them).
//!   - anything else: the body is ignored, as Go does.

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, Method};
use serde_json::Value;

use super::args::FromParams;
use super::error::ApiError;
use super::params::Params;

/// Largest request body read, in bytes.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Parameter names JSON keys are mapped onto, case-insensitively and with or without underscores.
const KNOWN_PARAMS: &[&str] = &[
    "region",
    "zone",
    "env",
    "appid",
    "hostname",
    "status",
    "addrs",
    "version",
    "metadata",
    "replication",
    "latest_timestamp",
    "dirty_timestamp",
    "set_timestamp",
    "from_zone",
    "consistent",
];

/// Header that carries the query of a request whose target was too long for the HTTP parser (over 64 KiB;
/// the transport moves it there, see `node::long_uri`). Neither hyper nor the `http` crate can hold such a
/// URI, so the query is read from here when the URI has none.
pub(crate) use crate::service::headers::LONG_QUERY_HEADER;

/// The query string of a request: the URI's, or the one the transport moved into [`LONG_QUERY_HEADER`].
pub(crate) fn query_of<'a>(uri: &'a axum::http::Uri, headers: &'a axum::http::HeaderMap) -> &'a str {
    match uri.query() {
        Some(query) => query,
        None => headers.get(LONG_QUERY_HEADER).and_then(|v| v.to_str().ok()).unwrap_or(""),
    }
}

/// The request's parameters, unvalidated. Handler use: `BiliParams(params): BiliParams`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BiliParams(pub Params);

/// A parsed, validated argument struct. Handler use: `Bind(arg): Bind<ArgRegister>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bind<T>(pub T);

/// How the body is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Ignore,
    Form,
    Json,
}

impl<S: Send + Sync> FromRequest<S> for BiliParams {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let mut params = match body_kind(&parts.method, &parts.headers)? {
            BodyKind::Ignore => Params::default(),
            kind => {
                let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|e| {
                    ApiError::bad_request(format!("request body unreadable or over {MAX_BODY_BYTES} bytes: {e}"))
                })?;
                if kind == BodyKind::Json {
                    json_params(&bytes)?
                } else {
                    Params::parse_urlencoded(&bytes)?
                }
            }
        };
        params.append(Params::parse_urlencoded(query_of(&parts.uri, &parts.headers).as_bytes())?);
        params.check_len()?;
        Ok(BiliParams(params))
    }
}

impl<S: Send + Sync, T: FromParams> FromRequest<S> for Bind<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let BiliParams(params) = BiliParams::from_request(req, state).await?;
        T::from_params(&params).map(Bind)
    }
}

fn body_kind(method: &Method, headers: &HeaderMap) -> Result<BodyKind, ApiError> {
    if !matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        return Ok(BodyKind::Ignore);
    }
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyKind::Form);
    };
    let value = value.to_str().map_err(|_| ApiError::bad_request("invalid Content-Type header"))?;
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => Ok(BodyKind::Form),
        "application/json" => Ok(BodyKind::Json),
        "multipart/form-data" | "application/xml" | "text/xml" => Err(ApiError::bad_request(format!(
            "Content-Type {essence} is not supported: send application/x-www-form-urlencoded"
        ))),
        _ => Ok(BodyKind::Ignore),
    }
}

/// A JSON body as parameters. It must be an object. Keys match the known parameter names
/// case-insensitively and with or without `_` (Go matches `AppID`, `appid`, `LatestTimestamp`; we also take
/// `latest_timestamp`); other keys are kept as written (and ignored by the argument parsers). Values: a
/// string as is, a number or bool as its JSON text, an array as one value per element, `null` as absent, an
/// object as its JSON text (so `"metadata": {"k": "v"}` works).
pub(crate) fn json_params(body: &[u8]) -> Result<Params, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let Value::Object(object) = value else {
        return Err(ApiError::bad_request("JSON body must be an object of parameters"));
    };
    let mut params = Params::default();
    for (key, value) in object {
        let name = canonical_name(&key);
        match value {
            Value::Array(items) => items.into_iter().for_each(|item| push_json(&mut params, &name, item)),
            other => push_json(&mut params, &name, other),
        }
    }
    params.check_len()?;
    Ok(params)
}

fn canonical_name(key: &str) -> String {
    let lower = key.to_ascii_lowercase();
    KNOWN_PARAMS
        .iter()
        .find(|known| **known == lower || known.replace('_', "") == lower)
        .map_or_else(|| key.to_owned(), |known| (*known).to_owned())
}

fn push_json(params: &mut Params, name: &str, value: Value) {
    match value {
        Value::Null => {}
        Value::String(s) => params.push(name, s),
        other => params.push(name, other.to_string()),
    }
}

#[cfg(test)]
mod tests;
