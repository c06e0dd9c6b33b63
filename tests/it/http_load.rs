//! The HTTP edge against the real binary on loopback, tried as a hostile client would:
//! slowloris (thousands of connections trickling their request head) and connection floods,
//! from one client address, then from many. Throughout, `/healthz` (from another address)
//! answers within a second, serve's open descriptors stay under its caps and its RSS stays
//! bounded. The figures are printed: `cargo nextest run http_load --no-capture`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Server, claimcheck, free_port, rss_kb};

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// The defaults of `[serve.http]`.
const PER_CLIENT: usize = 64;
const MAX_CONNECTIONS: usize = 1024;

/// What the probe saw while an attack ran.
#[derive(Debug, Default)]
struct Watch {
    probes: usize,
    slowest: Duration,
    failed: usize,
    max_rss_kb: u64,
    max_fds: usize,
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// `GET /healthz` from 127.0.0.1 with a 2 s deadline: how long it took, `None` if it failed.
fn healthz(port: u16) -> Option<Duration> {
    let started = Instant::now();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.starts_with("HTTP/1.1 200").then(|| started.elapsed())
}

/// Probes `/healthz` and samples serve's RSS and descriptors until `stop` is sent (or
/// dropped), every 50 ms.
fn watch(port: u16, pid: u32, stop: mpsc::Receiver<()>) -> std::thread::JoinHandle<Watch> {
    std::thread::spawn(move || {
        let mut w = Watch::default();
        loop {
            match healthz(port) {
                Some(t) => w.slowest = w.slowest.max(t),
                None => w.failed += 1,
            }
            w.probes += 1;
            w.max_rss_kb = w.max_rss_kb.max(rss_kb(pid));
            w.max_fds = w.max_fds.max(fds(pid));
            if !matches!(
                stop.recv_timeout(Duration::from_millis(50)),
                Err(mpsc::RecvTimeoutError::Timeout)
            ) {
                break;
            }
        }
        w
    })
}

/// How one attacking connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Closed by serve this long after it was accepted.
    Closed(Duration),
    /// Still open when the attacker gave up.
    Survived,
    /// The connection was never established.
    NoConnect,
}

async fn connect_from(ip: Ipv4Addr, port: u16) -> Option<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(IpAddr::V4(ip), 0)).ok()?;
    tokio::time::timeout(
        Duration::from_secs(10),
        socket.connect(SocketAddr::from(([127, 0, 0, 1], port))),
    )
    .await
    .ok()?
    .ok()
}

/// One slowloris connection: a request head sent a header every 250 ms, never finished;
/// gives up after `give_up`.
async fn trickle(ip: Ipv4Addr, port: u16, give_up: Duration) -> End {
    let Some(mut s) = connect_from(ip, port).await else {
        return End::NoConnect;
    };
    let opened = Instant::now();
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .is_err()
    {
        return End::Closed(opened.elapsed());
    }
    let mut buf = [0u8; 256];
    while opened.elapsed() < give_up {
        match tokio::time::timeout(Duration::from_millis(250), s.read(&mut buf)).await {
            // Anything read is serve's 408 or EOF: either way it is ending the connection.
            Ok(_) => return End::Closed(opened.elapsed()),
            Err(_) => {
                if s.write_all(b"X-Trickle: 1\r\n").await.is_err() {
                    return End::Closed(opened.elapsed());
                }
            }
        }
    }
    End::Survived
}

/// One flooding connection: opened and left silent until serve closes it or `give_up`.
async fn idle(ip: Ipv4Addr, port: u16, give_up: Duration) -> End {
    let Some(mut s) = connect_from(ip, port).await else {
        return End::NoConnect;
    };
    let opened = Instant::now();
    let mut buf = [0u8; 256];
    match tokio::time::timeout(give_up, s.read(&mut buf)).await {
        Ok(_) => End::Closed(opened.elapsed()),
        Err(_) => End::Survived,
    }
}

