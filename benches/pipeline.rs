//! Throughput of each stage of the pure core: scan (finding the candidate lines of a chunk),
//! parse per line shape and per realistic chunk, and correlate per event.
//! `cargo bench --bench pipeline`

use std::hint::black_box;

use claimcheck::config::ParseConfig;
use claimcheck::correlate::live::{Live, LiveConfig};
use claimcheck::correlate::{CorrelateConfig, Correlator};
use claimcheck::event::{Event, EventKind, Origin, Runner, SessionId, Timestamp};
use claimcheck::newlines::Newlines;
use claimcheck::parse::{LineContext, Parsed, Parser};
use claimcheck::simulate::{NoiseProfile, SimConfig, generate};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SHAPES: &[(&str, &str)] = &[
    (
        "bare_json",
        r#"{"event":"dispatch","sessionId":"ses_0123456789abcdef","organizationId":"org_ejkmv9ojdyifipydw5l1","resolvedProfile":{"runner":"go","authMode":"host-session","provider":"anthropic","model":"claude"},"time":"2026-11-23T10:00:00.123Z"}"#,
    ),
    (
        "lambda_prefix",
        "2026-11-23T10:00:00.123Z\treq_0123\tINFO\t{\"event\":\"dispatch\",\"sessionId\":\"ses_0123456789abcdef\",\"organizationId\":\"org_a\",\"resolvedProfile\":{\"runner\":\"go\"}}",
    ),
    (
        "vercel_drain",
        r#"{"id":"1795428000123-abc","message":"{\"event\":\"dispatch\",\"sessionId\":\"ses_0123456789abcdef\",\"organizationId\":\"org_a\",\"resolvedProfile\":{\"runner\":\"go\",\"authMode\":\"host-session\"}}","timestamp":1795428000123,"source":"lambda","requestId":"req_1","deploymentId":"dpl_1","projectId":"prj_1","host":"app.example.com","path":"/api/dispatch"}"#,
    ),
    (
        "go_slog_claim",
        r#"{"time":"2026-11-23T10:00:01.5+00:00","level":"INFO","msg":"claimed","event":"claimed","sessionId":"ses_0123456789abcdef","workerId":"go-host-1","version":"0.5.2"}"#,
    ),
    (
        "ts_logger_claim",
        r#"{"timestamp":"2026-11-23T10:00:01.000Z","level":"info","message":"Work claimed","service":"donmai-worker","context":{"event":"claimed","sessionId":"ses_0123456789abcdef","workerId":"ts-worker-2"}}"#,
    ),
    (
        "noise_text",
        "daemon poll: 2 work item(s) received from https://platform.example.com",
    ),
    (
        // realistic noise that holds an event name as another key's value: a candidate that
        // must be proved well-formed before it is ignored (`parse::extract::plain`)
        "decoy_lease_renewed",
        r#"{"time":"2026-11-23T10:00:31.000Z","level":"debug","service":"dispatcher","queue":"dispatch","event":"lease_renewed","sessionId":"ses_0123456789abcdef","state":"claimed","leaseMs":30000,"attempt":1}"#,
    ),
    (
        // a drain entry around a decoy: a long line (eight 64-byte blocks of stops for the
        // fast path) whose message is unescaped and walked again
        "decoy_drain_entry",
        r#"{"id":"17954208076760000000098","message":"{\"time\":\"2026-11-23T10:00:31.000Z\",\"level\":\"debug\",\"service\":\"dispatcher\",\"queue\":\"dispatch\",\"event\":\"lease_renewed\",\"sessionId\":\"ses_0123456789abcdef\",\"state\":\"claimed\"}","timestamp":1795420807676,"source":"lambda","requestId":"416fe65b-737b-44a1-86c2-add5fad857cf","deploymentId":"dpl_til18lpi2zogsoxjqxp30ym4","projectId":"prj_yknh7a9t8uh38z56l4m1v6o9","host":"platform.rensei.dev","path":"/api/agent-sessions","level":"info"}"#,
    ),
    (
        "noise_json",
        r#"{"time":"2026-11-23T10:00:01Z","level":"DEBUG","msg":"poll","items":0,"latency_ms":12}"#,
    ),
];

fn parse(c: &mut Criterion) {
    let parser = Parser::new(ParseConfig::default());
    let ctx = LineContext {
        default_runtime: Some(Runner::Go),
        received_at: None,
    };
    let mut g = c.benchmark_group("parse");
    for (name, line) in SHAPES {
        g.throughput(Throughput::Bytes(line.len() as u64));
        g.bench_function(*name, |b| {
            b.iter(|| parser.parse_line(black_box(line.as_bytes()), &ctx))
        });
    }
    g.finish();
}

/// 1 MiB of `simulate --noise realistic` output (all four files, cut at line ends), the
/// comparison workload's mix of events and decoys.
fn realistic_chunk() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = SimConfig {
        sessions: 3000,
        noise: NoiseProfile::Realistic,
        ..SimConfig::default()
    };
    generate(&cfg, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let mut all = Vec::new();
    for f in [
        "dispatch.log",
        "vercel-drain.ndjson",
        "go-daemon.log",
        "ts-worker.log",
    ] {
        let bytes = std::fs::read(dir.path().join(f)).unwrap_or_else(|e| panic!("{e}"));
        let take = bytes.len().min(256 << 10);
        let end = bytes[..take]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        all.extend_from_slice(&bytes[..end]);
    }
    all
}

