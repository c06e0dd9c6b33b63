//! TLS on the listener against the real binary, with certificates made here by a test CA:
//! HTTPS answers with the configured certificate, plain HTTP on the TLS port gets no HTTP, a
//! changed certificate file is served without a restart (and on SIGHUP), a pair that does
//! not load leaves the served certificate, and connections that never finish their
//! handshake are closed after the header timeout. The figures are printed:
//! `cargo nextest run http_tls --no-capture`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, SerialNumber,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Server, claimcheck, free_port, http_get_status, until_some};

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// A CA and the leaf key every certificate it signs here shares (so that replacing the
/// certificate file alone is a whole, valid change).
struct Ca {
    cert: Certificate,
    key: KeyPair,
    leaf_key: KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "claimcheck test CA");
        let cert = params.self_signed(&key).unwrap();
        Ca {
            cert,
            key,
            leaf_key: KeyPair::generate().unwrap(),
        }
    }

    /// A certificate for `localhost` named `cn` with serial `serial`, for `key` (the shared
    /// leaf key when `None`).
    fn leaf(&self, cn: &str, serial: u64, key: Option<&KeyPair>) -> Certificate {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        params
            .signed_by(key.unwrap_or(&self.leaf_key), &self.cert, &self.key)
            .unwrap()
    }
}

/// Replaces `path` whole (write + rename), as a certificate manager does.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Tls {
    server: Server,
    port: u16,
    cert: PathBuf,
    ca: reqwest::Certificate,
}

impl Tls {
    /// serve on a free port with `first` and the CA's leaf key, the files checked every
    /// `check_interval`.
    fn start(dir: &Path, ca: &Ca, first: &Certificate, check_interval: &str) -> Tls {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        replace(&cert, &first.pem());
        replace(&key, &ca.leaf_key.serialize_pem());
        let config = dir.join("tls.toml");
        std::fs::write(
            &config,
            format!(
                "[serve.http]\nheader_read_timeout = \"{}s\"\n\
                 [serve.tls]\nkey_file = {:?}\ncheck_interval = {check_interval:?}\n",
                HEADER_TIMEOUT.as_secs(),
                key.display().to_string(),
            ),
        )
        .unwrap();
        let port = free_port();
        let server = Server(
            claimcheck()
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .arg("--config")
                .arg(&config)
                // the flag and the file's key together make the pair
                .arg("--tls-cert")
                .arg(&cert)
                .args(["--ingest-token", "t"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        Tls {
            server,
            port,
            cert,
            ca: reqwest::Certificate::from_pem(ca.cert.pem().as_bytes()).unwrap(),
        }
    }

    /// A client trusting only the test CA. A new one per request: a client's connection
    /// pool and TLS session cache would resume what an earlier handshake saw, not show the
    /// certificate served now.
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(self.ca.clone())
            .tls_built_in_root_certs(false)
            .tls_info(true)
            .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], self.port)))
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    /// The certificate served for `GET /healthz` (DER), `None` if the request failed.
    async fn served(&self) -> Option<Vec<u8>> {
        let r = self.client().get(self.url("/healthz")).send().await.ok()?;
        if r.status() != 200 {
            return None;
        }
        r.extensions()
            .get::<reqwest::tls::TlsInfo>()?
            .peer_certificate()
            .map(<[u8]>::to_vec)
    }

    /// Waits (30 s at most) until the served certificate is `want`.
    async fn wait_served(&self, want: &Certificate, what: &str) {
        until_some(30, what, || async {
            (self.served().await.as_deref() == Some(want.der().as_ref())).then_some(())
        })
        .await
    }

    /// A sample of `/metrics` (over HTTPS), 0 when absent.
    async fn metric(&self, series: &str) -> f64 {
        let Ok(r) = self.client().get(self.url("/metrics")).send().await else {
            return 0.0;
        };
        let text = r.text().await.unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits (30 s at most) until `series` reaches `at_least`.
    async fn wait_metric(&self, series: &str, at_least: f64) {
        let what = format!("{series} reaching {at_least}");
        until_some(30, &what, || async {
            (self.metric(series).await >= at_least).then_some(())
        })
        .await
    }
}

