//! Post-flip reports from the store: `GET /api/reports`, `GET /api/reports/{id}[.json|.md|.html]`
//! and the per-org verdict a rollout controller gates on (`/api/orgs/{org}/verification`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

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

pub(super) async fn reports(State(s): State<AppState>) -> Result<Response, ApiError> {
    let Some(store) = &s.store else {
        return Err(ApiError::NoStoreConfigured);
    };
    let list = store
        .reports()
        .await
        .map_err(|_| ApiError::StoreUnavailable)?;
    Ok(Json(
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
    .into_response())
}

/// `GET /api/reports/{id}[.json|.md|.html]`: the stored report, rendered.
pub(super) async fn report(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(store) = &s.store else {
        return Err(ApiError::NoStoreConfigured);
    };
    let (id, format) = match id.rsplit_once('.') {
        Some((id, "json")) => (id, "json"),
        Some((id, "md")) => (id, "md"),
        Some((id, "html")) => (id, "html"),
        _ => (id.as_str(), "json"),
    };
    let stored = match store.report(id).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(ApiError::NoSuchReport),
        Err(_) => return Err(ApiError::StoreUnavailable),
    };
    if format == "json" {
        return Ok(([(header::CONTENT_TYPE, "application/json")], stored.json).into_response());
    }
    let Ok(r) = serde_json::from_str::<crate::flip::FlipReport>(&stored.json) else {
        return Err(ApiError::StoredReportUnreadable);
    };
    Ok(match format {
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
    })
}

/// The current verdict for one org's latest flip, for a rollout controller to gate on:
/// `pending` while its window runs, then the report's `pass`, `fail` or `inconclusive`.
pub(super) async fn verification(
    State(s): State<AppState>,
    Path(org): Path<String>,
) -> Result<Response, ApiError> {
    let Some(store) = &s.store else {
        return Err(ApiError::NoStoreConfigured);
    };
    let latest = store
        .latest_report(&org)
        .await
        .map_err(|_| ApiError::StoreUnavailable)?;
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
            Ok(Json(serde_json::json!({
                "org": org,
                "verdict": "pending",
                "flip_at": p.flip_at,
                "due": p.due,
                "report": format!("/api/reports/{}.json", p.id),
            }))
            .into_response())
        }
        (_, Some(r)) => {
            let reason = serde_json::from_str::<serde_json::Value>(&r.json)
                .ok()
                .and_then(|v| v["reason"].as_str().map(str::to_owned));
            Ok(Json(serde_json::json!({
                "org": org,
                "verdict": r.verdict,
                "reason": reason,
                "flip_at": r.flip_at.to_rfc3339(),
                "report": format!("/api/reports/{}.json", r.id),
            }))
            .into_response())
        }
        _ => Err(ApiError::NoFlipDetected),
    }
}
