//! `serve` through its router, with tokio time paused: ingest over HTTP, then read
//! `/api/summary` and `/metrics` back.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use claimcheck::clock::Clock;
use claimcheck::correlate::live::LiveConfig;
use claimcheck::event::Timestamp;
use claimcheck::http::{AppState, VercelDrain, router};
use claimcheck::parse::Parser;
use claimcheck::serve::Actor;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub(crate) const TOKEN: &str = "s3cret";
const DRAIN_SECRET: &str = "drain-secret";

pub(crate) fn app() -> (axum::Router, CancellationToken) {
    app_with(Default::default())
}

/// The router with `access` guarding `/metrics` and the API.
pub(crate) fn app_with(
    access: claimcheck::http::auth::Access,
) -> (axum::Router, CancellationToken) {
    app_on(access, None)
}

/// The router with `access`, over `store` (where reports are read).
pub(crate) fn app_on(
    access: claimcheck::http::auth::Access,
    store: Option<claimcheck::store::Store>,
) -> (axum::Router, CancellationToken) {
    let registry = prometheus::Registry::new();
    let clock = Clock::starting_at(Timestamp(1_795_428_000_000));
    let (actor, summary) = Actor::new(
        Parser::new(Default::default()),
        LiveConfig::default(),
        &registry,
        clock,
        200,
    )
    .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let stop = CancellationToken::new();
    let (query_tx, query_rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(actor.run(rx, query_rx, stop.clone()));
    let state = AppState {
        registry,
        batches: tx,
        queries: query_tx,
        summary,
        ingest_token: Some(TOKEN.into()),
        vercel: Some(VercelDrain {
            secret: DRAIN_SECRET.into(),
            verify_code: "vc-123".into(),
        }),
        readiness: None,
        store_health: None,
        cluster: None,
        recovery: None,
        store,
        pending_reports: None,
        summary_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(4)),
        http: Default::default(),
        access,
    };
    (router(state), stop)
}

pub(crate) async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

pub(crate) fn post(runtime: &str, token: Option<&str>, body: &str) -> Request<Body> {
    let mut b = Request::post(format!("/ingest/ndjson?runtime={runtime}"));
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

pub(crate) fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// The summary once `ready` holds, letting the actor run between polls (time is paused, so
/// only the actor's own progress is awaited; a bounded number of polls is the deadline).
async fn summary_when(app: &axum::Router, ready: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        tokio::task::yield_now().await;
        let (_, body) = call(app, get("/api/summary")).await;
        last = serde_json::from_str(&body).unwrap();
        if ready(&last) {
            return last;
        }
    }
    panic!("condition not reached; last summary {last}");
}

