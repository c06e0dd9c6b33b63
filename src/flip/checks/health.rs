//! The checks on the evidence's producers rather than on sessions: the new runtime's daemons
//! (heartbeats and versions) and the sources (did each deliver throughout the window).

use std::collections::BTreeMap;

use super::{Ctx, Draft, Judged, MIN_GO_VERSION, duration};
use crate::event::{EventKind, Runner, Timestamp};
use crate::flip::{Check, SourceHealth, Status, version_at_least};

impl Ctx<'_> {
    pub(super) fn daemon(&self, window: &[&Judged]) -> Check {
        let rt = self.flip.to;
        let go = rt == Runner::Go;
        let age = self.p.heartbeat_max_age_ms;
        let title = if go {
            format!(
                "a go daemon at >= 0.5.0 was heartbeating (within {}) throughout the window, \
                 and no older one claimed the org's sessions",
                duration(age)
            )
        } else {
            format!(
                "ts workers were heartbeating (within {}) throughout the window",
                duration(age)
            )
        };
        let mut d = Draft::new("daemon", title);
        let qualifies =
            |v: Option<&str>| !go || v.is_some_and(|v| version_at_least(v, MIN_GO_VERSION));
        let cover_end = self.end.min(self.watermark);
        let from = self.flip.at.saturating_add_ms(-age);
        // Per worker: heartbeats near the window, last version.
        let mut workers: BTreeMap<&str, (u64, Option<&str>, Timestamp)> = BTreeMap::new();
        // Each worker's latest stated version (events come in any order).
        let mut versions: BTreeMap<&str, (Timestamp, &str)> = BTreeMap::new();
        let mut beats: Vec<i64> = Vec::new();
        let mut any = false;
        for (e, _) in &self.ev.events {
            if e.kind != EventKind::Heartbeat || e.runner != rt {
                continue;
            }
            any = true;
            let w = e.worker.as_deref().unwrap_or("-");
            if let Some(v) = e.version.as_deref() {
                let latest = versions.entry(w).or_insert((e.time, v));
                if e.time >= latest.0 {
                    *latest = (e.time, v);
                }
            }
            if e.time < from || e.time > cover_end {
                continue;
            }
            let entry = workers.entry(w).or_insert((0, None, e.time));
            entry.0 += 1;
            if e.time >= entry.2 {
                entry.2 = e.time;
                entry.1 = e.version.as_deref().or(entry.1);
            }
            if qualifies(e.version.as_deref()) {
                beats.push(e.time.millis());
            }
        }
        if !go && !any {
            return d.finish(
                Status::Skipped,
                "ts workers log no heartbeats in the evidence".into(),
                self.p.max_listed,
            );
        }
        if cover_end <= self.flip.at {
            return d.finish(
                Status::Unknown,
                "the evidence ends before the flip".into(),
                self.p.max_listed,
            );
        }
        beats.sort_unstable();
        // A gap is between two heartbeats, or between one and the window's end, never before
        // the first: until `age` after the evidence starts, no heartbeat is no evidence of a
        // dead daemon (its last beat may lie just before the logs begin). That stretch is
        // not judged: `unknown`, never `fail`.
        let start = self.ev.start_of(rt).unwrap_or(self.start);
        let reach = start.saturating_add_ms(age);
        let judged_from = self.flip.at.max(reach).min(cover_end);
        let gaps = uncovered(&beats, judged_from.millis(), cover_end.millis(), age);
        let unreached_end = beats
            .first()
            .map_or(reach, |&b| reach.min(Timestamp(b)))
            .min(cover_end);
        let unreached = (unreached_end > self.flip.at).then_some((self.flip.at, unreached_end));
        for (w, (n, v, last)) in &workers {
            d.check.notes.push(format!(
                "{rt} worker {w} at {}: {n} heartbeats, last {last}",
                v.unwrap_or("an unknown version")
            ));
        }
        let who = if go {
            "go daemon at >= 0.5.0"
        } else {
            "ts worker"
        };
        if let Some((a, b)) = unreached {
            d.check.notes.push(format!(
                "the evidence starts at {}: whether a {who} was heartbeating from {a} to {b} \
                 is not known",
                start
            ));
        }
        for (a, b) in &gaps {
            d.check.notes.push(format!(
                "no {who} heartbeating from {} to {} ({})",
                Timestamp(*a),
                Timestamp(*b),
                duration(b - a)
            ));
        }
        let mut stale = 0;
        if go {
            for s in window {
                let old = s.session.records().iter().find(|r| {
                    r.kind == EventKind::Claim && r.runner == Runner::Go && {
                        let v = self
                            .c
                            .detail_name(r.extra)
                            .or_else(|| versions.get(self.worker(r)).map(|&(_, v)| v));
                        v.is_some() && !qualifies(v)
                    }
                });
                if let Some(r) = old {
                    stale += 1;
                    let v = self
                        .c
                        .detail_name(r.extra)
                        .or_else(|| versions.get(self.worker(r)).map(|&(_, v)| v))
                        .unwrap_or("?");
                    let problem = format!("claimed by {} at {v} (< 0.5.0)", self.worker(r));
                    self.list(&mut d, s, problem, true);
                }
            }
        }
        d.check.positive = stale > 0;
        d.count("workers", workers.len())
            .count(
                "qualifying_workers",
                workers.values().filter(|(_, v, _)| qualifies(*v)).count(),
            )
            .count("heartbeats", beats.len())
            .count("gaps", gaps.len())
            .count("stale_claims", stale);
        let (status, summary) = if gaps.is_empty() && stale == 0 {
            match unreached {
                Some((a, b)) => (
                    Status::Unknown,
                    format!(
                        "{} heartbeats, no gap where the evidence reaches; from {a} to {b} \
                         (before the evidence's first {}) not known",
                        beats.len(),
                        duration(age)
                    ),
                ),
                None => (Status::Pass, format!("{} heartbeats, no gap", beats.len())),
            }
        } else {
            let uncovered_ms: i64 = gaps.iter().map(|(a, b)| b - a).sum();
            let mut parts = Vec::new();
            if !gaps.is_empty() {
                parts.push(format!(
                    "no {who} heartbeating for {} ({} gaps)",
                    duration(uncovered_ms),
                    gaps.len()
                ));
            }
            if stale > 0 {
                parts.push(format!(
                    "{stale} of {} sessions claimed by a daemon below 0.5.0",
                    window.len()
                ));
            }
            (Status::Fail, parts.join("; "))
        };
        d.finish(status, summary, self.p.max_listed)
    }

    pub(super) fn ingest(&self) -> (Check, Vec<SourceHealth>) {
        let tol = self.p.lag_tolerance_ms;
        let mut d = Draft::new(
            "ingest",
            format!(
                "every source delivered events throughout the window (none silent or lagging \
                 more than {})",
                duration(tol)
            ),
        );
        let (first_min, last_min) = (
            self.flip.at.millis().div_euclid(60_000),
            (self.end.millis() - 1).div_euclid(60_000),
        );
        let mut unhealthy = 0;
        let mut health = Vec::with_capacity(self.ev.sources.len());
        for s in &self.ev.sources {
            // Counted by the minute (the sources keep per-minute counts, not every time), and
            // exactly 0 when the source's events all fall outside the window.
            let outside = s.last_event.is_none_or(|l| l < self.flip.at)
                || s.first_event.is_some_and(|f| f >= self.end);
            let in_window: u64 = if outside {
                0
            } else {
                s.per_minute
                    .range(first_min..=last_min)
                    .map(|(_, n)| n)
                    .sum()
            };
            // Whole minutes strictly inside the window with no event.
            let (mut run, mut longest) = (0i64, 0i64);
            for m in first_min + 1..last_min {
                if s.per_minute.get(&m).copied().unwrap_or(0) == 0 {
                    run += 1;
                    longest = longest.max(run);
                } else {
                    run = 0;
                }
            }
            let silence_ms = longest * 60_000;
            let lag_ms = s
                .last_event
                .map_or(i64::MAX, |l| self.end.millis() - l.millis());
            let status = if in_window == 0 {
                d.check
                    .notes
                    .push(format!("{} delivered no event in the window", s.name));
                "silent"
            } else if lag_ms > tol || silence_ms > tol {
                d.check.notes.push(if lag_ms > tol {
                    format!(
                        "{}'s last event is {} before the window ends",
                        s.name,
                        duration(lag_ms)
                    )
                } else {
                    format!(
                        "{} was silent for {} inside the window",
                        s.name,
                        duration(silence_ms)
                    )
                });
                "lagging"
            } else {
                "ok"
            };
            unhealthy += usize::from(status != "ok");
            health.push(SourceHealth {
                name: s.name.clone(),
                role: s.role.clone(),
                default_runtime: s.default_runtime.map(|r| r.as_str().into()),
                lines: s.lines,
                events: s.events,
                rejected: s.rejected,
                first_event: s.first_event.map(Timestamp::to_rfc3339),
                last_event: s.last_event.map(Timestamp::to_rfc3339),
                events_in_window: in_window,
                longest_silence_seconds: silence_ms as f64 / 1000.0,
                status: status.into(),
            });
        }
        d.count("sources", health.len())
            .count("unhealthy", unhealthy);
        let (status, summary) = if self.ev.sources.is_empty() {
            (Status::Unknown, "no source".into())
        } else if unhealthy > 0 {
            (
                Status::Unknown,
                format!(
                    "{unhealthy} of {} sources silent or lagging: absence of evidence proves \
                     nothing",
                    health.len()
                ),
            )
        } else {
            (
                Status::Pass,
                format!("all {} sources delivered events", health.len()),
            )
        };
        (d.finish(status, summary, self.p.max_listed), health)
    }
}

