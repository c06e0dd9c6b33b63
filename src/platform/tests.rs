//! The facade the actor drives, end to end on pure inputs.

use prometheus::Registry;
use serde_json::json;

use super::*;
use crate::platform::flags::resolve;

const T0: i64 = 1_795_428_000_000;

fn t(secs: i64) -> Timestamp {
    Timestamp(T0 + secs * 1000)
}

fn config() -> PlatformConfig {
    let raw: RawPlatformConfig = toml::from_str("[postgres.sessions]\ngrace = \"60s\"\n").unwrap();
    PlatformConfig::new(&raw).unwrap()
}

fn flags(at: i64, runner_default: serde_json::Value, updated: i64) -> PlatformUpdate {
    PlatformUpdate::Flags(FlagSnapshot {
        observed_at: t(at),
        orgs: vec![OrgFlag {
            id: "o1".into(),
            slug: Some("acme".into()),
            flag: resolve(
                Some(&json!({ "runner_default": runner_default })),
                "runner_default",
            ),
            updated_at: Some(t(updated)),
        }],
    })
}

fn text(reg: &Registry) -> String {
    let mut buf = String::new();
    prometheus::TextEncoder::new()
        .encode_utf8(&reg.gather(), &mut buf)
        .unwrap();
    buf
}

fn drifts(events: &[PlatformEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            PlatformEvent::Drift(d) => Some(d.session.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn drift_waits_for_a_snapshot_newer_than_the_dispatch() {
    let reg = Registry::new();
    let metrics = PlatformMetrics::new(&reg).unwrap();
    let mut p = Platform::new(
        &config(),
        metrics,
        PlatformRequests::default(),
        None,
        t(-100),
    );
    // no snapshot yet (Postgres down at start): deferred, not guessed
    assert!(
        p.on_dispatch("s0", Some("o1"), Runner::Go, t(0), t(0))
            .is_empty()
    );
    assert_eq!(p.waiting_checks(), 1);
    let ev = p.on_update(flags(5, json!("ts"), -3600), t(5));
    assert_eq!(drifts(&ev), ["s0"], "go while the flag said ts");
    // flipped to go at +10, seen at +12
    p.on_update(flags(12, json!("go"), 10), t(12));
    for (s, runner, at) in [
        ("s1", Runner::Ts, 11),
        ("s2", Runner::Ts, 39),
        ("s3", Runner::Go, 11),
    ] {
        let ev = p.on_dispatch(s, Some("o1"), runner, t(at), t(at));
        assert!(drifts(&ev).is_empty(), "{s}: agrees, or waits (s2)");
    }
    // s2 (ts at +39, inside the 30 s grace) waits for a snapshot that covers +39
    let ev = p.on_update(flags(45, json!("go"), 10), t(45));
    assert!(drifts(&ev).is_empty(), "{ev:?}");
    let ev = p.on_dispatch("s4", Some("o1"), Runner::Ts, t(41), t(46));
    assert_eq!(drifts(&ev), ["s4"], "ts after the grace");
    let m = text(&reg);
    for line in [
        r#"claimcheck_flag_drift_total{dispatched="go",expected="ts",org="o1"} 1"#,
        r#"claimcheck_flag_drift_total{dispatched="ts",expected="go",org="o1"} 1"#,
        r#"claimcheck_flips_total{to="go"} 1"#,
        r#"claimcheck_flips_total{to="ts"} 0"#,
        r#"claimcheck_org_expected_runner{org="o1",runner="go"} 1"#,
        r#"claimcheck_org_expected_runner{org="o1",runner="ts"} 0"#,
        r#"claimcheck_org_flag_malformed{org="o1"} 0"#,
    ] {
        assert!(m.lines().any(|l| l == line), "{line} in\n{m}");
    }
}

#[test]
fn missing_sessions_and_witnesses_move_their_counters() {
    let reg = Registry::new();
    let metrics = PlatformMetrics::new(&reg).unwrap();
    let mut p = Platform::new(&config(), metrics, PlatformRequests::default(), None, t(0));
    let row = |id: &str| CreatedSession {
        id: id.into(),
        org: Some("o1".into()),
        status: Some("queued".into()),
        created_at: t(10),
    };
    p.on_update(
        PlatformUpdate::SessionsCreated(vec![row("a"), row("b")]),
        t(11),
    );
    p.on_dispatch("a", Some("o1"), Runner::Ts, t(12), t(12));
    assert!(p.on_tick(t(69)).is_empty());
    let ev = p.on_tick(t(70));
    assert_eq!(ev, vec![PlatformEvent::MissingFromLogs(row("b"))]);
    let ev = p.on_dispatch("b", Some("o1"), Runner::Ts, t(12), t(80));
    assert!(ev.contains(&PlatformEvent::MissingResolved {
        session: "b".into()
    }));
    p.on_update(
        PlatformUpdate::ClaimWitness {
            session: "x".into(),
            worker: Some("go-worker-1".into()),
        },
        t(81),
    );
    p.on_update(
        PlatformUpdate::ClaimWitness {
            session: "y".into(),
            worker: None,
        },
        t(81),
    );
    let m = text(&reg);
    assert!(
        m.contains("claimcheck_sessions_missing_from_logs_total 1"),
        "{m}"
    );
    assert!(
        m.contains(r#"claimcheck_claims_witnessed_total{source="redis"} 1"#),
        "{m}"
    );
}

#[test]
fn a_dispatch_without_an_org_is_checked_when_postgres_names_it() {
    let reg = Registry::new();
    let metrics = PlatformMetrics::new(&reg).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let requests = PlatformRequests::from_senders(Some(tx), None);
    let mut p = Platform::new(&config(), metrics, requests, None, t(0));
    p.on_update(flags(0, json!("go"), -10), t(0));
    p.on_update(flags(20, json!("go"), -10), t(20));
    assert!(p.on_dispatch("s1", None, Runner::Ts, t(5), t(5)).is_empty());
    assert_eq!(rx.try_recv().unwrap(), "s1");
    let ev = p.on_update(
        PlatformUpdate::SessionOrgs(vec![("s1".into(), Some("o1".into()))]),
        t(21),
    );
    assert_eq!(drifts(&ev), ["s1"]);
    assert!(ev.contains(&PlatformEvent::SessionOrg {
        session: "s1".into(),
        org: Some("o1".into())
    }));
    assert_eq!(p.waiting_checks(), 0);
}

#[test]
fn without_postgres_nothing_waits_for_a_flag() {
    let reg = Registry::new();
    let metrics = PlatformMetrics::new(&reg).unwrap();
    let cfg = PlatformConfig::new(&RawPlatformConfig::default()).unwrap();
    let mut p = Platform::new(&cfg, metrics, PlatformRequests::default(), None, t(0));
    assert!(
        p.on_dispatch("s", Some("o1"), Runner::Go, t(1), t(1))
            .is_empty()
    );
    assert!(p.on_dispatch("s2", None, Runner::Go, t(1), t(1)).is_empty());
    assert_eq!((p.waiting_checks(), p.unverifiable()), (0, 0));
    assert!(p.coverage().is_none());
    assert_eq!(p.orgs(t(2))[0].dispatched_last_hour.go, 1);
}