#[tokio::test(start_paused = true)]
async fn ingest_correlate_and_report_live() {
    let (app, _stop) = app();
    let dispatches = concat!(
        r#"{"event":"dispatch","sessionId":"a","organizationId":"org_a","resolvedProfile":{"runner":"go"},"time":"2026-11-23T10:00:00Z"}"#,
        "\n",
        r#"{"event":"dispatch","sessionId":"b","organizationId":"org_a","resolvedProfile":{"runner":"go"},"time":"2026-11-23T10:00:00Z"}"#,
        "\n",
        "not json at all\n",
    );
    let (status, body) = call(&app, post("go", Some(TOKEN), dispatches)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (r["events"].as_u64(), r["ignored"].as_u64()),
        (Some(2), Some(1))
    );

    let claim = r#"{"event":"claimed","sessionId":"a","workerId":"g1","version":"0.5.2","time":"2026-11-23T10:00:02Z"}"#;
    let (status, _) = call(&app, post("go", Some(TOKEN), claim)).await;
    assert_eq!(status, StatusCode::OK);
    // re-posting the same batch is deduplicated
    let (_, body) = call(&app, post("go", Some(TOKEN), claim)).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["duplicates"],
        1
    );

    let counts = |s: &Value| {
        (
            s["dispatched"]["go"].as_u64(),
            s["matched"].as_u64(),
            s["pending"].as_u64(),
        )
    };
    // The claim is stamped at its source's watermark, and the source may still deliver more
    // stamped that second: a is judged once the source moves on or goes idle (5 s).
    let (_, body) = call(&app, get("/api/summary")).await;
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(counts(&s), (Some(2), Some(0), Some(2)), "{s}");
    tokio::time::advance(Duration::from_secs(6)).await;
    let s = summary_when(&app, |s| s["matched"] == 1).await;
    assert_eq!(counts(&s), (Some(2), Some(1), Some(1)), "{s}");

    // b gets no claim: on the sidecar's clock it becomes overdue after T = 120 s
    tokio::time::advance(Duration::from_secs(119 - 6)).await;
    let s = summary_when(&app, |_| true).await;
    assert_eq!(s["unclaimed"], 0, "not before T: {s}");
    tokio::time::advance(Duration::from_secs(2)).await;
    let s = summary_when(&app, |s| s["unclaimed"] == 1).await;
    assert_eq!(s["pending"], 0, "{s}");

    let (_, metrics) = call(&app, get("/metrics")).await;
    for line in [
        r#"claimcheck_dispatches_total{org="org_a",runner="go"} 2"#,
        r#"claimcheck_outcomes_total{outcome="matched",runner="go"} 1"#,
        r#"claimcheck_unclaimed_sessions{runner="go"} 1"#,
        r#"claimcheck_claim_deadline_missed_total{runner="go"} 1"#,
        r#"claimcheck_ingest_lines_total{result="duplicate",source="ndjson"} 1"#,
        r#"claimcheck_daemon_info{runtime="go",version="0.5.2",worker="g1"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line} in\n{metrics}"
        );
    }

    // everything known about one session, citing source:line
    let (status, body) = call(&app, get("/api/sessions/a")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            v["outcome"].as_str(),
            v["org"].as_str(),
            v["latency_seconds"].as_f64()
        ),
        (Some("matched"), Some("org_a"), Some(2.0)),
        "{v}"
    );
    let sources: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["ndjson:1", "ndjson:4"], "{v}");
    assert_eq!(
        call(&app, get("/api/sessions/nope")).await.0,
        StatusCode::NOT_FOUND
    );

    // a late claim resolves it
    let late =
        r#"{"event":"claimed","sessionId":"b","workerId":"g1","time":"2026-11-23T10:03:00Z"}"#;
    call(&app, post("go", Some(TOKEN), late)).await;
    // Settled once the source goes idle, as above.
    tokio::time::advance(Duration::from_secs(6)).await;
    let s = summary_when(&app, |s| s["late"] == 1).await;
    assert_eq!(
        (s["unclaimed"].as_u64(), s["late"].as_u64()),
        (Some(0), Some(1)),
        "{s}"
    );

    // the findings: b was overdue, then resolved by its late claim, and judged late
    let (_, body) = call(&app, get("/api/findings")).await;
    let f: Value = serde_json::from_str(&body).unwrap();
    let kinds: Vec<(&str, &str, bool)> = f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["kind"].as_str().unwrap(),
                x["session_id"].as_str().unwrap(),
                x["resolved_at"].is_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("unclaimed", "b", true), ("late", "b", false)],
        "{f}"
    );
    let (_, body) = call(&app, get("/api/findings?kind=late")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["findings"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Refusals say why, as a JSON code: an unknown kind is not an empty list.
    for (query, code) in [
        ("since=yesterday", "invalid_since"),
        ("until=tomorrow", "invalid_time"),
        ("kind=lat", "unknown_kind"),
        ("kind=", "unknown_kind"),
        ("cursor=nope", "invalid_cursor"),
        ("limit=0", "invalid_limit"),
        ("limit=1001", "invalid_limit"),
        ("limit=ten", "invalid_limit"),
    ] {
        let (status, body) = call(&app, get(&format!("/api/findings?{query}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["code"],
            code,
            "{query}"
        );
    }
    // Without a store, pages come from memory, with the same cursor: one a page.
    let (_, body) = call(&app, get("/api/findings?limit=1")).await;
    let first: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            first["findings"][0]["kind"].as_str(),
            first["more"].as_bool()
        ),
        (Some("unclaimed"), Some(true)),
        "{first}"
    );
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, body) = call(&app, get(&format!("/api/findings?limit=1&cursor={cursor}"))).await;
    let second: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            second["findings"][0]["kind"].as_str(),
            second["more"].as_bool()
        ),
        (Some("late"), Some(false)),
        "{second}"
    );

    // the status page shows the share and links the finding's session
    let (status, page) = call(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("go 100.0%"), "{page}");
    assert!(
        page.contains(r#"<a href="/api/sessions/b">b</a>"#),
        "{page}"
    );
}

