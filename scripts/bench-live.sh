#!/usr/bin/env bash
# Live throughput of `claimcheck serve`: tailed lines/s with a durable store, signed Vercel
# drain entries/s over loopback, and the append → metric delay (p50/p90/p99). Builds the
# release binary and runs scripts/bench/live.py; arguments are passed on (see its --help).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
exec python3 scripts/bench/live.py target/release/claimcheck target/bench-live "$@"
