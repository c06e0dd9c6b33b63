//! Time values as logs write them: RFC 3339 strings with any offset, or epoch numbers.

use crate::event::Timestamp;

/// Epoch numbers below this are seconds, above it milliseconds. 1e11 s is the year 5138 and
/// 1e11 ms is March 1973, so no real log time falls on the wrong side.
const SECONDS_LIMIT: f64 = 1e11;

/// An RFC 3339 timestamp (`2026-11-23T10:00:00.123Z`, `…+01:00`; a space for `T` and a lowercase
/// `t`/`z` are accepted too, as RFC 3339 allows).
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    // chrono is strict about the separator; RFC 3339 §5.6 allows a space by agreement, and
    // loggers (Python, some Go configs) use it.
    let parsed = if s.as_bytes().get(10) == Some(&b' ') {
        let mut fixed = String::with_capacity(s.len());
        fixed.push_str(s.get(..10)?);
        fixed.push('T');
        fixed.push_str(s.get(11..)?);
        chrono::DateTime::parse_from_rfc3339(&fixed).ok()?
    } else {
        chrono::DateTime::parse_from_rfc3339(s).ok()?
    };
    Some(Timestamp(parsed.timestamp_millis()))
}

/// Epoch seconds (fractions allowed) or milliseconds, told apart by magnitude.
pub fn from_epoch_number(n: f64) -> Option<Timestamp> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let ms = if n < SECONDS_LIMIT { n * 1000.0 } else { n };
    // Beyond ~year 292 million chrono cannot print it; treat as garbage.
    if ms > 1e16 {
        return None;
    }
    Some(Timestamp(ms.round() as i64))
}

/// The RFC 3339 timestamp a text line starts with, if any: the first whitespace-delimited token.
pub fn leading_rfc3339(prefix: &[u8]) -> Option<Timestamp> {
    let start = prefix.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = &prefix[start..];
    let end = rest
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let token = std::str::from_utf8(&rest[..end]).ok()?;
    // Cheap shape check before handing it to chrono: `dddd-dd-dd`.
    let b = token.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !b[0].is_ascii_digit() {
        return None;
    }
    parse_rfc3339(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_offsets_and_fractions() {
        let z = parse_rfc3339("2026-11-23T10:00:00.123Z").unwrap();
        assert_eq!(z.0, 1_795_428_000_123);
        assert_eq!(parse_rfc3339("2026-11-23T11:00:00.123+01:00"), Some(z));
        assert_eq!(parse_rfc3339("2026-11-23T10:00:00.123456789Z"), Some(z));
        assert_eq!(parse_rfc3339("2026-11-23 10:00:00.123Z"), Some(z));
        assert_eq!(parse_rfc3339("2026-11-23"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn epoch_seconds_and_millis() {
        assert_eq!(
            from_epoch_number(1_795_428_000.5),
            Some(Timestamp(1_795_428_000_500))
        );
        assert_eq!(
            from_epoch_number(1_795_428_000_500.0),
            Some(Timestamp(1_795_428_000_500))
        );
        assert_eq!(from_epoch_number(-1.0), None);
        assert_eq!(from_epoch_number(f64::NAN), None);
        assert_eq!(from_epoch_number(1e300), None);
    }

    #[test]
    fn leading_time_of_a_text_line() {
        let t = leading_rfc3339(b"2026-11-23T10:00:00.123Z\treq_1\tINFO\t").unwrap();
        assert_eq!(t.0, 1_795_428_000_123);
        assert_eq!(leading_rfc3339(b"[work-queue] Work queued "), None);
        assert_eq!(leading_rfc3339(b"\xff\xfe "), None);
    }
}
