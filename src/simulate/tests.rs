//! The simulator against the real pipeline: every written line goes through `parse` and
//! `correlate`, and the counts must equal the truth tallied from the plan.

use std::path::Path;

use super::*;
use crate::correlate::ClaimTimeouts;
use crate::correlate::{CorrelateConfig, Correlator, Outcome};
use crate::event::{EventKind, Origin};
use crate::parse::ParseConfig;
use crate::parse::{LineContext, Parsed, Parser};

fn simulate(sessions: u64, seed: u64) -> (tempfile::TempDir, Truth) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        sessions,
        seed,
        ..SimConfig::default()
    };
    let truth = generate(&cfg, dir.path()).unwrap();
    (dir, truth)
}

fn read_lines(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    if bytes.is_empty() {
        return Vec::new();
    }
    assert!(bytes.ends_with(b"\n"), "{} ends mid-line", path.display());
    bytes[..bytes.len() - 1]
        .split(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// What the pipeline makes of the files: the same shape as the truth, counted from parsed and
/// correlated events. Also returns the number of cross-runtime duplicate claims.
fn recount(dir: &Path, truth: &Truth) -> (Truth, u64) {
    let parser = Parser::new(ParseConfig::default());
    let mut timeouts = ClaimTimeouts::default();
    timeouts
        .apply(&format!("{}s", truth.claim_timeout_seconds))
        .unwrap();
    let mut c = Correlator::new(CorrelateConfig {
        timeouts,
        ..CorrelateConfig::default()
    });
    let inputs = [
        (DISPATCH_LOG, None),
        (VERCEL_DRAIN, None),
        (GO_DAEMON_LOG, Some(Runner::Go)),
        (TS_WORKER_LOG, Some(Runner::Ts)),
    ];
    let mut rejected: BTreeMap<String, u64> = truth::INJECTED_REJECTS
        .iter()
        .map(|r| (r.as_str().to_owned(), 0))
        .collect();
    for (input, (name, default_runtime)) in inputs.into_iter().enumerate() {
        let ctx = LineContext {
            default_runtime,
            received_at: None,
        };
        for (line, bytes) in read_lines(&dir.join(name)).iter().enumerate() {
            match parser.parse_line(bytes, &ctx) {
                Parsed::Event(ev) => {
                    let origin = Origin {
                        input: input as u16,
                        line: line as u32,
                    };
                    c.on_event(ev, origin);
                }
                Parsed::Rejected(r) => *rejected.entry(r.as_str().to_owned()).or_default() += 1,
                Parsed::Ignored => {}
            }
        }
    }

    let mut totals = Totals::default();
    let mut orgs: BTreeMap<String, OrgCounts> = BTreeMap::new();
    let mut cross = 0;
    for (_, s) in c.sessions() {
        let j = s.judge(c.timeouts(), c.watermark());
        let Some(d) = j.dispatch else {
            totals.orphan_claims += u64::from(j.claims);
            continue;
        };
        let org = c.org_name(d.extra).unwrap_or("unknown").to_owned();
        let o = orgs.entry(org).or_default();
        for counts in [&mut totals.dispatched, &mut o.dispatched] {
            match d.runner {
                Runner::Go => counts.go += 1,
                Runner::Ts => counts.ts += 1,
                Runner::Other => counts.other += 1,
            }
        }
        let outcome = j.outcome.unwrap();
        for (t, oc) in [
            (&mut totals.matched, &mut o.matched),
            (&mut totals.late, &mut o.late),
            (&mut totals.mismatched, &mut o.mismatched),
            (&mut totals.unclaimed, &mut o.unclaimed),
            (&mut totals.pending, &mut o.pending),
        ]
        .into_iter()
        .zip(Outcome::ALL)
        .filter(|(_, k)| *k == outcome)
        .map(|(pair, _)| pair)
        {
            *t += 1;
            *oc += 1;
        }
        if j.duplicate {
            totals.duplicate_claims += 1;
            o.duplicate_claims += 1;
            cross += u64::from(j.duplicate_cross_runtime);
        }
        totals.reclaims += u64::from(j.reclaims);
        totals.skew_clamped += u64::from(j.skew_clamped);
    }
    let stats = c.stats();
    let ev = |k: EventKind| stats.events[k as usize];
    let observed = Truth {
        watermark: c.watermark().to_rfc3339(),
        totals,
        orgs,
        ingest: Ingest {
            events: EventCounts {
                dispatch: ev(EventKind::Dispatch),
                claim: ev(EventKind::Claim),
                completion: ev(EventKind::Completion),
                heartbeat: ev(EventKind::Heartbeat),
                release: ev(EventKind::Release),
            },
            duplicates: stats.duplicates,
            rejected,
        },
        ..truth.clone()
    };
    (observed, cross)
}

fn check_against_pipeline(sessions: u64, seed: u64, timeout: Duration) -> Truth {
    check_with_noise(sessions, seed, timeout, NoiseProfile::Classic)
}

fn check_with_noise(sessions: u64, seed: u64, timeout: Duration, noise: NoiseProfile) -> Truth {
    check_config(&SimConfig {
        sessions,
        seed,
        claim_timeout: timeout,
        faults: true,
        noise,
        ..SimConfig::default()
    })
}

/// The pipeline, run on `cfg`'s workload, counts exactly the truth.
fn check_config(cfg: &SimConfig) -> Truth {
    let sessions = cfg.sessions;
    let dir = tempfile::tempdir().unwrap();
    let truth = generate(cfg, dir.path()).unwrap();
    let (observed, cross) = recount(dir.path(), &truth);
    assert_eq!(observed.watermark, truth.watermark);
    assert_eq!(observed.totals, truth.totals);
    assert_eq!(observed.ingest, truth.ingest);
    assert_eq!(observed.orgs, truth.orgs);
    assert_eq!(observed, truth);
    if sessions >= 1000 && cfg.faults {
        assert!(cross > 0, "no cross-runtime duplicate claim");
    }
    truth
}

/// The demo's workload: a clean platform that starts at a given moment, with one healthy and
/// one broken scripted migration. The truth still matches the pipeline; only the broken org
/// has failing sessions, and nothing else flips.
#[test]
fn scripted_flips_start_where_told_and_only_the_broken_one_fails() {
    let start = Timestamp(1_800_000_000_000);
    let at = |s: i64| Timestamp(start.millis() + s * 1000);
    let cfg = SimConfig {
        sessions: 3000,
        seed: 4,
        claim_timeout: Duration::from_secs(10),
        faults: false,
        start,
        script: Some(vec![
            crate::simulate::ScriptedFlip {
                at: at(100),
                broken: false,
            },
            crate::simulate::ScriptedFlip {
                at: at(150),
                broken: true,
            },
        ]),
        ..SimConfig::default()
    };
    let truth = check_config(&cfg);
    let flips: Vec<(&str, &str)> = truth
        .flips
        .iter()
        .map(|f| (f.at.as_str(), f.to.as_str()))
        .collect();
    let (a, b) = (at(100).to_rfc3339(), at(150).to_rfc3339());
    assert_eq!(flips, [(a.as_str(), "go"), (b.as_str(), "go")]);
    let failing = |o: &OrgCounts| o.late + o.mismatched + o.unclaimed;
    let healthy = &truth.orgs[&truth.flips[0].org];
    let broken = &truth.orgs[&truth.flips[1].org];
    assert_eq!(failing(healthy), 0, "{healthy:?}");
    assert!(broken.mismatched > 5 && broken.unclaimed > 2, "{broken:?}");
    let others: u64 = truth
        .orgs
        .iter()
        .filter(|(id, _)| **id != truth.flips[1].org)
        .map(|(_, o)| failing(o))
        .sum();
    assert_eq!(others, 0);
    assert!(
        truth.watermark.starts_with("2027-01-15"),
        "{}",
        truth.watermark
    );
}

#[test]
fn realistic_noise_changes_no_truth_and_is_all_ignored() {
    let t = Duration::from_secs(120);
    let realistic = check_with_noise(2000, 6, t, NoiseProfile::Realistic);
    assert_eq!(realistic, check_against_pipeline(2000, 6, t));

    // About ten lines per session, most of them JSON with an `event` key, and many holding
    // our event names as values of other keys.
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        sessions: 2000,
        seed: 6,
        noise: NoiseProfile::Realistic,
        ..SimConfig::default()
    };
    generate(&cfg, dir.path()).unwrap();
    let lines: Vec<Vec<u8>> = [DISPATCH_LOG, VERCEL_DRAIN, GO_DAEMON_LOG, TS_WORKER_LOG]
        .iter()
        .flat_map(|f| read_lines(&dir.path().join(f)))
        .collect();
    let per_session = lines.len() as f64 / 2000.0;
    assert!(
        (8.0..14.0).contains(&per_session),
        "{per_session} lines per session"
    );
    let has = |needle: &[u8]| {
        lines
            .iter()
            .filter(|l| memchr::memmem::find(l, needle).is_some())
            .count()
    };
    let keyed = has(b"\"event\"") + has(b"\\\"event\\\"");
    assert!(keyed * 3 > lines.len() * 2, "most lines have an event key");
    for decoy in [
        &b"\"state\":\"claimed\""[..],
        b"\"queue\":\"dispatch\"",
        b"\"service\":\"dispatcher\"",
        b"\"claimedTotal\"",
    ] {
        assert!(has(decoy) > 10, "{}", String::from_utf8_lossy(decoy));
    }
}

#[test]
fn the_pipeline_agrees_with_the_truth() {
    for seed in [1, 2, 3] {
        check_against_pipeline(3000, seed, Duration::from_secs(120));
    }
}

#[test]
fn the_pipeline_agrees_with_another_timeout_and_tiny_runs() {
    check_against_pipeline(2000, 9, Duration::from_secs(45));
    check_against_pipeline(1500, 10, Duration::from_secs(600));
    for n in [0, 1, 2, 7, 150] {
        check_against_pipeline(n, 4, Duration::from_secs(120));
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (a, ta) = simulate(400, 42);
    let (b, tb) = simulate(400, 42);
    let (c, tc) = simulate(400, 43);
    assert_eq!(ta, tb);
    assert_ne!(ta, tc);
    for name in [
        DISPATCH_LOG,
        VERCEL_DRAIN,
        GO_DAEMON_LOG,
        TS_WORKER_LOG,
        TRUTH_JSON,
    ] {
        let fa = std::fs::read(a.path().join(name)).unwrap();
        assert_eq!(fa, std::fs::read(b.path().join(name)).unwrap(), "{name}");
        assert_ne!(fa, std::fs::read(c.path().join(name)).unwrap(), "{name}");
    }
}

#[test]
fn every_fault_is_present_and_the_totals_add_up() {
    let (dir, truth) = simulate(2000, 5);
    let t = &truth.totals;
    for (name, n) in [
        ("late", t.late),
        ("mismatched", t.mismatched),
        ("unclaimed", t.unclaimed),
        ("pending", t.pending),
        ("duplicate_claims", t.duplicate_claims),
        ("orphan_claims", t.orphan_claims),
        ("reclaims", t.reclaims),
        ("skew_clamped", t.skew_clamped),
        ("dispatched.other", t.dispatched.other),
        ("dispatched.go", t.dispatched.go),
        ("duplicates", truth.ingest.duplicates),
        ("release", truth.ingest.events.release),
    ] {
        assert!(n > 0, "no {name}");
    }
    for (reason, n) in &truth.ingest.rejected {
        assert!(*n > 0, "no rejected {reason}");
    }
    assert_eq!(truth.ingest.rejected.len(), 3);

    let outcomes = t.matched + t.late + t.mismatched + t.unclaimed + t.pending;
    assert_eq!(outcomes, t.dispatched.total());
    assert_eq!(t.dispatched.total(), truth.sessions);
    assert_eq!(truth.ingest.events.dispatch, truth.sessions);
    let mut sum = OrgCounts::default();
    for o in truth.orgs.values() {
        assert_eq!(o.outcomes(), o.dispatched.total());
        sum.dispatched.go += o.dispatched.go;
        sum.dispatched.ts += o.dispatched.ts;
        sum.dispatched.other += o.dispatched.other;
        sum.matched += o.matched;
        sum.late += o.late;
        sum.mismatched += o.mismatched;
        sum.unclaimed += o.unclaimed;
        sum.pending += o.pending;
        sum.duplicate_claims += o.duplicate_claims;
    }
    let want = OrgCounts {
        dispatched: t.dispatched,
        matched: t.matched,
        late: t.late,
        mismatched: t.mismatched,
        unclaimed: t.unclaimed,
        pending: t.pending,
        duplicate_claims: t.duplicate_claims,
    };
    assert_eq!(sum, want);
    assert!(truth.orgs.contains_key("unknown"));

    // Flips: several to go, and one org that goes to go and back.
    assert!(truth.flips.len() >= 5);
    let back: Vec<_> = truth.flips.iter().filter(|f| f.to == "ts").collect();
    assert_eq!(back.len(), 1);
    assert!(
        truth
            .flips
            .iter()
            .any(|f| f.org == back[0].org && f.to == "go" && f.at < back[0].at)
    );

    // truth.json is the returned truth.
    let file: Truth =
        serde_json::from_slice(&std::fs::read(dir.path().join(TRUTH_JSON)).unwrap()).unwrap();
    assert_eq!(file, truth);
}

#[test]
fn every_line_shape_is_written() {
    let (dir, _) = simulate(2000, 6);
    let text = |name| String::from_utf8(std::fs::read(dir.path().join(name)).unwrap()).unwrap();
    let dispatch = text(DISPATCH_LOG);
    for needle in [
        "\n{\"event\":\"dispatch\",",
        "\tINFO\t{\"event\":\"dispatch\",",
        "Z INFO {\"event\":\"dispatch\",",
        "+01:00 INFO {\"event\":\"dispatch\",",
        "[work-queue] Work queued {\"event\":\"dispatch\",",
        "\"message\":\"dispatched\",\"service\":\"platform\",\"context\":{\"event\":\"dispatch\"",
        "\"orgId\":",
        "\"organization_id\":",
        "\"resolvedProfile\":{\"authMode\"",
        "\"runner\":\"rust\"",
        "GET /api/health 200",
        "{\"event\":\"poll\"",
    ] {
        assert!(dispatch.contains(needle), "dispatch.log lacks {needle:?}");
    }
    let go = text(GO_DAEMON_LOG);
    for needle in [
        "\"event\":\"claimed\",\"sessionId\"",
        "\"runtime\":\"go\"",
        "+00:00\",\"level\"",
        "\"event\":\"nack\"",
        "\"event\":\"failed\"",
        "\"version\":\"0.4.9\"",
        "daemon poll: ",
    ] {
        assert!(go.contains(needle), "go-daemon.log lacks {needle:?}");
    }
    let ts = text(TS_WORKER_LOG);
    for needle in [
        "\"context\":{\"event\":\"claimed\"",
        "\"event\":\"released\"",
        "\"event\":\"heartbeat\"",
        "[work-queue] Work queued {\"sessionId\"",
    ] {
        assert!(ts.contains(needle), "ts-worker.log lacks {needle:?}");
    }

    // Every drain entry is a well-formed JSON object with Vercel's fields; ids repeat only
    // for verbatim re-deliveries.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut messages = [0usize; 3];
    for line in text(VERCEL_DRAIN).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in [
            "source",
            "requestId",
            "deploymentId",
            "projectId",
            "host",
            "path",
        ] {
            assert!(v[key].is_string(), "{key} in {line}");
        }
        assert!(v["timestamp"].is_i64());
        let msg = v["message"].as_str().unwrap();
        messages[usize::from(msg.contains("\"event\":\"dispatch\""))
            + usize::from(msg.ends_with('\n'))] += 1;
        let id = v["id"].as_str().unwrap().to_owned();
        if let Some(prev) = seen.insert(id, line.to_owned()) {
            assert_eq!(prev, line, "an id reused for a different entry");
        }
    }
    assert!(messages.iter().all(|&n| n > 0), "{messages:?}");
}

#[test]
fn rejects_a_timeout_it_cannot_honour() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        claim_timeout: Duration::from_millis(1500),
        ..SimConfig::default()
    };
    let e = generate(&cfg, dir.path()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
}

