//! replay: the events in `serve`'s store, parsed again exactly as at ingest (the same parser,
//! each source's default runtime, the receive time for lines without a time of their own).

use crate::event::{Event, Origin};
use crate::parse::{LineContext, Parsed, Parser};
use crate::store::{Store, StoreError};

/// Every stored event, oldest first, citing its source (by order of first appearance) and line.
pub async fn events(store: &Store, parser: &Parser) -> Result<Vec<(Event, Origin)>, StoreError> {
    let mut sources: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for l in store.lines().await? {
        let input = match sources.iter().position(|s| *s == l.source) {
            Some(i) => i,
            None => {
                sources.push(l.source.clone());
                sources.len() - 1
            }
        };
        let ctx = LineContext {
            default_runtime: l.default_runtime,
            received_at: Some(l.received_at),
        };
        if let Parsed::Event(ev) = parser.parse_line(&l.raw, &ctx) {
            let origin = Origin {
                input: u16::try_from(input).unwrap_or(u16::MAX),
                line: l.line,
            };
            out.push((ev, origin));
        }
    }
    Ok(out)
}
