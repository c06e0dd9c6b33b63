#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy, and all tests (unit, property, integration).
# Installs and starts what the tests need when it is missing, so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real servers for the store, platform and alerting tests. Each is installed only when
# missing and started only when not answering; tests make their own databases and key prefixes.
apt_install() {
    if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    command -v pg_ctlcluster >/dev/null || apt_install postgresql
    version=$(ls /etc/postgresql | sort -V | tail -1)
    hba=/etc/postgresql/$version/main/pg_hba.conf
    # Tests connect as postgres over TCP without a password, as on the CI machine.
    grep -q '^host all all 127.0.0.1/32 trust' "$hba" ||
        sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    pg_ctlcluster "$version" main start || pg_ctlcluster "$version" main reload
    for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi

# redis-server itself, even when a server answers: the shared-state tests start their own
# Redis Cluster nodes (tests/it/redis_cluster.rs).
command -v redis-server >/dev/null || apt_install redis-server
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-server --bind 127.0.0.1 --port 6379 --save '' --daemonize yes
    for _ in $(seq 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.2; done
fi

command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
# Prometheus and Alertmanager (Debian packages) for the alert-rule, dashboard and e2e tests;
# Chromium for the HTML report test.
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null \
    || ! command -v prometheus-alertmanager >/dev/null; then
    apt_install prometheus prometheus-alertmanager
fi
command -v chromium >/dev/null || apt_install chromium
# systemd-analyze verifies the packaged unit (tests/it/packaging.rs).
command -v systemd-analyze >/dev/null || apt_install systemd
# schemathesis fuzzes the API against its OpenAPI document (tests/it/schemathesis.rs), from
# PyPI in a venv of its own; made once, kept with the build outputs.
SCHEMATHESIS_VERSION=4.32.5
venv=target/schemathesis-venv
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    command -v python3 >/dev/null || apt_install python3
    python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet
cargo nextest run --locked --no-fail-fast --status-level fail
# doctests are not run by nextest
cargo test --doc --locked --quiet
