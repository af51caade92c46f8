//! [`Params`]: the request's parameters as kratos binding sees them (Go's `req.Form`), and the typed
//! accessors the argument parsers use (spec §1.2).
//!
//! Invariants:
//! - A multimap in arrival order: body values first, then URL query values (Go's `req.Form`). Names are
//!   case-sensitive and exact.
//! - Scalars take the **first** value, even an empty one ([`Params::first`]); slices take **all non-empty**
//!   values ([`Params::values`]), as kratos' `filterEmpty`.
//! - Integers: absent or empty → 0; otherwise Go's `strconv.ParseInt`/`ParseUint` rules (base 10, sign only
//!   for signed types, no spaces, no wrapping); failure → -400 whose message names the parameter and carries
//!   the strconv text, e.g. `parameter "status": strconv.ParseUint: parsing "x": invalid syntax`.
//! - Booleans: Go's `strconv.ParseBool` set; anything else (including empty) is `false`, as kratos ignores
//!   the parse error.
//! - At most [`MAX_PARAMS`] pairs: the caller enforces it when building, see [`Params::check_len`].

use super::error::ApiError;
use super::urlencoded;

/// Most parameter pairs (query + body) a request may carry.
pub(crate) const MAX_PARAMS: usize = 32_768;

/// The request's parameters, in Go `req.Form` order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parameters from pairs, in the given order.
    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Params { pairs }
    }

    /// Parse a urlencoded text (a query string or a form body); a bad escape or bad UTF-8 is -400.
    pub(crate) fn parse_urlencoded(text: &[u8]) -> Result<Self, ApiError> {
        let pairs = urlencoded::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let params = Params { pairs };
        params.check_len()?;
        Ok(params)
    }

    /// -400 if there are more than [`MAX_PARAMS`] pairs.
    pub(crate) fn check_len(&self) -> Result<(), ApiError> {
        if self.pairs.len() > MAX_PARAMS {
            return Err(ApiError::bad_request(format!(
                "too many parameters: {} (at most {MAX_PARAMS})",
                self.pairs.len()
            )));
        }
        Ok(())
    }

    /// Append `other`'s pairs after this one's (body, then query).
    pub(crate) fn append(&mut self, other: Params) {
        self.pairs.extend(other.pairs);
    }

    /// Add one pair at the end.
    pub(crate) fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.pairs.push((name.into(), value.into()));
    }

    /// All pairs in order.
    #[cfg(test)]
    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The first value of `name`, possibly empty; `None` when absent.
    pub(crate) fn first(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, or `""` when absent (a Go string field).
    pub(crate) fn str(&self, name: &str) -> &str {
        self.first(name).unwrap_or("")
    }

    /// Every non-empty value of `name`, in order (a Go slice field).
    pub(crate) fn values(&self, name: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str()).collect()
    }

    /// The first value of `name` as a Go `int64` (absent or empty → 0).
    pub(crate) fn i64(&self, name: &str) -> Result<i64, ApiError> {
        parse_i64(self.str(name)).map_err(|e| param_err(name, e))
    }

    /// The first value of `name` as a Go `uint32` (absent or empty → 0; no sign accepted).
    pub(crate) fn u32(&self, name: &str) -> Result<u32, ApiError> {
        parse_u32(self.str(name)).map_err(|e| param_err(name, e))
    }

    /// Every non-empty value of `name` as a Go `[]int64`.
    pub(crate) fn i64s(&self, name: &str) -> Result<Vec<i64>, ApiError> {
        self.values(name).into_iter().map(|v| parse_i64(v).map_err(|e| param_err(name, e))).collect()
    }

    /// The first value of `name` as a Go `bool` (unparsable → false).
    pub(crate) fn bool(&self, name: &str) -> bool {
        matches!(self.str(name), "1" | "t" | "T" | "TRUE" | "true" | "True")
    }
}

fn param_err(name: &str, strconv: String) -> ApiError {
    ApiError::bad_request(format!("parameter {name:?}: {strconv}"))
}

/// Go `strconv.ParseInt(s, 10, 64)` with kratos' "empty is zero"; `Err` is Go's error text.
pub(crate) fn parse_i64(s: &str) -> Result<i64, String> {
    if s.is_empty() {
        return Ok(0);
    }
    // Rust's grammar for i64 is Go's base-10 grammar: optional sign, ASCII digits, nothing else.
    s.parse::<i64>().map_err(|e| strconv_err("ParseInt", s, e.kind()))
}

