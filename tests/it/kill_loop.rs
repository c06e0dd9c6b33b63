//! The real `serve` binary SIGKILLed at 50 random moments while a writer appends to its log and
//! rotates it every way logrotate and applications do, restarted after each kill; at the end,
//! what serve ingested is compared with the writer's ledger of every line it wrote: none lost,
//! none read twice. Literal path and glob, SQLite and Postgres.
//!
//! Every ledger line is a dispatch of its own session, so `/api/summary`'s dispatched count is
//! the number of ledger lines ingested (lost = ledger − dispatched). A line read twice is
//! deduplicated by the correlator, so it cannot show in the totals: every run logs each
//! deduplicated line (`line delivered again`, at debug), and any such line of any run is a
//! line the follower handed out twice (checkpoints are committed with their lines, so no
//! restart re-reads a stored line unless the follower is wrong).
//!
//! Rotations, and when the writer does them (what is lossless by the README's table):
//! - rename + create, with late writes to the renamed file: at any time with a glob that
//!   covers the rotated names; with a literal path once serve has read the file's first line
//!   (a file created and rotated away while serve is down is unknown to a literal path);
//! - copytruncate: at any time with a glob that covers the copy's name; with a literal path
//!   (the copy is not followed) only once serve has read the whole file — a loss otherwise,
//!   counted in `claimcheck_source_truncated_bytes_total`, which `serve_files.rs` tests;
//! - truncate in place, delete + recreate, pruning rotated files: once serve has read
//!   everything (the bytes are gone otherwise);
//! - a date-stamped new file (glob only), partial lines completed later: at any time.
//!
//! With a glob every one of these is lossless, so a loss the follower logs (and counts in
//! `claimcheck_source_truncated_bytes_total`) fails the run as well.
//!
//! `CLAIMCHECK_KILL_SEED=N` replays a run's operations and kill moments (serve's own timing
//! still varies); the seed is printed with every failure, and every run's log (the follower
//! at debug), the writer's trail and a listing of the files are kept in
//! `target/tmp/kill-loop-SEED`: a failure that depends on timing is read from those.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::scratch_db::ScratchDb;
use crate::support::{Server, claimcheck, free_port, http_get, http_get_status, pace};

const KILLS: usize = 50;
/// How long serve may run before a kill, at most (from its spawn: kills land in startup,
/// recovery, reading and committing alike).
const MAX_ALIVE_MS: u64 = 400;
/// Any wait for serve to catch up; far more than it needs, even on a loaded machine.
const CATCH_UP: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Form {
    Literal,
    Glob,
}

#[test]
fn kill_loop_literal_path_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state.db").display().to_string();
    kill_loop(dir.path(), &store, Form::Literal, "sqlite");
}

#[test]
fn kill_loop_glob_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state.db").display().to_string();
    kill_loop(dir.path(), &store, Form::Glob, "sqlite");
}

#[test]
fn kill_loop_literal_path_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(ScratchDb::new());
    kill_loop(dir.path(), &db.url, Form::Literal, "postgres");
}

#[test]
fn kill_loop_glob_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(ScratchDb::new());
    kill_loop(dir.path(), &db.url, Form::Glob, "postgres");
}

/// The writer: an application logging to one file and the logrotate beside it.
struct Writer {
    logs: PathBuf,
    form: Form,
    current: PathBuf,
    out: File,
    /// Every line written: its id and the file it went to.
    ledger: Vec<(u64, String)>,
    /// The id of the current file's first line.
    first_in_current: Option<u64>,
    /// Serve has read the current file's first line (its checkpoint is in the store).
    current_known: bool,
    /// The rest of a line written in part.
    rest: Option<Vec<u8>>,
    rotations: u32,
    day: u32,
    done: BTreeMap<&'static str, u32>,
}

