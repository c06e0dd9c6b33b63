#!/usr/bin/env python3
"""The dispatch/claim correlator a user would write in SQL, run by DuckDB or chDB (ClickHouse).

Part of scripts/compare.sh: the engine reads every file as lines, pulls the JSON object out of
each (after a text prefix, or from a Vercel drain entry's `message`), normalises the events of
PRODUCT.md §1 with the engine's own JSON functions, drops exact re-deliveries, and judges every
session by §2 (DuckDB: window functions; ClickHouse: one GROUP BY with arrays): the same totals
as `claimcheck verify`.

usage: correlate_sql.py [--engine duckdb|chdb] [--timeout SECONDS] [--print-sql]
                        [--dispatch PATH]... [--claims RUNTIME=PATH]...
Prints one JSON object: {"totals": {...}, "engine": "..."}.
"""

import argparse
import json
import sys

KINDS = """CASE ev WHEN 'dispatch' THEN 0 WHEN 'claimed' THEN 1 WHEN 'completed' THEN 2
    WHEN 'failed' THEN 2 WHEN 'heartbeat' THEN 3 WHEN 'nack' THEN 4 WHEN 'released' THEN 4 END"""


PATHS = ["$.event", "$.context.event", "$.sessionId", "$.session_id", "$.context.sessionId",
         "$.time", "$.timestamp", "$.ts", '$."@timestamp"', "$.resolvedProfile.runner",
         "$.context.resolvedProfile.runner", "$.runtime", "$.runner", "$.context.runtime",
         "$.workerId", "$.worker_id", "$.context.workerId", "$.message"]


def duckdb_sql(inputs, timeout_ms):
    """inputs: [(path, default runtime code or NULL)]. Every object is parsed once: one
    json_extract of all the paths."""
    reads = " UNION ALL ".join(
        f"SELECT line, {rt} AS dflt FROM read_csv('{p}', columns={{'line': 'VARCHAR'}}, "
        f"header=false, delim=chr(1), quote='', escape='', auto_detect=false, "
        f"strict_mode=false, null_padding=true)"
        for p, rt in inputs
    )
    paths = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in PATHS) + "]"

    def v(name):
        return f"x[{PATHS.index(name) + 1}]"

    def sv(name):
        return f"({v(name)} ->> '$')"

    def tm(e):
        # epoch ms of a JSON time value: RFC 3339 string, or epoch seconds / ms as a number
        return f"""CASE json_type({e})
            WHEN 'VARCHAR' THEN epoch_ms(TRY_CAST(({e} ->> '$') AS TIMESTAMPTZ))
            WHEN 'BIGINT' THEN CASE WHEN {e}::DOUBLE < 1e11 THEN ({e}::DOUBLE * 1000)::BIGINT ELSE {e}::BIGINT END
            WHEN 'UBIGINT' THEN CASE WHEN {e}::DOUBLE < 1e11 THEN ({e}::DOUBLE * 1000)::BIGINT ELSE {e}::BIGINT END
            WHEN 'DOUBLE' THEN CASE WHEN {e}::DOUBLE < 1e11 THEN round({e}::DOUBLE * 1000)::BIGINT ELSE round({e}::DOUBLE)::BIGINT END
            END"""

    ev = f"coalesce({sv('$.event')}, {sv('$.context.event')})"
    kinds = KINDS.replace("ev", ev)
    stamp = v('$."@timestamp"')
    return f"""
WITH raw AS ({reads}),
outer_ AS (
    SELECT dflt, substr(line, 1, strpos(line, '{{') - 1) AS prefix, substr(line, strpos(line, '{{')) AS j
    FROM raw WHERE strpos(line, '{{') > 0 AND contains(line, 'event')
),
px AS (SELECT dflt, prefix, json_extract(j, {paths}) AS x FROM outer_ WHERE json_valid(j)),
shaped AS (
    SELECT dflt, prefix, x, NULL::BIGINT AS env FROM px WHERE {ev} IS NOT NULL
    UNION ALL
    SELECT dflt, substr(m, 1, strpos(m, '{{') - 1), json_extract(substr(m, strpos(m, '{{')), {paths}), env
    FROM (SELECT dflt, rtrim({sv('$.message')}, chr(10) || chr(13)) AS m, {tm(v('$.timestamp'))} AS env FROM px
          WHERE {ev} IS NULL AND json_type({v('$.message')}) = 'VARCHAR')
    WHERE strpos(m, '{{') > 0 AND json_valid(substr(m, strpos(m, '{{')))
),
events AS (
    SELECT * FROM (
        SELECT {kinds} AS kind,
               coalesce({sv('$.sessionId')}, {sv('$.session_id')}, {sv('$.context.sessionId')}) AS sid,
               coalesce(nullif({v('$.time')}::VARCHAR, 'null'), nullif({v('$.timestamp')}::VARCHAR, 'null'),
                        nullif({v('$.ts')}::VARCHAR, 'null'), nullif({stamp}::VARCHAR, 'null'))::JSON AS tv,
               CASE WHEN tv IS NOT NULL THEN {tm('tv')} ELSE
                   coalesce(env, epoch_ms(TRY_CAST(nullif(split_part(split_part(trim(prefix), ' ', 1), chr(9), 1), '') AS TIMESTAMPTZ)))
               END AS t,
               coalesce({sv('$.resolvedProfile.runner')}, {sv('$.context.resolvedProfile.runner')}) AS runner_v,
               coalesce(nullif({sv('$.runtime')}, ''), nullif({sv('$.runner')}, ''), nullif({sv('$.context.runtime')}, '')) AS runtime_v,
               coalesce({sv('$.workerId')}, {sv('$.worker_id')}, {sv('$.context.workerId')}) AS worker,
               dflt
        FROM shaped)
    WHERE kind IS NOT NULL AND t IS NOT NULL AND (kind = 3 OR sid <> '')
      AND (kind = 0 OR runtime_v IS NOT NULL OR dflt IS NOT NULL)
),
""" + JUDGE.replace("TIMEOUT", str(timeout_ms))


