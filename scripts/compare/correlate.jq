# A dispatch/claim correlator in jq, the one an engineer would write by hand.
#
# Part of scripts/compare.sh: it computes the same totals as `claimcheck verify` (PRODUCT.md
# §1-§2) so their speeds can be compared on equal terms. One jq process reads every file as raw
# lines (not every line is JSON) and keeps one object keyed by sessionId:
#
#   jq -n -R -f correlate.jq --argjson timeout 120 \
#      --argjson runtimes '{"go-daemon.log":"go","ts-worker.log":"ts"}' FILE...
#
# `runtimes` maps a file name, exactly as given on the command line, to the runtime of its lines
# that do not name one (`--claims go=PATH`); `input_filename` tells the files apart.
# Output: {"totals": {...}, "watermark_ms": N}.

# Event kinds and runners as numbers, in the order claimcheck breaks ties at equal times.
def KIND:
  if . == "dispatch" then 0 elif . == "claimed" then 1 elif . == "completed" or . == "failed" then 2
  elif . == "heartbeat" then 3 elif . == "nack" or . == "released" then 4 else null end;
def RUNNER: if . == "go" then 0 elif . == "ts" then 1 else 2 end;

# The first non-null of two values.
def nn(a; b): a as $x | if $x != null then $x else b end;
def get($k): if type == "object" then .[$k] else null end;

# Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
def days($y; $m; $d):
  (if $m <= 2 then $y - 1 else $y end) as $yy
  | (($yy / 400) | floor) as $era
  | ($yy - $era * 400) as $yoe
  | ((((153 * (if $m > 2 then $m - 3 else $m + 9 end) + 2) / 5) | floor) + $d - 1) as $doy
  | ($yoe * 365 + (($yoe / 4) | floor) - (($yoe / 100) | floor) + $doy) as $doe
  | $era * 146097 + $doe - 719468;

# RFC 3339 (any offset, any fraction; fraction truncated to ms) -> epoch ms, or null. By
# slicing: jq 1.6 compiles a regular expression again on every call, which doubled the run time.
def rfc3339:
  def digits: if length > 0 and all(explode[]; . >= 48 and . <= 57) then .
              else error("not digits") end;
  try (
    if length < 20 or .[4:5] != "-" or .[7:8] != "-" or .[13:14] != ":" or .[16:17] != ":"
       or (.[10:11] | . != "T" and . != "t" and . != " ") then null
    else
      (if endswith("Z") or endswith("z") then [.[:-1], null] else [.[:-6], .[-6:]] end)
        as [$b, $z]
      | ($b[0:4] | tonumber) as $y | ($b[5:7] | tonumber) as $mo | ($b[8:10] | tonumber) as $d
      | ($b[11:13] | tonumber) as $h | ($b[14:16] | tonumber) as $mi
      | ($b[17:19] | tonumber) as $s
      | (if ($b | length) == 19 then 0
         elif $b[19:20] == "." then $b[20:] | digits | (. + "00")[0:3] | tonumber
         else error("bad fraction") end) as $ms
      | (if $z == null then 0
         elif ($z[0:1] == "+" or $z[0:1] == "-") and $z[3:4] == ":" then
           ($z[1:3] | tonumber) as $oh | ($z[4:6] | tonumber) as $om
           | if $oh > 23 or $om > 59 then error("bad offset") else $oh * 60 + $om end
           | if $z[0:1] == "-" then -. else . end
         else error("bad zone") end) as $off
      | ([31, (if ($y % 4 == 0 and ($y % 100 != 0 or $y % 400 == 0)) then 29 else 28 end),
          31, 30, 31, 30, 31, 31, 30, 31, 30, 31]) as $mdays
      | if $mo < 1 or $mo > 12 or $d < 1 or $d > $mdays[$mo - 1] or $h > 23 or $mi > 59
           or $s > 59 then null
        else (days($y; $mo; $d) * 86400 + $h * 3600 + $mi * 60 + $s - $off * 60) * 1000 + $ms
        end
    end) catch null;

# Epoch seconds (below 1e11) or milliseconds -> epoch ms, or null.
def epoch:
  if isinfinite or isnan or . < 0 then null
  else (if . < 1e11 then . * 1000 else . end)
       | if . > 1e16 then null else (. + 0.5 | floor) end
  end;

def anytime:
  if type == "number" then epoch elif type == "string" then rfc3339 else null end;

# The time a text prefix starts with: its first whitespace-delimited token, if RFC 3339.
def leading_time:
  [splits("[ \t\r\n]+") | select(. != "")][0]
  | if . == null or length < 20 then null else rfc3339 end;