impl Writer {
    fn new(logs: &Path, form: Form) -> Writer {
        let current = match form {
            Form::Literal => logs.join("app.log"),
            Form::Glob => logs.join("app-2026-11-01.log"),
        };
        Writer {
            out: open_append(&current),
            logs: logs.to_path_buf(),
            form,
            current,
            ledger: Vec::new(),
            first_in_current: None,
            current_known: true,
            rest: None,
            rotations: 0,
            day: 1,
            done: BTreeMap::new(),
        }
    }

    /// `op` as the trail shows it: the current file, the next line's id, the last rotation.
    fn said(&self, op: &str) -> String {
        let name = self
            .current
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        format!(
            "{op}: {name}, next k{}, rotation {}",
            self.ledger.len(),
            self.rotations
        )
    }

    fn pattern(&self) -> String {
        match self.form {
            Form::Literal => self.logs.join("app.log").display().to_string(),
            Form::Glob => self.logs.join("app-*.log*").display().to_string(),
        }
    }

    fn line(&mut self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        let id = self.ledger.len() as u64;
        let name = self
            .current
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        self.ledger.push((id, name));
        if self.first_in_current.is_none() {
            self.first_in_current = Some(id);
            self.current_known = false;
        }
        let pad = "p".repeat(rng.gen_range(0..300));
        format!(
            "{{\"event\":\"dispatch\",\"sessionId\":\"k{id}\",\"resolvedProfile\":{{\"runner\":\"go\"}},\"time\":\"2026-11-23T10:00:00Z\",\"pad\":\"{pad}\"}}\n"
        )
        .into_bytes()
    }

    fn finish_partial(&mut self) {
        if let Some(rest) = self.rest.take() {
            self.out.write_all(&rest).unwrap();
        }
    }

    fn append(&mut self, rng: &mut ChaCha8Rng, n: usize) {
        self.finish_partial();
        let mut buf = Vec::new();
        for _ in 0..n {
            buf.extend(self.line(rng));
        }
        self.out.write_all(&buf).unwrap();
    }

    fn partial(&mut self, rng: &mut ChaCha8Rng) {
        self.finish_partial();
        let line = self.line(rng);
        let cut = rng.gen_range(1..line.len() - 1);
        self.out.write_all(&line[..cut]).unwrap();
        self.rest = Some(line[cut..].to_vec());
    }

    fn rotated_name(&mut self) -> PathBuf {
        self.rotations += 1;
        let name = self
            .current
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        self.logs.join(format!("{name}.{}", self.rotations))
    }

    /// The live file starts over as a new, empty file at `current`.
    fn new_file(&mut self, path: PathBuf) {
        self.current = path;
        self.out = open_append(&self.current);
        self.first_in_current = None;
        self.current_known = true;
    }

    /// logrotate `create`: rename, then the application writes a few more lines to the file
    /// it has open before it reopens its log.
    fn rename_create(&mut self, rng: &mut ChaCha8Rng) {
        self.finish_partial();
        let to = self.rotated_name();
        std::fs::rename(&self.current, &to).unwrap();
        let late = rng.gen_range(0..5);
        self.append(rng, late);
        for (_, f) in self.ledger.iter_mut().rev().take(late) {
            *f = to.file_name().unwrap().to_string_lossy().into_owned();
        }
        let current = self.current.clone();
        self.new_file(current);
    }

    /// logrotate `copytruncate`: copy, then truncate the file the application keeps writing.
    fn copytruncate(&mut self) {
        self.finish_partial();
        let to = self.rotated_name();
        std::fs::copy(&self.current, &to).unwrap();
        self.out.set_len(0).unwrap();
        self.first_in_current = None;
        self.current_known = true;
    }

    fn truncate(&mut self) {
        self.finish_partial();
        self.out.set_len(0).unwrap();
        self.first_in_current = None;
        self.current_known = true;
    }

    fn delete_recreate(&mut self) {
        self.finish_partial();
        std::fs::remove_file(&self.current).unwrap();
        let current = self.current.clone();
        self.new_file(current);
    }

