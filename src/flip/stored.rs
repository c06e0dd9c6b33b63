//! Flip evidence from `serve`'s store: its lines re-parsed as at ingest (`replay`), so a report
//! from the store is the report the log files would give.

use super::{EvidenceBuilder, FlipEvidence, SourceEvidence};
use crate::event::SessionId;
use crate::parse::{Parsed, Parser};
use crate::store::{Store, StoreError};

/// The evidence about `org` in everything `store` holds.
pub async fn read(store: &Store, parser: &Parser, org: &str) -> Result<FlipEvidence, StoreError> {
    read_into(store, parser, EvidenceBuilder::new(org, Vec::new())).await
}

/// This replica's share of the evidence about `org` (`serve --cluster`): its own sources'
/// lines, the org's dispatches among them, every heartbeat, and the claims, completions and
/// releases of the org's sessions — those its outcome rows name (every replica's, from the
/// shared state's feed) as well as those its own dispatches do.
pub async fn read_share(
    store: &Store,
    parser: &Parser,
    org: &str,
) -> Result<FlipEvidence, StoreError> {
    let sessions = store
        .sessions_of(org)
        .await?
        .into_iter()
        .filter_map(|s| SessionId::new(&s));
    read_into(
        store,
        parser,
        EvidenceBuilder::knowing(org, Vec::new(), sessions),
    )
    .await
}

async fn read_into(
    store: &Store,
    parser: &Parser,
    mut builder: EvidenceBuilder,
) -> Result<FlipEvidence, StoreError> {
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
