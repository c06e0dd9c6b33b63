//! The store's health is the sidecar's health, tried on the real binary: a full filesystem (a
//! small tmpfs mounted for the test), the SQLite file deleted and replaced underneath, and a
//! Postgres of the test's own stopped and restarted. Each checks `/readyz`, the metrics, one
//! log line per change of state, recovery without help, a SIGTERM during the outage that exits
//! within the shutdown grace, and zero loss against a ledger of what was acknowledged.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::platform::servers::PgCluster;
use crate::support::{Server, claimcheck, free_port, http_get_status};

/// The real binary with a store, its stderr collected as it comes.
struct Sidecar {
    server: Server,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// Sessions whose batch was acknowledged (HTTP 200): each must be in the store.
    acked: Vec<String>,
    sent: u32,
}

const GRACE_S: u64 = 3;

impl Sidecar {
    fn start(dir: &Path, store: &str) -> Sidecar {
        let port = free_port();
        let mut child = claimcheck()
            .current_dir(dir)
            .args(["serve", "--ingest-token", "t", "--store", store, "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env("CLAIMCHECK_SERVE_SHUTDOWN_GRACE", format!("{GRACE_S}s"))
            .env("CLAIMCHECK_LOG", "info")
            .env_remove("NO_COLOR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let sc = Sidecar {
            server: Server(child),
            port,
            log,
            reader: Some(reader),
            acked: Vec::new(),
            sent: 0,
        };
        // Ready: the store replayed (ingest is refused with 503 `recovering` before).
        sc.until("/readyz", Duration::from_secs(60), |sc| {
            http_get_status(sc.port, "/readyz").is_some_and(|(s, _)| s == 200)
        });
        sc
    }

    fn log_lines(&self, pat: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(pat))
            .count()
    }

    /// Waits until `pat` was logged `n` times (the log is read from the process's stderr by a
    /// thread of its own, so a line can arrive after what the test saw over HTTP), then holds
    /// the count to exactly `n`.
    fn logged(&self, pat: &str, n: usize) {
        let what = format!("{n} log lines with {pat:?}");
        self.until(&what, Duration::from_secs(30), |sc| sc.log_lines(pat) >= n);
        assert_eq!(self.log_lines(pat), n, "{what}; log:\n{}", self.log_text());
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits for `ok` (polled), or panics with the log.
    fn until(&self, what: &str, limit: Duration, ok: impl Fn(&Sidecar) -> bool) -> Duration {
        let start = Instant::now();
        let reached = crate::support::wait_until(start + limit, || ok(self));
        assert!(
            reached,
            "timed out waiting for {what}; log:\n{}",
            self.log_text()
        );
        start.elapsed()
    }

    /// Posts one batch of `n` dispatches (each with `pad` bytes of padding); `true` when
    /// acknowledged within `wait`, and then its sessions go in the ledger.
    fn post(&mut self, n: usize, pad: usize, wait: Duration) -> bool {
        let mut body = String::new();
        let mut ids = Vec::new();
        let padding = "x".repeat(pad);
        for _ in 0..n {
            self.sent += 1;
            let id = format!("s{:06}", self.sent);
            body.push_str(&format!(
                "{{\"event\":\"dispatch\",\"sessionId\":\"{id}\",\"orgId\":\"o1\",\"time\":\"2026-11-23T10:00:00Z\",\"resolvedProfile\":{{\"runner\":\"go\"}},\"pad\":\"{padding}\"}}\n"
            ));
            ids.push(id);
        }
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        s.set_read_timeout(Some(wait)).unwrap();
        let sent = write!(
            s,
            "POST /ingest/ndjson HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer t\r\n\
             Content-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        if sent.is_err() {
            return false;
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let ok = out.get(9..12) == Some("200");
        if ok {
            self.acked.extend(ids);
        }
        ok
    }

    fn readyz(&self) -> (u16, Value) {
        let (status, body) = http_get_status(self.port, "/readyz").unwrap_or((0, String::new()));
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let text = http_get_status(self.port, "/metrics")?.1;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    fn down_with(&self, reason: &str) -> bool {
        let (status, r) = self.readyz();
        status == 503 && r["store"]["up"] == false && r["store"]["reason"] == reason
    }

    fn ready(&self) -> bool {
        let (status, r) = self.readyz();
        status == 200 && r["store"]["up"] == true
    }

    /// SIGTERM; waits for the exit. The time it took.
    fn terminate(&mut self) -> Duration {
        let start = Instant::now();
        let ok = Command::new("kill")
            .args(["-TERM", &self.server.0.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let (tx, rx) = std::sync::mpsc::channel();
        // The reader thread ends when the process closes its stderr, i.e. exits.
        let reader = self.reader.take().unwrap();
        std::thread::spawn(move || {
            let _ = reader.join();
            let _ = tx.send(());
        });
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            panic!("no exit 60 s after SIGTERM; log:\n{}", self.log_text());
        }
        let took = start.elapsed();
        let _ = self.server.0.wait();
        took
    }
}

/// Every acknowledged session is stored, and no line is stored twice.
#[allow(clippy::print_stderr)]
async fn assert_no_loss(store: &str, acked: &[String]) {
    let store = claimcheck::store::Store::open(store).await.unwrap();
    let mut stored: BTreeMap<String, u32> = BTreeMap::new();
    for l in store.lines().await.unwrap() {
        *stored.entry(l.session.unwrap_or_default()).or_default() += 1;
    }
    let lost: Vec<&String> = acked.iter().filter(|s| !stored.contains_key(*s)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged sessions lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
    eprintln!(
        "ledger: {} acknowledged, {} stored, none lost",
        acked.len(),
        stored.len()
    );
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(
            ok,
            "mount -t tmpfs at {} (the tests run as root)",
            at.display()
        );
        Tmpfs(at.to_owned())
    }

    /// Writes a filler file until the filesystem is full.
    fn fill(&self, name: &str) {
        let mut f = std::fs::File::create(self.0.join(name)).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let mut byte = [0u8; 1];
        while f.write_all(&byte).is_ok() {
            byte[0] = 1;
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Posts batches until one is not acknowledged (the store refuses it), at most `tries`.
fn post_until_refused(sc: &mut Sidecar, tries: u32) -> u32 {
    for i in 1..=tries {
        if !sc.post(200, 400, Duration::from_secs(2)) {
            return i;
        }
    }
    panic!(
        "every batch acknowledged with the store failing; log:\n{}",
        sc.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_holds_ingestion_then_commits_resume() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("fs"), "6m");
    let db = fs.0.join("state.db").display().to_string();
    let mut sc = Sidecar::start(dir.path(), &db);
    for _ in 0..5 {
        assert!(
            sc.post(200, 400, Duration::from_secs(30)),
            "{}",
            sc.log_text()
        );
    }
    assert!(sc.ready());
    assert_eq!(sc.metric("claimcheck_store_up"), Some(1.0));

    fs.fill("filler");
    let tries = post_until_refused(&mut sc, 40);
    eprintln!("disk full: the {tries}th batch after filling was refused");
    sc.until("readyz 503 disk_full", Duration::from_secs(30), |sc| {
        sc.down_with("disk_full")
    });
    sc.until("a few failed retries", Duration::from_secs(30), |sc| {
        sc.metric("claimcheck_store_commit_failures_total")
            .is_some_and(|n| n >= 3.0)
    });
    assert_eq!(sc.metric("claimcheck_store_up"), Some(0.0));
    sc.logged("store down", 1);
    let failures = sc.metric("claimcheck_store_commit_failures_total");

    std::fs::remove_file(fs.0.join("filler")).unwrap();
    let took = sc.until("readyz 200", Duration::from_secs(30), Sidecar::ready);
    eprintln!(
        "disk full: ready again {took:?} after space came back ({failures:?} failed attempts)"
    );
    assert_eq!(sc.metric("claimcheck_store_up"), Some(1.0));
    sc.logged("store up", 1);
    assert!(
        sc.post(200, 400, Duration::from_secs(30)),
        "{}",
        sc.log_text()
    );

    // SIGTERM with the disk full again: out within the grace, saying what was not committed.
    fs.fill("filler");
    post_until_refused(&mut sc, 40);
    let took = sc.terminate();
    eprintln!("disk full: SIGTERM took {took:?} (grace {GRACE_S} s)");
    assert!(
        took < Duration::from_secs(GRACE_S + 3),
        "SIGTERM took {took:?}; log:\n{}",
        sc.log_text()
    );
    assert!(sc.log_lines("not committed") >= 1, "{}", sc.log_text());
    std::fs::remove_file(fs.0.join("filler")).unwrap();
    assert_no_loss(&db, &sc.acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_store_file_is_written_back_and_a_replaced_one_holds_commits() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let db = path.display().to_string();
    let mut sc = Sidecar::start(dir.path(), &db);
    for _ in 0..3 {
        assert!(
            sc.post(100, 0, Duration::from_secs(30)),
            "{}",
            sc.log_text()
        );
    }
    let ino = std::fs::metadata(&path).unwrap().ino();

    // Deleted: noticed by the probe, written back from the open database.
    std::fs::remove_file(&path).unwrap();
    let took = sc.until("the file written back", Duration::from_secs(30), |_| {
        std::fs::metadata(&path).is_ok_and(|m| m.ino() != ino)
    });
    sc.until("readyz 200", Duration::from_secs(30), Sidecar::ready);
    eprintln!("deleted: written back {took:?} after the deletion");
    sc.logged("store down", 1);
    assert!(sc.log_text().contains("file_deleted"), "{}", sc.log_text());
    assert!(
        sc.post(100, 0, Duration::from_secs(30)),
        "{}",
        sc.log_text()
    );
    assert_eq!(sc.metric("claimcheck_store_up"), Some(1.0));

    // Replaced: another file at the path. Commits wait (nothing acknowledged) until the
    // opened file is back.
    let keep = dir.path().join("keep.db");
    std::fs::hard_link(&path, &keep).unwrap();
    let other = dir.path().join("other.db");
    std::fs::write(&other, b"").unwrap();
    std::fs::rename(&other, &path).unwrap();
    sc.until("readyz 503 file_replaced", Duration::from_secs(30), |sc| {
        sc.down_with("file_replaced")
    });
    assert_eq!(sc.metric("claimcheck_store_up"), Some(0.0));
    assert!(
        !sc.post(100, 0, Duration::from_secs(2)),
        "acknowledged into a replaced file"
    );
    sc.logged("store down", 2);
    std::fs::rename(&keep, &path).unwrap();
    let took = sc.until("readyz 200", Duration::from_secs(30), Sidecar::ready);
    eprintln!("replaced: ready again {took:?} after the file came back");
    assert!(
        sc.post(100, 0, Duration::from_secs(30)),
        "{}",
        sc.log_text()
    );
    sc.logged("store up", 2);
    let took = sc.terminate();
    assert!(
        took < Duration::from_secs(GRACE_S + 3),
        "SIGTERM took {took:?}"
    );
    assert_no_loss(&db, &sc.acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_restarted() {
    let pg = PgCluster::start();
    let url = pg.url("postgres");
    let dir = tempfile::tempdir().unwrap();
    let mut sc = Sidecar::start(dir.path(), &url);
    for _ in 0..3 {
        assert!(
            sc.post(100, 0, Duration::from_secs(30)),
            "{}",
            sc.log_text()
        );
    }
    assert!(sc.ready());

    pg.kill();
    assert!(
        !sc.post(100, 0, Duration::from_secs(2)),
        "acknowledged with Postgres stopped"
    );
    sc.until("readyz 503 unreachable", Duration::from_secs(30), |sc| {
        sc.down_with("unreachable")
    });
    assert_eq!(sc.metric("claimcheck_store_up"), Some(0.0));
    sc.until("a few failed retries", Duration::from_secs(30), |sc| {
        sc.metric("claimcheck_store_commit_failures_total")
            .is_some_and(|n| n >= 2.0)
    });
    sc.logged("store down", 1);

    pg.restart();
    let took = sc.until("readyz 200", Duration::from_secs(30), Sidecar::ready);
    eprintln!("postgres: ready again {took:?} after it restarted");
    assert_eq!(sc.metric("claimcheck_store_up"), Some(1.0));
    assert!(
        sc.post(100, 0, Duration::from_secs(30)),
        "{}",
        sc.log_text()
    );

    // SIGTERM with Postgres stopped: out within the grace, saying what was not committed.
    pg.kill();
    assert!(!sc.post(100, 0, Duration::from_secs(2)));
    let took = sc.terminate();
    eprintln!("postgres: SIGTERM took {took:?} (grace {GRACE_S} s)");
    assert!(
        took < Duration::from_secs(GRACE_S + 3),
        "SIGTERM took {took:?}; log:\n{}",
        sc.log_text()
    );
    assert!(sc.log_lines("not committed") >= 1, "{}", sc.log_text());
    pg.restart();
    assert_no_loss(&url, &sc.acked).await;
}

/// The POSIX locks process `pid` holds on the file whose inode is `ino` (`/proc/locks`).
fn locks_on(pid: u32, ino: u64) -> usize {
    let pid = pid.to_string();
    let ino = ino.to_string();
    std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // `1: POSIX ADVISORY READ <pid> <major>:<minor>:<inode> <start> <end>`; a
            // waiter's line has a `->` more, before the kind.
            let f = if f.get(1) == Some(&"->") {
                &f[1..]
            } else {
                &f[..]
            };
            f.get(1) == Some(&"POSIX")
                && f.get(4) == Some(&pid.as_str())
                && f.get(5).and_then(|id| id.rsplit(':').next()) == Some(ino.as_str())
        })
        .count()
}

/// Another process reading the store while serve writes it (an operator's `sqlite3`, a report):
/// serve keeps its SQLite locks on the WAL index throughout, so the reader never takes the
/// store for unused and resets the index under serve (which then died of SIGBUS touching it,
/// or went on with an index that was not its own). A process's POSIX locks on a file go with
/// any close of that file (<https://sqlite.org/howtocorrupt.html>, 2.2): serve held none once
/// it had read the index's header itself, through a file it opened and closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_reading_the_store_never_resets_it_under_serve() {
    use sqlx::Connection;
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let db = path.display().to_string();
    let mut sc = Sidecar::start(dir.path(), &db);
    let pid = sc.server.0.id();
    let shm = dir.path().join("state.db-shm");
    for round in 0..20 {
        assert!(
            sc.post(50, 0, Duration::from_secs(30)),
            "round {round}: {}",
            sc.log_text()
        );
        let ino = std::fs::metadata(&shm).unwrap().ino();
        assert!(
            locks_on(pid, ino) > 0,
            "round {round}: serve holds no lock on its WAL index ({}); /proc/locks:\n{}",
            shm.display(),
            std::fs::read_to_string("/proc/locks").unwrap()
        );
        let mut reader = sqlx::SqliteConnection::connect(&format!("sqlite://{db}"))
            .await
            .unwrap();
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&mut reader)
            .await
            .unwrap();
        reader.close().await.unwrap();
        assert_eq!(stored as usize, sc.acked.len(), "round {round}");
    }
    assert!(
        sc.server.0.try_wait().unwrap().is_none(),
        "serve exited: {}",
        sc.log_text()
    );
    sc.terminate();
    assert_no_loss(&db, &sc.acked).await;
}
