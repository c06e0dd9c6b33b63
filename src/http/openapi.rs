//! The API contract: an OpenAPI 3.1 document generated from the handlers' `#[utoipa::path]`
//! annotations and their reply types' `ToSchema`, served at `GET /api/openapi.json` and
//! checked in as `docs/openapi.json` (a test keeps the two equal: regenerate with
//! `UPDATE_OPENAPI=1 cargo nextest run -E 'test(/openapi/)'`).

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{ApiError, ErrorBody};

/// `GET /healthz`: 200 while the process serves.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "probes",
    responses((status = 200, description = "Serving", body = String, content_type = "text/plain; charset=utf-8"))
)]
#[allow(dead_code)] // documents the closure `router` routes `/healthz` to
fn healthz() {}

/// `GET /`: the status page (HTML).
#[utoipa::path(
    get,
    path = "/",
    tag = "api",
    security((), ("api_token" = [])),
    responses(
        (status = 200, description = "The status page", body = String,
            content_type = "text/html; charset=utf-8"),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
    )
)]
#[allow(dead_code)] // documents `page::status_page`, which another module owns
fn status_page() {}

/// `GET /api/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "api",
    security((), ("api_token" = [])),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object),
        (status = 401, description = "`invalid_token`", body = ErrorBody),
    )
)]
pub(super) async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(document())
}

/// The bearer tokens (`--metrics-token`, `--api-token`, `--ingest-token`).
struct Tokens;

impl Modify for Tokens {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        for name in ["metrics_token", "api_token", "ingest_token"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "claimcheck serve",
        description = "The HTTP interface of `claimcheck serve`: probes, Prometheus metrics, \
            the query API, post-flip reports and log ingest. Every refusal is a JSON \
            `ErrorBody` whose `code` is stable. `/metrics` and the API take a bearer token \
            when serve is given one (open otherwise); `/ingest/ndjson` always needs its token; \
            the Vercel drain is signed.",
        license(name = "MIT"),
    ),
    paths(
        healthz,
        super::api::readyz,
        super::api::metrics,
        status_page,
        openapi_json,
        super::api::summary,
        super::api::session,
        super::api::findings,
        super::api::orgs,
        super::reports::reports,
        super::reports::report,
        super::reports::verification,
        super::ingest::ndjson,
        super::ingest::vercel_probe,
        super::ingest::vercel,
    ),
    components(schemas(ErrorBody, ApiError)),
    modifiers(&Tokens),
    tags(
        (name = "probes", description = "Liveness, readiness and metrics"),
        (name = "api", description = "Queries (`--api-token`)"),
        (name = "reports", description = "Post-flip reports and verdicts (need a store)"),
        (name = "ingest", description = "Log lines in"),
    )
)]
struct ApiDoc;

/// The document, as served and checked in.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as the checked-in file holds it: pretty JSON and a final newline.
pub fn document_text() -> String {
    let mut text = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");

    /// `docs/openapi.json` is what the code generates. After changing a handler or a reply
    /// type: `UPDATE_OPENAPI=1 cargo nextest run -E 'test(/openapi/)'`, and commit the file.
    #[test]
    fn the_checked_in_document_is_the_generated_one() {
        let generated = document_text();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(CHECKED_IN, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
        assert!(
            checked_in == generated,
            "docs/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo nextest run -E \
             'test(/openapi/)'` and commit it"
        );
        let v: serde_json::Value = serde_json::from_str(&generated).unwrap();
        assert_eq!(v["openapi"], "3.1.0");
    }

    /// Every route of `router` is in the document, and nothing else: read from the router's
    /// source, so a new route without an annotation fails here.
    #[test]
    fn every_route_is_documented() {
        let source = include_str!("mod.rs");
        let routed: BTreeSet<String> = source
            .match_indices(".route(")
            .filter_map(|(at, m)| {
                let rest = source[at + m.len()..].trim_start().strip_prefix('"')?;
                rest.split_once('"').map(|(path, _)| path.to_owned())
            })
            .collect();
        let doc = document();
        let documented: BTreeSet<String> = doc.paths.paths.keys().cloned().collect();
        assert_eq!(routed, documented);
        // every operation but the probes and the drain states its auth, and every one
        // documents its error body
        for (path, item) in &doc.paths.paths {
            let ops = [&item.get, &item.post];
            for op in ops.into_iter().flatten() {
                let refusals = op
                    .responses
                    .responses
                    .keys()
                    .filter(|s| !s.starts_with('2'))
                    .count();
                let probe = path == "/healthz" || path == "/readyz";
                assert!(probe || refusals > 0, "{path}: no error response");
            }
        }
    }
}
