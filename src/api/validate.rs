//! Field-level validation shared by the argument parsers, and the documented request limits.
//!
//! Invariants:
//! - Every failure is -400 and its message names the parameter: either the validator text of the original
//!   (`Key: 'ArgRenew.Zone' Error:Field validation for 'Zone' failed on the 'required' tag`, for a missing or
//!   zero required field) or `invalid parameter "<name>": <why>`.
//! - Limits are enforced, never truncated; integers out of range are refused, never wrapped.
//! - Identifiers (appid, env, zone, hostname, region) are 1..=[`MAX_IDENT_LEN`] bytes of ASCII letters,
//!   digits and [`IDENT_PUNCTUATION`]. That admits every appid, zone, env and `os.Hostname()` value seen in
//!   goim/kratos deployments (`main.arch.account-service`, `sh001`, `host-1.example.com`, `user@host`) and
//!   refuses spaces, control characters, quotes and non-ASCII.

use std::collections::BTreeMap;
use std::fmt::Display;

use serde_json::Value;

use super::error::ApiError;
use super::params::Params;

/// Longest identifier (appid, env, zone, hostname, region), in bytes.
pub(crate) const MAX_IDENT_LEN: usize = 128;
/// Punctuation allowed in identifiers besides ASCII letters and digits.
pub(crate) const IDENT_PUNCTUATION: &str = "._-:@/";
/// Most addresses per instance (after splitting comma-joined values).
pub(crate) const MAX_ADDRS: usize = 16;
/// Longest address, in bytes.
pub(crate) const MAX_ADDR_LEN: usize = 256;
/// Longest `metadata` JSON text, in bytes.
pub(crate) const MAX_METADATA_BYTES: usize = 4096;
/// Most keys in one `metadata` object.
pub(crate) const MAX_METADATA_KEYS: usize = 64;
/// Longest `version`, in bytes.
pub(crate) const MAX_VERSION_LEN: usize = 128;
/// Most appids in one fetchs/poll/polls request: a job watching a few thousand apps sends them in one `polls`
/// (the original has no limit; 10,000 appids with their cursors fit the 1 MiB request head).
pub(crate) const MAX_APPIDS: usize = 10_000;
/// Most hostnames in one set request.
pub(crate) const MAX_SET_HOSTNAMES: usize = 128;

/// One field of one argument struct: Go names for validator-style messages, and the form name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    /// Go struct name, e.g. `ArgRegister`.
    pub arg: &'static str,
    /// Go field name, e.g. `AppID`.
    pub go: &'static str,
    /// Form parameter name, e.g. `appid`.
    pub param: &'static str,
}

impl Field {
    /// The field `go` (form name `param`) of the Go struct `arg`.
    pub(crate) const fn new(arg: &'static str, go: &'static str, param: &'static str) -> Self {
        Field { arg, go, param }
    }

    /// -400 in the validator's words: the field is missing, empty or zero.
    pub(crate) fn required(&self) -> ApiError {
        let (arg, go) = (self.arg, self.go);
        ApiError::bad_request(format!(
            "Key: '{arg}.{go}' Error:Field validation for '{go}' failed on the 'required' tag"
        ))
    }

    /// -400 `invalid parameter "<param>": <why>`.
    pub(crate) fn invalid(&self, why: impl Display) -> ApiError {
        ApiError::bad_request(format!("invalid parameter {:?}: {why}", self.param))
    }
}