/// Go `strconv.ParseUint(s, 10, 32)` with kratos' "empty is zero"; `Err` is Go's error text.
pub(crate) fn parse_u32(s: &str) -> Result<u32, String> {
    if s.is_empty() {
        return Ok(0);
    }
    if s.starts_with('+') {
        // Rust accepts a leading '+' for unsigned types; Go does not.
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    s.parse::<u32>().map_err(|e| strconv_err("ParseUint", s, e.kind()))
}

fn strconv_err(func: &str, s: &str, kind: &std::num::IntErrorKind) -> String {
    use std::num::IntErrorKind::{NegOverflow, PosOverflow};
    let why = if matches!(kind, PosOverflow | NegOverflow) { "value out of range" } else { "invalid syntax" };
    format!("strconv.{func}: parsing {s:?}: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::parse_urlencoded(q.as_bytes()).expect("parses")
    }

    fn msg(e: ApiError) -> String {
        match e {
            ApiError::RequestErr(m) => m,
            other => panic!("expected -400, got {other:?}"),
        }
    }

    #[test]
    fn scalars_take_the_first_value_even_empty() {
        let p = params("appid=a&appid=b&zone=&zone=z");
        assert_eq!(p.first("appid"), Some("a"));
        assert_eq!(p.str("zone"), "");
        assert_eq!(p.first("nope"), None);
        assert_eq!(p.str("nope"), "");
    }

    #[test]
    fn slices_take_all_non_empty_values_in_order() {
        let p = params("addrs=x&addrs=&other=1&addrs=y");
        assert_eq!(p.values("addrs"), vec!["x", "y"]);
        assert!(p.values("nope").is_empty());
    }

    #[test]
    fn append_puts_body_before_query() {
        let mut p = params("appid=body&zone=b");
        p.append(params("appid=query&env=q"));
        assert_eq!(p.first("appid"), Some("body"));
        assert_eq!(p.values("appid"), vec!["body", "query"]);
        assert_eq!(p.str("env"), "q");
    }

    #[test]
    fn ints_follow_go_strconv() {
        let p = params("a=&b=-5&c=%2B7&d=x&e=99999999999999999999&f=1.5&g=+1&h=-1&i=4294967296&j=4294967295");
        assert_eq!(p.i64("a"), Ok(0));
        assert_eq!(p.i64("missing"), Ok(0));
        assert_eq!(p.i64("b"), Ok(-5));
        assert_eq!(p.i64("c"), Ok(7));
        assert_eq!(msg(p.i64("d").expect_err("d")), r#"parameter "d": strconv.ParseInt: parsing "x": invalid syntax"#);
        assert_eq!(
            msg(p.i64("e").expect_err("e")),
            r#"parameter "e": strconv.ParseInt: parsing "99999999999999999999": value out of range"#
        );
        assert!(msg(p.i64("f").expect_err("f")).ends_with("invalid syntax"));
        // "+1" in a query is " 1": a space is invalid.
        assert!(msg(p.i64("g").expect_err("g")).contains(r#"parsing " 1""#));
        assert_eq!(
            msg(p.u32("h").expect_err("h")),
            r#"parameter "h": strconv.ParseUint: parsing "-1": invalid syntax"#
        );
        assert!(msg(p.u32("c").expect_err("c")).contains(r#"ParseUint: parsing "+7": invalid syntax"#));
        assert!(msg(p.u32("i").expect_err("i")).ends_with("value out of range"));
        assert_eq!(p.u32("j"), Ok(u32::MAX));
    }

    #[test]
    fn int_slices_skip_empty_values_and_fail_on_any_bad_one() {
        assert_eq!(params("t=1&t=&t=3").i64s("t"), Ok(vec![1, 3]));
        assert!(msg(params("t=1&t=y").i64s("t").expect_err("bad")).starts_with(r#"parameter "t""#));
    }

    #[test]
    fn bools_follow_go_parse_bool_and_default_false() {
        let p = params("a=1&b=t&c=TRUE&d=True&e=true&f=yes&g=0&h=&i=T&j=tRUE");
        for name in ["a", "b", "c", "d", "e", "i"] {
            assert!(p.bool(name), "{name}");
        }
        for name in ["f", "g", "h", "j", "missing"] {
            assert!(!p.bool(name), "{name}");
        }
    }

    #[test]
    fn too_many_params_is_400() {
        let q = "a=1&".repeat(MAX_PARAMS + 1);
        assert!(msg(Params::parse_urlencoded(q.as_bytes()).expect_err("too many")).contains("too many parameters"));
        assert_eq!(
            Params::parse_urlencoded("a=1&".repeat(MAX_PARAMS).as_bytes()).map(|p| p.pairs().len()),
            Ok(MAX_PARAMS)
        );
    }

    #[test]
    fn malformed_escape_is_400() {
        let m = msg(Params::parse_urlencoded(b"zone=%zz").expect_err("bad"));
        assert_eq!(m, r#"invalid URL escape "%zz" in parameter "zone""#);
    }
}
