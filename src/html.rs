//! The one HTML escaper: every text or attribute value the status page, the verify report
//! and the post-flip reports put into HTML goes through [`esc`]; a value put into a link's
//! path goes through [`path_segment`] first.

use std::fmt::Write as _;

/// `s` safe inside HTML text and inside a quoted attribute (either quote).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` percent-encoded as one URL path segment: every byte but `A-Z a-z 0-9 - . _ ~`, so
/// a hostile id cannot add a segment (`/`, `..` stays inside it), a query or a fragment.
pub fn path_segment(s: &str) -> String {
    // `.` and `..` alone would be resolved away by a browser.
    let dots = s == "." || s == "..";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') || (b == b'.' && !dots) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_path_segment_stays_one_segment() {
        assert_eq!(super::path_segment("ses_ab-1.x~"), "ses_ab-1.x~");
        assert_eq!(
            super::path_segment("../metrics?a#b"),
            "..%2Fmetrics%3Fa%23b"
        );
        assert_eq!(super::path_segment(".."), "%2E%2E");
        assert_eq!(super::path_segment("é "), "%C3%A9%20");
    }

    #[test]
    fn escapes_text_and_both_quotes() {
        assert_eq!(
            super::esc(r#"<a href="x" title='y'>&amp;</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;"
        );
        assert_eq!(super::esc("org_é 1"), "org_é 1");
    }
}
