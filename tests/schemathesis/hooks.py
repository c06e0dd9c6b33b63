"""Schemathesis hooks for `tests/it/schemathesis.rs` (loaded through `SCHEMATHESIS_HOOKS`).

- `application/x-ndjson` bodies (`POST /ingest/ndjson`) are written one JSON value per line:
  the document describes the lines as an array.
- Every `POST /ingest/vercel` that carries an `x-vercel-signature` is signed for real:
  hex HMAC-SHA1 of the exact bytes sent, keyed by the drain secret the test gave `serve`
  (`CLAIMCHECK_TEST_DRAIN_SECRET`), so generated bodies reach the drain's parser and the
  actor; cases without the header stay unsigned and test the refusal.
- A generated "invalid" ingest body that `serve` accepts is not a failure when the bytes sent
  are what the ingest rule accepts by design (README, "Ingest bodies"): empty (for the drain,
  Vercel's endpoint check), a JSON array, or a body with a JSON object on one of its lines — a
  batch keeps its good entries and counts the others. Any other accepted one still fails.
- The operations that look a resource up get one explicit example each with an id the test
  seeded (`CLAIMCHECK_TEST_SESSION`, `CLAIMCHECK_TEST_REPORT`, `CLAIMCHECK_TEST_ORG`), so
  their 200 replies are checked against the document too, not only their 404s.
"""

import hashlib
import hmac
import json
import os

import schemathesis
from requests.compat import json as requests_json

SECRET = os.environ["CLAIMCHECK_TEST_DRAIN_SECRET"].encode()

SEEDED = {
    "/api/sessions/{id}": [{"id": os.environ["CLAIMCHECK_TEST_SESSION"]}],
    "/api/reports/{id}": [
        {"id": os.environ["CLAIMCHECK_TEST_REPORT"] + suffix}
        for suffix in ("", ".json", ".md", ".html")
    ],
    "/api/orgs/{org}/verification": [{"org": os.environ["CLAIMCHECK_TEST_ORG"]}],
}


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    lines = value if isinstance(value, list) else [value]
    return "".join(json.dumps(line, default=str) + "\n" for line in lines).encode("utf-8")


def body_as_sent(case):
    """The bytes the requests transport puts on the wire for an `application/json` body."""
    body = case.body
    if isinstance(body, bytes):
        return body
    if body is None:
        return b"null"
    # what `requests` does with `json=`: its json module, NaN refused, UTF-8
    return requests_json.dumps(body, allow_nan=False).encode("utf-8")


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.method.upper() != "POST" or case.operation.path != "/ingest/vercel":
        return
    headers = case.headers or {}
    name = next((k for k in headers if k.lower() == "x-vercel-signature"), None)
    if name is None:
        return
    try:
        sent = body_as_sent(case)
    except (TypeError, ValueError):
        return  # not JSON-serialisable: left unsigned, refused with 403
    headers[name] = hmac.new(SECRET, sent, hashlib.sha1).hexdigest()
    case.headers = headers


def accepted_by_design(body):
    """Whether `serve` takes `body` into a batch (the rule of `parse::drain::entries`)."""
    text = body.strip()
    if not text:
        return True
    if text.startswith(b"["):
        try:
            if isinstance(json.loads(text), list):
                return True
        except ValueError:
            pass
    for line in text.split(b"\n"):
        line = line.strip()
        # one entry of an array written an entry per line: `[{…},`, `{…},`, `{…}]`
        inner = line.removeprefix(b"[").strip().removesuffix(b"]").rstrip()
        inner = inner.removesuffix(b",").rstrip()
        for candidate in (inner, line):
            if candidate.startswith(b"{"):
                try:
                    if isinstance(json.loads(candidate), dict):
                        return True
                except ValueError:
                    pass
    return False


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if (
        failure.code != "ST201"
        or case.operation.path not in ("/ingest/ndjson", "/ingest/vercel")
        or response.status_code != 200
    ):
        return True
    sent = response.request.body or b""
    if isinstance(sent, str):
        sent = sent.encode("utf-8")
    return not accepted_by_design(sent)


@schemathesis.hook
def before_add_examples(context, examples):
    op = context.operation
    if op is None or op.method.upper() != "GET":
        return
    for params in SEEDED.get(op.path, []):
        examples.append(op.Case(path_parameters=params))
