//! What `GET /api/orgs` shows for each org: its flag as the resolver reads it, the go share
//! actually dispatched over the last hour, and its last flip. Pure: the dispatch counts are
//! kept in one-minute buckets by receive time, bounded in orgs.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::flags::{FlagBook, Flip, FlipCause};
use crate::event::{Runner, Timestamp};

const MINUTE_MS: i64 = 60_000;
const WINDOW_MINUTES: i64 = 60;

/// Dispatches per org and runner over the last hour (by the sidecar's clock).
#[derive(Debug)]
pub struct DispatchShare {
    /// Per org: (minute, [go, ts, other]), oldest first.
    orgs: BTreeMap<String, VecDeque<(i64, [u64; 3])>>,
    cap: usize,
}

impl DispatchShare {
    pub fn new(cap: usize) -> DispatchShare {
        DispatchShare {
            orgs: BTreeMap::new(),
            cap,
        }
    }

    pub fn add(&mut self, org: &str, runner: Runner, now: Timestamp) {
        let minute = now.millis().div_euclid(MINUTE_MS);
        if !self.orgs.contains_key(org) && self.orgs.len() >= self.cap {
            return;
        }
        let buckets = self.orgs.entry(org.to_owned()).or_default();
        match buckets.back_mut() {
            Some((m, counts)) if *m == minute => counts[runner.index()] += 1,
            _ => {
                let mut counts = [0; 3];
                counts[runner.index()] = 1;
                buckets.push_back((minute, counts));
            }
        }
        while buckets
            .front()
            .is_some_and(|(m, _)| *m <= minute - WINDOW_MINUTES)
        {
            buckets.pop_front();
        }
    }

    /// [go, ts, other] dispatched in the hour up to `now`.
    pub fn last_hour(&self, org: &str, now: Timestamp) -> [u64; 3] {
        let minute = now.millis().div_euclid(MINUTE_MS);
        let mut total = [0; 3];
        for (m, counts) in self.orgs.get(org).into_iter().flatten() {
            if *m > minute - WINDOW_MINUTES && *m <= minute {
                for (t, c) in total.iter_mut().zip(counts) {
                    *t += c;
                }
            }
        }
        total
    }

    pub fn orgs(&self) -> impl Iterator<Item = &str> {
        self.orgs.keys().map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Dispatched {
    pub go: u64,
    pub ts: u64,
    pub other: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FlipView {
    pub from: &'static str,
    pub to: &'static str,
    pub at: String,
    pub observed_at: String,
    pub cause: FlipCause,
}

impl FlipView {
    fn of(f: &Flip) -> FlipView {
        FlipView {
            from: f.from.as_str(),
            to: f.to.as_str(),
            at: f.at.to_rfc3339(),
            observed_at: f.observed_at.to_rfc3339(),
            cause: f.cause,
        }
    }
}

/// One org in `GET /api/orgs`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OrgView {
    pub org: String,
    pub slug: Option<String>,
    /// `go` or `ts` as the resolver reads the flag now; `null` before the first snapshot.
    pub expected_runner: Option<&'static str>,
    /// The raw value of a malformed `runner_default`.
    pub malformed_flag: Option<String>,
    /// `false` for an org with no row (deleted, or only ever seen in dispatch logs).
    pub present: bool,
    pub flag_updated_at: Option<String>,
    pub dispatched_last_hour: Dispatched,
    /// go / (go + ts + other) over the last hour; `null` with no dispatch.
    pub go_share_last_hour: Option<f64>,
    pub last_flip: Option<FlipView>,
}

/// Every org of the book, then every org seen only in dispatches, by id.
pub fn org_views(book: &FlagBook, share: &DispatchShare, now: Timestamp) -> Vec<OrgView> {
    let known = book.last_observed().is_some();
    let view = |id: &str| {
        let e = book.org(id);
        let [go, ts, other] = share.last_hour(id, now);
        let total = go + ts + other;
        OrgView {
            org: id.to_owned(),
            slug: e.and_then(|e| e.slug.clone()),
            expected_runner: match e {
                Some(e) => Some(e.flag.expected.as_str()),
                // no row: the resolver says ts
                None => known.then_some(Runner::Ts.as_str()),
            },
            malformed_flag: e.and_then(|e| e.flag.malformed.clone()),
            present: e.is_some_and(|e| e.present),
            flag_updated_at: e.and_then(|e| e.updated_at).map(Timestamp::to_rfc3339),
            dispatched_last_hour: Dispatched { go, ts, other },
            go_share_last_hour: (total > 0).then(|| go as f64 / total as f64),
            last_flip: book.last_flip(id).map(FlipView::of),
        }
    };
    let mut out: Vec<OrgView> = book.orgs().map(|e| view(&e.id)).collect();
    out.extend(share.orgs().filter(|o| book.org(o).is_none()).map(view));
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::platform::flags::{FlagSnapshot, OrgFlag, resolve};

    const T0: i64 = 1_795_428_000_000;

    #[test]
    fn share_over_the_last_hour_and_the_last_flip() {
        let mut book = FlagBook::new();
        let org = |v: serde_json::Value, u: i64| OrgFlag {
            id: "o1".into(),
            slug: Some("acme".into()),
            flag: resolve(Some(&json!({ "runner_default": v })), "runner_default"),
            updated_at: Some(Timestamp(u)),
        };
        book.apply(&FlagSnapshot {
            observed_at: Timestamp(T0),
            orgs: vec![org(json!("ts"), T0 - 1000)],
        });
        book.apply(&FlagSnapshot {
            observed_at: Timestamp(T0 + 10_000),
            orgs: vec![org(json!("go"), T0 + 5000)],
        });
        let mut share = DispatchShare::new(10);
        share.add("o1", Runner::Ts, Timestamp(T0 - 2 * 3_600_000)); // too old
        share.add("o1", Runner::Ts, Timestamp(T0));
        for _ in 0..3 {
            share.add("o1", Runner::Go, Timestamp(T0 + 60_000));
        }
        share.add("o_logs_only", Runner::Go, Timestamp(T0));
        let v = org_views(&book, &share, Timestamp(T0 + 120_000));
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].expected_runner, Some("go"));
        assert_eq!(v[0].go_share_last_hour, Some(0.75));
        assert_eq!(
            serde_json::to_value(&v[0].last_flip).unwrap(),
            json!({"from": "ts", "to": "go", "at": Timestamp(T0 + 5000).to_rfc3339(),
                   "observed_at": Timestamp(T0 + 10_000).to_rfc3339(), "cause": "flag"})
        );
        assert_eq!(
            (v[1].org.as_str(), v[1].expected_runner, v[1].present),
            ("o_logs_only", Some("ts"), false)
        );
        let later = org_views(&book, &share, Timestamp(T0 + 2 * 3_600_000));
        assert_eq!(later[0].go_share_last_hour, None, "the hour has passed");
    }
}
