//! Queries and probes: `/metrics`, `/readyz`, `/api/summary`, `/api/sessions/{id}`,
//! `/api/findings`, `/api/orgs`. Answers come from the actor's published summary or from a
//! query sent to it; nothing here holds state.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::oneshot;

use super::extract::{Path, Query};
use super::{ApiError, AppState, ErrorBody};
use crate::serve::Lookup;

/// Prometheus metrics, in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "probes",
    security((), ("metrics_token" = [])),
    responses(
        (status = 200, description = "Every metric", body = String,
            content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "`invalid_token`: `--metrics-token` is set and the request \
            does not carry it", body = ErrorBody),
    )
)]
pub(super) async fn metrics(State(s): State<AppState>) -> Response {
    let mut body = String::new();
    match prometheus::TextEncoder::new().encode_utf8(&s.registry.gather(), &mut body) {
        Ok(()) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// What `/readyz` shows: why it is not ready, each platform dependency, the store and its
/// replay.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct Ready {
    /// `recovering` while the store is replayed after a start.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(flatten)]
    platform: Option<crate::platform::Readiness>,
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<crate::serve::store_health::StoreState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery: Option<crate::serve::recovery::RecoveryState>,
    /// The shared correlation state (`serve --cluster`).
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<crate::serve::cluster::ClusterState>,
}

/// Ready when the store has been replayed and takes commits, the shared correlation state
/// (`serve --cluster`) answers, and every configured platform dependency is up; `/healthz` stays green meanwhile (the platform's absence only delays its
/// findings; the store's holds ingestion back, unacknowledged, until it is back; the replay
/// holds back ingestion and the totals).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "probes",
    responses(
        (status = 200, description = "Ready: `ready` with neither a store nor a platform \
            configured, else each dependency's state", content(
            (String = "text/plain"),
            (Ready = "application/json"),
        )),
        (status = 503, description = "Still replaying the store (`reason: recovering`), or \
            the store, the shared correlation state or a configured dependency is down", body = Ready),
    )
)]
pub(super) async fn readyz(State(s): State<AppState>) -> Response {
    if s.readiness.is_none()
        && s.store_health.is_none()
        && s.recovery.is_none()
        && s.cluster.is_none()
    {
        return "ready\n".into_response();
    }
    let recovery = s.recovery.as_ref().map(|r| r.borrow().clone());
    let recovering = recovery.as_ref().is_some_and(|r| r.recovering);
    let r = Ready {
        reason: recovering.then_some("recovering"),
        platform: s.readiness.as_ref().map(|r| r.borrow().clone()),
        store: s.store_health.as_ref().map(|h| h.borrow().clone()),
        recovery,
        cluster: s.cluster.as_ref().map(|c| c.borrow().clone()),
    };
    let ready = !recovering
        && r.platform.as_ref().is_none_or(|p| p.ready())
        && r.store.as_ref().is_none_or(|s| s.up)
        && r.cluster.as_ref().is_none_or(|c| c.up);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(r)).into_response()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SummaryQuery {
    /// Only this org's dispatches (judged again from the store).
    org: Option<String>,
    /// Dispatched at or after (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Dispatched before (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
}

/// Filtered summaries that may run at once (each is one indexed SQL aggregate).
pub const SUMMARY_SLOTS: usize = 4;

