//! `GET /`: a small self-contained status page (go vs ts share, outcomes, post-flip reports,
//! latest findings) for a person with a browser; machines read `/api/*`. It reloads itself,
//! links only what this server serves, and escapes every value with [`crate::html::esc`].

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::html::{esc, path_segment};

/// Seconds between the page's own reloads.
const REFRESH_S: u32 = 10;
/// Rows of each table.
const REPORTS_SHOWN: u32 = 20;
const FINDINGS_SHOWN: u32 = 50;

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em;color:#1f2328}\
td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left}\
table{border-collapse:collapse;margin-bottom:1.5em}th{background:#f6f8fa}\
.verdict{font-weight:600;text-transform:uppercase;border-radius:3px;padding:1px 6px}\
.verdict-pass{background:#dafbe1;color:#1a7f37}.verdict-fail{background:#ffebe9;color:#cf222e}\
.verdict-inconclusive{background:#fff8c5;color:#9a6700}.verdict-pending{background:#eaeef2;color:#57606a}\
.muted{color:#57606a}";

/// A report verdict as a coloured badge; unknown words get no colour of their own.
fn verdict(v: &str) -> String {
    let class = match v {
        "pass" | "fail" | "inconclusive" | "pending" => v,
        _ => "other",
    };
    format!("<span class=\"verdict verdict-{class}\">{}</span>", esc(v))
}

pub(super) async fn status_page(State(s): State<AppState>) -> Response {
    let t = s.summary.borrow().clone();
    let latest = crate::store::FindingFilter {
        limit: FINDINGS_SHOWN,
        newest_first: true,
        ..Default::default()
    };
    let findings = super::api::find(&s, &latest).await;
    let total = t.dispatched.sum();
    let share = |n: u64| {
        if total == 0 {
            0.0
        } else {
            n as f64 * 100.0 / total as f64
        }
    };
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_S}\"><title>claimcheck</title>\
         <style>{STYLE}</style></head><body><h1>claimcheck</h1>\
         <p id=\"share\">dispatched: {total} sessions — go {:.1}%, ts {:.1}%, other {:.1}%</p><table>\
         <tr><th>matched</th><th>late</th><th>mismatched</th><th>unclaimed now</th><th>pending</th>\
         <th>duplicate claims</th><th>orphan claims</th></tr><tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td></tr></table>",
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
    if let Some(store) = &s.store {
        html.push_str(
            "<h2>Post-flip reports</h2><table id=\"reports\"><tr><th>org</th><th>flip at</th>\
             <th>verdict</th><th>report</th></tr>",
        );
        let pending = s
            .pending_reports
            .as_ref()
            .map(|p| p.borrow().clone())
            .unwrap_or_default();
        for p in &pending {
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"muted\">due {}</td></tr>",
                esc(&p.org),
                esc(&p.flip_at),
                verdict("pending"),
                esc(&p.due),
            );
        }
        match store.report_list(REPORTS_SHOWN).await {
            Ok(reports) => {
                for r in &reports {
                    let id = esc(&path_segment(&r.id));
                    let _ = write!(
                        html,
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td><a href=\"/api/reports/{id}.html\">report</a> \
                         · <a href=\"/api/reports/{id}.md\">Markdown</a> · <a href=\"/api/reports/{id}.json\">JSON</a></td></tr>",
                        esc(&r.org),
                        esc(&r.flip_at.to_rfc3339()),
                        verdict(&r.verdict),
                    );
                }
                if reports.is_empty() && pending.is_empty() {
                    html.push_str(
                        "<tr><td colspan=\"4\" class=\"muted\">none yet: a report is written once \
                         a detected flip's window has passed</td></tr>",
                    );
                }
            }
            Err(_) => html.push_str(
                "<tr><td colspan=\"4\" class=\"muted\">the store does not answer</td></tr>",
            ),
        }
        html.push_str("</table>");
    }
    html.push_str(
        "<h2>Latest findings</h2><table id=\"findings\">\
         <tr><th>at</th><th>kind</th><th>org</th><th>session</th><th>runner</th><th>resolved</th></tr>",
    );
    match findings {
        Ok(page) => {
            for f in page.findings {
                let session = f.session.as_deref().unwrap_or("");
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td><a href=\"/api/sessions/{}\">{}</a></td><td>{}</td><td>{}</td></tr>",
                    esc(&f.found_at.to_rfc3339()),
                    esc(f.kind.as_str()),
                    esc(f.org.as_deref().unwrap_or("unknown")),
                    esc(&path_segment(session)),
                    esc(session),
                    esc(&f.runner),
                    esc(&f.resolved_at.map(|t| t.to_rfc3339()).unwrap_or_default()),
                );
            }
        }
        Err(_) => html
            .push_str("<tr><td colspan=\"6\" class=\"muted\">the store does not answer</td></tr>"),
    }
    html.push_str(
        "</table><p><a href=\"/metrics\">/metrics</a> · <a href=\"/api/summary\">/api/summary</a> · \
         <a href=\"/api/findings\">/api/findings</a>",
    );
    if s.store.is_some() {
        html.push_str(" · <a href=\"/api/reports\">/api/reports</a>");
    }
    // `/api/orgs` answers 404 `no_platform_configured` without a platform: not linked then.
    if s.readiness.is_some() {
        html.push_str(" · <a href=\"/api/orgs\">/api/orgs</a>");
    }
    let _ = writeln!(
        html,
        "</p><p class=\"muted\">reloads every {REFRESH_S} s</p></body></html>"
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}