/// The stretches of `[from, to)` not within `age` after some beat (`beats` sorted).
fn uncovered(beats: &[i64], from: i64, to: i64, age: i64) -> Vec<(i64, i64)> {
    let start = beats.partition_point(|&b| b <= from);
    let mut covered = if start > 0 {
        beats[start - 1] + age
    } else {
        from
    };
    let mut gaps = Vec::new();
    for &b in &beats[start..] {
        if b >= to {
            break;
        }
        if covered < b {
            gaps.push((covered.max(from), b));
        }
        covered = covered.max(b + age);
    }
    if covered < to {
        gaps.push((covered.max(from), to));
    }
    gaps
}

#[cfg(test)]
mod tests {
    use super::uncovered;

    #[test]
    fn heartbeat_coverage_finds_the_gaps() {
        let age = 120;
        assert_eq!(uncovered(&[], 0, 1000, age), vec![(0, 1000)]);
        assert_eq!(uncovered(&[-10, 100, 200, 300], 0, 400, age), vec![]);
        assert_eq!(uncovered(&[-500, 100], 0, 200, age), vec![(0, 100)]);
        assert_eq!(uncovered(&[-10, 500, 600], 0, 700, age), vec![(110, 500)]);
        assert_eq!(uncovered(&[-10, 50], 0, 400, age), vec![(170, 400)]);
    }
}
