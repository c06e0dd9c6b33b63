//! HTTP: `fn router(state)` is separate from serving, so tests call it without a socket.
//! Handlers never touch correlation state: they send batches to the actor and read the
//! summary it publishes.

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus::Registry;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::app::{Lookup, Summary};
use crate::event::Runner;
use crate::sources::batch::Batch;

/// Longest any request may take, body upload included.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Largest accepted ingest body.
pub const MAX_BODY_BYTES: usize = 8 << 20;

#[derive(Debug, Clone)]
pub struct AppState {
    pub registry: Registry,
    pub batches: mpsc::Sender<Batch>,
    pub queries: mpsc::Sender<Lookup>,
    pub summary: watch::Receiver<Summary>,
    /// Bearer token for `POST /ingest/ndjson`; `None` leaves it closed.
    pub ingest_token: Option<String>,
    /// The Vercel drain: its secret and verification code; `None` leaves it closed.
    pub vercel: Option<VercelDrain>,
    /// The platform dependencies' states (`/readyz`); `None` without a platform configured.
    pub readiness: Option<watch::Receiver<crate::platform::Readiness>>,
    /// Where post-flip reports are kept; `None` without a store (no reports then).
    pub store: Option<crate::store::Store>,
    /// Flips whose report is not due yet.
    pub pending_reports: Option<watch::Receiver<Vec<crate::flip::auto::PendingReport>>>,
    /// How stored lines are parsed and judged again for a filtered `/api/summary`.
    pub replay: Option<Replay>,
}

/// What a filtered `/api/summary` needs to judge the store's lines as `verify` would.
#[derive(Debug, Clone)]
pub struct Replay {
    pub parse: crate::config::ParseConfig,
    pub correlate: crate::correlate::CorrelateConfig,
}

#[derive(Debug, Clone)]
pub struct VercelDrain {
    /// Signs each body: `x-vercel-signature` = hex HMAC-SHA1(secret, body).
    pub secret: String,
    /// Echoed in `x-vercel-verify` when Vercel checks the endpoint.
    pub verify_code: String,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/orgs", get(orgs))
        .route("/api/orgs/{org}/verification", get(verification))
        .route("/api/reports", get(reports))
        .route("/api/reports/{id}", get(report))
        .route("/api/summary", get(summary))
        .route("/api/sessions/{id}", get(session))
        .route("/api/findings", get(findings))
        .route("/ingest/ndjson", post(ingest_ndjson))
        .route("/ingest/vercel", get(vercel_probe).post(ingest_vercel))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // A slow client or a stalled actor cannot hold a connection forever; ingest senders
        // retry what was not acknowledged.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}

async fn metrics(State(s): State<AppState>) -> Response {
    let mut body = String::new();
    match prometheus::TextEncoder::new().encode_utf8(&s.registry.gather(), &mut body) {
        Ok(()) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct SummaryQuery {
    org: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// The durable totals; with `org`, `since` or `until` (RFC 3339, on dispatch time), the
/// store's retained lines judged again as `verify` judges files, for those dispatches.
async fn summary(State(s): State<AppState>, Query(q): Query<SummaryQuery>) -> Response {
    if q.org.is_none() && q.since.is_none() && q.until.is_none() {
        return Json(s.summary.borrow().clone()).into_response();
    }
    let time = |v: &Option<String>| match v.as_deref().map(crate::parse::time::parse_rfc3339) {
        None => Ok(None),
        Some(Some(t)) => Ok(Some(t)),
        Some(None) => Err(()),
    };
    let (Ok(since), Ok(until)) = (time(&q.since), time(&q.until)) else {
        return error(StatusCode::BAD_REQUEST, "invalid_time");
    };
    let (Some(store), Some(replay)) = (s.store.clone(), s.replay.clone()) else {
        return error(StatusCode::BAD_REQUEST, "filters_need_a_store");
    };
    let parser = crate::parse::Parser::new(replay.parse.clone());
    let events = match crate::replay::events(&store, &parser).await {
        Ok(e) => e,
        Err(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
    };
    let selection = crate::report::Selection {
        orgs: q.org.into_iter().collect(),
        since,
        until,
        expect_runner: None,
    };
    let judged = tokio::task::spawn_blocking(move || {
        crate::verify::totals_of(events, replay.correlate, selection)
    })
    .await;
    match judged {
        Ok(totals) => Json(totals).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "judging_failed"),
    }
}

async fn session(
    State(s): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let Some(id) = crate::event::SessionId::new(&id) else {
        return error(StatusCode::NOT_FOUND, "unknown_session");
    };
    let (reply, answer) = oneshot::channel();
    if s.queries.send(Lookup::Session(id, reply)).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting_down");
    }
    match answer.await {
        Ok(Some(view)) => Json(view).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "unknown_session"),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A small self-contained page: go vs ts share, outcomes, the latest findings.
async fn status_page(State(s): State<AppState>) -> Response {
    let t = s.summary.borrow().clone();
    let (reply, answer) = oneshot::channel();
    let findings = match s
        .queries
        .send(Lookup::Findings {
            kind: None,
            since: None,
            reply,
        })
        .await
    {
        Ok(()) => answer.await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let total = t.dispatched.sum();
    let share = |n: u64| {
        if total == 0 {
            0.0
        } else {
            n as f64 * 100.0 / total as f64
        }
    };
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>claimcheck</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:2em}}td,th{{border:1px solid #d0d7de;padding:3px 8px}}\
         table{{border-collapse:collapse;margin-bottom:1.5em}}</style></head><body><h1>claimcheck</h1>\
         <p id=\"share\">dispatched: {total} sessions — go {:.1}%, ts {:.1}%, other {:.1}%</p><table>\
         <tr><th>matched</th><th>late</th><th>mismatched</th><th>unclaimed now</th><th>pending</th>\
         <th>duplicate claims</th><th>orphan claims</th></tr><tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td></tr></table><h2>Latest findings</h2><table>\
         <tr><th>at</th><th>kind</th><th>session</th><th>runner</th><th>resolved</th></tr>",
        share(t.dispatched.go),
        share(t.dispatched.ts),
        share(t.dispatched.other),
        t.matched,
        t.late,
        t.mismatched,
        t.unclaimed,
        t.pending,
        t.duplicate_claims,
        t.orphan_claims,
    );
    for f in findings.iter().rev().take(50) {
        let id = esc(&f.session_id);
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><a href=\"/api/sessions/{id}\">{id}</a></td><td>{}</td><td>{}</td></tr>",
            esc(&f.at),
            f.kind,
            f.runner,
            esc(f.resolved_at.as_deref().unwrap_or("")),
        ));
    }
    html.push_str(
        "</table><p><a href=\"/metrics\">/metrics</a> · <a href=\"/api/summary\">/api/summary</a> · \
         <a href=\"/api/findings\">/api/findings</a> · <a href=\"/api/orgs\">/api/orgs</a> · \
         <a href=\"/api/reports\">post-flip reports</a></p></body></html>\n",
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// Ready when every configured dependency is up; `/healthz` stays green meanwhile (ingestion
/// and correlation go on without them).
async fn readyz(State(s): State<AppState>) -> Response {
    let Some(r) = &s.readiness else {
        return "ready\n".into_response();
    };
    let r = r.borrow().clone();
    let status = if r.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r)).into_response()
}

async fn orgs(State(s): State<AppState>) -> Response {
    let (reply, answer) = oneshot::channel();
    if s.queries.send(Lookup::Orgs(reply)).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting_down");
    }
    match answer.await {
        Ok(Some(orgs)) => Json(orgs).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "no_platform_configured"),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
    }
}