JUDGE = """recs AS (
    SELECT DISTINCT sid, t, kind,
        CASE WHEN kind = 0 THEN CASE coalesce(runner_v, 'ts') WHEN 'go' THEN 0 WHEN 'ts' THEN 1 ELSE 2 END
             WHEN runtime_v IS NULL THEN dflt
             ELSE CASE runtime_v WHEN 'go' THEN 0 WHEN 'ts' THEN 1 ELSE 2 END END AS runner,
        coalesce(worker, '') AS worker
    FROM events WHERE kind <> 3
),
ordered AS (
    SELECT *, row_number() OVER (PARTITION BY sid ORDER BY t, kind, runner, worker) AS n FROM recs
),
cr AS (
    SELECT sid, kind, lag(kind) OVER (PARTITION BY sid ORDER BY n) AS prev FROM ordered WHERE kind IN (1, 4)
),
per AS (
    SELECT sid,
        min(n) FILTER (WHERE kind = 0) AS d_n,
        arg_min(t, n) FILTER (WHERE kind = 0) AS d_t,
        arg_min(runner, n) FILTER (WHERE kind = 0) AS d_r,
        arg_min(t, n) FILTER (WHERE kind = 1) AS c_t,
        arg_min(runner, n) FILTER (WHERE kind = 1) AS c_r,
        count(*) FILTER (WHERE kind = 1) AS claims
    FROM ordered GROUP BY sid
),
dup AS (SELECT sid, bool_or(kind = 1 AND prev = 1) AS dup FROM cr GROUP BY sid),
wm AS (SELECT max(t) AS w FROM events),
judged AS (
    SELECT per.*, coalesce(dup.dup, false) AS dup,
        CASE WHEN d_n IS NULL THEN NULL
             WHEN c_t IS NULL THEN CASE WHEN (SELECT w FROM wm) >= d_t + TIMEOUT THEN 'unclaimed' ELSE 'pending' END
             WHEN c_r <> d_r OR d_r = 2 THEN 'mismatched'
             WHEN greatest(c_t - d_t, 0) <= TIMEOUT THEN 'matched' ELSE 'late' END AS outcome
    FROM per LEFT JOIN dup USING (sid)
)
SELECT
    count(*) FILTER (WHERE d_n IS NOT NULL AND d_r = 0),
    count(*) FILTER (WHERE d_n IS NOT NULL AND d_r = 1),
    count(*) FILTER (WHERE d_n IS NOT NULL AND d_r = 2),
    count(*) FILTER (WHERE outcome = 'matched'),
    count(*) FILTER (WHERE outcome = 'late'),
    count(*) FILTER (WHERE outcome = 'mismatched'),
    count(*) FILTER (WHERE outcome = 'unclaimed'),
    count(*) FILTER (WHERE outcome = 'pending'),
    count(*) FILTER (WHERE d_n IS NOT NULL AND dup),
    coalesce(sum(claims) FILTER (WHERE d_n IS NULL), 0)
FROM judged
"""


