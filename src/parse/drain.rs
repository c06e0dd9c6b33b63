//! A Vercel log-drain body split into entries: a JSON array of entries, NDJSON, or a single
//! object. Each entry stays raw JSON for `parse_line` (which reads its `message` and envelope
//! `timestamp`), borrowed from the body; only its `id` is read here, for deduplication of
//! retried deliveries. An array is parsed once, by the split that checks it; each entry's `id`
//! is then found by a scan of its top-level keys, not a second parse.

use serde::Deserialize;
use serde_json::value::RawValue;

/// One drain entry: its `id` (if it has one) and its raw JSON, a slice of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub id: Option<String>,
    pub json: &'a [u8],
}

#[derive(Deserialize)]
struct Id {
    id: Option<serde_json::Value>,
}

/// A body that is neither a JSON array, nor a JSON object, nor NDJSON with an object on
/// some line: `[`, `null`, `"text"`, 100k-deep nesting, binary noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the body is not a JSON array, object or NDJSON")]
pub struct NotJson;

/// The entry and whether it is a JSON object (its `id` read if so).
fn entry(raw: &[u8]) -> (Entry<'_>, bool) {
    // `Id` would also deserialize from a sequence: only an object counts.
    let parsed = if raw.starts_with(b"{") {
        serde_json::from_slice::<Id>(raw).ok()
    } else {
        None
    };
    let object = parsed.is_some();
    let id = parsed.and_then(|e| e.id).and_then(id_text);
    (Entry { id, json: raw }, object)
}

/// An `id` as the text it is deduplicated by: a string, or a number as serde_json writes it.
fn id_text(v: serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `id` of `raw`, one item of an array serde_json has checked (so it is valid JSON, its
/// strings valid UTF-8), exactly as [`entry`] reads it: the scan walks the top-level members
/// only, skipping each value by its brackets and quotes, and hands the rare entry it does not
/// read alike to serde_json (a key with an escape, which may spell `id`; `id` twice, which
/// serde_json refuses).
fn checked_entry(raw: &[u8]) -> Entry<'_> {
    match scan_id(raw) {
        Some(Scan::Absent) => Entry {
            id: None,
            json: raw,
        },
        Some(Scan::Plain(id)) => Entry {
            id: Some(id.to_owned()),
            json: raw,
        },
        Some(Scan::Value(v)) => Entry {
            id: serde_json::from_slice(v).ok().and_then(id_text),
            json: raw,
        },
        None => entry(raw).0,
    }
}

/// What the scan of an entry's top-level members found.
enum Scan<'a> {
    /// Not an object, or no `id` member.
    Absent,
    /// A string `id` without escapes: its text.
    Plain(&'a str),
    /// Another `id` value (escaped string, number, literal, array, object), for serde_json.
    Value(&'a [u8]),
}

/// `None`: not scanned alike; see [`checked_entry`].
fn scan_id(raw: &[u8]) -> Option<Scan<'_>> {
    if raw.first() != Some(&b'{') {
        return Some(Scan::Absent);
    }
    let mut at = 1;
    let mut found = None;
    loop {
        at = skip_ws(raw, at);
        match raw.get(at)? {
            b'}' => return Some(found.unwrap_or(Scan::Absent)),
            b',' => at = skip_ws(raw, at + 1),
            _ => {}
        }
        // A key: a string without escapes, or not scanned.
        let end = string_end(raw, at)?;
        let key = raw.get(at + 1..end - 1)?;
        if key.contains(&b'\\') {
            return None;
        }
        at = skip_ws(raw, end);
        if raw.get(at) != Some(&b':') {
            return None;
        }
        let start = skip_ws(raw, at + 1);
        at = value_end(raw, start)?;
        if key == b"id" {
            if found.is_some() {
                return None;
            }
            let value = raw.get(start..at)?;
            found = Some(
                match value
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                {
                    Some(text) if !text.contains(&b'\\') => {
                        Scan::Plain(std::str::from_utf8(text).ok()?)
                    }
                    _ => Scan::Value(value),
                },
            );
        }
    }
}

fn skip_ws(raw: &[u8], mut at: usize) -> usize {
    while raw
        .get(at)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        at += 1;
    }
    at
}

/// Where the string starting at `at` (its opening quote) ends, past its closing quote.
fn string_end(raw: &[u8], at: usize) -> Option<usize> {
    if raw.get(at) != Some(&b'"') {
        return None;
    }
    let mut i = at + 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', raw.get(i..)?)?;
        if raw.get(i)? == &b'\\' {
            i += 2;
        } else {
            return Some(i + 1);
        }
    }
}

