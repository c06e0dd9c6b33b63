//! The HTTP edge through the router: the right status and JSON `code` for every bad body,
//! gzip within its cap (a bomb refused), and malformed entries in a good batch counted while
//! the rest is kept.

use std::io::Write;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use crate::serve::{TOKEN, app, call, drain_post, post, sign};

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn code(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap_or_default()["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn signed_drain(body: Vec<u8>, encoding: Option<&str>, sig_over: &[u8]) -> Request<Body> {
    let mut b = Request::post("/ingest/vercel").header("x-vercel-signature", sign_bytes(sig_over));
    if let Some(e) = encoding {
        b = b.header("content-encoding", e);
    }
    b.body(Body::from(body)).unwrap()
}

fn sign_bytes(body: &[u8]) -> String {
    // `sign` takes text; drain bodies here may be binary.
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"drain-secret").unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn ndjson(body: Vec<u8>, encoding: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/ingest/ndjson?runtime=go")
        .header("authorization", format!("Bearer {TOKEN}"));
    if let Some(e) = encoding {
        b = b.header("content-encoding", e);
    }
    b.body(Body::from(body)).unwrap()
}

const DISPATCH: &str = r#"{"event":"dispatch","sessionId":"e1","resolvedProfile":{"runner":"go"},"time":"2026-11-23T10:00:00Z"}"#;

#[tokio::test(start_paused = true)]
async fn every_bad_body_kind_has_its_status_and_code() {
    let (app, _stop) = app();
    let deep = "[".repeat(100_000);
    let deep_obj = "{\"a\":".repeat(100_000);
    // signed drain bodies that are not JSON: 400 not_json, nothing recorded
    for body in [
        "[",
        "null",
        "\"text\"",
        "17",
        &deep,
        &deep_obj,
        "[1,\n",
        "\u{0}\u{1}",
    ] {
        let (status, text) = call(&app, drain_post(body, Some(&sign(body)))).await;
        assert_eq!(
            (status, code(&text).as_str()),
            (StatusCode::BAD_REQUEST, "not_json"),
            "{:?}",
            &body[..body.len().min(10)]
        );
    }
    // the same on the NDJSON endpoint
    for body in ["[", "null", "not json at all\nnor this", &deep] {
        let (status, text) = call(&app, post("go", Some(TOKEN), body)).await;
        assert_eq!(
            (status, code(&text).as_str()),
            (StatusCode::BAD_REQUEST, "not_json")
        );
    }
    // unsupported encodings: 415, on both endpoints
    for enc in ["br", "deflate", "zstd", "gzip, br"] {
        let body = DISPATCH.as_bytes().to_vec();
        let (status, text) = call(&app, signed_drain(body.clone(), Some(enc), &body)).await;
        assert_eq!(
            (status, code(&text).as_str()),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_encoding"),
            "{enc}"
        );
        let (status, _) = call(&app, ndjson(body, Some(enc))).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{enc}");
    }
    // gzip that is not gzip: 400
    let (status, text) = call(
        &app,
        signed_drain(b"plain".to_vec(), Some("gzip"), b"plain"),
    )
    .await;
    assert_eq!(
        (status, code(&text).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_gzip")
    );
    // over the limit as sent: 413 with a code, on both endpoints
    let big = "x".repeat(claimcheck::http::MAX_BODY_BYTES + 1);
    let (status, text) = call(&app, drain_post(&big, Some(&sign(&big)))).await;
    assert_eq!(
        (status, code(&text).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    let (status, text) = call(&app, post("go", Some(TOKEN), &big)).await;
    assert_eq!(
        (status, code(&text).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );
    // auth comes first: 401 / 403 whatever the body
    let (status, text) = call(&app, post("go", None, "[")).await;
    assert_eq!(
        (status, code(&text).as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    let (status, text) = call(&app, drain_post("[", Some(&sign("other")))).await;
    assert_eq!(
        (status, code(&text).as_str()),
        (StatusCode::FORBIDDEN, "invalid_signature")
    );
    let (status, _) = call(&app, signed_drain(gz(b"[]"), Some("gzip"), b"wrong")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // an unknown route answers with a code too
    let (status, text) = call(&app, crate::serve::get("/nope")).await;
    assert_eq!(
        (status, code(&text).as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    // nothing of the refused bodies was recorded
    let (_, s) = call(&app, crate::serve::get("/api/summary")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&s).unwrap()["dispatched"]["go"],
        0
    );
}

#[tokio::test(start_paused = true)]
async fn gzip_bodies_are_decoded_and_a_bomb_is_refused() {
    let (app, _stop) = app();
    // a signed gzip drain body: the signature over the bytes as sent
    let entries = format!(
        r#"[{{"id":"g1","message":{},"timestamp":1795428000000}}]"#,
        serde_json::to_string(DISPATCH).unwrap()
    );
    let body = gz(entries.as_bytes());
    let (status, text) = call(&app, signed_drain(body.clone(), Some("gzip"), &body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["events"], 1);
    // or over the decoded body
    let other = entries
        .replace("g1", "g2")
        .replace("\\\"e1\\\"", "\\\"e2\\\"");
    let (status, text) = call(
        &app,
        signed_drain(gz(other.as_bytes()), Some("gzip"), other.as_bytes()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["events"], 1);
    // NDJSON gzip
    let nd = DISPATCH.replace("\"e1\"", "\"e3\"");
    let (status, text) = call(&app, ndjson(gz(nd.as_bytes()), Some("gzip"))).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["events"], 1);
    // a bomb: 128 MiB of zeros (4 times the decoded cap) in about 128 KiB
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..128 {
        e.write_all(&zeros).unwrap();
    }
    let bomb = e.finish().unwrap();
    assert!(bomb.len() < claimcheck::http::MAX_BODY_BYTES);
    let (status, text) = call(&app, signed_drain(bomb.clone(), Some("gzip"), &bomb)).await;
    assert_eq!(
        (status, code(&text).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "decoded_too_large")
    );
    let (status, _) = call(&app, ndjson(bomb, Some("gzip"))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (_, s) = call(&app, crate::serve::get("/api/summary")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&s).unwrap()["dispatched"]["go"],
        3
    );
}

/// A good batch with malformed entries: the good kept, the bad counted, 200.
#[tokio::test(start_paused = true)]
async fn malformed_entries_in_a_good_batch_are_counted_and_the_rest_kept() {
    let (app, _stop) = app();
    let good = |id: &str| {
        format!(
            r#"{{"id":"{id}","message":{},"timestamp":1795428000000}}"#,
            serde_json::to_string(&DISPATCH.replace("\"e1\"", &format!("\"{id}\""))).unwrap()
        )
    };
    let body = format!(
        "[{}, 17, null, \"x\", {{\"id\":\"bad\"}}, {}]",
        good("m1"),
        good("m2")
    );
    let (status, text) = call(&app, drain_post(&body, Some(&sign(&body)))).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let r: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["events"], 2, "{r}");
    let not_events = r["rejected"].as_u64().unwrap() + r["ignored"].as_u64().unwrap();
    assert_eq!(not_events, 4, "{r}");
    // NDJSON with a broken line between two good ones
    let nd = format!(
        "{}\n{{\"event\":\"dispatch\",\"sessionId\n{}\n",
        DISPATCH.replace("\"e1\"", "\"n1\""),
        DISPATCH.replace("\"e1\"", "\"n2\"")
    );
    let (status, text) = call(&app, post("go", Some(TOKEN), &nd)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let r: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["events"], 2, "{r}");
}

/// `/metrics` and the API each take their own token; probes stay open; ingest keeps its own.
#[tokio::test(start_paused = true)]
async fn each_endpoint_class_takes_its_own_token() {
    let access = claimcheck::http::auth::Access {
        metrics: Some("m-token".into()),
        api: Some("a-token".into()),
    };
    let (app, _stop) = crate::serve::app_with(access);
    let with = |path: &str, token: Option<&str>| {
        let mut b = Request::get(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(Body::empty()).unwrap()
    };
    let api = [
        "/",
        "/api/summary",
        "/api/findings",
        "/api/orgs",
        "/api/sessions/x",
        "/api/reports",
        "/api/reports/x.json",
        "/api/orgs/o/verification",
    ];
    for path in api {
        for wrong in [None, Some("m-token"), Some("a-toke"), Some("a-tokenx")] {
            let res = app.clone().oneshot(with(path, wrong)).await.unwrap();
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path} {wrong:?}");
            assert_eq!(res.headers()["www-authenticate"], "Bearer");
        }
        let (status, _) = call(&app, with(path, Some("a-token"))).await;
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    for wrong in [None, Some("a-token")] {
        let (status, text) = call(&app, with("/metrics", wrong)).await;
        assert_eq!(
            (status, code(&text).as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_token")
        );
    }
    let (status, text) = call(&app, with("/metrics", Some("m-token"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("claimcheck_"), "{text}");
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            call(&app, with(path, None)).await.0,
            StatusCode::OK,
            "{path}"
        );
    }
    // ingest: its own token, not the others'
    assert_eq!(
        call(&app, post("go", Some("a-token"), DISPATCH)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, post("go", Some(TOKEN), DISPATCH)).await.0,
        StatusCode::OK
    );
    // an unknown path is still 404, token or not
    assert_eq!(
        call(&app, with("/api/nope", None)).await.0,
        StatusCode::NOT_FOUND
    );
}

/// The document served at `/api/openapi.json` is the checked-in `docs/openapi.json`, and it
/// names every `ApiError` code.
#[tokio::test(start_paused = true)]
async fn the_served_openapi_document_is_the_checked_in_one() {
    let (app, _stop) = app();
    let (status, text) = call(
        &app,
        Request::get("/api/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let served: Value = serde_json::from_str(&text).unwrap();
    let checked_in: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(served, checked_in);
    let codes = served["components"]["schemas"]["ApiError"]["enum"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(codes, claimcheck::http::ApiError::ALL.len());
}

/// A query string or a path segment that does not decode gets this API's JSON refusal (400
/// `invalid_query` / `invalid_path`), not axum's plain text; `?limit=` on `/api/reports` is
/// checked before anything is read.
#[tokio::test(start_paused = true)]
async fn undecodable_queries_and_paths_get_json_refusals() {
    let (app, _stop) = app();
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    for (path, want) in [
        ("/api/summary?until=a&until=b", "invalid_query"),
        ("/api/findings?since=a&since=b", "invalid_query"),
        ("/api/reports?limit=1&limit=2", "invalid_query"),
        ("/api/sessions/%FF", "invalid_path"),
        ("/api/reports/%FF%FE.json", "invalid_path"),
        ("/api/orgs/%C0/verification", "invalid_path"),
        ("/api/reports?limit=0", "invalid_limit"),
        ("/api/reports?limit=1001", "invalid_limit"),
        ("/api/reports?limit=ten", "invalid_limit"),
        ("/api/reports?limit=-1", "invalid_limit"),
    ] {
        let (status, text) = call(&app, get(path)).await;
        assert_eq!(
            (status, code(&text).as_str()),
            (StatusCode::BAD_REQUEST, want),
            "{path}: {text}"
        );
    }
    let twice = Request::post("/ingest/ndjson?runtime=go&runtime=ts")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(DISPATCH))
        .unwrap();
    let (status, text) = call(&app, twice).await;
    assert_eq!(
        (status, code(&text).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
    // a good limit without a store: the usual 404
    let (status, text) = call(&app, get("/api/reports?limit=1000")).await;
    assert_eq!(
        (status, code(&text).as_str()),
        (StatusCode::NOT_FOUND, "no_store_configured")
    );
}

/// `/api/reports` lists the latest flips first, at most `limit` (100 by default), from the
/// store's index columns; the status page shows the same newest rows.
#[tokio::test]
async fn reports_are_listed_newest_first_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = claimcheck::store::Store::open(dir.path().join("s.db").to_str().unwrap())
        .await
        .unwrap();
    for i in 0..120_i64 {
        store
            .put_report(&claimcheck::store::StoredReport {
                id: format!("r{i:03}"),
                org: format!("org_{}", i % 3),
                flip_at: claimcheck::event::Timestamp(1_795_428_000_000 + i * 60_000),
                verdict: "pass".into(),
                created_at: claimcheck::event::Timestamp(1_795_430_000_000 + i),
                json: "{}".into(),
            })
            .await
            .unwrap();
    }
    let (app, _stop) = crate::serve::app_on(Default::default(), Some(store));
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    let ids = |text: &str| -> Vec<String> {
        serde_json::from_str::<Value>(text)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, text) = call(&app, get("/api/reports")).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let all = ids(&text);
    assert_eq!(all.len(), 100);
    assert_eq!((all[0].as_str(), all[99].as_str()), ("r119", "r020"));
    let (_, text) = call(&app, get("/api/reports?limit=3")).await;
    assert_eq!(ids(&text), ["r119", "r118", "r117"]);
    let first: Value = serde_json::from_str::<Value>(&text).unwrap()[0].clone();
    assert_eq!(first["html"], "/api/reports/r119.html");
    assert_eq!(first["org"], "org_2");
    // the status page: the newest 20, the 21st not
    let (status, page) = call(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("/api/reports/r119.html") && page.contains("/api/reports/r100.html"));
    assert!(
        !page.contains("/api/reports/r099.html"),
        "more than 20 rows"
    );
}