/// Every cut the `malformed_json` fault can make, in every shape, is rejected as malformed.
#[test]
fn every_truncation_is_rejected_as_malformed() {
    use lines::{Dispatch, Envelope, Shape, WorkerEvent};
    use write::Zone;

    let parser = Parser::new(ParseConfig::default());
    let ctx = |rt| LineContext {
        default_runtime: rt,
        received_at: None,
    };
    let check = |full: &[u8], needle: &[u8], wrap: bool, rt: Option<Runner>| {
        let mut k = 0;
        loop {
            let mut cut = full.to_vec();
            let mut room = 0;
            lines::truncate_after(&mut cut, needle, |n| {
                room = n;
                k
            });
            let line = if wrap {
                let env = Envelope {
                    id: b"1",
                    timestamp: model::START_MS,
                    request_id: b"r",
                    deployment: b"dpl_1",
                    project: b"prj_1",
                    path: "/api/agent-sessions",
                };
                let mut out = Vec::new();
                lines::vercel(&mut out, &env, &cut);
                out
            } else {
                cut
            };
            let got = parser.parse_line(&line, &ctx(rt));
            assert_eq!(
                got,
                Parsed::Rejected(Reject::MalformedJson),
                "{}",
                String::from_utf8_lossy(&line)
            );
            k += 1;
            if k >= room {
                break;
            }
        }
    };
    let d = Dispatch {
        session: b"ses_1",
        org: Some(("orgId", "org_1")),
        runner: Some("go"),
        auth_mode: "host-session",
        time: model::START_MS,
        bad_time: None,
        zone: Zone::Cet,
        request_id: b"00000000-0000-4000-8000-000000000000",
    };
    for shape in Shape::ALL {
        let mut full = Vec::new();
        lines::dispatch(&mut full, &d, shape, false);
        check(&full, b"\"event\":\"dispatch\"", false, None);
        check(&full, b"\"event\":\"dispatch\"", true, None);
    }
    for w in 0..model::WORKERS.len() {
        let worker = &model::WORKERS[w];
        let ev = WorkerEvent {
            time: model::START_MS,
            kind: EventKind::Claim,
            worker,
            zone: Zone::Zero,
            session: b"ses_1",
            explicit_runtime: false,
            extra: 0,
            failed: false,
        };
        let mut full = Vec::new();
        if worker.runtime == Runner::Go {
            lines::go_event(&mut full, &ev);
        } else {
            lines::ts_event(&mut full, &ev);
        }
        check(&full, b"\"event\":\"claimed\"", false, Some(worker.runtime));
    }
}
