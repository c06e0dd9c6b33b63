//! A loopback link to a Redis server that loses answers: a TCP proxy that reads the client's
//! requests one by one (RESP arrays of bulk strings) and, for about one in `every` calls
//! carrying one of the memo fields it is given (`state::shared::memo`: the argument after
//! the field is the call's token; up to `most` times), lets the server run the call and then
//! cuts the connection before its answer gets back. Which calls is a function of their
//! tokens, and a token is cut once: the same call sent again gets through, as it would once
//! a link is mended (a call cut again and again would stall the test, not show anything). To know the server ran it, the proxy sends its
//! own `ECHO` right behind it on the same connection (Redis answers a connection's commands
//! in order) and swallows the answers up to the echo. Requests the client wrote after the
//! cut request are forwarded or not, as the race goes: their answers are lost too, as on a
//! real cut.
//!
//! Or, started with [`LossyLink::holding`], it loses nothing and holds back instead: once
//! armed, the next call carrying the field it is given, and everything sent after it on that
//! connection, wait in the link until the test releases them — a replica stopped in the
//! middle of a call, for as long as the test needs to look at what the others do meanwhile.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

pub struct LossyLink {
    port: u16,
    rule: Arc<Rule>,
}

/// What every connection of one link shares.
struct Rule {
    fields: Vec<Vec<u8>>,
    every: u64,
    most: usize,
    seen: AtomicUsize,
    cuts: AtomicUsize,
    cut: Mutex<HashSet<Vec<u8>>>,
    /// The field whose first call is held back, if holding.
    hold: Option<Vec<u8>>,
    gate: Mutex<Gate>,
    turned: Condvar,
}

/// Where a holding link is: whether the next call is to be held, whether it holds one,
/// whether the test let it go.
#[derive(Default)]
struct Gate {
    armed: bool,
    holding: bool,
    released: bool,
}

impl Rule {
    /// Whether to cut after `request` (its arguments).
    fn cuts(&self, args: &[&[u8]]) -> bool {
        let Some(token) = args
            .windows(2)
            .find(|w| self.fields.iter().any(|f| f == w[0]))
            .map(|w| w[1])
        else {
            return false;
        };
        self.seen.fetch_add(1, Ordering::SeqCst);
        // FNV-1a: spread the tokens, the same on every run of the same calls.
        let hash = token.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        hash % self.every == 0
            && self.cuts.load(Ordering::SeqCst) < self.most
            && self.cut.lock().unwrap().insert(token.to_vec())
    }
}

impl Rule {
    /// Waits, before `request` goes on, while the test holds it back: once armed, the next
    /// call that carries the held field and everything after it, until released.
    fn wait_if_held(&self, args: &[&[u8]]) {
        let Some(field) = &self.hold else { return };
        let mut gate = self.gate.lock().unwrap();
        if gate.armed && !gate.holding && args.iter().any(|a| a == field) {
            gate.holding = true;
            self.turned.notify_all();
        }
        while gate.holding && !gate.released {
            gate = self.turned.wait(gate).unwrap();
        }
    }
}

impl LossyLink {
    /// A link to the Redis server at `upstream` (`host:port`).
    pub fn start(upstream: &str, fields: &[&str], every: u64, most: usize) -> LossyLink {
        Self::with(upstream, fields, every, most, None)
    }

    /// A link to `upstream` that loses nothing and, once armed ([`LossyLink::hold_next`]),
    /// holds back the next call carrying `field`, and what follows it on its connection,
    /// until [`LossyLink::release`].
    pub fn holding(upstream: &str, field: &str) -> LossyLink {
        Self::with(upstream, &[], 1, 0, Some(field.as_bytes().to_vec()))
    }

