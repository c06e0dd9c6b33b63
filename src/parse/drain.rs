//! A Vercel log-drain body split into entries: a JSON array of entries, NDJSON, or a single
//! object. Each entry stays raw JSON for `parse_line` (which reads its `message` and envelope
//! `timestamp`); only its `id` is read here, for deduplication of retried deliveries.

use serde::Deserialize;
use serde_json::value::RawValue;

/// One drain entry: its `id` (if it has one) and its raw JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: Option<String>,
    pub json: Vec<u8>,
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
fn entry(raw: &[u8]) -> (Entry, bool) {
    // `Id` would also deserialize from a sequence: only an object counts.
    let parsed = if raw.starts_with(b"{") {
        serde_json::from_slice::<Id>(raw).ok()
    } else {
        None
    };
    let object = parsed.is_some();
    let id = parsed.and_then(|e| e.id).and_then(|v| match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    (
        Entry {
            id,
            json: raw.to_vec(),
        },
        object,
    )
}

/// One line of a body that is no whole array: an object on its own line, or one line of an
/// array written an entry per line (`[{…},`, `{…},`, `{…}]`), its punctuation taken off when
/// what remains is an object.
fn line_entry(line: &[u8]) -> (Entry, bool) {
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
pub fn entries(body: &[u8]) -> Result<Vec<Entry>, NotJson> {
    let trimmed = body.trim_ascii();
    if trimmed.starts_with(b"[")
        && let Ok(items) = serde_json::from_slice::<Vec<&RawValue>>(trimmed)
    {
        return Ok(items.iter().map(|r| entry(r.get().as_bytes()).0).collect());
    }
    let mut any_object = false;
    let entries: Vec<Entry> = trimmed
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
        }
    }

    proptest::proptest! {
        /// Any bytes: an answer, never a panic; every non-blank line of a non-array body
        /// becomes one entry.
        #[test]
        fn any_bytes_split_or_refused(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Ok(entries) = entries(&body) {
                for e in &entries {
                    proptest::prop_assert!(!e.json.is_empty());
                }
            }
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
