//! Every line shape and field rule of PRODUCT.md §1, as data: input line → expected summary.

use proptest::prelude::*;

use super::*;

/// `kind session runner time [org=] [worker=] [version=] [detail=]`, or `ignored`, or
/// `rejected:<reason>` — short enough that a case reads as one line.
fn summary(p: &Parsed) -> String {
    match p {
        Parsed::Ignored => "ignored".into(),
        Parsed::Rejected(r) => format!("rejected:{}", r.as_str()),
        Parsed::Event(e) => {
            let mut s = format!(
                "{} {} {} {}",
                e.kind.as_str(),
                e.session.as_ref().map_or("-", |s| s.as_str()),
                e.runner,
                e.time
            );
            for (k, v) in [
                ("org", &e.org),
                ("worker", &e.worker),
                ("version", &e.version),
                ("detail", &e.detail),
            ] {
                if let Some(v) = v {
                    s.push_str(&format!(" {k}={v}"));
                }
            }
            s
        }
    }
}

fn check(ctx: LineContext, cases: &[(&str, &str)]) {
    let parser = Parser::new(ParseConfig::default());
    for (line, want) in cases {
        let got = summary(&parser.parse_line(line.as_bytes(), &ctx));
        assert_eq!(&got, want, "line: {line}");
    }
}

const GO: LineContext = LineContext {
    default_runtime: Some(Runner::Go),
    received_at: None,
};
const NONE: LineContext = LineContext {
    default_runtime: None,
    received_at: None,
};

#[test]
fn dispatch_shapes() {
    check(
        NONE,
        &[
            // bare JSON, as in the seed's Method 2
            (
                r#"{"event":"dispatch","sessionId":"ses_1","organizationId":"org_a","resolvedProfile":{"runner":"go","authMode":"host-session"},"time":"2026-11-23T10:00:00Z"}"#,
                "dispatch ses_1 go 2026-11-23T10:00:00.000Z org=org_a detail=host-session",
            ),
            // Lambda tab prefix: time from the prefix
            (
                "2026-11-23T10:00:00.123Z\treq_1\tINFO\t{\"event\":\"dispatch\",\"sessionId\":\"ses_2\",\"resolvedProfile\":{\"runner\":\"ts\"}}\r\n",
                "dispatch ses_2 ts 2026-11-23T10:00:00.123Z",
            ),
            // `<time> INFO {…}`
            (
                r#"2026-11-23T11:00:00+01:00 INFO {"event":"dispatch","sessionId":"ses_3","orgId":"org_b","resolvedProfile":{"runner":"go"}}"#,
                "dispatch ses_3 go 2026-11-23T10:00:00.000Z org=org_b",
            ),
            // the platform's work-queue prefix; time in the object as epoch ms
            (
                r#"[work-queue] Work queued {"event":"dispatch","sessionId":"ses_4","organization_id":"org_c","resolvedProfile":{"runner":"go"},"ts":1795428000000}"#,
                "dispatch ses_4 go 2026-11-23T10:00:00.000Z org=org_c",
            ),
            // legacy dispatch without runner = ts; epoch seconds with a fraction
            (
                r#"{"event":"dispatch","sessionId":"ses_5","resolvedProfile":{"authMode":"byok"},"time":1795428000.25}"#,
                "dispatch ses_5 ts 2026-11-23T10:00:00.250Z detail=byok",
            ),
            (
                r#"{"event":"dispatch","sessionId":"ses_5b","time":1795428000}"#,
                "dispatch ses_5b ts 2026-11-23T10:00:00.000Z",
            ),
            // an unknown runner value is kept as other; "Go" is not go
            (
                r#"{"event":"dispatch","sessionId":"ses_6","resolvedProfile":{"runner":"Go"},"@timestamp":"2026-11-23T10:00:00Z"}"#,
                "dispatch ses_6 other 2026-11-23T10:00:00.000Z",
            ),
            (
                r#"{"event":"dispatch","sessionId":"ses_6b","resolvedProfile":{"runner":42},"time":"2026-11-23T10:00:00Z"}"#,
                "dispatch ses_6b other 2026-11-23T10:00:00.000Z",
            ),
            // TS logger: ids nested under context
            (
                r#"{"timestamp":"2026-11-23T10:00:01.000Z","level":"info","message":"dispatched","service":"platform","context":{"event":"dispatch","sessionId":"ses_7","organizationId":"org_d","resolvedProfile":{"runner":"go"}}}"#,
                "dispatch ses_7 go 2026-11-23T10:00:01.000Z org=org_d",
            ),
        ],
    );
}