    fn with(
        upstream: &str,
        fields: &[&str],
        every: u64,
        most: usize,
        hold: Option<Vec<u8>>,
    ) -> LossyLink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let rule = Arc::new(Rule {
            fields: fields.iter().map(|f| f.as_bytes().to_vec()).collect(),
            every,
            most,
            seen: AtomicUsize::new(0),
            cuts: AtomicUsize::new(0),
            cut: Mutex::new(HashSet::new()),
            hold,
            gate: Mutex::new(Gate::default()),
            turned: Condvar::new(),
        });
        let upstream = upstream.to_owned();
        let shared = Arc::clone(&rule);
        std::thread::spawn(move || {
            for (n, client) in listener.incoming().enumerate() {
                let (Ok(client), Ok(server)) = (client, TcpStream::connect(&upstream)) else {
                    continue;
                };
                let rule = Arc::clone(&shared);
                std::thread::spawn(move || link(client, server, &rule, n));
            }
        });
        LossyLink { port, rule }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// How many connections it cut so far, each after the server ran a request.
    pub fn cuts(&self) -> usize {
        self.rule.cuts.load(Ordering::SeqCst)
    }

    /// Holds back the next call carrying its field.
    pub fn hold_next(&self) {
        self.rule.gate.lock().unwrap().armed = true;
    }

    /// Whether it holds a call back, waiting up to `within` for one to come.
    pub fn held(&self, within: Duration) -> bool {
        let gate = self.rule.gate.lock().unwrap();
        let (gate, _) = self
            .rule
            .turned
            .wait_timeout_while(gate, within, |g| !g.holding)
            .unwrap();
        gate.holding
    }

    /// Lets what it holds go on, and every call after.
    pub fn release(&self) {
        let mut gate = self.rule.gate.lock().unwrap();
        gate.armed = false;
        gate.released = true;
        self.rule.turned.notify_all();
    }

    /// How many calls carrying a memo field it saw.
    pub fn seen(&self) -> usize {
        self.rule.seen.load(Ordering::SeqCst)
    }
}

/// One client connection: requests forwarded by one thread, answers by another.
fn link(mut client: TcpStream, mut server: TcpStream, rule: &Rule, n: usize) {
    let (Ok(client_out), Ok(server_in)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let marker = format!("lossy-link-echo-{n}");
    let cutting = Arc::new(AtomicBool::new(false));
    let answers = {
        let cutting = Arc::clone(&cutting);
        let marker = marker.clone().into_bytes();
        std::thread::spawn(move || answers(server_in, client_out, &cutting, &marker))
    };
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some((len, args)) = request(&pending) {
            rule.wait_if_held(&args);
            if server.write_all(&pending[..len]).is_err() {
                break;
            }
            let cut = !cutting.load(Ordering::SeqCst) && rule.cuts(&args);
            pending.drain(..len);
            if cut {
                cutting.store(true, Ordering::SeqCst);
                rule.cuts.fetch_add(1, Ordering::SeqCst);
                let echo = format!("*2\r\n$4\r\nECHO\r\n${}\r\n{marker}\r\n", marker.len());
                let _ = server.write_all(echo.as_bytes());
            }
        }
    }
    let _ = server.shutdown(Shutdown::Both);
    let _ = answers.join();
}

/// Answers back to the client until a cut: then swallowed up to the echo's, and both ends
/// shut.
fn answers(mut server: TcpStream, mut client: TcpStream, cutting: &AtomicBool, marker: &[u8]) {
    let mut swallowed = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !cutting.load(Ordering::SeqCst) {
            if client.write_all(&buf[..n]).is_err() {
                break;
            }
            continue;
        }
        swallowed.extend_from_slice(&buf[..n]);
        if swallowed.windows(marker.len()).any(|w| w == marker) {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

/// The length and arguments of the first complete request in `b` (`*N\r\n` then N
/// `$len\r\n…\r\n`), if it is all there.
fn request(b: &[u8]) -> Option<(usize, Vec<&[u8]>)> {
    fn line(b: &[u8], at: usize) -> Option<(i64, usize)> {
        let end = at + b.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        let n = std::str::from_utf8(b.get(at + 1..end)?)
            .ok()?
            .parse()
            .ok()?;
        Some((n, end + 2))
    }
    if b.first() != Some(&b'*') {
        return None;
    }
    let (n, mut at) = line(b, 0)?;
    let mut args = Vec::new();
    for _ in 0..n {
        if b.get(at) != Some(&b'$') {
            return None;
        }
        let (len, start) = line(b, at)?;
        let end = start + usize::try_from(len).ok()?;
        args.push(b.get(start..end)?);
        at = end + 2;
        if at > b.len() {
            return None;
        }
    }
    Some((at, args))
}