/// Where the (valid) value starting at `at` ends.
fn value_end(raw: &[u8], at: usize) -> Option<usize> {
    match raw.get(at)? {
        b'"' => string_end(raw, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match raw.get(i)? {
                    b'"' => {
                        i = string_end(raw, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let mut i = at;
            while raw
                .get(i)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                i += 1;
            }
            (i > at).then_some(i)
        }
    }
}

/// One line of a body that is no whole array: an object on its own line, or one line of an
/// array written an entry per line (`[{…},`, `{…},`, `{…}]`), its punctuation taken off when
/// what remains is an object.
fn line_entry(line: &[u8]) -> (Entry<'_>, bool) {
    let mut inner = line.strip_prefix(b"[").unwrap_or(line).trim_ascii();
    inner = inner.strip_suffix(b"]").unwrap_or(inner).trim_ascii_end();
    inner = inner.strip_suffix(b",").unwrap_or(inner).trim_ascii_end();
    if inner.len() != line.len() {
        let (e, object) = entry(inner);
        if object {
            return (e, true);
        }
    }
    entry(line)
}

/// Splits a body. A malformed array falls back to NDJSON, so one bad entry costs one line,
/// not the batch; malformed lines are kept and rejected (or ignored) by `parse_line`. A body
/// with entries none of which is a JSON object (and that is no JSON array) is `NotJson`; an
/// empty body has no entries.
pub fn entries(body: &[u8]) -> Result<Vec<Entry<'_>>, NotJson> {
    let trimmed = body.trim_ascii();
    if trimmed.starts_with(b"[")
        && let Ok(items) = serde_json::from_slice::<Vec<&RawValue>>(trimmed)
    {
        return Ok(items
            .iter()
            .map(|r| checked_entry(r.get().as_bytes()))
            .collect());
    }
    let mut any_object = false;
    let entries: Vec<Entry<'_>> = trimmed
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (e, object) = line_entry(l);
            any_object |= object;
            e
        })
        .collect();
    if entries.is_empty() || any_object {
        Ok(entries)
    } else {
        Err(NotJson)
    }
}

/// Whether [`entries`] splits `body` (rather than refusing it as `NotJson`), without splitting
/// all of it: a JSON array, a body with no line, or one with a line that is an object — the
/// search ends at the first such line. For a caller that splits the body its own way
/// (`/ingest/ndjson`) and only needs to know it is JSON at all.
pub fn is_entries(body: &[u8]) -> bool {
    let trimmed = body.trim_ascii();
    if trimmed.starts_with(b"[") && serde_json::from_slice::<Vec<&RawValue>>(trimmed).is_ok() {
        return true;
    }
    let mut lines = trimmed
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|l| !l.is_empty())
        .peekable();
    lines.peek().is_none() || lines.any(|l| line_entry(l).1)
}

