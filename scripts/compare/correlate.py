#!/usr/bin/env python3
"""A dispatch/claim correlator in plain Python, the one an engineer would write by hand.

Part of scripts/compare.sh: it computes the same totals as `claimcheck verify` (PRODUCT.md
§1-§2) so their speeds can be compared on equal terms. Standard library only; it streams every
file line by line with json.loads and keeps a dict of sessions.

usage: correlate.py [--timeout SECONDS] [--dispatch PATH]... [--claims [RUNTIME=]PATH]...
Prints one JSON object: {"totals": {...}, "events": {...}, "watermark_ms": N}.
"""

import argparse
import json
import math
import re
import sys
from datetime import datetime, timedelta, timezone

DISPATCH, CLAIM, COMPLETION, HEARTBEAT, RELEASE = range(5)
KINDS = {
    "dispatch": DISPATCH,
    "claimed": CLAIM,
    "completed": COMPLETION,
    "failed": COMPLETION,
    "heartbeat": HEARTBEAT,
    "nack": RELEASE,
    "released": RELEASE,
}
KIND_NAMES = ["dispatch", "claim", "completion", "heartbeat", "release"]
# Sort order of runners when two events share a time: go < ts < other.
RUNNERS = {"go": 0, "ts": 1}
OTHER = 2
RUNNER_NAMES = ["go", "ts", "other"]

RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|([+-])(\d\d):(\d\d))\Z"
)
DAYS_BEFORE_MONTH = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334]


