//! Parsing of human durations in the `90s` / `500ms` / `1m` / `2h` style used by every duration flag.
//!
//! The units and their combinations (`1h30m`, `1m 30s`) are `humantime`'s; on top of it, a bare number is
//! seconds (the original's config files write `readTimeout = 10` style numbers, and our flags always took
//! them). Errors name the text and say what is expected.

use std::time::Duration;

/// Parse a duration: `<number><unit>` terms (units `ms`, `s`, `m`, `h`, and humantime's longer names), or a
/// bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = text.parse().map_err(|_| format!("invalid duration {text:?}: number out of range"))?;
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("invalid duration {text:?}: {e} (write e.g. 500ms, 90s, 2m, 1h)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration(" 1m30s "), Ok(Duration::from_secs(90)));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("99999999999999999999").is_err());
        assert!(parse_duration("18446744073709551615h").is_err());
        let message = parse_duration("10x").expect_err("unknown unit");
        assert!(message.contains("10x") && message.contains("90s"), "{message}");
    }
}
