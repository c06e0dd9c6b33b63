//! Time values as logs write them: RFC 3339 strings with any offset, or epoch numbers.

use crate::event::Timestamp;

/// Epoch numbers below this are seconds, above it milliseconds. 1e11 s is the year 5138 and
/// 1e11 ms is March 1973, so no real log time falls on the wrong side.
const SECONDS_LIMIT: f64 = 1e11;

/// An RFC 3339 timestamp (`2026-11-23T10:00:00.123Z`, `…+01:00`; a space for `T` and a lowercase
/// `t`/`z` are accepted too, as RFC 3339 allows).
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    if let Some(t) = fast_rfc3339(s.as_bytes()) {
        return Some(t);
    }
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

/// The common shapes (`2026-11-23T10:00:00.123Z`, `…+01:00`), without chrono.
///
/// Why by hand: every event carries a time, and chrono's general parser was a fifth of the
/// per-line cost in the parse bench. Anything this does not recognise (leap seconds, odd
/// widths) returns `None` and goes to chrono; a property test holds the two equal.
fn fast_rfc3339(b: &[u8]) -> Option<Timestamp> {
    fn num(b: &[u8]) -> Option<i64> {
        b.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    }
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (h, mi, sec) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[(mo - 1) as usize] {
        return None;
    }
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = &b[start..i.min(start + 3)];
        ms = num(frac)? * [100, 10, 1][frac.len() - 1];
    }
    let offset_min = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), oh @ .., b':', om1, om2] if oh.len() == 2 => {
            let (oh, om) = (num(oh)?, num(&[*om1, *om2])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if *sign == b'-' { -m } else { m }
        }
        _ => return None,
    };
    // Days since 1970-01-01 (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
    let (yy, mm) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(Timestamp(secs * 1000 + ms))
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

    proptest::proptest! {
        /// The fast path agrees with chrono on every timestamp it accepts, and accepts the
        /// shapes loggers write.
        #[test]
        fn fast_path_agrees_with_chrono(
            y in 1970i64..2200, mo in 1i64..=12, d in 1i64..=31, h in 0i64..24, mi in 0i64..60,
            s in 0i64..60, frac in proptest::option::of("[0-9]{1,9}"),
            off in proptest::option::of((any::<bool>(), 0i64..24, 0i64..60)),
        ) {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            let off = match off {
                None => "Z".to_string(),
                Some((neg, oh, om)) => format!("{}{oh:02}:{om:02}", if neg { '-' } else { '+' }),
            };
            let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{off}");
            let chrono = chrono::DateTime::parse_from_rfc3339(&text).ok().map(|t| t.timestamp_millis());
            proptest::prop_assert_eq!(fast_rfc3339(text.as_bytes()).map(|t| t.0), chrono, "{}", text);
        }
    }

    use proptest::prelude::any;

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
