//! Throwaway servers for outage tests: a `redis-server` and a Postgres cluster on free ports,
//! killed and restarted on the same port by the test. Dropped, they are stopped and removed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `ok` until it holds, or panics with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let reached = crate::support::wait_until(Instant::now() + limit, &mut ok);
    assert!(reached, "timed out waiting for {what}");
}

fn accepts(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// `redis-server --port <port> --save ''`: no persistence, so a restart comes back empty.
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    /// Where an explicit `SAVE` writes, and a restart loads from.
    dir: Option<PathBuf>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut s = RedisServer {
            port: free_port(),
            child: None,
            dir: None,
        };
        s.restart();
        s
    }

    /// A server whose `SAVE`d data survives a kill and restart (automatic saves stay off).
    pub fn start_in(dir: &Path) -> RedisServer {
        let mut s = RedisServer {
            port: free_port(),
            child: None,
            dir: Some(dir.to_owned()),
        };
        s.restart();
        s
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL: the server vanishes mid-conversation.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let port = self.port;
        wait_for("redis to be gone", Duration::from_secs(10), || {
            !accepts(port)
        });
    }

    /// SIGSTOP: a blackhole. Connections are accepted by the kernel, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    }

    pub fn restart(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string()]).args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        if let Some(dir) = &self.dir {
            cmd.arg("--dir").arg(dir);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        self.child = Some(child);
        let port = self.port;
        wait_for("redis to accept", Duration::from_secs(10), || accepts(port));
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A Postgres cluster of its own (`initdb` + `pg_ctl`), run as user `postgres` since Postgres
/// refuses root, in a temporary directory owned by that user.
#[derive(Debug)]
pub struct PgCluster {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

fn pg_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("/usr/lib/postgresql")
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn as_postgres(program: &Path) -> Command {
    let root = is_root();
    let mut c = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// Whether this process runs as root (from `/proc/self/status`, no libc call).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

impl PgCluster {
    pub fn start() -> PgCluster {
        let dir = std::env::temp_dir().join(format!(
            "claimcheck-pg-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown {}", dir.display());
        }
        let bin = pg_bin();
        let ok = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "initdb in {}", dir.display());
        let c = PgCluster {
            port: free_port(),
            dir,
            bin,
        };
        c.restart();
        c
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn restart(&self) {
        self.restart_on(self.port);
    }

    /// Starts the cluster listening on `port` (another port: a change the sidecar cannot see).
    pub fn restart_on(&self, port: u16) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            port,
            self.dir.display()
        );
        let ok = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-o", &opts, "-w", "start"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "pg_ctl start (log in {})", self.dir.display());
    }

    /// `pg_ctl stop -m immediate`: every backend is killed, no clean shutdown.
    pub fn kill(&self) {
        self.kill_on(self.port);
    }

    pub fn kill_on(&self, port: u16) {
        let ok = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "pg_ctl stop");
        wait_for("postgres to be gone", Duration::from_secs(10), || {
            !accepts(port)
        });
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