def chdb_sql(inputs, timeout_ms):
    """The same correlator in ClickHouse SQL. ClickHouse inlines a CTE at every use, so each
    file is read once by nesting subqueries rather than naming them twice: lines -> the JSON
    object (or a drain entry's message) -> events -> one group per session holding its sorted,
    distinct records as an array -> judged."""
    def q(s):
        return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"

    reads = " UNION ALL ".join(
        f"SELECT line, CAST({rt} AS Nullable(UInt8)) AS dflt FROM file({q(p)}, 'LineAsString')"
        for p, rt in inputs
    )

    def raw(doc, path):
        keys = ", ".join(q(k) for k in path)
        # NULL when absent or JSON null, else the value's JSON text
        return f"nullIf(nullIf(JSONExtractRaw({doc}, {keys}), ''), 'null')"

    def sv(doc, path):
        keys = ", ".join(q(k) for k in path)
        r = raw(doc, path)
        return f"if(startsWith({r}, '\"'), JSONExtractString({doc}, {keys}), {r})"

    def first(doc, paths, empty_is_null=False):
        vals = [sv(doc, p) for p in paths]
        if empty_is_null:
            vals = [f"nullIf({v}, '')" for v in vals]
        return "coalesce(" + ", ".join(vals) + ")"

    def tm(r):
        # epoch ms of a JSON time value (its raw text): RFC 3339 string, or epoch s / ms number
        return f"""multiIf({r} IS NULL, NULL,
            startsWith({r}, '"'), toUnixTimestamp64Milli(parseDateTime64BestEffortOrNull(substring({r}, 2, length({r}) - 2), 3, 'UTC')),
            toFloat64OrNull({r}) < 1e11, toInt64(round(toFloat64OrNull({r}) * 1000)),
            toInt64(round(toFloat64OrNull({r}))))"""

    ev = lambda d: first(d, [("event",), ("context", "event")])
    times = lambda d: "coalesce(" + ", ".join(raw(d, p) for p in [("time",), ("timestamp",), ("ts",), ("@timestamp",)]) + ")"
    kinds = """multiIf(e = 'dispatch', 0, e = 'claimed', 1, e IN ('completed', 'failed'), 2,
                       e = 'heartbeat', 3, e IN ('nack', 'released'), 4, NULL)"""
    return f"""
SELECT
    countIf(has_d AND d.3 = 0), countIf(has_d AND d.3 = 1), countIf(has_d AND d.3 = 2),
    countIf(outcome = 'matched'), countIf(outcome = 'late'), countIf(outcome = 'mismatched'),
    countIf(outcome = 'unclaimed'), countIf(outcome = 'pending'),
    countIf(has_d AND arrayExists((a, b) -> a = 1 AND b = 1, arrayPopBack(cr), arrayPopFront(cr))),
    sumIf(claims, NOT has_d)
FROM (
    SELECT *,
        multiIf(NOT has_d, '',
                claims = 0, if(w >= d.1 + {timeout_ms}, 'unclaimed', 'pending'),
                c.3 != d.3 OR d.3 = 2, 'mismatched',
                greatest(c.1 - d.1, 0) <= {timeout_ms}, 'matched', 'late') AS outcome
    FROM (
        SELECT recs, max(mt) OVER () AS w,
            arrayExists(x -> x.2 = 0, recs) AS has_d, arrayFirst(x -> x.2 = 0, recs) AS d,
            arrayFirst(x -> x.2 = 1, recs) AS c, arrayCount(x -> x.2 = 1, recs) AS claims,
            arrayFilter(k -> k IN (1, 4), arrayMap(x -> x.2, recs)) AS cr
        FROM (
            SELECT sid, max(t) AS mt,
                arraySort(groupUniqArrayIf((t, kind, runner, worker), kind != 3)) AS recs
            FROM (
                SELECT kind, sid, t, worker,
                    multiIf(kind = 0, multiIf(coalesce(runner_v, 'ts') = 'go', 0, coalesce(runner_v, 'ts') = 'ts', 1, 2),
                            runtime_v IS NULL, dflt,
                            runtime_v = 'go', 0, runtime_v = 'ts', 1, 2) AS runner
                FROM (
                    SELECT {kinds.replace('e ', 'ev ').replace('(e ', '(ev ')} AS kind,
                        {first('jj', [("sessionId",), ("session_id",), ("context", "sessionId")])} AS sid,
                        {times('jj')} AS tv,
                        if(tv IS NOT NULL, {tm('tv')},
                           coalesce(env, toUnixTimestamp64Milli(parseDateTime64BestEffortOrNull(
                               splitByChar(char(9), splitByChar(' ', trimBoth(pfx))[1])[1], 3, 'UTC')))) AS t,
                        {first('jj', [("resolvedProfile", "runner"), ("context", "resolvedProfile", "runner")])} AS runner_v,
                        {first('jj', [("runtime",), ("runner",), ("context", "runtime")], True)} AS runtime_v,
                        coalesce({first('jj', [("workerId",), ("worker_id",), ("context", "workerId")])}, '') AS worker,
                        dflt
                    FROM (
                        SELECT dflt, ev,
                            if(is_env, substring(m, 1, position(m, '{{') - 1), prefix) AS pfx,
                            if(is_env, substring(m, position(m, '{{')), j) AS jj,
                            if(is_env, {tm(raw('j', ("timestamp",)))}, NULL) AS env
                        FROM (
                            SELECT dflt, prefix, j, {ev('j')} AS ev0,
                                ev0 IS NULL AND JSONType(j, 'message') = 'String' AS is_env,
                                if(is_env, replaceRegexpOne(JSONExtractString(j, 'message'), '[\\r\\n]+$', ''), '') AS m,
                                if(is_env, {ev(f"substring(m, position(m, '{{'))")}, ev0) AS ev
                            FROM (
                                SELECT dflt, substring(line, 1, position(line, '{{') - 1) AS prefix,
                                    substring(line, position(line, '{{')) AS j
                                FROM ({reads})
                                WHERE position(line, '{{') > 0 AND position(line, 'event') > 0
                            )
                            WHERE isValidJSON(j)
                        )
                        WHERE NOT is_env OR (position(m, '{{') > 0 AND isValidJSON(substring(m, position(m, '{{'))))
                    )
                )
                WHERE kind IS NOT NULL AND t IS NOT NULL AND (kind = 3 OR sid != '')
                  AND (kind = 0 OR runtime_v IS NOT NULL OR dflt IS NOT NULL)
            )
            GROUP BY sid
        )
    )
)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", choices=["duckdb", "chdb"], default="duckdb")
    ap.add_argument("--dispatch", action="append", default=[])
    ap.add_argument("--claims", action="append", default=[])
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--print-sql", action="store_true")
    args = ap.parse_args()
    codes = {"go": 0, "ts": 1}
    inputs = [(p, "NULL") for p in args.dispatch]
    for spec in args.claims:
        rt, sep, path = spec.partition("=")
        inputs.append((path, str(codes.get(rt, 2))) if sep else (spec, "NULL"))
    timeout_ms = int(args.timeout * 1000)
    if args.engine == "duckdb":
        sql = duckdb_sql(inputs, timeout_ms)
        if args.print_sql:
            print(sql)
            return
        import duckdb

        row = duckdb.sql(sql).fetchall()[0]
        version = duckdb.__version__
    else:
        sql = chdb_sql(inputs, timeout_ms)
        if args.print_sql:
            print(sql)
            return
        import chdb

        res = chdb.query(sql, "JSONCompact")
        row = json.loads(res.bytes())["data"][0]
        version = chdb.__version__
    names = ["go", "ts", "other", "matched", "late", "mismatched", "unclaimed", "pending",
             "duplicate_claims", "orphan_claims"]
    v = dict(zip(names, (int(x) for x in row)))
    totals = {"dispatched": {k: v.pop(k) for k in ("go", "ts", "other")}, **v}
    json.dump({"totals": totals, "engine": f"{args.engine} {version}"}, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