/// Check an identifier's length and characters (it must not be empty).
pub(crate) fn check_identifier(f: Field, value: &str) -> Result<(), ApiError> {
    if value.len() > MAX_IDENT_LEN {
        return Err(f.invalid(format_args!("length {} exceeds {MAX_IDENT_LEN} bytes", value.len())));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || IDENT_PUNCTUATION.contains(c);
    match value.char_indices().find(|(_, c)| !allowed(*c)) {
        None if value.is_empty() => Err(f.required()),
        None => Ok(()),
        Some((at, c)) => Err(f.invalid(format_args!(
            "character {c:?} at byte {at} is not allowed (use ASCII letters, digits and {IDENT_PUNCTUATION})"
        ))),
    }
}

/// A required identifier: its first value, non-empty and valid.
pub(crate) fn required_identifier(p: &Params, f: Field) -> Result<String, ApiError> {
    let value = p.str(f.param);
    check_identifier(f, value)?;
    Ok(value.to_owned())
}

/// An optional identifier: `""` when absent or empty, else valid.
pub(crate) fn optional_identifier(p: &Params, f: Field) -> Result<String, ApiError> {
    let value = p.str(f.param);
    if !value.is_empty() {
        check_identifier(f, value)?;
    }
    Ok(value.to_owned())
}

/// A repeated identifier: at least one non-empty value, at most `max`, each valid.
pub(crate) fn identifiers(p: &Params, f: Field, max: usize) -> Result<Vec<String>, ApiError> {
    let values = p.values(f.param);
    if values.is_empty() {
        return Err(f.required());
    }
    if values.len() > max {
        return Err(f.invalid(format_args!("{} values exceed the limit of {max}", values.len())));
    }
    values.into_iter().map(|v| check_identifier(f, v).map(|()| v.to_owned())).collect()
}

/// Addresses: every non-empty value, each also split on `,` (v1.0.x clients and HEAD's replication send
/// one comma-joined value, spec §5.2), pieces trimmed, empty pieces dropped; 1..=[`MAX_ADDRS`] of them,
/// each at most [`MAX_ADDR_LEN`] bytes with no whitespace or control character.
pub(crate) fn addrs(p: &Params, f: Field) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for piece in p.values(f.param).into_iter().flat_map(|v| v.split(',')).map(str::trim) {
        if piece.is_empty() {
            continue;
        }
        if out.len() == MAX_ADDRS {
            return Err(f.invalid(format_args!("more than {MAX_ADDRS} addresses")));
        }
        if piece.len() > MAX_ADDR_LEN {
            return Err(f.invalid(format_args!("an address of {} bytes exceeds {MAX_ADDR_LEN}", piece.len())));
        }
        if piece.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(f.invalid(format_args!("address {piece:?} contains whitespace or a control character")));
        }
        out.push(piece.to_owned());
    }
    if out.is_empty() {
        return Err(f.required());
    }
    Ok(out)
}

/// Free text such as `version`: at most `max` bytes, no control character.
pub(crate) fn text(p: &Params, f: Field, max: usize) -> Result<String, ApiError> {
    let value = p.str(f.param);
    if value.len() > max {
        return Err(f.invalid(format_args!("length {} exceeds {max} bytes", value.len())));
    }
    if value.chars().any(char::is_control) {
        return Err(f.invalid("contains a control character"));
    }
    Ok(value.to_owned())
}

/// A `metadata` text: `""` or `null` → `None`; else a JSON object of at most [`MAX_METADATA_KEYS`] string
/// values, at most [`MAX_METADATA_BYTES`] long. (The original stored `""` for a non-string value, silently
/// losing it; we refuse with a message naming the key.)
pub(crate) fn metadata(f: Field, raw: &str) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.len() > MAX_METADATA_BYTES {
        return Err(f.invalid(format_args!("length {} exceeds {MAX_METADATA_BYTES} bytes", raw.len())));
    }
    let value: Value = serde_json::from_str(raw).map_err(|e| f.invalid(format_args!("not valid JSON: {e}")))?;
    let object = match value {
        Value::Null => return Ok(None),
        Value::Object(object) => object,
        other => return Err(f.invalid(format_args!("must be a JSON object of strings, got {}", kind(&other)))),
    };
    if object.len() > MAX_METADATA_KEYS {
        return Err(f.invalid(format_args!("{} keys exceed the limit of {MAX_METADATA_KEYS}", object.len())));
    }
    let mut map = BTreeMap::new();
    for (key, value) in object {
        let Value::String(s) = value else {
            let why = format!("must be a JSON object of strings, but the value of {key:?} is {}", kind(&value));
            return Err(f.invalid(why));
        };
        map.insert(key, s);
    }
    Ok(Some(map))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An optional nanosecond timestamp: absent or empty → 0; negative → -400.
pub(crate) fn timestamp(p: &Params, f: Field) -> Result<i64, ApiError> {
    non_negative(f, p.i64(f.param)?)
}

/// -400 unless `value >= 0`.
pub(crate) fn non_negative(f: Field, value: i64) -> Result<i64, ApiError> {
    if value < 0 {
        return Err(f.invalid(format_args!("must be >= 0, got {value}")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests;
