//! Extractors whose refusals are this API's JSON refusals ([`ApiError`]) rather than axum's
//! plain-text ones: a query string that does not decode into its parameters (a repeated one,
//! a bad percent-encoding) is 400 `invalid_query`, a path segment that is not UTF-8 is 400
//! `invalid_path` — both in the OpenAPI document like every other refusal.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

/// [`axum::extract::Query`], refused with 400 `invalid_query`.
#[derive(Debug)]
pub(super) struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|_| ApiError::InvalidQuery)
    }
}

/// [`axum::extract::Path`], refused with 400 `invalid_path`.
#[derive(Debug)]
pub(super) struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|_| ApiError::InvalidPath)
    }
}