#[test]
fn vercel_drain_entries() {
    check(
        NONE,
        &[
            // the JSON lives in `message`; the envelope timestamp is the fallback time
            (
                r#"{"id":"1","message":"{\"event\":\"dispatch\",\"sessionId\":\"ses_v1\",\"resolvedProfile\":{\"runner\":\"go\"}}","timestamp":1795428000500,"source":"lambda","requestId":"r","deploymentId":"d","projectId":"p"}"#,
                "dispatch ses_v1 go 2026-11-23T10:00:00.500Z",
            ),
            // the event's own time wins over the envelope's
            (
                r#"{"id":"2","message":"{\"event\":\"dispatch\",\"sessionId\":\"ses_v2\",\"time\":\"2026-11-23T10:00:00Z\"}","timestamp":1795428009999,"source":"lambda"}"#,
                "dispatch ses_v2 ts 2026-11-23T10:00:00.000Z",
            ),
            // a Lambda-style line inside message
            (
                r#"{"id":"3","message":"2026-11-23T10:00:00.123Z\treq\tINFO\t{\"event\":\"dispatch\",\"sessionId\":\"ses_v3\",\"resolvedProfile\":{\"runner\":\"go\"}}\n","timestamp":1795428009999}"#,
                "dispatch ses_v3 go 2026-11-23T10:00:09.999Z",
            ),
            // empty, non-JSON and truncated messages
            (
                r#"{"id":"4","message":"","timestamp":1795428000000}"#,
                "ignored",
            ),
            (
                r#"{"id":"5","message":"GET /api/health 200","timestamp":1795428000000}"#,
                "ignored",
            ),
            (
                r#"{"id":"6","message":"{\"event\":\"dispatch\",\"sessionId\":\"ses_v6\",\"resolvedPro","timestamp":1795428000000}"#,
                "rejected:malformed_json",
            ),
        ],
    );
}

#[test]
fn worker_events() {
    check(
        GO,
        &[
            // Go slog JSON; the runtime defaults to the source's
            (
                r#"{"time":"2026-11-23T10:00:02.5+00:00","level":"INFO","msg":"claimed","event":"claimed","sessionId":"ses_1","workerId":"w1","version":"0.5.2"}"#,
                "claim ses_1 go 2026-11-23T10:00:02.500Z worker=w1 version=0.5.2",
            ),
            // an explicit runtime (or runner) wins over the source default
            (
                r#"{"time":"2026-11-23T10:00:02Z","event":"claimed","sessionId":"ses_1","runtime":"ts","workerId":"w9"}"#,
                "claim ses_1 ts 2026-11-23T10:00:02.000Z worker=w9",
            ),
            (
                r#"{"time":"2026-11-23T10:00:02Z","event":"claimed","session_id":"ses_1","runner":"ts"}"#,
                "claim ses_1 ts 2026-11-23T10:00:02.000Z",
            ),
            (
                r#"{"time":"2026-11-23T10:09:00Z","event":"completed","sessionId":"ses_1","workerId":"w1"}"#,
                "completion ses_1 go 2026-11-23T10:09:00.000Z worker=w1 detail=completed",
            ),
            (
                r#"{"time":"2026-11-23T10:09:00Z","event":"failed","sessionId":"ses_1","status":"error"}"#,
                "completion ses_1 go 2026-11-23T10:09:00.000Z detail=error",
            ),
            (
                r#"{"time":"2026-11-23T10:00:30Z","event":"heartbeat","workerId":"w1","version":0.5}"#,
                "heartbeat - go 2026-11-23T10:00:30.000Z worker=w1 version=0.5",
            ),
            (
                r#"{"time":"2026-11-23T10:00:03Z","event":"nack","sessionId":"ses_1","workerId":"w1","reason":"capacity"}"#,
                "release ses_1 go 2026-11-23T10:00:03.000Z worker=w1 detail=capacity",
            ),
            (
                r#"{"time":"2026-11-23T10:00:03Z","event":"released","sessionId":"ses_1"}"#,
                "release ses_1 go 2026-11-23T10:00:03.000Z",
            ),
            // TS worker logger shape
            (
                r#"{"timestamp":"2026-11-23T10:00:02Z","level":"info","message":"Work claimed","service":"worker","context":{"event":"claimed","sessionId":"ses_2","workerId":"ts-1","runtime":"ts"}}"#,
                "claim ses_2 ts 2026-11-23T10:00:02.000Z worker=ts-1",
            ),
        ],
    );
}

