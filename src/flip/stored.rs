//! Flip evidence from `serve`'s store: the accepted lines it keeps, re-parsed exactly as at
//! ingest (same parser, the source's default runtime, the receive time for lines without
//! one), so a report from the store is the report the log files would give.

use super::{EvidenceBuilder, FlipEvidence, SourceEvidence};
use crate::event::Origin;
use crate::parse::{LineContext, Parsed, Parser};
use crate::store::{Store, StoreError};

/// The evidence about `org` in everything `store` holds.
pub async fn read(store: &Store, parser: &Parser, org: &str) -> Result<FlipEvidence, StoreError> {
    let lines = store.lines().await?;
    let mut names: Vec<(String, Option<crate::event::Runner>)> = Vec::new();
    for l in &lines {
        if !names.iter().any(|(n, _)| *n == l.source) {
            names.push((l.source.clone(), l.default_runtime));
        }
    }
    let sources = names
        .iter()
        .map(|(name, rt)| SourceEvidence {
            default_runtime: *rt,
            // A source with a default runtime is a worker log; the dispatcher's has none.
            ..SourceEvidence::new(
                name.clone(),
                if rt.is_some() { "claims" } else { "dispatch" },
            )
        })
        .collect();
    let mut builder = EvidenceBuilder::new(org, sources);
    for l in &lines {
        let input = names.iter().position(|(n, _)| *n == l.source).unwrap_or(0);
        let input = u16::try_from(input).unwrap_or(u16::MAX);
        if let Some(s) = builder.source_mut(input) {
            s.lines += 1;
        }
        let ctx = LineContext {
            default_runtime: l.default_runtime,
            received_at: Some(l.received_at),
        };
        match parser.parse_line(&l.raw, &ctx) {
            Parsed::Event(ev) => builder.event(
                &ev,
                Origin {
                    input,
                    line: l.line,
                },
            ),
            Parsed::Rejected(_) => {
                if let Some(s) = builder.source_mut(input) {
                    s.rejected += 1;
                }
            }
            Parsed::Ignored => {}
        }
    }
    Ok(builder.finish())
}