/// A filtered summary that takes longer than this is abandoned (503 `store_unavailable`).
const SUMMARY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// The durable totals; with `org`, `since` or `until` (RFC 3339, on dispatch time), SQL
/// aggregates over the store's per-session outcome rows for those dispatches: bounded in time
/// and memory whatever the store holds, at most `SUMMARY_SLOTS` at once (beyond: 429
/// `summary_busy`).
#[utoipa::path(
    get,
    path = "/api/summary",
    tag = "api",
    params(SummaryQuery),
    security((), ("api_token" = [])),
    responses(
        (status = 200, description = "Session totals, in `verify`'s `totals` shape",
            body = crate::report::Totals),
        (status = 400, description = "`invalid_time`, `filters_need_a_store`, `invalid_query`",
            body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 429, description = "`summary_busy`: too many filtered summaries at once",
            body = ErrorBody),
        (status = 503, description = "`store_unavailable`, `recovering` (unfiltered, while \
            the store is replayed after a start), `shutting_down`", body = ErrorBody),
    )
)]
pub(super) async fn summary(
    State(s): State<AppState>,
    Query(q): Query<SummaryQuery>,
) -> Result<Response, ApiError> {
    if q.org.is_none() && q.since.is_none() && q.until.is_none() {
        // Half a replay is not a total: nothing until the store is replayed.
        if s.recovering() {
            return Err(ApiError::Recovering);
        }
        return Ok(Json(s.summary.borrow().clone()).into_response());
    }
    let time = |v: &Option<String>| match v.as_deref().map(crate::parse::time::parse_rfc3339) {
        None => Ok(None),
        Some(Some(t)) => Ok(Some(t)),
        Some(None) => Err(ApiError::InvalidTime),
    };
    let (since, until) = (time(&q.since)?, time(&q.until)?);
    let Some(store) = s.store.clone() else {
        return Err(ApiError::FiltersNeedAStore);
    };
    let Ok(_slot) = s.summary_slots.clone().try_acquire_owned() else {
        return Err(ApiError::SummaryBusy);
    };
    let filter = crate::store::OutcomeFilter {
        org: q.org,
        since,
        until,
    };
    match tokio::time::timeout(SUMMARY_DEADLINE, store.summary(&filter)).await {
        Ok(Ok(totals)) => Ok(Json(totals).into_response()),
        Ok(Err(_)) | Err(_) => Err(ApiError::StoreUnavailable),
    }
}

/// Everything known about one session: its events with their `source:line`, outcome,
/// deadline and latency.
#[utoipa::path(
    get,
    path = "/api/sessions/{id}",
    tag = "api",
    params(("id" = String, Path, description = "The session id")),
    security((), ("api_token" = [])),
    responses(
        (status = 200, description = "The session", body = crate::serve::SessionView),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 404, description = "`unknown_session`", body = ErrorBody),
        (status = 503, description = "`shutting_down`", body = ErrorBody),
    )
)]
pub(super) async fn session(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(id) = crate::event::SessionId::new(&id) else {
        return Err(ApiError::UnknownSession);
    };
    let (reply, answer) = oneshot::channel();
    if s.queries.send(Lookup::Session(id, reply)).await.is_err() {
        return Err(ApiError::ShuttingDown);
    }
    match answer.await {
        Ok(Some(view)) => Ok(Json(view).into_response()),
        Ok(None) => Err(ApiError::UnknownSession),
        Err(_) => Err(ApiError::ShuttingDown),
    }
}