fn scan(c: &mut Criterion) {
    let parser = Parser::new(ParseConfig::default());
    let ctx = LineContext {
        default_runtime: Some(Runner::Go),
        received_at: None,
    };
    let chunk = realistic_chunk();
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Bytes(chunk.len() as u64));
    g.bench_function("candidates_realistic_1mib", |b| {
        b.iter(|| {
            let mut n = 0u64;
            // The index is the reader's work in verify; timed here with the search.
            let newlines = Newlines::of(black_box(&chunk));
            let lines = parser.candidates(&chunk, &newlines, 1, |_, _| n += 1);
            (lines, n)
        })
    });
    g.bench_function("candidates_and_parse_realistic_1mib", |b| {
        b.iter(|| {
            let mut events = 0u64;
            let newlines = Newlines::of(black_box(&chunk));
            parser.candidates(&chunk, &newlines, 1, |_, line| {
                events += u64::from(matches!(parser.parse_line(line, &ctx), Parsed::Event(_)));
            });
            events
        })
    });
    g.bench_function("parse_every_line_realistic_1mib", |b| {
        b.iter(|| {
            black_box(&chunk)
                .split(|&b| b == b'\n')
                .filter(|l| matches!(parser.parse_line(l, &ctx), Parsed::Event(_)))
                .count()
        })
    });
    g.finish();
}

fn correlate(c: &mut Criterion) {
    const N: usize = 100_000;
    let ids: Vec<SessionId> = (0..N)
        .filter_map(|i| SessionId::new(&format!("ses_{i:016x}")))
        .collect();
    let event = |kind, i: usize, runner, at: i64| Event {
        kind,
        session: Some(ids[i].clone()),
        runner,
        time: Timestamp(1_795_428_000_000 + at),
        org: (kind == EventKind::Dispatch).then(|| format!("org_{}", i % 50).into()),
        worker: (kind != EventKind::Dispatch).then(|| format!("w{}", i % 8).into()),
        version: None,
        detail: None,
    };
    let mut events = Vec::with_capacity(N * 2);
    for i in 0..N {
        events.push(event(EventKind::Dispatch, i, Runner::Go, i as i64 * 10));
        events.push(event(EventKind::Claim, i, Runner::Go, i as i64 * 10 + 1500));
    }
    let mut g = c.benchmark_group("correlate");
    g.sample_size(20);
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("on_event_then_judge_100k_sessions", |b| {
        b.iter(|| {
            let mut c = Correlator::new(CorrelateConfig::default());
            for e in &events {
                c.on_event(e.clone(), Origin::default());
            }
            let w = c.watermark();
            c.sessions()
                .filter(|(_, s)| s.judge(c.timeouts(), w).outcome.is_some())
                .count()
        })
    });
    // Sessions that complete (dispatch, claim, completion), with batch settling: judged and
    // dropped as the watermark passes them (one settle call per 4,000 events, about a chunk's
    // worth), so the table stays small and warm.
    let mut spread = Vec::with_capacity(N * 3);
    for i in 0..N {
        let at = i as i64 * 100;
        spread.push(event(EventKind::Dispatch, i, Runner::Go, at));
        spread.push(event(EventKind::Claim, i, Runner::Go, at + 1500));
        spread.push(event(EventKind::Completion, i, Runner::Go, at + 60_000));
    }
    g.throughput(Throughput::Elements(spread.len() as u64));
    g.bench_function("on_event_settling_100k_sessions", |b| {
        b.iter(|| {
            let mut c = Correlator::new(CorrelateConfig::default());
            c.enable_settling();
            let mut judged = 0;
            for (n, e) in spread.iter().enumerate() {
                let t = e.time;
                c.on_event(e.clone(), Origin::default());
                if n % 4000 == 3999 {
                    let w = c.watermark();
                    for s in c.settle(t) {
                        judged += usize::from(s.session.judge(c.timeouts(), w).outcome.is_some());
                    }
                }
            }
            judged + c.session_count()
        })
    });
    // `serve`'s live correlator catching up a backlog in time order, as the tail bench of
    // `scripts/bench/live.py` does: the same sessions, one source, the sidecar's clock
    // moving a millisecond per hundred events while event time runs far ahead, so every
    // session stays held (retention is an hour of the sidecar's clock) and each event moves
    // its session in the schedule sets.
    let config = LiveConfig {
        allowed_lateness_ms: 5_000,
        ..LiveConfig::default()
    };
    let start = Timestamp(1_795_428_000_000);
    let mut timed = spread.clone();
    timed.sort_by_key(|e| e.time);
    g.bench_function("live_on_event_100k_sessions", |b| {
        b.iter(|| {
            let mut live = Live::new(config.clone());
            let mut changes = 0;
            for (n, e) in timed.iter().enumerate() {
                let now = start.saturating_add_ms(n as i64 / 100);
                if n % 4000 == 0 {
                    live.source_seen(0, now, true);
                    changes += live.on_tick(now).len();
                }
                changes += live
                    .on_event(e.clone(), Origin::default(), now)
                    .map_or(0, |c| c.len());
            }
            changes
        })
    });
    g.finish();
}

criterion_group!(benches, scan, parse, correlate);
criterion_main!(benches);