def days_from_civil(y, m, d):
    """Days since 1970-01-01 (proleptic Gregorian)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MILLISECOND = timedelta(milliseconds=1)


def parse_rfc3339(s):
    """RFC 3339 with any offset and fraction -> epoch ms (fraction truncated to ms), or None."""
    # Fast path: datetime.fromisoformat (C, Python 3.11+) for the RFC 3339 shapes it takes.
    if (
        len(s) >= 20
        and s[4] == "-" and s[7] == "-" and s[10] in "Tt " and s[13] == ":" and s[16] == ":"
        and (s[19] in "Zz+-" or (s[19] == "." and s[20].isdigit()))
        and (s[-1] in "Zz" or (s[-3] == ":" and s[-6] in "+-"))
    ):  # fromisoformat also takes shapes RFC 3339 does not
        try:
            dt = datetime.fromisoformat(s)
            if dt.tzinfo is not None:
                return (dt - EPOCH) // MILLISECOND
        except ValueError:
            pass
    return parse_rfc3339_slow(s)


def parse_rfc3339_slow(s):
    m = RFC3339.match(s)
    if not m:
        return None
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    if not 1 <= mo <= 12 or h > 23 or mi > 59 or sec > 59:
        return None
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    mdays = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[mo - 1]
    if not 1 <= d <= mdays:
        return None
    frac = m.group(7)
    ms = int((frac + "00")[:3]) if frac else 0
    off = 0
    if m.group(9):
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            return None
        off = oh * 60 + om
        if m.group(9) == "-":
            off = -off
    secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off * 60
    return secs * 1000 + ms


def from_epoch(n):
    """Epoch seconds (below 1e11) or milliseconds -> epoch ms, or None."""
    try:
        n = float(n)
    except OverflowError:
        return None
    if not math.isfinite(n) or n < 0:
        return None
    ms = n * 1000.0 if n < 1e11 else n
    if ms > 1e16:
        return None
    return int(math.floor(ms + 0.5))


def leading_time(prefix):
    """The RFC 3339 time a text prefix starts with (its first whitespace-delimited token)."""
    parts = prefix.split(None, 1)
    if not parts or len(parts[0]) < 20 or not parts[0][:1].isdigit():
        return None
    return parse_rfc3339(parts[0])


def dig(obj, *path):
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def first(obj, paths):
    """The first non-null value among `paths`."""
    for path in paths:
        v = dig(obj, *path)
        if v is not None:
            return v
    return None


EVENT_PATHS = [("event",), ("context", "event")]
SESSION_PATHS = [("sessionId",), ("session_id",), ("context", "sessionId")]
RUNNER_PATHS = [("resolvedProfile", "runner"), ("context", "resolvedProfile", "runner")]
RUNTIME_PATHS = [("runtime",), ("runner",), ("context", "runtime")]
WORKER_PATHS = [("workerId",), ("worker_id",), ("context", "workerId")]
TIME_PATHS = [("time",), ("timestamp",), ("ts",), ("@timestamp",)]

DECODER = json.JSONDecoder()


def load_object(text):
    """The JSON object at the start of `text` (bytes after it are ignored), or None."""
    try:
        obj = json.loads(text)
    except ValueError:
        try:
            obj = DECODER.raw_decode(text if isinstance(text, str) else text.decode())[0]
        except ValueError:
            return None
    return obj if isinstance(obj, dict) else None


def number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse(line, default_runtime, envelope=None, outer=True):
    """One line -> (kind, session, runner, worker, time_ms), or None (ignored or rejected)."""
    brace = line.find(b"{") if outer else line.find("{")
    if brace < 0:
        return None
    body = line[brace:]
    if outer and b"event" not in body:
        return None
    obj = load_object(body)
    if obj is None:
        return None
    name = first(obj, EVENT_PATHS)
    if name is None:
        # Maybe a Vercel drain entry: the log line is in `message`.
        msg = obj.get("message")
        if not outer or not isinstance(msg, str):
            return None
        env = obj.get("timestamp")
        env_time = None
        if number(env):
            env_time = from_epoch(env)
        elif isinstance(env, str):
            env_time = parse_rfc3339(env)
        if msg.endswith("\n"):
            msg = msg[:-1]
        if msg.endswith("\r"):
            msg = msg[:-1]
        return parse(msg, default_runtime, env_time, False)
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        return None

    t = first(obj, TIME_PATHS)
    if t is None:
        if envelope is not None:
            t = envelope
        else:
            prefix = line[:brace]
            if isinstance(prefix, bytes):
                prefix = prefix.decode("utf-8", "replace")
            t = leading_time(prefix)
            if t is None:
                return None  # missing_time
    elif isinstance(t, str):
        t = parse_rfc3339(t)
    elif number(t):
        t = from_epoch(t)
    else:
        t = None
    if t is None:
        return None  # bad_time

    sid = first(obj, SESSION_PATHS)
    if not isinstance(sid, str) or not sid:
        if kind != HEARTBEAT:
            return None  # missing_session_id
        sid = None

    if kind == DISPATCH:
        r = first(obj, RUNNER_PATHS)
        if r is None:
            runner = RUNNERS["ts"]  # legacy dispatch: no runner means ts
        else:
            runner = RUNNERS.get(r, OTHER) if isinstance(r, str) else OTHER
        worker = None
    else:
        r = first(obj, RUNTIME_PATHS)
        if isinstance(r, str) and r:
            runner = RUNNERS.get(r, OTHER)
        elif default_runtime is None:
            return None  # missing_runtime
        else:
            runner = default_runtime
        w = first(obj, WORKER_PATHS)
        if isinstance(w, str):
            worker = w or None
        elif number(w):
            worker = repr(float(w)).removesuffix(".0")
        else:
            worker = None
    return kind, sid, runner, worker, t


def judge(records, timeout_ms, watermark, totals):
    records.sort(key=lambda r: (r[0], r[1], r[2], r[3] or ""))
    dispatch = next((r for r in records if r[1] == DISPATCH), None)
    first_claim = next((r for r in records if r[1] == CLAIM), None)
    held = None
    claims = reclaims = 0
    duplicate = False
    for t, kind, runner, _ in records:
        if kind == CLAIM:
            if held is not None:
                duplicate = True
            elif claims:
                reclaims += 1
            held = runner
            claims += 1
        elif kind == RELEASE:
            held = None
    if dispatch is None:
        totals["orphan_claims"] += claims
        return
    d_time, _, d_runner, _ = dispatch
    totals["dispatched"][RUNNER_NAMES[d_runner]] += 1
    totals["duplicate_claims"] += duplicate
    totals["reclaims"] += reclaims
    if first_claim is None:
        outcome = "unclaimed" if watermark >= d_time + timeout_ms else "pending"
    elif first_claim[2] != d_runner or d_runner == OTHER:
        outcome = "mismatched"
    else:
        latency = first_claim[0] - d_time
        if latency < 0:
            totals["skew_clamped"] += 1
            latency = 0
        outcome = "matched" if latency <= timeout_ms else "late"
    totals[outcome] += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dispatch", action="append", default=[])
    ap.add_argument("--claims", action="append", default=[])
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()

    inputs = [(path, None) for path in args.dispatch]
    for spec in args.claims:
        runtime, sep, path = spec.partition("=")
        if not sep:
            runtime, path = None, spec
        inputs.append((path, None if runtime is None else RUNNERS.get(runtime, OTHER)))

    sessions = {}  # sessionId -> {(time, kind, runner, worker)}: a set dedups re-deliveries
    heartbeats = set()
    events = [0] * 5
    watermark = None
    for path, default_runtime in inputs:
        with open(path, "rb") as f:
            for line in f:
                ev = parse(line.rstrip(b"\r\n"), default_runtime)
                if ev is None:
                    continue
                kind, sid, runner, worker, t = ev
                if watermark is None or t > watermark:
                    watermark = t
                if kind == HEARTBEAT:
                    # no session to dedupe against: remember (runtime, worker, time) instead
                    beat = (runner, worker, t)
                    if beat not in heartbeats:
                        heartbeats.add(beat)
                        events[kind] += 1
                    continue
                recs = sessions.get(sid)
                if recs is None:
                    recs = sessions[sid] = set()
                rec = (t, kind, runner, worker)
                if rec not in recs:
                    recs.add(rec)
                    events[kind] += 1

    totals = {
        "dispatched": {"go": 0, "ts": 0, "other": 0},
        "matched": 0,
        "late": 0,
        "mismatched": 0,
        "unclaimed": 0,
        "pending": 0,
        "duplicate_claims": 0,
        "orphan_claims": 0,
        "reclaims": 0,
        "skew_clamped": 0,
    }
    timeout_ms = int(args.timeout * 1000)
    for recs in sessions.values():
        judge(list(recs), timeout_ms, watermark, totals)
    json.dump(
        {
            "totals": totals,
            "events": dict(zip(KIND_NAMES, events)),
            "watermark_ms": watermark,
        },
        sys.stdout,
        indent=2,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
