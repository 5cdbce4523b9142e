//! Text put into XML or HTML markup: the SOAP answers of the ONVIF
//! services and the status page.

/// `text` escaped for XML and HTML text and attribute values; a character
/// XML 1.0 cannot carry at all (most control characters, which a client's
/// bad input may bring into an error message) becomes U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_what_xml_cannot_carry_are_escaped() {
        assert_eq!(
            escape("<a href=\"x\">Tom & Jerry's</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;"
        );
        assert_eq!(
            escape("a\u{0}b\u{1b}c\td\u{ffff}"),
            "a\u{fffd}b\u{fffd}c\td\u{fffd}"
        );
    }
}
