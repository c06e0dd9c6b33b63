//! Lines in over HTTP: `POST /ingest/ndjson` (bearer token) and the Vercel log drain
//! (`POST /ingest/vercel`, HMAC-signed; `GET` is Vercel's endpoint check). Each body becomes
//! one `Batch`, answered 2xx only once the actor has recorded it.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::oneshot;

use super::extract::Query;
use super::{ApiError, AppState, ErrorBody, body};
use crate::event::Runner;
use crate::sources::batch::BatchResult;
use crate::sources::batch::{Batch, LineBuf};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct IngestQuery {
    /// The runtime of lines that name none: `go` or `ts`.
    // Read as text so that another value gets 400 `invalid_runtime`.
    #[param(value_type = Option<DefaultRuntime>, inline)]
    runtime: Option<String>,
}

/// The values `?runtime=` takes, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // only documents the parameter, which is read as text
pub(super) enum DefaultRuntime {
    Go,
    Ts,
}

/// The drain body as the OpenAPI document describes it: a JSON array of entries or one entry
/// (an object). Entries are objects; one that is not is counted (rejected or ignored) and the
/// rest of the batch kept. NDJSON is accepted as well, which one JSON schema cannot say.
pub(super) struct DrainBody;

impl utoipa::PartialSchema for DrainBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Array, Type::Object]))
            .description(Some(
                "A JSON array of log entries (objects; any other value in it is counted and \
                 skipped), or a single entry. NDJSON, one entry per line, is read too. Anything \
                 else (`null`, a string, a number, not JSON) is refused: 400 `not_json`.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for DrainBody {}

/// The NDJSON body as the OpenAPI document describes it (`application/x-ndjson`): the lines
/// as an array, each one JSON object.
pub(super) struct NdjsonBody;

impl utoipa::PartialSchema for NdjsonBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::Object))
            .description(Some(
                "Log lines, one JSON object per line (the array's items are the lines). A \
                 line that is not an object is counted (rejected or ignored) and the others \
                 kept; a body none of whose lines is an object is refused: 400 `not_json`.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for NdjsonBody {}

/// The body as sent and then decoded: within the limits, gzip inflated off the async threads.
async fn decoded(s: &AppState, headers: &HeaderMap, raw: &Bytes) -> Result<Bytes, ApiError> {
    if !body::is_gzip(headers)? {
        return Ok(raw.clone());
    }
    let raw = raw.clone();
    let limit = s.http.max_decoded_bytes;
    tokio::task::spawn_blocking(move || body::gunzip(&raw, limit))
        .await
        .map_err(|_| ApiError::BodyUnreadable)?
        .map(Bytes::from)
}

/// Log lines, one JSON object per line (gzip allowed); answered once they are recorded.
#[utoipa::path(
    post,
    path = "/ingest/ndjson",
    tag = "ingest",
    params(IngestQuery),
    request_body(content = NdjsonBody, content_type = "application/x-ndjson",
        description = "NDJSON, one log line per line (any content type is read as such); \
            `Content-Encoding: gzip` is decoded (an empty body is an empty batch)"),
    security(("ingest_token" = [])),
    responses(
        (status = 200, description = "What became of the lines", body = BatchResult),
        (status = 400, description = "`invalid_runtime`, `invalid_query`, `not_json`, `invalid_gzip`, \
            `body_unreadable`", body = ErrorBody),
        (status = 401, description = "`invalid_token` (also while no token is configured)",
            body = ErrorBody),
        (status = 413, description = "`body_too_large`, `decoded_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_encoding`", body = ErrorBody),
        (status = 503, description = "`store_unavailable` (retry), `recovering` (retry), \
            `shutting_down`", body = ErrorBody),
    )
)]
pub(super) async fn ndjson(
    State(s): State<AppState>,
    Query(q): Query<IngestQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let authorized = s
        .ingest_token
        .as_deref()
        .is_some_and(|want| super::auth::bearer_is(&headers, want));
    if !authorized {
        return Err(ApiError::InvalidToken);
    }
    let default_runtime = match q.runtime.as_deref() {
        None => None,
        Some("go") => Some(Runner::Go),
        Some("ts") => Some(Runner::Ts),
        Some(_) => return Err(ApiError::InvalidRuntime),
    };
    // The token is checked before the body is read: an unknown client cannot make serve
    // buffer anything.
    let body = body::read(body, s.http.max_body_bytes).await?;
    let body = decoded(&s, &headers, &body).await?;
    let lines: LineBuf = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .collect();
    // Malformed lines among good ones are counted (rejected or ignored) and the rest kept;
    // a body with no JSON object on any line is no NDJSON at all.
    if !lines.is_empty() && !crate::parse::drain::is_entries(&body) {
        return Err(ApiError::NotJson);
    }
    record(&s, Batch::new("ndjson", default_runtime, lines)).await
}

