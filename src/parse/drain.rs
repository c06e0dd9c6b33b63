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

fn entry(raw: &[u8]) -> Entry {
    let id = serde_json::from_slice::<Id>(raw)
        .ok()
        .and_then(|e| e.id)
        .and_then(|v| match v {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    Entry {
        id,
        json: raw.to_vec(),
    }
}

/// Splits a body. A malformed array falls back to NDJSON, so one bad entry costs one line,
/// not the batch; malformed lines are kept and rejected (or ignored) by `parse_line`.
pub fn entries(body: &[u8]) -> Vec<Entry> {
    let trimmed = body.trim_ascii();
    if trimmed.starts_with(b"[")
        && let Ok(items) = serde_json::from_slice::<Vec<&RawValue>>(trimmed)
    {
        return items.iter().map(|r| entry(r.get().as_bytes())).collect();
    }
    trimmed
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|l| !l.is_empty())
        .map(entry)
        .collect()
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
        let a = entries(br#"[{"id":"1","message":"x"},{"id":2,"message":"y"},{"message":"z"}]"#);
        assert_eq!(
            a.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
            vec![Some("1".into()), Some("2".into()), None]
        );
        assert_eq!(a[0].json, br#"{"id":"1","message":"x"}"#);
        let n = entries(b"{\"id\":\"1\"}\n\n{\"id\":\"2\"}\r\n{broken\n");
        assert_eq!(n.len(), 3);
        assert_eq!((n[1].id.as_deref(), n[2].id.as_deref()), (Some("2"), None));
        assert_eq!(entries(br#" {"id":"9"} "#)[0].id.as_deref(), Some("9"));
        // a broken array degrades to lines instead of losing the batch
        assert_eq!(entries(b"[{\"id\":\"1\"},\n{oops").len(), 2);
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