# One line (a string) -> [kind, sessionId, runner, worker, time_ms], or nothing when the line
# is not one of our events or is broken. $rt: the file's default runtime (number or null);
# $env: a drain envelope's time; $outer: false inside a drain entry's `message`.
def parse($rt; $env; $outer):
  if (contains("{") | not) then empty
  else
    (if startswith("{") then "" else capture("^(?<p>[^{]*)").p end) as $prefix
    | .[($prefix | length):] as $body
    | if $outer and ($body | contains("event") | not) then empty
      else
        ($body | try fromjson catch null) as $o
        | if ($o | type) != "object" then empty
          else
            ($o.context | if type == "object" then . else {} end) as $c
            | nn($o.event; $c.event) as $name
            | if $name == null then
                # A Vercel drain entry: the log line is in `message`.
                if $outer and ($o.message | type) == "string" then
                  ($o.timestamp | anytime) as $et
                  | $o.message | rtrimstr("\n") | rtrimstr("\r") | parse($rt; $et; false)
                else empty end
              elif ($name | type) != "string" or ($name | KIND) == null then empty
              else
                ($name | KIND) as $kind
                | ([$o.time, $o.timestamp, $o.ts, $o["@timestamp"]] | map(select(. != null)) | .[0])
                    as $tv
                | (if $tv == null then nn($env; $prefix | leading_time) else $tv | anytime end)
                    as $t
                | nn($o.sessionId; nn($o.session_id; $c.sessionId)) as $sid
                | if $t == null then empty                                  # bad or missing time
                  elif (($sid | type) != "string" or $sid == "") and $kind != 3 then empty
                  elif $kind == 0 then
                    nn($o.resolvedProfile | get("runner"); $c.resolvedProfile | get("runner"))
                    | (if . == null then 1 elif type == "string" then RUNNER else 2 end) as $runner
                    | [0, $sid, $runner, null, $t]
                  else
                    nn($o.runtime; nn($o.runner; $c.runtime)) as $r
                    | (if ($r | type) == "string" and $r != "" then $r | RUNNER else $rt end)
                        as $runner
                    | nn($o.workerId; nn($o.worker_id; $c.workerId))
                    | (if type == "string" and . != "" then . elif type == "number" then tostring
                       else null end) as $worker
                    | if $runner == null then empty                         # missing runtime
                      else [$kind, $sid, $runner, $worker, $t] end
                  end
              end
          end
      end
  end;

# One session's records [time, kind, runner, worker] -> [dispatched runner or null, outcome,
# duplicate, orphan claims, reclaims, skew clamped]. Sorted, the records are in time order
# with claimcheck's tie-break (kind, then runner).
def judge($wm; $timeout):
  sort as $r
  | ([$r[] | select(.[1] == 0)][0]) as $d
  | ([$r[] | select(.[1] == 1)][0]) as $c
  | (reduce $r[] as $x ({held: null, claims: 0, re: 0, dup: false};
      if $x[1] == 1 then
        (if .held != null then .dup = true elif .claims > 0 then .re += 1 else . end)
        | .held = $x[2] | .claims += 1
      elif $x[1] == 4 then .held = null
      else . end)) as $s
  | if $d == null then [null, null, false, $s.claims, 0, false]
    elif $c == null then
      [$d[2], (if $wm >= $d[0] + $timeout then "unclaimed" else "pending" end), $s.dup, 0, $s.re,
       false]
    elif $c[2] != $d[2] or $d[2] == 2 then [$d[2], "mismatched", $s.dup, 0, $s.re, false]
    else
      ($c[0] - $d[0]) as $lat
      | [$d[2], (if ([$lat, 0] | max) <= $timeout then "matched" else "late" end), $s.dup, 0,
         $s.re, $lat < 0]
    end;

($timeout * 1000) as $timeout_ms
# State: sessionId -> [[time, kind, runner, worker], ...]; the key "" (never a sessionId) holds
# the watermark. Kept flat and updated with plain `=`: jq 1.6 copies the whole state on every
# `|=`, `+=` or `//` over it, which turns the run quadratic.
| reduce (inputs as $line
          | ($runtimes[input_filename] | if . == null then null else RUNNER end) as $rt
          | $line | parse($rt; null; true)
          | [(if .[0] == 3 then null else .[1] end), [.[4], .[0], .[2], .[3]]]) as [$sid, $rec]
    ({"": null};
     .[""] = (.[""] | if . == null or $rec[0] > . then $rec[0] else . end)
     | if $sid == null then .                               # heartbeats only move the watermark
       else
         .[$sid] = (.[$sid] | if . == null then [$rec]
                              elif any(.[]; . == $rec) then .          # an exact re-delivery
                              else . + [$rec] end)
       end)
| .[""] as $wm
| del(.[""])
| reduce (.[] | judge($wm; $timeout_ms)) as $j
    ({dispatched: {go: 0, ts: 0, other: 0}, matched: 0, late: 0, mismatched: 0, unclaimed: 0,
      pending: 0, duplicate_claims: 0, orphan_claims: 0, reclaims: 0, skew_clamped: 0};
     if $j[0] == null then .orphan_claims += $j[3]
     else
       .dispatched[["go", "ts", "other"][$j[0]]] += 1
       | .[$j[1]] += 1
       | .duplicate_claims += (if $j[2] then 1 else 0 end)
       | .reclaims += $j[4]
       | .skew_clamped += (if $j[5] then 1 else 0 end)
     end)
| {totals: ., watermark_ms: $wm}