#[tokio::test(start_paused = true)]
async fn ingest_needs_the_token_and_a_known_runtime() {
    let (app, _stop) = app();
    assert_eq!(
        call(&app, post("go", None, "{}")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, post("go", Some("s3cres"), "{}")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, post("rust", Some(TOKEN), "{}")).await.0,
        StatusCode::BAD_REQUEST
    );
    let big = "x".repeat(claimcheck::http::MAX_BODY_BYTES + 1);
    assert_eq!(
        call(&app, post("go", Some(TOKEN), &big)).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(call(&app, get("/healthz")).await.0, StatusCode::OK);
    assert_eq!(call(&app, get("/readyz")).await.0, StatusCode::OK);
}

pub(crate) fn sign(body: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(DRAIN_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub(crate) fn drain_post(body: &str, signature: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/ingest/vercel");
    if let Some(sig) = signature {
        b = b.header("x-vercel-signature", sig);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test(start_paused = true)]
async fn vercel_drain_contract() {
    let (app, _stop) = app();
    // the endpoint check: unsigned GET, or POST of [] / {}, answered with the code
    for req in [
        get("/ingest/vercel"),
        drain_post("[]", None),
        drain_post("{}", None),
    ] {
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-vercel-verify"], "vc-123");
    }
    let body = concat!(
        r#"[{"id":"e1","message":"{\"event\":\"dispatch\",\"sessionId\":\"v1\",\"resolvedProfile\":{\"runner\":\"go\"}}","timestamp":1795428000000,"source":"lambda"},"#,
        r#"{"id":"e2","message":"{\"event\":\"dispatch\",\"sessionId\":\"v2\",\"resol","timestamp":1795428000000},"#,
        r#"{"id":"e3","message":"GET /api/health 200","timestamp":1795428000000}]"#,
    );
    // unsigned, wrongly signed or signed over another body: 403, nothing recorded
    for sig in [None, Some("00"), Some("zz"), Some(sign("[]").as_str())] {
        let (status, text) = call(&app, drain_post(body, sig)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{sig:?}");
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap()["code"],
            "invalid_signature"
        );
    }
    let (status, text) = call(&app, drain_post(body, Some(&sign(body)))).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let r: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (
            r["events"].as_u64(),
            r["rejected"].as_u64(),
            r["ignored"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{r}"
    );
    // Vercel retries the same batch: every entry is a duplicate, nothing counted twice
    let (_, text) = call(&app, drain_post(body, Some(&sign(body)))).await;
    let r: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (r["events"].as_u64(), r["duplicates"].as_u64()),
        (Some(0), Some(3)),
        "{r}"
    );
    let (_, s) = call(&app, get("/api/summary")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&s).unwrap()["dispatched"]["go"],
        1
    );
    let big = "x".repeat(claimcheck::http::MAX_BODY_BYTES + 1);
    assert_eq!(
        call(&app, drain_post(&big, Some(&sign(&big)))).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

/// A stalled actor cannot hold an ingest request forever: 408 after the request timeout, and
/// the sender retries what was not acknowledged.
#[tokio::test(start_paused = true)]
async fn requests_time_out() {
    let registry = prometheus::Registry::new();
    let (tx, _held_but_never_read) = tokio::sync::mpsc::channel(16);
    let (query_tx, _queries) = tokio::sync::mpsc::channel(16);
    let (_, summary) = tokio::sync::watch::channel(Default::default());
    let state = AppState {
        registry,
        batches: tx,
        queries: query_tx,
        summary,
        ingest_token: Some(TOKEN.into()),
        vercel: None,
        readiness: None,
        store_health: None,
        cluster: None,
        recovery: None,
        store: None,
        pending_reports: None,
        summary_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(4)),
        http: Default::default(),
        access: Default::default(),
    };
    let app = router(state);
    let started = tokio::time::Instant::now();
    let (status, _) = call(&app, post("go", Some(TOKEN), "{}\n")).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(started.elapsed(), claimcheck::http::REQUEST_TIMEOUT);
}
