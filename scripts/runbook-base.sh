#!/usr/bin/env bash
# Prints the alert rules with every runbook_url on another base: the page (your wiki's copy of
# the README, an internal runbook site) that holds the runbook anchors (#claimcheckflagdrift, …).
#   scripts/runbook-base.sh https://wiki.internal/claimcheck [alerts/claimcheck.rules.yml] > rules.yml
# Then check the result: promtool check rules rules.yml (tests/it/alerting.rs does both).
set -euo pipefail
base=${1:?usage: scripts/runbook-base.sh BASE_URL [RULES_FILE]}
rules=${2:-$(dirname "$0")/../alerts/claimcheck.rules.yml}
case "$base" in
    http://*|https://*) ;;
    *) echo "runbook-base: $base is not an http(s) URL" >&2; exit 2 ;;
esac
case "$base" in
    *'|'*|*'&'*|*'\'*|*'#'*) echo "runbook-base: $base holds | & \\ or #" >&2; exit 2 ;;
esac
default='https://github.com/claimcheck/claimcheck/blob/main/README.md'
sed "s|runbook_url: ${default}#|runbook_url: ${base%/}#|" "$rules"
