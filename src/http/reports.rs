//! Post-flip reports from the store: `GET /api/reports`, `GET /api/reports/{id}[.json|.md|.html]`
//! and the per-org verdict a rollout controller gates on (`/api/orgs/{org}/verification`).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::extract::{Path, Query};
use super::{ApiError, AppState, ErrorBody};

/// One stored report in `GET /api/reports`, with the URL of each rendering.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct ReportEntry {
    id: String,
    org: String,
    flip_at: String,
    verdict: String,
    created_at: String,
    json: String,
    markdown: String,
    html: String,
}

/// Reports listed when `limit` is not given.
const DEFAULT_LIMIT: u32 = 100;
/// The most reports one list answers.
const MAX_LIMIT: u32 = 1000;

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ReportsQuery {
    /// How many reports, the latest flips first (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// The post-flip reports serve wrote, the latest flips first, at most `limit` (one indexed
/// query: no report's JSON is read).
#[utoipa::path(
    get,
    path = "/api/reports",
    tag = "reports",
    params(ReportsQuery),
    security((), ("api_token" = [])),
    responses(
        (status = 200, description = "The latest reports", body = Vec<ReportEntry>),
        (status = 400, description = "`invalid_limit`, `invalid_query`", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 404, description = "`no_store_configured`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody),
    )
)]
pub(super) async fn reports(
    State(s): State<AppState>,
    Query(q): Query<ReportsQuery>,
) -> Result<Response, ApiError> {
    // Read as text so that a bad value gets this API's JSON refusal, not the extractor's.
    let limit = match q.limit.as_deref().map(str::parse::<u32>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return Err(ApiError::InvalidLimit),
    };
    let Some(store) = &s.store else {
        return Err(ApiError::NoStoreConfigured);
    };
    let list = store
        .report_list(limit)
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
#[utoipa::path(
    get,
    path = "/api/reports/{id}",
    tag = "reports",
    params(("id" = String, Path,
        description = "A report id, optionally with `.json` (the default), `.md` or `.html`")),
    security((), ("api_token" = [])),
    responses(
        (status = 200, description = "The report as JSON, Markdown or HTML", content(
            (Object = "application/json"),
            (String = "text/markdown; charset=utf-8"),
            (String = "text/html; charset=utf-8"),
        )),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 404, description = "`no_store_configured`, `no_such_report`", body = ErrorBody),
        (status = 500, description = "`stored_report_unreadable`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody),
    )
)]
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

/// `GET /api/orgs/{org}/verification`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct Verification {
    org: String,
    /// `pending`, `pass`, `fail` or `inconclusive`.
    verdict: String,
    /// Why the report judged so (`null` while pending).
    reason: Option<String>,
    /// When the flip happened (RFC 3339).
    flip_at: String,
    /// While pending: when the report is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    due: Option<String>,
    /// The report's URL (written once due).
    report: String,
}

/// The current verdict for one org's latest flip, for a rollout controller to gate on:
/// `pending` while its window runs, then the report's `pass`, `fail` or `inconclusive`.
#[utoipa::path(
    get,
    path = "/api/orgs/{org}/verification",
    tag = "reports",
    params(("org" = String, Path, description = "The org id")),
    security((), ("api_token" = [])),
    responses(
        (status = 200, description = "The verdict on the org's latest flip", body = Verification),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 404, description = "`no_store_configured`, `no_flip_detected`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody),
    )
)]
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
            Ok(Json(Verification {
                report: format!("/api/reports/{}.json", p.id),
                org,
                verdict: "pending".into(),
                reason: None,
                flip_at: p.flip_at,
                due: Some(p.due),
            })
            .into_response())
        }
        (_, Some(r)) => {
            let reason = serde_json::from_str::<serde_json::Value>(&r.json)
                .ok()
                .and_then(|v| v["reason"].as_str().map(str::to_owned));
            Ok(Json(Verification {
                org,
                verdict: r.verdict,
                reason,
                flip_at: r.flip_at.to_rfc3339(),
                due: None,
                report: format!("/api/reports/{}.json", r.id),
            })
            .into_response())
        }
        _ => Err(ApiError::NoFlipDetected),
    }
}