const LOADED: &str = "claimcheck_tls_certificate_loads_total{outcome=\"loaded\"}";
const FAILED: &str = "claimcheck_tls_certificate_loads_total{outcome=\"failed\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_certificate_and_reloads_it_when_its_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let first = ca.leaf("first", 1, None);
    let mut tls = Tls::start(dir.path(), &ca, &first, "100ms");
    tls.wait_served(&first, "the configured certificate").await;
    assert_eq!(tls.metric(LOADED).await, 1.0);

    // plain HTTP on the TLS port gets no HTTP answer, and is counted
    assert_eq!(http_get_status(tls.port, "/healthz"), None);
    let plain = reqwest::get(format!("http://127.0.0.1:{}/healthz", tls.port)).await;
    assert!(plain.is_err(), "{plain:?}");
    tls.wait_metric(
        "claimcheck_http_connections_refused_total{reason=\"tls_error\"}",
        2.0,
    )
    .await;

    // a new certificate in the file is served without a restart
    let second = ca.leaf("second", 2, None);
    replace(&tls.cert, &second.pem());
    tls.wait_served(&second, "the changed certificate").await;
    assert_eq!(tls.metric(LOADED).await, 2.0);

    // a file that is not a certificate, then one for another key: counted, the old one stays
    replace(&tls.cert, "-----BEGIN CERTIFICATE-----\nnot base64!\n");
    tls.wait_metric(FAILED, 1.0).await;
    let other_key = KeyPair::generate().unwrap();
    replace(&tls.cert, &ca.leaf("third", 3, Some(&other_key)).pem());
    tls.wait_metric(FAILED, 2.0).await;
    tls.wait_served(&second, "the old certificate after bad ones")
        .await;
    assert_eq!(tls.metric(LOADED).await, 2.0);
    assert!(tls.server.0.try_wait().unwrap().is_none(), "serve exited");

    // and a good one after them is served
    let fourth = ca.leaf("fourth", 4, None);
    replace(&tls.cert, &fourth.pem());
    tls.wait_served(&fourth, "a good certificate after bad ones")
        .await;
}

/// One connection that starts a TLS handshake (a record header of a `ClientHello`) and
/// trickles a byte every 250 ms, never finishing: how long serve took to close it, `None` if
/// it was still open after `give_up`.
async fn trickle_handshake(ip: Ipv4Addr, port: u16, give_up: Duration) -> Option<Duration> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::from((ip, 0))).ok()?;
    let mut s = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .ok()?;
    let opened = Instant::now();
    // handshake record, TLS 1.0 record version, 512 bytes announced; then one byte at a time
    if s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).await.is_err() {
        return Some(opened.elapsed());
    }
    let mut buf = [0u8; 64];
    while opened.elapsed() < give_up {
        match tokio::time::timeout(Duration::from_millis(250), s.read(&mut buf)).await {
            Ok(_) => return Some(opened.elapsed()),
            Err(_) => {
                if s.write_all(&[0x01]).await.is_err() {
                    return Some(opened.elapsed());
                }
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_stalled_handshakes_are_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    // checked hourly: only SIGHUP can make this reload happen within the test
    let first = ca.leaf("first", 1, None);
    let tls = Tls::start(dir.path(), &ca, &first, "1h");
    tls.wait_served(&first, "the configured certificate").await;
    let second = ca.leaf("second", 2, None);
    replace(&tls.cert, &second.pem());
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &tls.server.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    tls.wait_served(&second, "the certificate after SIGHUP")
        .await;
    assert_eq!(tls.metric(LOADED).await, 2.0);

    // 200 connections from 4 addresses (under the per-client cap) stall their handshakes
    let started = Instant::now();
    let attack: Vec<_> = (0..200u32)
        .map(|i| {
            let ip = Ipv4Addr::new(127, 0, 2, 1 + (i % 4) as u8);
            tokio::spawn(trickle_handshake(ip, tls.port, HEADER_TIMEOUT * 4))
        })
        .collect();
    // meanwhile HTTPS keeps answering
    let mut slowest = Duration::ZERO;
    let mut every = tokio::time::interval(Duration::from_millis(200));
    for _ in 0..5 {
        every.tick().await;
        let t = Instant::now();
        assert!(
            tls.served().await.is_some(),
            "HTTPS failed during the attack"
        );
        slowest = slowest.max(t.elapsed());
    }
    let mut ends = Vec::new();
    for a in attack {
        ends.push(a.await.unwrap());
    }
    let survived = ends.iter().filter(|e| e.is_none()).count();
    let closed: Vec<Duration> = ends.iter().flatten().copied().collect();
    let longest = closed.iter().max().copied().unwrap_or_default();
    let held = closed.iter().filter(|d| **d >= HEADER_TIMEOUT / 2).count();
    // serve counts a timeout once it has closed the connection, so the client can see the
    // close first: wait (bounded) for the count to reach what the clients saw.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    let timeouts = loop {
        poll.tick().await;
        let n = tls
            .metric("claimcheck_http_connections_refused_total{reason=\"tls_timeout\"}")
            .await;
        if n >= held as f64 || Instant::now() >= deadline {
            break n;
        }
    };
    eprintln!(
        "stalled TLS handshakes: 200 from 4 addresses, {} closed by serve ({held} held until the \
         timeout, longest {longest:?}), {survived} survived, in {:?}; HTTPS slowest {slowest:?}; \
         tls_timeout counted {timeouts}",
        closed.len(),
        started.elapsed(),
    );
    assert_eq!(survived, 0, "a stalled handshake outlived the timeout");
    assert!(
        held > 0,
        "no handshake reached the timeout: it was not tested"
    );
    assert!(
        longest < HEADER_TIMEOUT + Duration::from_secs(2),
        "{longest:?}"
    );
    assert!(timeouts >= held as f64, "{timeouts} < {held}");
}