/// Each org's flag, go share over the last hour and last flip (needs the platform).
#[utoipa::path(
    get,
    path = "/api/orgs",
    tag = "api",
    security((), ("api_token" = [])),
    responses(
        (status = 200, description = "Every org", body = Vec<crate::platform::OrgView>),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 404, description = "`no_platform_configured`", body = ErrorBody),
        (status = 503, description = "`shutting_down`", body = ErrorBody),
    )
)]
pub(super) async fn orgs(State(s): State<AppState>) -> Result<Response, ApiError> {
    let (reply, answer) = oneshot::channel();
    if s.queries.send(Lookup::Orgs(reply)).await.is_err() {
        return Err(ApiError::ShuttingDown);
    }
    match answer.await {
        Ok(Some(orgs)) => Ok(Json(orgs).into_response()),
        Ok(None) => Err(ApiError::NoPlatformConfigured),
        Err(_) => Err(ApiError::ShuttingDown),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct FindingsQuery {
    /// Only findings of this kind (`late`, `mismatched`, `unclaimed`, `duplicate_claim`,
    /// `duplicate_claim_cross_runtime`, `orphan_claim`, `flip`, `flag_drift`,
    /// `malformed_flag`, `missing_from_logs`); any other value is a 400 `unknown_kind`.
    #[param(value_type = Option<crate::event::FindingKind>)]
    kind: Option<String>,
    /// Only findings about this org.
    org: Option<String>,
    /// Only findings found at or after (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only findings found before (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// The `next_cursor` of the previous page: only findings after it (opaque; anything
    /// else is a 400 `invalid_cursor`).
    #[param(pattern = "^[0-7]?[0-9a-f]{1,15}-[0-7]?[0-9a-f]{1,15}$")]
    cursor: Option<String>,
    /// Findings per page, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// Findings per page unless `limit` says otherwise, and at most.
pub const FINDINGS_LIMIT: (u32, u32) = (100, 1000);

/// A page of findings that takes longer than this is abandoned (503 `store_unavailable`).
const FINDINGS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

impl FindingsQuery {
    fn filter(self) -> Result<crate::store::FindingFilter, ApiError> {
        let kind = match self.kind.as_deref() {
            None => None,
            Some(k) => Some(crate::event::FindingKind::from_name(k).ok_or(ApiError::UnknownKind)?),
        };
        let time = |v: Option<&str>, bad: ApiError| match v.map(crate::parse::time::parse_rfc3339) {
            None => Ok(None),
            Some(Some(t)) => Ok(Some(t)),
            Some(None) => Err(bad),
        };
        let since = time(self.since.as_deref(), ApiError::InvalidSince)?;
        let until = time(self.until.as_deref(), ApiError::InvalidTime)?;
        let after = match self.cursor.as_deref() {
            None => None,
            Some(c) => Some(crate::store::FindingCursor::decode(c).ok_or(ApiError::InvalidCursor)?),
        };
        let limit = match self.limit.as_deref() {
            None => FINDINGS_LIMIT.0,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=FINDINGS_LIMIT.1).contains(n))
                .ok_or(ApiError::InvalidLimit)?,
        };
        Ok(crate::store::FindingFilter {
            kind,
            org: self.org,
            since,
            until,
            after,
            limit,
            newest_first: false,
        })
    }
}

/// One page of findings, oldest first, from the store (every finding of the retention, each
/// written in the commit of the evidence that caused it); without a store, from the latest
/// 1000 kept in memory. Paged on (found at, id) with an opaque cursor: findings found while a
/// client pages come after the pages it has read, none twice and none skipped.
#[utoipa::path(
    get,
    path = "/api/findings",
    tag = "api",
    params(FindingsQuery),
    security((), ("api_token" = [])),
    responses(
        (status = 200, description = "A page of findings, oldest first",
            body = crate::serve::FindingsPage),
        (status = 400, description = "`unknown_kind`, `invalid_since`, `invalid_time` (until), \
            `invalid_cursor`, `invalid_limit`, `invalid_query`", body = ErrorBody),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`, `shutting_down`", body = ErrorBody),
    )
)]
pub(super) async fn findings(
    State(s): State<AppState>,
    Query(q): Query<FindingsQuery>,
) -> Result<Response, ApiError> {
    let filter = q.filter()?;
    let page = find(&s, &filter).await?;
    Ok(Json(crate::serve::FindingsPage::new(page, filter.after)).into_response())
}

/// A page of findings: from the store when there is one, else from the actor's memory.
pub(super) async fn find(
    s: &AppState,
    filter: &crate::store::FindingFilter,
) -> Result<crate::store::FindingPage, ApiError> {
    if let Some(store) = &s.store {
        return match tokio::time::timeout(FINDINGS_DEADLINE, store.findings(filter)).await {
            Ok(Ok(page)) => Ok(page),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "findings query failed");
                Err(ApiError::StoreUnavailable)
            }
            Err(_) => Err(ApiError::StoreUnavailable),
        };
    }
    let (reply, answer) = oneshot::channel();
    let ask = Lookup::Findings {
        filter: filter.clone(),
        reply,
    };
    if s.queries.send(ask).await.is_err() {
        return Err(ApiError::ShuttingDown);
    }
    answer.await.map_err(|_| ApiError::ShuttingDown)
}
