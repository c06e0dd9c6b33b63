//! Redis servers a test starts and owns: a Redis Cluster of masters (and replicas) on free
//! loopback ports, killed when dropped; and a key prefix of its own on the shared standalone
//! server, its keys deleted when dropped.
//!
//! The topology and fault tests of the shared correlation state need the same cluster with
//! replicas, a node killed and restarted: [`RedisCluster::kill`] and [`RedisCluster::restart`];
//! the outage tests a standalone server of their own, killed and restarted ([`RedisServer`]).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::support::wait_until;

/// The shared standalone server (never stopped by a test).
pub const STANDALONE: &str = "redis://127.0.0.1:6379";

/// How long a cluster may take to form on a loaded machine.
const FORM_WITHIN: Duration = Duration::from_secs(60);

struct Node {
    port: u16,
    child: Option<Child>,
}

/// A Redis Cluster of its own: `redis-server --cluster-enabled yes` per node on a free port
/// (its bus port, +10000, free too), joined by `redis-cli --cluster create`; every node is
/// SIGKILLed when this is dropped, and its directory removed.
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

/// A port whose cluster bus port (+10000) is free too. Ports are drawn from 20000-29999, below
/// the ephemeral range, so a bus port never collides with an outgoing connection's.
fn free_node_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (seed.wrapping_add(n.wrapping_mul(37)) % 10_000) as u16;
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
    panic!("no free port pair in 20000-29999");
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas` replicas each and waits until every node says
    /// `cluster_state:ok` (and every replica's link to its master is up).
    pub fn start(masters: usize, replicas: usize) -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..masters * (1 + replicas) {
            let port = free_node_port();
            cluster.nodes.push(Node { port, child: None });
            let i = cluster.nodes.len() - 1;
            cluster.spawn(i);
        }
        let deadline = Instant::now() + FORM_WITHIN;
        for i in 0..cluster.nodes.len() {
            assert!(
                wait_until(deadline, || cluster.query(i, &["PING"]).is_some()),
                "node {i} did not answer"
            );
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            wait_until(deadline, || cluster.formed(masters * replicas)),
            "the cluster did not form: {:?}",
            cluster.query(0, &["CLUSTER", "INFO"])
        );
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let port = self.nodes[i].port.to_string();
        let log = std::fs::File::create(self.dir.path().join(format!("{port}.log"))).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            // Quick failure detection, so a test's failover happens within seconds.
            .args(["--cluster-node-timeout", "2000"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.nodes[i].child = Some(child);
    }

    /// Every node is up and says the cluster is ok; `replicas` replicas have their link up.
    fn formed(&self, replicas: usize) -> bool {
        let ok = (0..self.nodes.len()).all(|i| {
            self.query(i, &["CLUSTER", "INFO"])
                .is_some_and(|s| s.contains("cluster_state:ok"))
        });
        let linked = (0..self.nodes.len())
            .filter(|&i| {
                self.query(i, &["INFO", "replication"])
                    .is_some_and(|s| s.contains("master_link_status:up"))
            })
            .count();
        ok && linked == replicas
    }

    /// Runs one command on node `i`; `None` when it does not answer.
    pub fn query(&self, i: usize, args: &[&str]) -> Option<String> {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{}", self.nodes[i].port)).ok()?;
        let mut c = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query::<String>(&mut c).ok()
    }

    /// The node serving `key`'s slot, asking the first node that answers.
    pub fn owner(&self, key: &str) -> Option<usize> {
        let (mut c, _) = (0..self.nodes.len()).find_map(|i| {
            let client =
                redis::Client::open(format!("redis://127.0.0.1:{}", self.nodes[i].port)).ok()?;
            Some((
                client
                    .get_connection_with_timeout(Duration::from_secs(1))
                    .ok()?,
                i,
            ))
        })?;
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut c)
            .ok()?;
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut c).ok()?;
        ranges.iter().find_map(|r| {
            let redis::Value::Array(items) = r else {
                return None;
            };
            let from: u16 = redis::from_redis_value(items.first()?).ok()?;
            let to: u16 = redis::from_redis_value(items.get(1)?).ok()?;
            let redis::Value::Array(master) = items.get(2)? else {
                return None;
            };
            let port: u16 = redis::from_redis_value(master.get(1)?).ok()?;
            (from..=to)
                .contains(&slot)
                .then(|| self.nodes.iter().position(|n| n.port == port))?
        })
    }

    /// Seed URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// SIGKILLs node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `i` again on its port, with its cluster config (it rejoins the cluster).
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    /// The nodes that are masters now.
    pub fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                self.query(i, &["INFO", "replication"])
                    .is_some_and(|s| s.contains("role:master"))
            })
            .collect()
    }

    /// Stops (`SIGSTOP`) or continues (`SIGCONT`) every node: the cluster unreachable, its
    /// connections left open, as behind a partition.
    pub fn freeze(&self, frozen: bool) {
        for n in &self.nodes {
            if let Some(c) = &n.child {
                let status = Command::new("kill")
                    .arg(if frozen { "-STOP" } else { "-CONT" })
                    .arg(c.id().to_string())
                    .status()
                    .unwrap();
                assert!(status.success());
            }
        }
    }

    /// Every node up, the cluster ok, and `replicas` replicas linked to their masters.
    pub fn whole(&self, replicas: usize) -> bool {
        self.formed(replicas)
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// A standalone `redis-server` of its own on a free loopback port, with its append-only file
/// fsynced before every reply (`appendfsync always`): a SIGKILL loses no write it answered,
/// so a restart on the same directory holds everything the sidecars were told was stored.
/// Killed when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut s = RedisServer {
            port: super::support::free_port(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let url = self.url();
        let up = wait_until(Instant::now() + FORM_WITHIN, || {
            redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok()
        });
        assert!(up, "redis-server on {port} did not answer");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the server.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on its port and directory (its append-only file read back).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A key prefix of its own on the shared standalone server; its keys are deleted on drop.
pub struct Prefix(pub String);

impl Prefix {
    pub fn new(name: &str) -> Prefix {
        static N: AtomicU32 = AtomicU32::new(0);
        // Random per process: a pid reused by a later run never meets an earlier run's keys.
        let salt = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 0u8);
        Prefix(format!(
            "cc-test:{name}:{}:{}:{salt:x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(STANDALONE) else {
            return;
        };
        let Ok(mut c) = client.get_connection() else {
            return;
        };
        let pattern = format!("{{{}:*", self.0);
        let keys: Vec<String> = match redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter::<String>(&mut c)
        {
            Ok(iter) => iter.collect(),
            Err(_) => return,
        };
        for chunk in keys.chunks(500) {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut c);
        }
    }
}
