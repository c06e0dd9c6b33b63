//! `GET /`: a small self-contained status page (go vs ts share, outcomes, latest findings)
//! for a person with a browser; machines read `/api/*`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::AppState;
use crate::serve::Lookup;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A small self-contained page: go vs ts share, outcomes, the latest findings.
pub(super) async fn status_page(State(s): State<AppState>) -> Response {
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