/// The body of Vercel's unsigned endpoint check: an empty array or object.
pub fn is_verification_probe(body: &[u8]) -> bool {
    let t: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    t.is_empty() || t == b"[]" || t == b"{}"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_ndjson_and_single_object() {
        let a = entries(br#"[{"id":"1","message":"x"},{"id":2,"message":"y"},{"message":"z"}]"#)
            .unwrap();
        assert_eq!(
            a.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
            vec![Some("1".into()), Some("2".into()), None]
        );
        assert_eq!(a[0].json, br#"{"id":"1","message":"x"}"#);
        let n = entries(b"{\"id\":\"1\"}\n\n{\"id\":\"2\"}\r\n{broken\n").unwrap();
        assert_eq!(n.len(), 3);
        assert_eq!((n[1].id.as_deref(), n[2].id.as_deref()), (Some("2"), None));
        assert_eq!(
            entries(br#" {"id":"9"} "#).unwrap()[0].id.as_deref(),
            Some("9")
        );
        // a broken array degrades to lines instead of losing the batch
        assert_eq!(entries(b"[{\"id\":\"1\"},\n{oops").unwrap().len(), 2);
        let pretty =
            entries(b"[\n{\"id\":\"1\"},\n{\"id\":\"2\", oops},\n{\"id\":\"3\"}\n]").unwrap();
        assert_eq!(
            pretty.iter().map(|e| e.id.as_deref()).collect::<Vec<_>>(),
            [None, Some("1"), None, Some("3"), None]
        );
        assert_eq!(pretty[1].json, br#"{"id":"1"}"#);
        // an array of anything is a batch; its odd entries are counted downstream
        assert_eq!(entries(b"[1, \"x\", null]").unwrap().len(), 3);
        assert_eq!(entries(b"  \n ").unwrap().len(), 0);
    }

    #[test]
    fn bodies_that_are_not_json() {
        let deep = "[".repeat(100_000);
        let deep_object = "{\"a\":".repeat(100_000);
        for body in [
            &b"["[..],
            b"null",
            b"\"text\"",
            b"42",
            b"[1,\n",
            b"not json at all\nnor this",
            b"\xff\xfe\x00",
            deep.as_bytes(),
            deep_object.as_bytes(),
        ] {
            assert_eq!(
                entries(body),
                Err(NotJson),
                "{:?}",
                String::from_utf8_lossy(&body[..body.len().min(20)])
            );
            assert!(!is_entries(body));
        }
    }

    /// JSON objects whose keys are often `id` (top level and nested) and whose values are
    /// any JSON: strings with quotes, backslashes and brackets, numbers, nesting.
    fn json_object() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            "[a-z\"\\\\{}\\[\\],: é\n]{0,8}".prop_map(serde_json::Value::from),
        ];
        let key = prop_oneof!["id", "message", "[a-z\"\\\\{}:, ]{0,4}"];
        let value = leaf.prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::vec((prop_oneof!["id", "[a-z]{1,3}"], inner), 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        });
        proptest::collection::vec((key, value), 0..5)
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
    }

    proptest::proptest! {
        /// Any bytes: an answer, never a panic; every non-blank line of a non-array body
        /// becomes one entry.
        #[test]
        fn any_bytes_split_or_refused(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            proptest::prop_assert_eq!(is_entries(&body), entries(&body).is_ok());
            if let Ok(entries) = entries(&body) {
                for e in &entries {
                    proptest::prop_assert!(!e.json.is_empty());
                }
            }
        }

        /// Any JSON object in an array: the scan reads its `id` as serde_json does.
        #[test]
        fn scanned_ids_match_serde_json(v in json_object(), pretty in proptest::bool::ANY) {
            let item = if pretty {
                serde_json::to_string_pretty(&v)
            } else {
                serde_json::to_string(&v)
            }
            .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let body = format!("[{item}, {item}]");
            let got = entries(body.as_bytes())
                .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let want = entry(item.as_bytes()).0;
            proptest::prop_assert_eq!(got, vec![want.clone(), want]);
        }

        /// NDJSON of objects, with noise lines between: every object kept, in order, ids read.
        #[test]
        fn objects_survive_noise(ids in proptest::collection::vec(0u32..1000, 1..20), noise in proptest::collection::vec("[^\n{\\[]{1,12}", 0..20)) {
            let mut body = String::new();
            for (i, id) in ids.iter().enumerate() {
                body.push_str(&format!("{{\"id\":\"{id}\",\"message\":\"m\"}}\n"));
                if let Some(n) = noise.get(i) {
                    body.push_str(n);
                    body.push('\n');
                }
            }
            let got = entries(body.as_bytes()).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let kept: Vec<String> = got.iter().filter_map(|e| e.id.clone()).collect();
            proptest::prop_assert_eq!(kept, ids.iter().map(u32::to_string).collect::<Vec<_>>());
            // Noise first: the object is found after it.
            let noise_first = format!("{}\n{body}", noise.join("\n"));
            proptest::prop_assert!(is_entries(noise_first.as_bytes()));
        }
    }

    /// An array item's `id`, read by the scan, is what serde_json reads: escaped keys and
    /// values, `id` twice, nested `id`s, numbers, other values.
    #[test]
    fn scanned_ids_are_read_as_serde_json_reads_them() {
        for item in [
            r#"{"id":"a1","message":"m"}"#,
            r#"{ "message" : "x\"}{[" , "id" : "b\"2" }"#,
            r#"{"i\u0064":"escaped key"}"#,
            r#"{"id":"one","id":"two"}"#,
            r#"{"nested":{"id":"no"},"list":[{"id":"no"},"]}"],"id":7}"#,
            r#"{"id":-1.5e3}"#,
            r#"{"id":null}"#,
            r#"{"id":true}"#,
            r#"{"id":{"a":1}}"#,
            r#"{"id":"é\u00e9"}"#,
            r#"{}"#,
            r#"[1,{"id":"x"}]"#,
            r#""id""#,
            r#"12"#,
        ] {
            let body = format!("[{item}]");
            let got = entries(body.as_bytes()).unwrap();
            assert_eq!(got, vec![entry(item.as_bytes()).0], "{item}");
        }
    }

    #[test]
    fn verification_probes() {
        assert!(
            is_verification_probe(b"[]")
                && is_verification_probe(b" { } ")
                && is_verification_probe(b"")
        );
        assert!(!is_verification_probe(br#"[{"id":"1"}]"#));
    }
}
