//! The alert set and the handle, without a network: time is an argument, commands are
//! applied by hand.

use super::*;

fn finding(kind: AlertKind, session: &str) -> FindingAlert {
    FindingAlert {
        kind,
        session: session.to_owned(),
        org: Some("org_a".into()),
        runner: Some(Runner::Go),
        runtime: None,
        expected: None,
        detail: None,
    }
}

const T0: Timestamp = Timestamp(1_795_428_000_000);

#[test]
fn fire_resolve_and_drop_after_sending() {
    let mut a = Alerts::default();
    assert!(a.fire(finding(AlertKind::UnclaimedGoSession, "s1"), T0, 10));
    assert!(a.fire(finding(AlertKind::RunnerMismatch, "s1"), T0, 10));
    assert!(a.is_dirty());
    let b = a.batch(T0.saturating_add_ms(1000), Duration::from_secs(240), None);
    assert_eq!(b.len(), 2, "one alert per (kind, session)");
    let u = b
        .iter()
        .find(|p| p.labels["alertname"] == "ClaimcheckUnclaimedGoSession")
        .unwrap();
    assert_eq!(u.labels["session"], "s1");
    assert_eq!(u.labels["org"], "org_a");
    assert_eq!(u.labels["runner"], "go");
    assert_eq!(u.labels["severity"], "critical");
    assert_eq!(u.starts_at, T0.to_rfc3339());
    assert_eq!(u.ends_at, T0.saturating_add_ms(241_000).to_rfc3339());
    a.sent();
    assert!(!a.is_dirty());
    assert_eq!(a.len(), 2, "firing alerts stay for the re-sends");

    // a re-fire of an active alert changes nothing
    a.fire(
        finding(AlertKind::UnclaimedGoSession, "s1"),
        T0.saturating_add_ms(5000),
        10,
    );
    assert!(!a.is_dirty());

    let later = T0.saturating_add_ms(60_000);
    a.resolve(AlertKind::UnclaimedGoSession, "s1", later);
    a.resolve(AlertKind::UnclaimedGoSession, "never-fired", later);
    assert!(a.is_dirty());
    let b = a.batch(later, Duration::from_secs(240), Some("http://cc:9464/"));
    let u = b
        .iter()
        .find(|p| p.labels["alertname"] == "ClaimcheckUnclaimedGoSession")
        .unwrap();
    assert_eq!(u.ends_at, later.to_rfc3339(), "resolved: endsAt = now");
    assert_eq!(
        u.generator_url.as_deref(),
        Some("http://cc:9464/api/sessions/s1")
    );
    a.sent();
    assert_eq!(a.len(), 1, "the resolved alert is dropped once delivered");
}

#[test]
fn a_resolved_alert_that_fires_again_before_sending_starts_anew() {
    let mut a = Alerts::default();
    a.fire(finding(AlertKind::DuplicateClaim, "s"), T0, 10);
    a.sent();
    a.resolve(AlertKind::DuplicateClaim, "s", T0.saturating_add_ms(10));
    a.fire(
        finding(AlertKind::DuplicateClaim, "s"),
        T0.saturating_add_ms(20),
        10,
    );
    let b = a.batch(T0.saturating_add_ms(30), Duration::from_secs(1), None);
    assert_eq!(b[0].starts_at, T0.saturating_add_ms(20).to_rfc3339());
    assert_eq!(b[0].ends_at, T0.saturating_add_ms(1030).to_rfc3339());
    a.sent();
    assert_eq!(a.len(), 1);
}

#[test]
fn the_cap_refuses_new_alerts_only() {
    let mut a = Alerts::default();
    assert!(a.fire(finding(AlertKind::FlagDrift, "a"), T0, 1));
    assert!(!a.fire(finding(AlertKind::FlagDrift, "b"), T0, 1));
    assert!(a.fire(finding(AlertKind::FlagDrift, "a"), T0, 1));
    let b = a.batch(T0, Duration::from_secs(1), None);
    assert_eq!(b[0].labels["severity"], "warning");
}

/// The handle never waits: a full queue refuses and counts.
#[test]
fn a_full_queue_drops_and_counts() {
    let reg = Registry::new();
    let mut c = AlertmanagerConfig::new("http://127.0.0.1:9".parse().unwrap());
    c.queue = 1;
    let (_pusher, handle) = AlertPusher::new(c, &reg, Clock::starting_at(T0)).unwrap();
    assert!(handle.fire(finding(AlertKind::FlagDrift, "a")));
    assert!(!handle.fire(finding(AlertKind::FlagDrift, "b")));
    assert!(!handle.resolve(AlertKind::FlagDrift, "a"));
    assert_eq!(handle.dropped.get(), 2);
}