/// One stored report in `GET /api/reports`.
#[derive(Debug, serde::Serialize)]
struct ReportEntry {
    id: String,
    org: String,
    flip_at: String,
    verdict: String,
    created_at: String,
    json: String,
    markdown: String,
    html: String,
}

async fn reports(State(s): State<AppState>) -> Response {
    let Some(store) = &s.store else {
        return error(StatusCode::NOT_FOUND, "no_store_configured");
    };
    match store.reports().await {
        Ok(list) => Json(
            list.into_iter()
                .map(|r| ReportEntry {
                    json: format!("/api/reports/{}.json", r.id),
                    markdown: format!("/api/reports/{}.md", r.id),
                    html: format!("/api/reports/{}.html", r.id),
                    id: r.id,
                    org: r.org,
                    flip_at: r.flip_at.to_rfc3339(),
                    verdict: r.verdict,
                    created_at: r.created_at.to_rfc3339(),
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
    }
}

/// `GET /api/reports/{id}[.json|.md|.html]`: the stored report, rendered.
async fn report(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(store) = &s.store else {
        return error(StatusCode::NOT_FOUND, "no_store_configured");
    };
    let (id, format) = match id.rsplit_once('.') {
        Some((id, "json")) => (id, "json"),
        Some((id, "md")) => (id, "md"),
        Some((id, "html")) => (id, "html"),
        _ => (id.as_str(), "json"),
    };
    let stored = match store.report(id).await {
        Ok(Some(r)) => r,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no_such_report"),
        Err(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
    };
    if format == "json" {
        return ([(header::CONTENT_TYPE, "application/json")], stored.json).into_response();
    }
    let Ok(r) = serde_json::from_str::<crate::flip::FlipReport>(&stored.json) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "stored_report_unreadable",
        );
    };
    match format {
        "md" => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            crate::flip::render::markdown(&r),
        )
            .into_response(),
        _ => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            crate::flip::render::html(&r),
        )
            .into_response(),
    }
}

