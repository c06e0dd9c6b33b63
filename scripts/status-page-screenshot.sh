#!/usr/bin/env bash
# Takes docs/status-page.png: runs `claimcheck demo` on a free port, waits until both of its
# migrations have their post-flip reports (about a minute), and screenshots the status page
# in headless Chromium. The binary is $CLAIMCHECK (default: target/debug/claimcheck, built
# if missing). The demo test checks the same page's content on every CI run.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CLAIMCHECK:-target/debug/claimcheck}
[ -x "$bin" ] || cargo build --quiet
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" demo --listen "127.0.0.1:$port" --seconds 120 >/dev/null 2>&1 &
demo=$!
profile=$(mktemp -d)
trap 'kill "$demo" 2>/dev/null; wait "$demo" 2>/dev/null; rm -rf "$profile"' EXIT
for _ in $(seq 600); do
    reports=$(curl -fsS "http://127.0.0.1:$port/api/reports" 2>/dev/null || true)
    if grep -q '"verdict":"pass"' <<<"$reports" && grep -q '"verdict":"fail"' <<<"$reports"; then
        break
    fi
    sleep 0.5
done
grep -q '"verdict":"fail"' <<<"$reports" || { echo "no reports within 5 minutes" >&2; exit 1; }
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
    --window-size=1100,900 --screenshot=docs/status-page.png "http://127.0.0.1:$port/" 2>/dev/null
echo "wrote docs/status-page.png"
