//! replay: the lines in `serve`'s store, parsed again exactly as at ingest (the same parser,
//! each source's default runtime, the receive time for lines without a time of their own),
//! for post-flip reports made from the store.

use crate::event::{Origin, Runner};
use crate::parse::{LineContext, Parsed, Parser};
use crate::store::{Store, StoreError};

/// A source as the store names it, numbered by first appearance (`Origin::input`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSource {
    pub name: String,
    pub default_runtime: Option<Runner>,
}

/// Parses every stored line, oldest first, handing each result to `visit` with the line's
/// origin and source; returns the sources the origins number.
pub async fn each(
    store: &Store,
    parser: &Parser,
    mut visit: impl FnMut(Parsed, Origin, &StoredSource),
) -> Result<Vec<StoredSource>, StoreError> {
    let mut sources: Vec<StoredSource> = Vec::new();
    for l in store.lines().await? {
        let input = match sources.iter().position(|s| s.name == l.source) {
            Some(i) => i,
            None => {
                sources.push(StoredSource {
                    name: l.source.clone(),
                    default_runtime: l.default_runtime,
                });
                sources.len() - 1
            }
        };
        let ctx = LineContext {
            default_runtime: l.default_runtime,
            received_at: Some(l.received_at),
        };
        let origin = Origin {
            input: u16::try_from(input).unwrap_or(u16::MAX),
            line: l.line,
        };
        visit(parser.parse_line(&l.raw, &ctx), origin, &sources[input]);
    }
    Ok(sources)
}