fn verified(code: &str) -> Result<Response, ApiError> {
    match axum::http::HeaderValue::from_str(code) {
        Ok(v) => Ok((StatusCode::OK, [("x-vercel-verify", v)], "ok\n").into_response()),
        Err(_) => Err(ApiError::BadVerifyCode),
    }
}

/// Vercel's endpoint check: answers with the verification code in `x-vercel-verify`.
#[utoipa::path(
    get,
    path = "/ingest/vercel",
    tag = "ingest",
    responses(
        (status = 200, description = "The drain is configured", body = String,
            content_type = "text/plain; charset=utf-8",
            headers(("x-vercel-verify" = String, description = "The verification code"))),
        (status = 404, description = "`drain_not_configured`", body = ErrorBody),
        (status = 500, description = "`bad_verify_code`", body = ErrorBody),
    )
)]
pub(super) async fn vercel_probe(State(s): State<AppState>) -> Result<Response, ApiError> {
    match &s.vercel {
        Some(v) => verified(&v.verify_code),
        None => Err(ApiError::DrainNotConfigured),
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

/// The drain. The signature is checked over the body as sent; for a gzip body, a signature
/// over the decoded body is accepted as well (either needs the secret).
#[utoipa::path(
    post,
    path = "/ingest/vercel",
    tag = "ingest",
    params(("x-vercel-signature" = Option<String>, Header,
        description = "Hex HMAC-SHA1 of the body with the drain secret")),
    request_body(content = DrainBody, content_type = "application/json",
        description = "A Vercel log drain body: a JSON array of entries, one entry, or NDJSON; \
            `Content-Encoding: gzip` is decoded (unsigned, an empty body, `[]` or `{}` is \
            Vercel's endpoint check)"),
    responses(
        (status = 200, description = "What became of the entries (or, for Vercel's unsigned \
            endpoint check, `ok` with `x-vercel-verify`)", content(
            (BatchResult = "application/json"),
            (String = "text/plain; charset=utf-8"),
        )),
        (status = 400, description = "`not_json`, `invalid_gzip`, `body_unreadable`",
            body = ErrorBody),
        (status = 403, description = "`invalid_signature`", body = ErrorBody),
        (status = 404, description = "`drain_not_configured`", body = ErrorBody),
        (status = 413, description = "`body_too_large`, `decoded_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_encoding`", body = ErrorBody),
        (status = 500, description = "`bad_verify_code`", body = ErrorBody),
        (status = 503, description = "`store_unavailable` (retry), `recovering` (retry), \
            `shutting_down`", body = ErrorBody),
    )
)]
pub(super) async fn vercel(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Some(drain) = &s.vercel else {
        return Err(ApiError::DrainNotConfigured);
    };
    let raw = body::read(body, s.http.max_body_bytes).await?;
    let signature = headers
        .get("x-vercel-signature")
        .and_then(|v| v.to_str().ok());
    let signed_raw = signed(&drain.secret, &raw, signature);
    if !signed_raw && signature.is_none() && crate::parse::drain::is_verification_probe(&raw) {
        // Vercel's endpoint check is unsigned and carries no entries.
        return verified(&drain.verify_code);
    }
    if !signed_raw && signature.is_none() {
        return Err(ApiError::InvalidSignature);
    }
    // Unsigned clients learn nothing about encodings: the encoding is looked at only once a
    // signature is present.
    let body = decoded(&s, &headers, &raw).await?;
    if !signed_raw && !signed(&drain.secret, &body, signature) {
        return Err(ApiError::InvalidSignature);
    }
    let entries = crate::parse::drain::entries(&body).map_err(|_| ApiError::NotJson)?;
    let bytes = entries.iter().map(|e| e.json.len()).sum();
    let mut batch = Batch::new("vercel", None, LineBuf::with_capacity(entries.len(), bytes));
    for e in entries {
        batch.lines.push(e.json);
        batch.entry_ids.push(e.id);
    }
    record(&s, batch).await
}

/// Hands a batch to the actor and answers 2xx only once it has recorded the lines.
async fn record(s: &AppState, mut batch: Batch) -> Result<Response, ApiError> {
    // The actor takes no batch until the store is replayed: refused at once (the sender
    // retries) rather than held past the request timeout.
    if s.recovering() {
        return Err(ApiError::Recovering);
    }
    let (done, recorded) = oneshot::channel();
    batch.done = Some(done);
    if s.batches.send(batch).await.is_err() {
        return Err(ApiError::ShuttingDown);
    }
    match recorded.await {
        Ok(Ok(result)) => Ok(Json(result).into_response()),
        // Not recorded durably: the sender must retry (Vercel does).
        Ok(Err(_)) => Err(ApiError::StoreUnavailable),
        Err(_) => Err(ApiError::ShuttingDown),
    }
}
