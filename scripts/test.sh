#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy, and all tests (unit, property, integration).
# Installs and starts what the tests need when it is missing, so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

# Nothing outside Rust is needed yet; `serve` will add PostgreSQL and Redis here
# (apt-get install -y postgresql redis-server, started when not running).
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
# Prometheus and Alertmanager (Debian packages) for the alert-rule, dashboard and e2e tests.
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null \
    || ! command -v prometheus-alertmanager >/dev/null; then
  apt-get install -y prometheus prometheus-alertmanager
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet
cargo nextest run --locked --no-fail-fast --status-level fail
# doctests are not run by nextest
cargo test --doc --locked --quiet
