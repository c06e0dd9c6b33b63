//! Flip evidence from `serve`'s store: its lines re-parsed as at ingest (`replay`), so a report
//! from the store is the report the log files would give.

use super::{EvidenceBuilder, FlipEvidence, SourceEvidence};
use crate::parse::{Parsed, Parser};
use crate::store::{Store, StoreError};

/// The evidence about `org` in everything `store` holds.
pub async fn read(store: &Store, parser: &Parser, org: &str) -> Result<FlipEvidence, StoreError> {
    let mut builder = EvidenceBuilder::new(org, Vec::new());
    crate::replay::each(store, parser, |parsed, origin, source| {
        if builder.source_mut(origin.input).is_none() {
            // Sources are numbered by first appearance: this is the next one.
            let role = if source.default_runtime.is_some() {
                "claims" // a worker log; the dispatcher's names no default runtime
            } else {
                "dispatch"
            };
            builder.add_source(SourceEvidence {
                default_runtime: source.default_runtime,
                ..SourceEvidence::new(source.name.clone(), role)
            });
        }
        if let Some(s) = builder.source_mut(origin.input) {
            s.lines += 1;
            if let Parsed::Rejected(r) = parsed {
                s.rejected += 1;
                *s.rejected_by.entry(r.as_str().to_owned()).or_default() += 1;
            }
        }
        if let Parsed::Event(ev) = parsed {
            builder.event(&ev, origin);
        }
    })
    .await?;
    Ok(builder.finish())
}
