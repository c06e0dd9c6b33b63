//! Temporary timing harness (deleted after use).
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args[1].parse().unwrap();
    let out = std::path::Path::new(&args[2]);
    let t0 = std::time::Instant::now();
    let cfg = claimcheck::simulate::SimConfig {
        sessions: n,
        seed: 1,
        ..Default::default()
    };
    let truth = claimcheck::simulate::generate(&cfg, out).unwrap();
    eprintln!(
        "{:?} elapsed; pending {}",
        t0.elapsed(),
        truth.totals.pending
    );
}