/// The live correlator's changes become fire and resolve commands. Time is paused: the
/// resolve time read from the clock is exactly its start.
#[tokio::test(start_paused = true)]
async fn changes_become_alerts() {
    let reg = Registry::new();
    let c = AlertmanagerConfig::new("http://127.0.0.1:9".parse().unwrap());
    let (mut pusher, handle) = AlertPusher::new(c, &reg, Clock::starting_at(T0)).unwrap();
    let s = crate::event::SessionId::new("s1").unwrap();
    let t = crate::event::SessionId::new("t1").unwrap();
    for ch in [
        Change::Overdue {
            first_seen: crate::event::Timestamp(0),
            org: None,
            dispatched_at: crate::event::Timestamp(0),
            session: s.clone(),
            runner: Runner::Go,
            refile: false,
        },
        // ts sessions overdue are not the go alert
        Change::Overdue {
            first_seen: crate::event::Timestamp(0),
            org: None,
            dispatched_at: crate::event::Timestamp(0),
            session: t.clone(),
            runner: Runner::Ts,
            refile: false,
        },
        Change::Judged {
            first_seen: crate::event::Timestamp(0),
            org: None,
            dispatched_at: crate::event::Timestamp(0),
            session: t.clone(),
            runner: Runner::Ts,
            outcome: Outcome::Mismatched,
            latency_ms: Some(10),
            skew_clamped: false,
            refile: false,
        },
        Change::Duplicate {
            first_seen: crate::event::Timestamp(0),
            org: None,
            session: t.clone(),
            runtime: Runner::Go,
            cross_runtime: true,
        },
    ] {
        handle.on_change(&ch, Some("org_a"));
    }
    while let Ok(cmd) = pusher.rx.try_recv() {
        pusher.apply(cmd);
    }
    let b = pusher.alerts.batch(T0, Duration::from_secs(60), None);
    let names: Vec<(&str, &str)> = b
        .iter()
        .map(|p| (p.labels["alertname"].as_str(), p.labels["session"].as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("ClaimcheckRunnerMismatch", "t1"),
            ("ClaimcheckDuplicateClaim", "t1"),
            ("ClaimcheckUnclaimedGoSession", "s1"),
        ]
    );
    assert!(b.iter().all(|p| p.labels["org"] == "org_a"));
    pusher.alerts.sent();

    handle.on_change(
        &Change::OverdueResolved {
            org: None,
            session: s,
            runner: Runner::Go,
        },
        None,
    );
    handle.on_change(&Change::Forgotten { session: t }, None);
    while let Ok(cmd) = pusher.rx.try_recv() {
        pusher.apply(cmd);
    }
    let b = pusher.alerts.batch(T0, Duration::from_secs(60), None);
    assert!(
        b.iter().all(|p| p.ends_at == T0.to_rfc3339()),
        "all resolved"
    );
    pusher.alerts.sent();
    assert!(pusher.alerts.is_empty());
}

#[test]
fn raw_config_is_validated() {
    let off = AlertmanagerConfig::from_raw(&RawAlertmanagerConfig::default()).unwrap();
    assert!(off.is_none(), "no url, no pusher");
    let raw: RawAlertmanagerConfig = toml::from_str(
        "url = \"http://am:9093\"\nresend_interval = \"30s\"\nexternal_url = \"http://cc\"",
    )
    .unwrap();
    let c = AlertmanagerConfig::from_raw(&raw).unwrap().unwrap();
    assert_eq!(c.resend_interval, Duration::from_secs(30));
    assert_eq!(c.generator_base.as_deref(), Some("http://cc"));
    for bad in [
        "url = \"am:9093\"",
        "url = \"ftp://am\"",
        "url = \"http://am\"\nresend_interval = \"soon\"",
        "url = \"http://am\"\nresend_interval = \"10ms\"",
        "url = \"http://am\"\nqueue = 0",
    ] {
        let raw: RawAlertmanagerConfig = toml::from_str(bad).unwrap();
        let e = AlertmanagerConfig::from_raw(&raw).unwrap_err().to_string();
        assert!(e.contains("serve.alertmanager"), "{bad}: {e}");
    }
    assert!(toml::from_str::<RawAlertmanagerConfig>("uri = \"x\"").is_err());
}

#[test]
fn the_json_is_alertmanagers_shape() {
    let mut a = Alerts::default();
    let mut f = finding(AlertKind::RunnerMismatch, "s9");
    f.runtime = Some(Runner::Ts);
    f.detail = Some("claimed by ts-worker-2 at 10:00:03Z".into());
    a.fire(f, T0, 10);
    let v = serde_json::to_value(a.batch(T0, Duration::from_secs(60), None)).unwrap();
    let p = &v[0];
    assert_eq!(p["labels"]["runtime"], "ts");
    assert!(p["startsAt"].is_string() && p["endsAt"].is_string());
    assert!(p.get("generatorURL").is_none());
    let with_link =
        serde_json::to_value(a.batch(T0, Duration::from_secs(60), Some("http://cc"))).unwrap();
    assert_eq!(with_link[0]["generatorURL"], "http://cc/api/sessions/s9");
    let d = p["annotations"]["description"].as_str().unwrap();
    assert!(
        d.contains("claimed by ts-worker-2") && d.contains("/api/sessions/s9"),
        "{d}"
    );
}
