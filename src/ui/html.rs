//! HTML helpers of the status page: escaping and the page frame.

use std::borrow::Cow;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What a query value keeps unencoded: RFC 3986's unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Escape text for HTML element content and quoted attribute values (`& < > " '`).
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    html_escape::encode_quoted_attribute(text)
}

/// Percent-encode a query value.
pub(crate) fn url_encode(text: &str) -> String {
    utf8_percent_encode(text, QUERY_VALUE).to_string()
}

/// A whole page, refreshed by the browser every 5 seconds.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">\
         <title>{}</title><style>{STYLE}</style></head><body><h1>discovery</h1>{body}</body></html>",
        escape(title)
    )
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:1em}\
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f3f3f3}.ok{color:#176a2b}.bad{color:#b00020}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;&lt;/a&gt;");
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(url_encode("main.arch/a b&c"), "main.arch%2Fa%20b%26c");
        assert_eq!(url_encode("zone-1_x~é"), "zone-1_x~%C3%A9", "unreserved kept, UTF-8 bytes encoded");
    }
}