fn start(port: u16, dir: &std::path::Path) -> Server {
    let config = dir.join("edge.toml");
    std::fs::write(
        &config,
        format!(
            "[serve.http]\nheader_read_timeout = \"{}s\"\n",
            HEADER_TIMEOUT.as_secs()
        ),
    )
    .unwrap();
    let server = Server(
        claimcheck()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--config")
            .arg(&config)
            .args(["--ingest-token", "t"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    crate::support::until(30, "serve up", || healthz(port).is_some());
    server
}

fn tally(ends: &[End]) -> (usize, usize, usize, Duration) {
    let (mut closed, mut survived, mut no_connect, mut longest) = (0, 0, 0, Duration::ZERO);
    for e in ends {
        match e {
            End::Closed(d) => {
                closed += 1;
                longest = longest.max(*d);
            }
            End::Survived => survived += 1,
            End::NoConnect => no_connect += 1,
        }
    }
    (closed, survived, no_connect, longest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_floods_leave_healthz_answering() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start(port, dir.path());
    let pid = server.0.id();
    let (rss0, fds0) = (rss_kb(pid), fds(pid));
    eprintln!("baseline: rss {rss0} kB, {fds0} fds");

    // 0. an idle keep-alive connection is closed after the header timeout
    let mut s = connect_from(Ipv4Addr::new(127, 0, 0, 4), port)
        .await
        .unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let idle_from = Instant::now();
    let end = tokio::time::timeout(HEADER_TIMEOUT * 3, s.read(&mut buf)).await;
    let idle_for = idle_from.elapsed();
    eprintln!("idle keep-alive connection closed after {idle_for:?}");
    assert!(matches!(end, Ok(Ok(0))), "{end:?}");
    assert!(idle_for >= HEADER_TIMEOUT && idle_for < HEADER_TIMEOUT + Duration::from_secs(1));

    // 1. slowloris: 3000 connections from one address trickling their heads
    let (stop, stopped) = mpsc::channel();
    let watcher = watch(port, pid, stopped);
    let started = Instant::now();
    let attack: Vec<_> = (0..3000)
        .map(|_| {
            tokio::spawn(trickle(
                Ipv4Addr::new(127, 0, 0, 2),
                port,
                HEADER_TIMEOUT * 4,
            ))
        })
        .collect();
    let mut ends = Vec::new();
    for a in attack {
        ends.push(a.await.unwrap());
    }
    let _ = stop.send(());
    let w = watcher.join().unwrap();
    let (closed, survived, no_connect, longest) = tally(&ends);
    let held = ends
        .iter()
        .filter(|e| matches!(e, End::Closed(d) if *d >= HEADER_TIMEOUT / 2))
        .count();
    eprintln!(
        "slowloris 3000 from one address: {closed} closed by serve ({held} held until the header timeout, \
         longest {longest:?}), {survived} survived, {no_connect} never connected, in {:?}; \
         healthz {} probes, slowest {:?}, {} failed; serve max rss {} kB, max fds {}",
        started.elapsed(),
        w.probes,
        w.slowest,
        w.failed,
        w.max_rss_kb,
        w.max_fds
    );
    assert_eq!(
        survived, 0,
        "a trickling connection outlived the header timeout"
    );
    assert!(
        held > 0,
        "no connection reached the header timeout: it was not tested"
    );
    assert!(
        longest < HEADER_TIMEOUT + Duration::from_secs(2),
        "{longest:?}"
    );
    assert!(w.probes > 0 && w.failed == 0, "{w:?}");
    assert!(w.slowest < Duration::from_secs(1), "{w:?}");
    // at most the per-client cap open at once (plus the probe's own connection)
    assert!(w.max_fds <= fds0 + PER_CLIENT + 4, "{w:?} from {fds0}");

    // 2. flood: 10,000 silent connections from one address, as fast as they open
    let (stop, stopped) = mpsc::channel();
    let watcher = watch(port, pid, stopped);
    let started = Instant::now();
    let attack: Vec<_> = (0..10_000)
        .map(|_| tokio::spawn(idle(Ipv4Addr::new(127, 0, 0, 3), port, HEADER_TIMEOUT * 3)))
        .collect();
    let mut ends = Vec::new();
    for a in attack {
        ends.push(a.await.unwrap());
    }
    let _ = stop.send(());
    let w = watcher.join().unwrap();
    let (closed, survived, no_connect, longest) = tally(&ends);
    eprintln!(
        "flood 10000 from one address: {closed} closed by serve (longest {longest:?}), {survived} survived, \
         {no_connect} never connected, in {:?}; healthz {} probes, slowest {:?}, {} failed; \
         serve max rss {} kB, max fds {}",
        started.elapsed(),
        w.probes,
        w.slowest,
        w.failed,
        w.max_rss_kb,
        w.max_fds
    );
    assert_eq!(survived, 0);
    assert!(w.probes > 0 && w.failed == 0, "{w:?}");
    assert!(w.slowest < Duration::from_secs(1), "{w:?}");
    assert!(w.max_fds <= fds0 + PER_CLIENT + 4, "{w:?} from {fds0}");
    // every connection over the client's cap was counted as refused, by one emitter
    let metrics = crate::support::http_get(port, "/metrics").unwrap_or_default();
    let refused: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("claimcheck_http_connections_refused_total{reason=\"client_cap\"}")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0);
    eprintln!("refused for the client cap so far: {refused}");
    assert!(
        refused >= (closed - PER_CLIENT * 3) as f64,
        "{refused} refused of {closed} closed"
    );

    // 3. many clients: 24 addresses x 64 silent connections, more than max_connections. Serve
    // stops accepting at the cap (its descriptors stay bounded) and the header timeout
    // frees the slots; healthz is judged only once the attack is over.
    let started = Instant::now();
    let mut max_fds = 0;
    let attack: Vec<_> = (0..24u8)
        .flat_map(|c| {
            (0..PER_CLIENT).map(move |_| {
                tokio::spawn(idle(
                    Ipv4Addr::new(127, 0, 1, c + 1),
                    port,
                    HEADER_TIMEOUT * 5,
                ))
            })
        })
        .collect();
    let mut ends = Vec::new();
    for a in attack {
        max_fds = max_fds.max(fds(pid));
        ends.push(a.await.unwrap());
    }
    let (closed, survived, no_connect, longest) = tally(&ends);
    let back = Instant::now();
    let mut after = None;
    while back.elapsed() < Duration::from_secs(5) {
        if let Some(t) = healthz(port) {
            after = Some(t);
            break;
        }
    }
    eprintln!(
        "1536 silent connections from 24 addresses: {closed} closed by serve (longest {longest:?}), \
         {survived} survived, {no_connect} never connected, in {:?}; serve max fds {max_fds}; \
         healthz afterwards {after:?}",
        started.elapsed()
    );
    assert_eq!(survived, 0);
    assert!(max_fds <= fds0 + MAX_CONNECTIONS + 4, "{max_fds}");
    assert!(after.is_some_and(|t| t < Duration::from_secs(1)));

    let rss1 = rss_kb(pid);
    eprintln!("after: rss {rss1} kB, {} fds", fds(pid));
    assert!(rss1 < rss0 + 64 * 1024, "rss {rss0} -> {rss1} kB");
}