#[test]
fn irrelevant_lines_are_ignored() {
    check(
        GO,
        &[
            ("", "ignored"),
            ("daemon poll: 2 work item(s) received", "ignored"),
            ("ERROR: job failed {not json", "ignored"),
            (r#"{"level":"info","msg":"poll","event":"poll"}"#, "ignored"),
            (r#"{"event":{"name":"claimed"}}"#, "ignored"),
            (
                r#"{"message":"Work claimed","context":{"sessionId":"s"}}"#,
                "ignored",
            ),
            ("[1,2,3]", "ignored"),
        ],
    );
}

/// A line is an event only if an event key is written plainly in it: the fast path proves
/// that for the lines it walks, the others are searched as before.
#[test]
fn an_event_key_must_be_written_plainly() {
    check(
        GO,
        &[
            (
                r#"{"\u0065vent":"claimed","sessionId":"s1","time":"2026-11-23T10:00:00Z"}"#,
                "ignored",
            ),
            (
                r#"{"context":{"ev\u0065nt":"claimed","sessionId":"s1"},"time":"2026-11-23T10:00:00Z"}"#,
                "ignored",
            ),
            // the same lines written plainly, through the fast path and through serde_json
            (
                r#"{"event":"claimed","sessionId":"s1","time":"2026-11-23T10:00:00Z"}"#,
                "claim s1 go 2026-11-23T10:00:00.000Z",
            ),
            (
                r#"{"context":{"event":"claimed","sessionId":"s\u0031"},"time":"2026-11-23T10:00:00Z"}"#,
                "claim s1 go 2026-11-23T10:00:00.000Z",
            ),
            // a decoy: well-formed and ignored, broken and rejected
            (
                r#"{"event":"lease_renewed","sessionId":"s1","state":"claimed","leaseMs":30000}"#,
                "ignored",
            ),
            (
                r#"{"event":"lease_renewed","sessionId":"s1","state":"claimed","leaseMs":30000"#,
                "rejected:malformed_json",
            ),
        ],
    );
}

#[test]
fn broken_relevant_lines_are_rejected_with_a_reason() {
    check(
        NONE,
        &[
            (
                r#"{"event":"claimed","sessionId":"ses_1","time":"2026-11-23T10:00:00Z"}"#,
                "rejected:missing_runtime",
            ),
            (
                r#"{"event":"dispatch","sessionId":"","time":"2026-11-23T10:00:00Z"}"#,
                "rejected:missing_session_id",
            ),
            (
                r#"{"event":"dispatch","sessionId":7,"time":"2026-11-23T10:00:00Z"}"#,
                "rejected:missing_session_id",
            ),
            (
                r#"{"event":"dispatch","time":"2026-11-23T10:00:00Z"}"#,
                "rejected:missing_session_id",
            ),
            (
                r#"{"event":"dispatch","sessionId":"s"}"#,
                "rejected:missing_time",
            ),
            (
                r#"{"event":"dispatch","sessionId":"s","time":"yesterday"}"#,
                "rejected:bad_time",
            ),
            (
                r#"{"event":"dispatch","sessionId":"s","time":true}"#,
                "rejected:bad_time",
            ),
            (
                r#"{"event":"dispatch","sessionId":"s","time":-5}"#,
                "rejected:bad_time",
            ),
            (
                r#"{"event":"dispatch","sessionId":"ses_1","resol"#,
                "rejected:malformed_json",
            ),
            (
                "{\"event\":\"dispatch\",\"sessionId\":\"s\0\"}",
                "rejected:malformed_json",
            ),
        ],
    );
}

/// A decoy (another event holding one of our names as some other value) is ignored only
/// once it is proven well-formed, however early its own event name decides it: cut short or
/// broken anywhere after that name, it is `malformed_json` while it still holds our name.
#[test]
fn a_decoy_is_checked_to_its_end() {
    let parser = Parser::new(ParseConfig::default());
    for line in [
        r#"{"time":"2026-11-23T08:00:45.298Z","service":"dispatcher","event":"lease_renewed","sessionId":"s1","state":"claimed","tags":[1,{"a":null}],"attempt":1}"#,
        r#"{"id":"1","message":"{\"event\":\"lease_renewed\",\"state\":\"claimed\",\"n\":[true]}","timestamp":1795428000000,"source":"lambda"}"#,
    ] {
        assert_eq!(parser.parse_line(line.as_bytes(), &GO), Parsed::Ignored);
        let decided = line.find("lease_renewed").unwrap_or(0) + "lease_renewed".len();
        for cut in decided..line.len() {
            let (head, tail) = line.split_at(cut);
            // cut short there, and a byte no JSON may hold put in there
            for broken in [head.to_owned(), format!("{head}\u{1}{tail}")] {
                let want = if parser.looks_relevant(broken.as_bytes()) {
                    Parsed::Rejected(Reject::MalformedJson)
                } else {
                    Parsed::Ignored
                };
                assert_eq!(parser.parse_line(broken.as_bytes(), &GO), want, "{broken}");
            }
        }
        assert!(parser.looks_relevant(&line.as_bytes()[..line.len() - 1]));
    }
}

#[test]
fn live_mode_takes_the_receive_time() {
    let ctx = LineContext {
        default_runtime: Some(Runner::Ts),
        received_at: Some(Timestamp(1_795_428_000_000)),
    };
    check(
        ctx,
        &[(
            r#"{"event":"claimed","sessionId":"s"}"#,
            "claim s ts 2026-11-23T10:00:00.000Z",
        )],
    );
}

#[test]
fn invalid_utf8_and_overlong_lines() {
    let p = Parser::new(ParseConfig::default());
    let mut line = b"{\"event\":\"claimed\",\"sessionId\":\"\xff\xfe\"}".to_vec();
    assert_eq!(
        p.parse_line(&line, &GO),
        Parsed::Rejected(Reject::MalformedJson)
    );
    line = b"\xff\xfe noise \xc3".to_vec();
    assert_eq!(p.parse_line(&line, &GO), Parsed::Ignored);
    let mut long = br#"{"event":"claimed","sessionId":"s","pad":""#.to_vec();
    long.resize(2 << 20, b'x');
    long.extend_from_slice(b"\"}");
    assert_eq!(p.parse_line(&long, &GO), Parsed::Rejected(Reject::TooLong));
    let noise = vec![b'x'; 2 << 20];
    assert_eq!(p.parse_line(&noise, &GO), Parsed::Ignored);
}

#[test]
fn field_paths_and_names_come_from_config() {
    let raw: crate::parse::RawParseConfig =
        toml::from_str("session_id_paths = [\"attrs.sid\"]\n[events]\nclaim = [\"picked_up\"]\n")
            .unwrap();
    let p = Parser::new(ParseConfig::new(&raw).unwrap());
    let line = br#"{"event":"picked_up","attrs":{"sid":"x1"},"time":"2026-11-23T10:00:00Z"}"#;
    assert_eq!(
        summary(&p.parse_line(line, &GO)),
        "claim x1 go 2026-11-23T10:00:00.000Z"
    );
    let old = br#"{"event":"claimed","sessionId":"x1","time":"2026-11-23T10:00:00Z"}"#;
    assert_eq!(p.parse_line(old, &GO), Parsed::Ignored);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Nothing a file can contain panics the parser.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let p = Parser::new(ParseConfig::default());
        let _ = p.parse_line(&bytes, &GO);
    }

    /// Mutations of real lines (truncation, byte flips) give a verdict, never a panic, and a
    /// truncated relevant line is never silently accepted as a different session.
    #[test]
    fn mangled_real_lines_never_panic(cut in 0usize..200, flip in 0usize..200, byte in any::<u8>()) {
        let p = Parser::new(ParseConfig::default());
        let line = br#"{"id":"1","message":"{\"event\":\"claimed\",\"sessionId\":\"ses_1\",\"time\":\"2026-11-23T10:00:00Z\"}","timestamp":1795428000000}"#;
        let mut v = line[..cut.min(line.len())].to_vec();
        if let Some(b) = v.get_mut(flip) { *b = byte; }
        if let Parsed::Event(e) = p.parse_line(&v, &GO) {
            prop_assert_eq!(e.kind, EventKind::Claim);
        }
    }
}
