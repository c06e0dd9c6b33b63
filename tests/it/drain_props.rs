//! The drain body parser under arbitrary input: `parse::drain::entries` never panics on any
//! bytes or near-valid bodies, keeps every entry of a valid one (array, pretty array or
//! NDJSON), and the drain endpoint answers every signed body with a status from its set.

use std::io::Write;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use claimcheck::parse::drain::entries;
use proptest::prelude::*;

use crate::serve::{app, call};

/// A valid drain entry: its id (when it has one) and message.
fn entry() -> impl Strategy<Value = (Option<String>, String)> {
    (
        proptest::option::of("[a-zA-Z0-9_-]{1,12}"),
        // any text, quotes, backslashes, newlines and non-ASCII included
        any::<String>(),
    )
}

fn json_of((id, message): &(Option<String>, String)) -> String {
    let mut v = serde_json::json!({ "message": message, "source": "lambda" });
    if let Some(id) = id {
        v["id"] = serde_json::Value::String(id.clone());
    }
    v.to_string()
}

/// How a batch of entries is written: a compact array, an array one entry per line, NDJSON.
fn render(batch: &[(Option<String>, String)], shape: u8) -> String {
    let items: Vec<String> = batch.iter().map(json_of).collect();
    match shape % 3 {
        0 => format!("[{}]", items.join(",")),
        1 => format!("[\n{}\n]\n", items.join(",\n")),
        _ => items.join("\n"),
    }
}

/// A valid body broken a little: truncated, a byte changed, a byte inserted.
fn near_valid() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(entry(), 1..6),
        any::<u8>(),
        any::<prop::sample::Index>(),
        any::<u8>(),
        0u8..3,
    )
        .prop_map(|(batch, shape, at, byte, how)| {
            let mut b = render(&batch, shape).into_bytes();
            let i = at.index(b.len());
            match how {
                0 => b.truncate(i),
                1 => b[i] = byte,
                _ => b.insert(i, byte),
            }
            b
        })
}

fn sign(body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"drain-secret").unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any bytes: an answer, never a panic; an `Ok` never invents bytes.
    #[test]
    fn any_bytes_are_split_or_refused(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(found) = entries(&body) {
            for e in found {
                prop_assert!(e.json.len() <= body.len());
            }
        }
    }

    /// A valid body broken a little: an answer, never a panic; when it is still split, no
    /// entry is longer than the body.
    #[test]
    fn near_valid_bodies_are_split_or_refused(body in near_valid()) {
        if let Ok(found) = entries(&body) {
            prop_assert!(found.iter().all(|e| e.json.len() <= body.len()));
        }
    }

    /// A valid body keeps every entry, in order, with its id, whatever its shape.
    #[test]
    fn valid_bodies_keep_every_entry(
        batch in proptest::collection::vec(entry(), 0..8),
        shape in any::<u8>(),
    ) {
        let body = render(&batch, shape);
        let found = entries(body.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(found.len(), batch.len(), "{}", body);
        for (e, (id, message)) in found.iter().zip(&batch) {
            prop_assert_eq!(&e.id, id);
            let v: serde_json::Value = serde_json::from_slice(e.json)
                .map_err(|err| TestCaseError::fail(err.to_string()))?;
            prop_assert_eq!(v["message"].as_str(), Some(message.as_str()));
        }
    }
}

/// Every signed drain body — arbitrary bytes, near-valid and valid bodies, gzipped or not —
/// gets a status from the endpoint's set, with a JSON `code` on every refusal.
#[test]
fn every_signed_drain_body_gets_a_status_from_the_set() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let (app, _stop) = {
        let _in = rt.enter();
        app()
    };
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        near_valid(),
        (proptest::collection::vec(entry(), 0..4), any::<u8>())
            .prop_map(|(b, shape)| render(&b, shape).into_bytes()),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    });
    runner
        .run(&(body, any::<bool>()), |(body, gzip)| {
            let sent = if gzip { gz(&body) } else { body.clone() };
            let mut req = Request::post("/ingest/vercel").header("x-vercel-signature", sign(&sent));
            if gzip {
                req = req.header("content-encoding", "gzip");
            }
            let (status, text) = rt.block_on(call(&app, req.body(Body::from(sent)).unwrap()));
            prop_assert!(
                [StatusCode::OK, StatusCode::BAD_REQUEST].contains(&status),
                "{status} {text}"
            );
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
            if status == StatusCode::OK {
                prop_assert!(v["events"].is_u64(), "{text}");
                // a valid body keeps every entry: each is counted as an event, ignored or rejected
                if let Ok(found) = entries(&body) {
                    let counted = ["events", "duplicates", "ignored", "rejected"]
                        .iter()
                        .map(|k| v[k].as_u64().unwrap_or(0))
                        .sum::<u64>();
                    prop_assert_eq!(counted, found.len() as u64, "{}", text);
                }
            } else {
                prop_assert_eq!(v["code"].as_str(), Some("not_json"), "{}", text);
            }
            Ok(())
        })
        .unwrap();
}
