//! Throughput of the store stage of `serve`: one batch's accepted lines committed with its
//! followed file's checkpoint in one SQLite transaction (WAL, `synchronous=NORMAL`, as
//! `serve --store` opens it), and several batches committed together, as the actor does with
//! what queued while the last commit ran. `cargo bench --bench store`

use claimcheck::event::{Runner, Timestamp};
use claimcheck::sources::file::Checkpoint;
use claimcheck::store::{Commit, NewLine, NewLines, Store};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// A realistic dispatch line, as `serve` stores it.
const RAW: &str = r#"{"event":"dispatch","sessionId":"ses_0123456789abcdef","organizationId":"org_ejkmv9ojdyifipydw5l1","resolvedProfile":{"runner":"go","authMode":"host-session","provider":"anthropic","model":"claude"},"time":"2026-11-23T10:00:00.123Z"}"#;

/// A batch of `n` accepted event lines (a realistic dispatch line each, its own session)
/// with the followed file's checkpoint, as `serve` commits after every read.
fn batch(n: usize, first: u32, offset: u64) -> Commit {
    let raw = RAW.as_bytes();
    let lines = NewLines {
        received_at: Timestamp(1_795_428_000_000 + i64::from(first)),
        source: "/var/log/app/dispatch.log".to_owned(),
        default_runtime: Some(Runner::Go),
        buf: std::iter::repeat_n(raw, n).collect(),
        rows: (0..n)
            .map(|i| {
                let line = first + i as u32;
                NewLine {
                    at: i,
                    line,
                    session: Some(format!("ses_{line:016x}").into()),
                    entry_id: None,
                }
            })
            .collect(),
    };
    Commit {
        lines: vec![lines],
        position: Some(Checkpoint {
            dev: 2049,
            ino: 131_074,
            born: 1_795_428_000_000_000_000,
            head: raw[..64].to_vec(),
            offset,
            tail_len: 64,
            tail_crc: 0x1234_5678,
            marks: (0..64)
                .map(|i| (offset - 64 + i, 0xabcd_0000 + i as u32))
                .collect(),
            written_at: 1_795_428_000_000,
            source: "/var/log/app/*.log".to_owned(),
            path: "/var/log/app/dispatch.log".to_owned(),
            ..Checkpoint::default()
        }),
        ..Commit::default()
    }
}

/// The store stage: a commit of a batch of N lines with its checkpoint, on a SQLite file (WAL,
/// `synchronous=NORMAL`, as `serve --store` opens it). The table grows across iterations, as
/// it does while serving.
fn store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("bench.db");
    let store = rt
        .block_on(Store::open(&path.display().to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group("store");
    g.sample_size(20);
    for n in [1usize, 500, 5000] {
        g.throughput(Throughput::Elements(n as u64));
        let mut first = 1u32;
        g.bench_function(format!("commit_{n}_lines_with_checkpoint_sqlite"), |b| {
            b.iter_batched(
                || {
                    let c = batch(n, first, 1 << 20);
                    first += n as u32;
                    c
                },
                |c| {
                    rt.block_on(store.commit(&c))
                        .unwrap_or_else(|e| panic!("{e}"))
                },
                BatchSize::LargeInput,
            )
        });
    }
    // A drain's four clients' batches of 500, queued behind a commit: taken together.
    g.throughput(Throughput::Elements(4 * 500));
    let mut first = 1u32 << 30;
    g.bench_function("commit_4_batches_of_500_together_sqlite", |b| {
        b.iter_batched(
            || {
                let cs: Vec<Commit> = (0..4u32)
                    .map(|k| batch(500, first + k * 500, 1 << 20))
                    .collect();
                first += 4 * 500;
                cs
            },
            |cs| {
                rt.block_on(store.commit_all(&cs))
                    .unwrap_or_else(|e| panic!("{e}"))
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
