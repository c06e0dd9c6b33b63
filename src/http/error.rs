//! `ApiError`: every refusal the HTTP edge gives, each with its status and the stable `code`
//! that clients read from the JSON body (`{"code": "invalid_token"}`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every refusal: `{"code": "invalid_token"}`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ErrorBody {
    pub code: ApiError,
}

/// Why a request was refused. The `code` strings are a contract: clients match on them (the
/// OpenAPI document lists them as the `code` enum of [`ErrorBody`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiError {
    /// `since`/`until` is not RFC 3339.
    #[error("invalid_time")]
    InvalidTime,
    /// `since` on `/api/findings` is not RFC 3339.
    #[error("invalid_since")]
    InvalidSince,
    /// The query string does not decode into the operation's parameters (one given twice,
    /// a bad percent-encoding).
    #[error("invalid_query")]
    InvalidQuery,
    /// A path segment is not UTF-8 once percent-decoded.
    #[error("invalid_path")]
    InvalidPath,
    /// `kind` on `/api/findings` names no finding kind.
    #[error("unknown_kind")]
    UnknownKind,
    /// `cursor` on `/api/findings` is not a cursor this server gave out.
    #[error("invalid_cursor")]
    InvalidCursor,
    /// `?limit=` is not a whole number within its range (`/api/findings`: 1 to 1000).
    #[error("invalid_limit")]
    InvalidLimit,
    /// `?runtime=` names no known runtime.
    #[error("invalid_runtime")]
    InvalidRuntime,
    /// A filtered summary was asked of a serve without a store.
    #[error("filters_need_a_store")]
    FiltersNeedAStore,
    /// Missing or wrong bearer token.
    #[error("invalid_token")]
    InvalidToken,
    /// A drain body whose signature does not match.
    #[error("invalid_signature")]
    InvalidSignature,
    #[error("unknown_session")]
    UnknownSession,
    #[error("no_platform_configured")]
    NoPlatformConfigured,
    #[error("no_store_configured")]
    NoStoreConfigured,
    #[error("no_such_report")]
    NoSuchReport,
    #[error("no_flip_detected")]
    NoFlipDetected,
    #[error("drain_not_configured")]
    DrainNotConfigured,
    /// The store did not answer; the sender retries.
    #[error("store_unavailable")]
    StoreUnavailable,
    /// The actor is gone: serve is stopping.
    #[error("shutting_down")]
    ShuttingDown,
    /// Serve is still replaying its store after a start (`/readyz` says how far); retry.
    #[error("recovering")]
    Recovering,
    /// Too many filtered summaries at once; retry shortly.
    #[error("summary_busy")]
    SummaryBusy,
    #[error("stored_report_unreadable")]
    StoredReportUnreadable,
    /// The configured Vercel verification code is not a valid header value.
    #[error("bad_verify_code")]
    BadVerifyCode,
    /// The body as sent is over `max_body_bytes`.
    #[error("body_too_large")]
    BodyTooLarge,
    /// The gzip body decodes to more than `max_decoded_bytes`.
    #[error("decoded_too_large")]
    DecodedTooLarge,
    /// A `Content-Encoding` other than `gzip` or `identity`.
    #[error("unsupported_encoding")]
    UnsupportedEncoding,
    /// `Content-Encoding: gzip` over bytes that are not gzip.
    #[error("invalid_gzip")]
    InvalidGzip,
    /// Not a JSON array, a JSON object or NDJSON with an object on some line.
    #[error("not_json")]
    NotJson,
    /// No such route.
    #[error("not_found")]
    NotFound,
    /// The body could not be read to its end (the client went away).
    #[error("body_unreadable")]
    BodyUnreadable,
}

impl ApiError {
    pub const ALL: [ApiError; 30] = {
        use ApiError::*;
        [
            InvalidTime,
            InvalidSince,
            InvalidQuery,
            InvalidPath,
            UnknownKind,
            InvalidCursor,
            InvalidLimit,
            InvalidRuntime,
            FiltersNeedAStore,
            InvalidToken,
            InvalidSignature,
            UnknownSession,
            NoPlatformConfigured,
            NoStoreConfigured,
            NoSuchReport,
            NoFlipDetected,
            DrainNotConfigured,
            StoreUnavailable,
            ShuttingDown,
            Recovering,
            SummaryBusy,
            StoredReportUnreadable,
            BadVerifyCode,
            BodyTooLarge,
            DecodedTooLarge,
            UnsupportedEncoding,
            InvalidGzip,
            NotJson,
            NotFound,
            BodyUnreadable,
        ]
    };

    pub fn status(self) -> StatusCode {
        use ApiError::*;
        match self {
            InvalidTime | InvalidSince | InvalidQuery | InvalidPath | UnknownKind
            | InvalidCursor | InvalidLimit | InvalidRuntime | FiltersNeedAStore | InvalidGzip
            | NotJson | BodyUnreadable => StatusCode::BAD_REQUEST,
            BodyTooLarge | DecodedTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            InvalidToken => StatusCode::UNAUTHORIZED,
            InvalidSignature => StatusCode::FORBIDDEN,
            NotFound | UnknownSession | NoPlatformConfigured | NoStoreConfigured | NoSuchReport
            | NoFlipDetected | DrainNotConfigured => StatusCode::NOT_FOUND,
            StoreUnavailable | ShuttingDown | Recovering => StatusCode::SERVICE_UNAVAILABLE,
            SummaryBusy => StatusCode::TOO_MANY_REQUESTS,
            StoredReportUnreadable | BadVerifyCode => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(self) -> &'static str {
        use ApiError::*;
        match self {
            InvalidTime => "invalid_time",
            InvalidSince => "invalid_since",
            InvalidQuery => "invalid_query",
            InvalidPath => "invalid_path",
            UnknownKind => "unknown_kind",
            InvalidCursor => "invalid_cursor",
            InvalidLimit => "invalid_limit",
            InvalidRuntime => "invalid_runtime",
            FiltersNeedAStore => "filters_need_a_store",
            InvalidToken => "invalid_token",
            InvalidSignature => "invalid_signature",
            UnknownSession => "unknown_session",
            NoPlatformConfigured => "no_platform_configured",
            NoStoreConfigured => "no_store_configured",
            NoSuchReport => "no_such_report",
            NoFlipDetected => "no_flip_detected",
            DrainNotConfigured => "drain_not_configured",
            StoreUnavailable => "store_unavailable",
            ShuttingDown => "shutting_down",
            Recovering => "recovering",
            SummaryBusy => "summary_busy",
            StoredReportUnreadable => "stored_report_unreadable",
            BadVerifyCode => "bad_verify_code",
            BodyTooLarge => "body_too_large",
            DecodedTooLarge => "decoded_too_large",
            UnsupportedEncoding => "unsupported_encoding",
            InvalidGzip => "invalid_gzip",
            NotJson => "not_json",
            BodyUnreadable => "body_unreadable",
            NotFound => "not_found",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(ErrorBody { code: self })).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_code() {
        for e in [
            ApiError::InvalidTime,
            ApiError::InvalidToken,
            ApiError::StoreUnavailable,
            ApiError::BadVerifyCode,
        ] {
            assert_eq!(e.to_string(), e.code());
        }
        // the body's code (serde, and so the OpenAPI enum) is `code()`, for every variant
        for e in ApiError::ALL {
            let body = serde_json::to_value(ErrorBody { code: e }).unwrap();
            assert_eq!(body, serde_json::json!({ "code": e.code() }));
        }
        assert_eq!(ApiError::InvalidToken.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(ApiError::InvalidSignature.status(), StatusCode::FORBIDDEN);
    }
}
