#!/usr/bin/env bash
# Runs the jq and Python correlators (and DuckDB and chDB with SQL_PYTHON=<a python that
# imports duckdb and chdb>) over the golden verify cases that use no filter
# (tests/data/verify/*/args without --org/--since/--until) and checks their totals against
# each case's hand-written `expected` summary. A correlator that disagrees there would make
# the speed comparison of scripts/compare.sh meaningless.
#
# usage: scripts/compare/golden.sh   (exit 0 when every case agrees; prints one line per case)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cases="$root/tests/data/verify"

# `key=value` pairs of the expected summary that the correlators compute, one per line.
expected_counts() {
    awk '
        $1 == "dispatched" { for (i = 2; i <= NF; i++) print "dispatched_" $i }
        $1 == "outcomes"   { for (i = 2; i <= NF; i++) print $i }
        $1 == "counts"     { for (i = 2; i <= NF; i++)
                               if ($i ~ /^(duplicate_claims|orphan_claims|reclaims|skew_clamped)=/) print $i }
    ' "$1" | sort
}

# The same pairs from a correlator's JSON output.
actual_counts() {
    jq -r '.totals
        | (.dispatched | to_entries[] | "dispatched_\(.key)=\(.value)"),
          (del(.dispatched) | to_entries[] | "\(.key)=\(.value)")' |
        grep -E '^(dispatched_[a-z]+|matched|late|mismatched|unclaimed|pending|duplicate_claims|orphan_claims|reclaims|skew_clamped)=' |
        sort
}

fail=0
checked=0
for dir in "$cases"/*/; do
    name=$(basename "$dir")
    read -r -a args <"$dir/args"
    [[ ${args[0]} == verify ]] || continue
    dispatch=() claims=() runtimes='{}' timeout=120 filtered=0
    for ((i = 1; i < ${#args[@]}; i++)); do
        case ${args[i]} in
        --dispatch) dispatch+=("${args[++i]}") ;;
        --claims)
            spec=${args[++i]}
            if [[ $spec == *=* ]]; then
                claims+=("${spec#*=}")
                runtimes=$(jq -c --arg f "${spec#*=}" --arg r "${spec%%=*}" '. + {($f): $r}' <<<"$runtimes")
            else
                claims+=("$spec")
            fi
            ;;
        --claim-timeout)
            t=${args[++i]}
            case $t in *m) timeout=$((${t%m} * 60)) ;; *s) timeout=${t%s} ;; *) timeout=$t ;; esac
            ;;
        --org | --since | --until) filtered=1 && ((++i)) ;;
        --expect-runner | --format | --output) ((++i)) ;;
        esac
    done
    ((filtered)) && continue
    want=$(expected_counts "$dir/expected")
    pyclaims=()
    for ((i = 1; i < ${#args[@]}; i++)); do
        [[ ${args[i]} == --claims ]] && pyclaims+=(--claims "${args[i + 1]}")
    done
    pydispatch=()
    for d in "${dispatch[@]}"; do pydispatch+=(--dispatch "$d"); done
    tools=(jq python)
    [[ -n ${SQL_PYTHON:-} ]] && tools+=(duckdb chdb)
    for tool in "${tools[@]}"; do
        expect=$want
        case $tool in
        jq)
            got=$(cd "$dir" && jq -n -R -f "$here/correlate.jq" --argjson timeout "$timeout" \
                --argjson runtimes "$runtimes" "${dispatch[@]}" "${claims[@]}" | actual_counts) ;;
        python)
            got=$(cd "$dir" && python3 "$here/correlate.py" --timeout "$timeout" \
                "${pydispatch[@]}" "${pyclaims[@]}" | actual_counts) ;;
        *)
            # the SQL correlators compute the outcome totals, not reclaims or skew
            expect=$(grep -vE '^(reclaims|skew_clamped)=' <<<"$want")
            got=$(cd "$dir" && "$SQL_PYTHON" "$here/correlate_sql.py" --engine "$tool" \
                --timeout "$timeout" "${pydispatch[@]}" "${pyclaims[@]}" | actual_counts) ;;
        esac
        checked=$((checked + 1))
        if [[ $got == "$expect" ]]; then
            printf 'golden %-18s %-6s ok\n' "$name" "$tool"
        else
            fail=1
            printf 'golden %-18s %-6s DIFFERS:\n' "$name" "$tool"
            diff <(echo "$expect") <(echo "$got") | sed 's/^/    /' || true
        fi
    done
done
((checked > 0)) || { echo "golden: no case found under $cases" >&2; exit 2; }
exit "$fail"
