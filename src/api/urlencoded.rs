//! Decoding of `application/x-www-form-urlencoded` text (URL query strings and form bodies), the way Go's
//! `url.ParseQuery` reads it, so that what bilibili/discovery clients send means the same thing here.
//!
//! Invariants:
//! - Total: every input yields pairs or a [`DecodeError`]; no input panics.
//! - Pairs come out in input order. Empty segments (`a=1&&b=2`) are skipped; a segment without `=` is a key
//!   with an empty value (`flag` → `("flag", "")`), as in Go.
//! - `+` decodes to a space and `%XY` (hex digits, either case) to the byte `XY`, in keys and values. Any
//!   other `%` (not followed by two hex digits) is a [`DecodeError::BadEscape`]; Go reports the same error
//!   (`invalid URL escape "%zz"`) and kratos answers it with -400.
//! - Decoded bytes must be UTF-8 ([`DecodeError::BadUtf8`]). Go would accept any bytes; we cannot keep
//!   them in a `String`, and no known client sends non-UTF-8, so we refuse with -400.
//! - Deliberately lenient where Go ≥ 1.17 is strict: `;` is an ordinary character, not an error. The brpc
//!   client writes register bodies by hand without escaping (`metadata={"a":"b"}` goes raw), which decodes
//!   fine as long as the raw text holds no `&`, `%` or `+`.
//!
//! Why not `serde_urlencoded` / `form_urlencoded`: they decode a bad escape (`%zz`) leniently as the literal
//! text, where Go, and so every bilibili client's expectations, answer -400 naming the parameter; and they give
//! no error we could word like Go's. This file is small and its fuzz and unit tests pin Go's behaviour.

use std::fmt;

/// Why a urlencoded text could not be decoded. The `Display` text names the parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// A `%` not followed by two hex digits; `escape` is the offending text (at most 3 bytes, lossy).
    BadEscape {
        /// The parameter (raw key text, lossily decoded) whose key or value held the escape.
        param: String,
        /// The bad escape as written, e.g. `%zz` or `%4`.
        escape: String,
    },
    /// The decoded key or value is not UTF-8.
    BadUtf8 {
        /// The parameter (lossily decoded key).
        param: String,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadEscape { param, escape } => {
                write!(f, "invalid URL escape {escape:?} in parameter {param:?}")
            }
            DecodeError::BadUtf8 { param } => write!(f, "parameter {param:?} is not valid UTF-8"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decode a whole urlencoded text into `(key, value)` pairs, in order.
pub(crate) fn parse(input: &[u8]) -> Result<Vec<(String, String)>, DecodeError> {
    let mut pairs = Vec::new();
    for segment in input.split(|b| *b == b'&') {
        if segment.is_empty() {
            continue;
        }
        let (raw_key, raw_value) = match segment.iter().position(|b| *b == b'=') {
            Some(eq) => (segment.get(..eq).unwrap_or_default(), segment.get(eq + 1..).unwrap_or_default()),
            None => (segment, &[][..]),
        };
        let param = || String::from_utf8_lossy(raw_key).into_owned();
        let key = unescape(raw_key).map_err(|escape| DecodeError::BadEscape { param: param(), escape })?;
        let key = String::from_utf8(key).map_err(|_| DecodeError::BadUtf8 { param: param() })?;
        let value = unescape(raw_value).map_err(|escape| DecodeError::BadEscape { param: key.clone(), escape })?;
        let value = String::from_utf8(value).map_err(|_| DecodeError::BadUtf8 { param: key.clone() })?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// Percent-decode one key or value; `Err` carries the bad escape as written.
fn unescape(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&byte) = raw.get(i) {
        match byte {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = raw.get(i + 1).and_then(|c| hex(*c));
                let lo = raw.get(i + 2).and_then(|c| hex(*c));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    let end = raw.len().min(i + 3);
                    return Err(String::from_utf8_lossy(raw.get(i..end).unwrap_or_default()).into_owned());
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> Vec<(String, String)> {
        parse(input.as_bytes()).expect("decodes")
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn keeps_order_and_repeats() {
        assert_eq!(ok("b=2&a=1&b=3"), vec![pair("b", "2"), pair("a", "1"), pair("b", "3")]);
    }

    #[test]
    fn skips_empty_segments_and_keeps_bare_keys() {
        assert_eq!(ok("&a=1&&flag&c="), vec![pair("a", "1"), pair("flag", ""), pair("c", "")]);
        assert_eq!(ok(""), vec![]);
    }

    #[test]
    fn only_the_first_equals_splits() {
        assert_eq!(ok("m=a=b"), vec![pair("m", "a=b")]);
    }

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(
            ok("addrs=grpc%3A%2F%2F10.0.0.5%3A9000&v=a+b%2Bc&%6bey=%e4%b8%ad"),
            vec![pair("addrs", "grpc://10.0.0.5:9000"), pair("v", "a b+c"), pair("key", "中")]
        );
    }

    #[test]
    fn raw_json_like_brpc_sends_survives() {
        assert_eq!(ok(r#"metadata={"weight":"10"};x"#), vec![pair("metadata", r#"{"weight":"10"};x"#)]);
    }

    #[test]
    fn malformed_escapes_are_errors_naming_the_param() {
        for (input, escape) in [("a=%zz", "%zz"), ("a=1%4", "%4"), ("a=%", "%"), ("a=%g1", "%g1"), ("a=%4x", "%4x")] {
            let err = parse(input.as_bytes()).expect_err(input);
            assert_eq!(err, DecodeError::BadEscape { param: "a".into(), escape: escape.into() }, "{input}");
            assert_eq!(err.to_string(), format!("invalid URL escape {escape:?} in parameter \"a\""));
        }
        let err = parse(b"k%zz=1").expect_err("bad key");
        assert_eq!(err, DecodeError::BadEscape { param: "k%zz".into(), escape: "%zz".into() });
    }

    #[test]
    fn invalid_utf8_is_an_error_naming_the_param() {
        assert_eq!(parse(b"zone=%ff%fe").expect_err("utf8"), DecodeError::BadUtf8 { param: "zone".into() });
        assert_eq!(parse(b"zone=\xff").expect_err("utf8"), DecodeError::BadUtf8 { param: "zone".into() });
        assert_eq!(parse(b"%ff=1").expect_err("utf8"), DecodeError::BadUtf8 { param: "%ff".into() });
        assert!(parse(b"zone=%ff").expect_err("utf8").to_string().contains("\"zone\""));
    }
}
