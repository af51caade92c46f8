//! Per-request templates: URLs and bodies that vary with the request number `n`.
//!
//! Placeholders (anything else, JSON braces included, is literal):
//! - `{n}`: the request number (`--start` plus a counter shared by all clients, so every request differs);
//! - `{n%K}`: `n` modulo `K` (e.g. renew the same 1,000 instances over and over);
//! - `{n/K}`: `n` divided by `K` (e.g. `K` instances per app);
//! - `{b64n}`: the base64 of `n` written with 12 zero-padded digits (16 characters). A key prefix whose
//!   length is a multiple of 3 bytes, base64-encoded by the caller, followed by `{b64n}` is the base64 of
//!   prefix + digits: distinct etcd keys through the JSON gateway;
//! - `{b64n%K}`: the same of `n` modulo `K` (a key space of `K` etcd keys, written over and over).

use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    N,
    Mod(u64),
    Div(u64),
    B64N,
    B64Mod(u64),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parse `text`; a `{n%0}` or `{n/0}` is an error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            literal.push_str(&rest[..open]);
            let candidate = &rest[open..];
            match placeholder(candidate)? {
                Some((part, len)) => {
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                    rest = &candidate[len..];
                }
                None => {
                    literal.push('{');
                    rest = &candidate[1..];
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// Whether the template has no placeholder.
    pub fn is_constant(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// Append the rendering for request number `n` to `out`.
    pub fn render_into(&self, n: u64, out: &mut String) {
        for part in &self.parts {
            // Writing into a String cannot fail.
            let _ = match part {
                Part::Literal(text) => {
                    out.push_str(text);
                    Ok(())
                }
                Part::N => write!(out, "{n}"),
                Part::Mod(k) => write!(out, "{}", n % k),
                Part::Div(k) => write!(out, "{}", n / k),
                Part::B64N => {
                    out.push_str(&base64(format!("{n:012}").as_bytes()));
                    Ok(())
                }
                Part::B64Mod(k) => {
                    out.push_str(&base64(format!("{:012}", n % k).as_bytes()));
                    Ok(())
                }
            };
        }
    }

    /// The rendering for request number `n`.
    pub fn render(&self, n: u64) -> String {
        let mut out = String::new();
        self.render_into(n, &mut out);
        out
    }
}

/// The placeholder at the start of `text` (which starts with `{`) and its length, if it is one.
fn placeholder(text: &str) -> Result<Option<(Part, usize)>, String> {
    let Some(close) = text.find('}') else { return Ok(None) };
    let inner = &text[1..close];
    let part = match inner {
        "n" => Part::N,
        "b64n" => Part::B64N,
        _ => {
            let (b64, op) = match inner.strip_prefix("b64n") {
                Some(op) => (true, op),
                None => match inner.strip_prefix('n') {
                    Some(op) => (false, op),
                    None => return Ok(None),
                },
            };
            let (kind, digits) = match op.chars().next() {
                Some(c @ ('%' | '/')) => (c, &op[1..]),
                _ => return Ok(None),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Ok(None);
            }
            let k: u64 = digits.parse().map_err(|e| format!("placeholder {{{inner}}}: {e}"))?;
            if k == 0 {
                return Err(format!("placeholder {{{inner}}}: division by zero"));
            }
            match (b64, kind) {
                (false, '%') => Part::Mod(k),
                (false, _) => Part::Div(k),
                (true, '%') => Part::B64Mod(k),
                (true, _) => return Ok(None),
            }
        }
    };
    Ok(Some((part, close + 1)))
}

/// Standard base64 with padding (the `base64` crate's standard engine).
pub fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_render_and_json_braces_stay_literal() {
        let t = Template::parse(r#"{"a":"{n}","b":"{n%10}","c":"{n/100}"}{n"#).expect("test");
        assert_eq!(t.render(1234), r#"{"a":"1234","b":"4","c":"12"}{n"#);
        assert!(!t.is_constant());
        assert!(Template::parse("{x}{n%}").expect("test").is_constant());
        assert!(Template::parse("{n%0}").is_err());
    }

    #[test]
    fn base64_matches_the_standard_and_concatenates_on_3_byte_prefixes() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        let t = Template::parse("{b64n}").expect("test");
        assert_eq!(format!("{}{}", base64(b"/k/"), t.render(42)), base64(b"/k/000000000042"));
        let t = Template::parse("{b64n%100}{b64n/2}").expect("test");
        assert_eq!(
            format!("{}{}", base64(b"/k/"), t.render(1042)),
            format!("{}{{b64n/2}}", base64(b"/k/000000000042"))
        );
        assert!(Template::parse("{b64n%0}").is_err());
    }
}