/// The current verdict for one org's latest flip, for a rollout controller to gate on:
/// `pending` while its window runs, then the report's `pass`, `fail` or `inconclusive`.
async fn verification(State(s): State<AppState>, Path(org): Path<String>) -> Response {
    let Some(store) = &s.store else {
        return error(StatusCode::NOT_FOUND, "no_store_configured");
    };
    let latest = match store.latest_report(&org).await {
        Ok(r) => r,
        Err(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
    };
    let pending = s.pending_reports.as_ref().and_then(|p| {
        p.borrow()
            .iter()
            .filter(|p| p.org == org)
            .max_by(|a, b| a.flip_at.cmp(&b.flip_at))
            .cloned()
    });
    match (pending, latest) {
        (Some(p), l)
            if l.as_ref()
                .is_none_or(|l| l.flip_at.to_rfc3339() < p.flip_at) =>
        {
            Json(serde_json::json!({
                "org": org,
                "verdict": "pending",
                "flip_at": p.flip_at,
                "due": p.due,
                "report": format!("/api/reports/{}.json", p.id),
            }))
            .into_response()
        }
        (_, Some(r)) => {
            let reason = serde_json::from_str::<serde_json::Value>(&r.json)
                .ok()
                .and_then(|v| v["reason"].as_str().map(str::to_owned));
            Json(serde_json::json!({
                "org": org,
                "verdict": r.verdict,
                "reason": reason,
                "flip_at": r.flip_at.to_rfc3339(),
                "report": format!("/api/reports/{}.json", r.id),
            }))
            .into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "no_flip_detected"),
    }
}

#[derive(Debug, Deserialize)]
struct FindingsQuery {
    kind: Option<String>,
    since: Option<String>,
}

async fn findings(State(s): State<AppState>, Query(q): Query<FindingsQuery>) -> Response {
    let since = match q.since.as_deref().map(crate::parse::time::parse_rfc3339) {
        None => None,
        Some(Some(t)) => Some(t),
        Some(None) => return error(StatusCode::BAD_REQUEST, "invalid_since"),
    };
    let (reply, answer) = oneshot::channel();
    if s.queries
        .send(Lookup::Findings {
            kind: q.kind,
            since,
            reply,
        })
        .await
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting_down");
    }
    match answer.await {
        Ok(found) => Json(found).into_response(),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
    }
}

#[derive(Debug, Deserialize)]
struct IngestQuery {
    runtime: Option<String>,
}

/// Equal-length comparison that looks at every byte, so the time taken does not say how much
/// of a guessed token was right. (Two lines do not justify a crate.)
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error(status: StatusCode, code: &str) -> Response {
    (status, Json(serde_json::json!({ "code": code }))).into_response()
}

async fn ingest_ndjson(
    State(s): State<AppState>,
    Query(q): Query<IngestQuery>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let authorized = match (&s.ingest_token, presented) {
        (Some(want), Some(got)) => same_secret(want.as_bytes(), got.as_bytes()),
        _ => false,
    };
    if !authorized {
        return error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    let default_runtime = match q.runtime.as_deref() {
        None => None,
        Some("go") => Some(Runner::Go),
        Some("ts") => Some(Runner::Ts),
        Some(_) => return error(StatusCode::BAD_REQUEST, "invalid_runtime"),
    };
    let lines: Vec<Vec<u8>> = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(<[u8]>::to_vec)
        .collect();
    record(&s, Batch::new("ndjson", default_runtime, lines)).await
}

fn verified(code: &str) -> Response {
    match axum::http::HeaderValue::from_str(code) {
        Ok(v) => (StatusCode::OK, [("x-vercel-verify", v)], "ok\n").into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "bad_verify_code"),
    }
}

async fn vercel_probe(State(s): State<AppState>) -> Response {
    match &s.vercel {
        Some(v) => verified(&v.verify_code),
        None => error(StatusCode::NOT_FOUND, "drain_not_configured"),
    }
}

/// Whether `signature` (hex) is HMAC-SHA1(secret, body), compared in constant time.
fn signed(secret: &str, body: &[u8], signature: Option<&str>) -> bool {
    use hmac::{Hmac, KeyInit, Mac};
    let Some(sig) = signature.and_then(|s| hex::decode(s.trim()).ok()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

async fn ingest_vercel(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(drain) = &s.vercel else {
        return error(StatusCode::NOT_FOUND, "drain_not_configured");
    };
    let signature = headers
        .get("x-vercel-signature")
        .and_then(|v| v.to_str().ok());
    if !signed(&drain.secret, &body, signature) {
        // Vercel's endpoint check is unsigned and carries no entries.
        if signature.is_none() && crate::parse::drain::is_verification_probe(&body) {
            return verified(&drain.verify_code);
        }
        return error(StatusCode::FORBIDDEN, "invalid_signature");
    }
    let entries = crate::parse::drain::entries(&body);
    let mut batch = Batch::new("vercel", None, Vec::with_capacity(entries.len()));
    for e in entries {
        batch.lines.push(e.json);
        batch.entry_ids.push(e.id);
    }
    record(&s, batch).await
}

/// Hands a batch to the actor and answers 2xx only once it has recorded the lines.
async fn record(s: &AppState, mut batch: Batch) -> Response {
    let (done, recorded) = oneshot::channel();
    batch.done = Some(done);
    if s.batches.send(batch).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting_down");
    }
    match recorded.await {
        Ok(Ok(result)) => Json(result).into_response(),
        // Not recorded durably: the sender must retry (Vercel does).
        Ok(Err(_)) => error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
    }
}