    fn new_day(&mut self) {
        self.finish_partial();
        self.day += 1;
        let path = self.logs.join(format!("app-2026-11-{:02}.log", self.day));
        self.new_file(path);
    }

    /// logrotate's `rotate N`: the rotated files go.
    fn prune(&mut self) {
        for e in std::fs::read_dir(&self.logs).unwrap().flatten() {
            if e.path() != self.current {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
    }
}

fn open_append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// serve, killed and restarted.
struct Rig {
    dir: PathBuf,
    store: String,
    pattern: String,
    server: Option<(Server, u16, Instant)>,
    runs: usize,
    kills: usize,
    /// What happened, printed with a failure.
    trail: Vec<String>,
    seed: u64,
}

impl Rig {
    fn start(&mut self) {
        if self.server.is_some() {
            return;
        }
        let port = free_port();
        self.runs += 1;
        let log = File::create(self.dir.join(format!("run-{:03}.log", self.runs))).unwrap();
        let child = claimcheck()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--store"])
            .arg(&self.store)
            .arg("--file")
            .arg(&self.pattern)
            .env(
                "CLAIMCHECK_LOG_LEVEL",
                "info,claimcheck::serve::telemetry=debug,claimcheck::sources::file=debug",
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.server = Some((Server(child), port, Instant::now()));
    }

    fn kill(&mut self, why: &str) {
        if let Some((mut s, _, at)) = self.server.take() {
            let _ = s.0.kill(); // SIGKILL
            let _ = s.0.wait();
            self.kills += 1;
            self.trail.push(format!(
                "kill {} {why} {} ms",
                self.kills,
                at.elapsed().as_millis()
            ));
        }
    }

    fn port(&mut self) -> u16 {
        self.start();
        self.server.as_ref().unwrap().1
    }

    fn fail(&self, what: &str) -> ! {
        let log = std::fs::read_to_string(self.dir.join(format!("run-{:03}.log", self.runs)))
            .unwrap_or_default();
        let log: Vec<&str> = log.lines().collect();
        let kept = self.keep();
        panic!(
            "{what}\nseed {} (CLAIMCHECK_KILL_SEED={} replays it)\ntrail (last 40):\n{}\n\
             the last run's log (last 30 lines):\n{}\nevery run's log, the trail and the \
             log files' listing are kept in {}",
            self.seed,
            self.seed,
            self.trail[self.trail.len().saturating_sub(40)..].join("\n"),
            log[log.len().saturating_sub(30)..].join("\n"),
            kept.display()
        );
    }

    /// Copies every run's log (the follower's at debug), the whole trail and a listing of
    /// the log directory (name, inode, size) out of the temporary directory, which a
    /// failure would otherwise delete: a timing-dependent failure is read from these.
    fn keep(&self) -> PathBuf {
        let to = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kill-loop-{}", self.seed));
        let _ = std::fs::create_dir_all(&to);
        for run in 1..=self.runs {
            let name = format!("run-{run:03}.log");
            let _ = std::fs::copy(self.dir.join(&name), to.join(&name));
        }
        let _ = std::fs::write(to.join("trail.txt"), self.trail.join("\n"));
        let mut listing = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("logs")) {
            for e in entries.flatten() {
                if let Ok(m) = e.metadata() {
                    use std::os::unix::fs::MetadataExt;
                    listing.push(format!(
                        "{} ino {} size {}",
                        e.path().display(),
                        m.ino(),
                        m.len()
                    ));
                }
            }
        }
        listing.sort();
        let _ = std::fs::write(to.join("files.txt"), listing.join("\n"));
        to
    }

    /// Serve's dispatched count, once it answers.
    fn dispatched(&mut self) -> Option<u64> {
        let port = self.port();
        let body = http_get(port, "/api/summary")?;
        let v: Value = serde_json::from_str(&body).ok()?;
        v["dispatched"]["go"].as_u64()
    }

    /// Waits (bounded) until serve has ingested every line written.
    fn catch_up(&mut self, w: &Writer) {
        let want = w.ledger.len() as u64;
        let deadline = Instant::now() + CATCH_UP;
        let mut got = None;
        while Instant::now() < deadline {
            got = self.dispatched();
            if got == Some(want) {
                return;
            }
            pace(Duration::from_millis(5));
        }
        let missing = self.missing(w);
        self.fail(&format!(
            "serve did not catch up: {got:?} of {want} ledger lines dispatched; missing: {missing}"
        ));
    }

    /// Waits (bounded) until serve knows the session of the current file's first line.
    fn knows_current(&mut self, w: &mut Writer) {
        w.finish_partial();
        let Some(first) = w.first_in_current else {
            return;
        };
        let deadline = Instant::now() + CATCH_UP;
        while Instant::now() < deadline {
            let port = self.port();
            if http_get_status(port, &format!("/api/sessions/k{first}"))
                .is_some_and(|(s, _)| s == 200)
            {
                w.current_known = true;
                return;
            }
            pace(Duration::from_millis(5));
        }
        self.fail(&format!(
            "serve never read k{first}, the current file's first line"
        ));
    }

    /// The ledger lines serve does not know, with the file each went to (first 20).
    fn missing(&mut self, w: &Writer) -> String {
        let port = self.port();
        let mut out = Vec::new();
        for (id, file) in &w.ledger {
            if http_get_status(port, &format!("/api/sessions/k{id}")).is_some_and(|(s, _)| s != 200)
            {
                out.push(format!("k{id} in {file}"));
                if out.len() == 20 {
                    break;
                }
            }
        }
        out.join(", ")
    }
}

fn kill_loop(dir: &Path, store: &str, form: Form, store_kind: &str) {
    let seed = std::env::var("CLAIMCHECK_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().r#gen::<u64>());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let logs = dir.join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut w = Writer::new(&logs, form);
    let mut rig = Rig {
        dir: dir.to_path_buf(),
        store: store.to_owned(),
        pattern: w.pattern(),
        server: None,
        runs: 0,
        kills: 0,
        trail: Vec::new(),
        seed,
    };
    let began = Instant::now();
    while rig.kills < KILLS {
        rig.start();
        let alive = Duration::from_millis(rng.gen_range(0..MAX_ALIVE_MS));
        let spawned = rig.server.as_ref().unwrap().2;
        // While it runs: writes and rotations, a few ms apart, until its kill moment.
        while spawned.elapsed() < alive {
            let op = step(&mut rig, &mut w, &mut rng, true);
            rig.trail.push(w.said(op));
            pace(Duration::from_millis(rng.gen_range(0..15)));
        }
        rig.kill("at");
        // While it is down: what is lossless without it.
        for _ in 0..rng.gen_range(0..4) {
            let op = step(&mut rig, &mut w, &mut rng, false);
            rig.trail.push(format!("{} (down)", w.said(op)));
        }
    }
    w.finish_partial();
    rig.trail.push("final run".into());
    rig.catch_up(&w);
    let written = w.ledger.len() as u64;
    let dispatched = rig.dispatched().unwrap_or(0);
    let lost = written - dispatched.min(written);
    // Read twice: every line any run deduplicated (and the first run that did, for a failure).
    let mut doubled: BTreeSet<u64> = BTreeSet::new();
    let mut first_run = None;
    // Losses the follower logged (`claimcheck_source_truncated_bytes_total`).
    let mut said_lost = 0;
    for run in 1..=rig.runs {
        let text = std::fs::read_to_string(dir.join(format!("run-{run:03}.log"))).unwrap();
        said_lost += text
            .lines()
            .filter(|l| l.contains("bytes not read are lost"))
            .count();
        for l in text.lines().filter(|l| l.contains("line delivered again")) {
            let id = l
                .split("session=\"k")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .and_then(|s| s.parse().ok());
            doubled.insert(id.unwrap_or(u64::MAX));
            first_run.get_or_insert(run);
        }
    }
    // The figures of the run (nextest shows them with `--success-output final`).
    #[allow(clippy::print_stderr)]
    let () = eprintln!(
        "kill loop {store_kind} {form:?}: seed {seed}, kills {}, runs {}, lines written {written}, \
         lost {lost}, doubled {}, losses logged {said_lost}, rotations {:?}, {:.1} s",
        rig.kills,
        rig.runs,
        doubled.len(),
        w.done,
        began.elapsed().as_secs_f64()
    );
    // With a glob every rotation is lossless: a loss logged is one counted that did not happen.
    let miscounted = if form == Form::Glob { said_lost } else { 0 };
    if lost != 0 || !doubled.is_empty() || miscounted > 0 {
        let ids: Vec<String> = doubled
            .iter()
            .take(20)
            .map(|&id| {
                let file = w.ledger.get(id as usize).map_or("?", |(_, f)| f.as_str());
                format!("k{id} in {file}")
            })
            .collect();
        // What the follower said in the first run that read a line twice, up to then.
        let said = first_run.map_or(String::new(), |run| {
            let text = std::fs::read_to_string(dir.join(format!("run-{run:03}.log"))).unwrap();
            let upto: Vec<&str> = text
                .lines()
                .take_while(|l| !l.contains("line delivered again"))
                .filter(|l| l.contains("sources::file"))
                .collect();
            format!("run {run}:\n{}", upto.join("\n"))
        });
        rig.fail(&format!(
            "lost {lost}, doubled {}: {ids:?}, losses logged with a glob {miscounted}\n{said}",
            doubled.len()
        ));
    }
    assert!(rig.kills >= KILLS);
    for kind in [
        "append",
        "rename+create",
        "copytruncate",
        "truncate",
        "delete+recreate",
    ] {
        assert!(w.done.contains_key(kind), "{kind} never done: {:?}", w.done);
    }
    if form == Form::Glob {
        assert!(w.done.contains_key("new day"), "{:?}", w.done);
    }
}

/// One random operation of the writer; `up`: serve runs (and may be waited for).
fn step(rig: &mut Rig, w: &mut Writer, rng: &mut ChaCha8Rng, up: bool) -> &'static str {
    let op = loop {
        let op = match rng.gen_range(0..100) {
            0..55 => "append",
            55..62 => "partial",
            62..74 => "rename+create",
            74..82 => "copytruncate",
            82..86 => "truncate",
            86..90 => "delete+recreate",
            90..96 => "new day",
            _ => "prune",
        };
        // What needs serve to have read everything (or, for a literal path's rename, the
        // current file's first line) is done only while it runs.
        let needs_all = match op {
            "truncate" | "delete+recreate" | "prune" => true,
            "copytruncate" => w.form == Form::Literal,
            _ => false,
        };
        let needs_first = op == "rename+create" && w.form == Form::Literal;
        if op == "new day" && w.form == Form::Literal {
            continue;
        }
        // (A literal path's empty file is renamed only once it holds a line serve has read.)
        if needs_first && w.first_in_current.is_none() {
            continue;
        }
        if !up && (needs_all || (needs_first && !w.current_known)) {
            continue;
        }
        if needs_all {
            w.finish_partial();
            rig.catch_up(w);
        } else if needs_first {
            rig.knows_current(w);
        }
        break op;
    };
    match op {
        "append" => {
            let n = rng.gen_range(1..30);
            w.append(rng, n);
        }
        "partial" => w.partial(rng),
        "rename+create" => w.rename_create(rng),
        "copytruncate" => w.copytruncate(),
        "truncate" => w.truncate(),
        "delete+recreate" => w.delete_recreate(),
        "new day" => w.new_day(),
        _ => w.prune(),
    }
    *w.done.entry(op).or_default() += 1;
    op
}
