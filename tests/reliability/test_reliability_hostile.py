"""Hostile input against the local run: a table of requests, each answered with its 4xx and a
message that says what is wrong, none a 5xx, and nothing stored by any of them."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from reliability.reliability_http import LOCAL_KEYS, LOCAL_TELEGRAM_SECRET, Http

KEY = LOCAL_KEYS[0]
JSON = "application/json"
DEEP_ARRAYS = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECTS = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
BIG_NUMBER = b'{"description": ' + b"7" * 5_000 + b', "source": "operator"}'


@dataclass
class Case:
    name: str
    method: str
    path: str
    status: int
    says: str = ""  # a fragment the message must contain
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    key: str | None = KEY
    content_type: str | None = JSON


def _valid(**fields: Any) -> dict[str, Any]:
    return {"description": "hostile", "source": "operator", **fields}


def _signed(position: str, filters: dict[str, Any], key: bytes) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"p": position, "f": filters}, separators=(",", ":"))
                                       .encode()).rstrip(b"=").decode()
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16]
    return f"{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def cases(incident: int, etag: str, cursor: str, history_cursor: str) -> list[Case]:
    one = f"/incidents/{incident}"
    patch = lambda name, status, says="", **kw: Case(name, "PATCH", one, status, says, **kw)  # noqa: E731
    post = lambda name, status, says="", **kw: Case(name, "POST", "/incidents", status, says, **kw)  # noqa: E731
    get = lambda name, path, status=400, says="", **kw: Case(name, "GET", path, status, says, **kw)  # noqa: E731
    filters = {"status": None, "source": None}
    return [
        # the reported ones
        post("5,000-digit integer", 400, "100 digits", raw=BIG_NUMBER),
        post("10,000 nested arrays", 400, "nested deeper than 32", raw=DEEP_ARRAYS),
        post("10,000 nested objects", 400, "nested deeper than 32", raw=DEEP_OBJECTS),
        patch("10,000 nested arrays on PATCH", 400, "nested deeper", raw=DEEP_ARRAYS),
        patch("10,000 nested objects on PATCH", 400, "nested deeper", raw=DEEP_OBJECTS),
        patch("5,000-digit number on PATCH", 400, "100 digits", raw=b'{"status": ' + b"1" * 5000 + b"}"),
        post("application/jsonx", 415, "application/json", body=_valid(), content_type="application/jsonx"),
        patch("If-Match with 1,001 tags", 400, "at most 10", body={"status": "closed"},
              headers={"If-Match": ", ".join([etag] * 1001)}),
        patch("If-Match with 11 tags", 400, "at most 10", body={"status": "closed"},
              headers={"If-Match": ", ".join([etag] * 11)}),
        get("id 00001", "/incidents/00001", says="positive integer"),
        get("id +1", "/incidents/+1", says="positive integer"),
        get("id 1e3", "/incidents/1e3", says="positive integer"),
        Case("PATCH id 01", "PATCH", f"/incidents/0{incident}", 400, "positive integer", body={"status": "closed"}),
        # malformed and truncated JSON
        post("truncated JSON", 400, "not valid JSON", raw=b'{"description": "x", "source": "oper'),
        post("unquoted keys", 400, "not valid JSON", raw=b"{description: x}"),
        post("trailing comma", 400, "not valid JSON", raw=b'{"description": "x", "source": "operator",}'),
        post("single quotes", 400, "not valid JSON", raw=b"{'description': 'x'}"),
        post("empty body", 400, "empty", raw=b""),
        post("white space only", 400, "empty", raw=b"  \n\t "),
        post("NaN", 400, "NaN", raw=b'{"description": NaN, "source": "operator"}'),
        post("Infinity", 400, "Infinity", raw=b'{"description": Infinity, "source": "operator"}'),
        post("-Infinity", 400, "Infinity", raw=b'{"description": -Infinity, "source": "operator"}'),
        post("two JSON documents", 400, "not valid JSON", raw=b'{"description": "x"}{"source": "operator"}'),
        post("a UTF-8 BOM", 400, "not valid JSON", raw=b'\xef\xbb\xbf{"description": "x", "source": "operator"}'),
        post("duplicate field", 400, "repeats", raw=b'{"description": "a", "description": "b", "source": "operator"}'),
        # not an object
        post("array body", 400, "JSON object", body=[_valid()]),
        post("string body", 400, "JSON object", raw=b'"hostile"'),
        post("number body", 400, "JSON object", raw=b"42"),
        post("null body", 400, "JSON object", raw=b"null"),
        post("true body", 400, "JSON object", raw=b"true"),
        # wrong types, nulls, limits
        post("description a number", 400, "description", body=_valid(description=5)),
        post("description null", 400, "description", body=_valid(description=None)),
        post("description a list", 400, "description", body=_valid(description=["x"])),
        post("description an object", 400, "description", body=_valid(description={"x": 1})),
        post("description empty", 400, "description", body=_valid(description="")),
        post("description white space", 400, "description", body=_valid(description=" \n ")),
        post("description 4,001 characters", 400, "4000", body=_valid(description="x" * 4001)),
        post("description a lone surrogate", 400, "surrogate", raw=b'{"description": "\\ud800", "source": "operator"}'),
        post("source null", 400, "source must be one of", body=_valid(source=None)),
        post("source a number", 400, "source must be one of", body=_valid(source=1)),
        post("source in capitals", 400, "source must be one of", body=_valid(source="OPERATOR")),
        post("source unknown", 400, "source must be one of", body=_valid(source="customer")),
        post("dedup_key a number", 400, "dedup_key", body=_valid(dedup_key=5)),
        post("dedup_key empty", 400, "dedup_key", body=_valid(dedup_key="")),
        post("dedup_key 257 characters", 400, "dedup_key", body=_valid(dedup_key="k" * 257)),
        post("unknown field", 400, "unknown field", body=_valid(priority="high")),
        post("status on create", 400, "unknown field", body=_valid(status="closed")),
        post("missing source", 400, "missing required", body={"description": "x"}),
        post("missing description", 400, "missing required", body={"source": "operator"}),
        post("empty object", 400, "missing required", body={}),
        patch("status null", 400, "status must be one of", body={"status": None}),
        patch("status a number", 400, "status must be one of", body={"status": 3}),
        patch("status unknown", 400, "status must be one of", body={"status": "open"}),
        patch("status new (not allowed back)", 409, "cannot move to new", body={"status": "new"}),
        patch("note 1,001 characters", 400, "1000", body={"status": "resolved", "note": "n" * 1001}),
        patch("note a number", 400, "note", body={"status": "resolved", "note": 5}),
        patch("unknown PATCH field", 400, "unknown field", body={"status": "resolved", "owner": "me"}),
        patch("missing status", 400, "missing required", body={"note": "x"}),
        patch("If-Match of another version", 412, "If-Match does not match", body={"status": "closed"},
              headers={"If-Match": '"999999-1"'}),
        # control characters and invalid UTF-8
        post("raw control character in a string", 400, "not valid JSON",
             raw=b'{"description": "a\x01b", "source": "operator"}'),
        post("raw newline in a string", 400, "not valid JSON",
             raw=b'{"description": "a\nb", "source": "operator"}'),
        post("invalid UTF-8", 400, "UTF-8", raw=b'{"description": "\xff\xfe", "source": "operator"}'),
        post("overlong UTF-8 encoding", 400, "UTF-8", raw=b'{"description": "\xc0\xaf", "source": "operator"}'),
        post("UTF-16 body", 400, "UTF-8", raw='{"description": "x", "source": "operator"}'.encode("utf-16")),
        # injection-looking text where only an enum, a number or an id may go
        post("SQL in source", 400, "source must be one of", body=_valid(source="operator' OR '1'='1")),
        post("NoSQL operator in source", 400, "source must be one of", body=_valid(source={"$ne": None})),
        patch("expression in status", 400, "status must be one of",
              body={"status": "closed) OR attribute_exists(pk"}),
        get("SQL in an id", "/incidents/1%20OR%201=1", says="positive integer"),
        get("SQL in limit", "/incidents?limit=1%20OR%201=1", says="limit"),
        get("script in source", "/incidents?source=%3Cscript%3E", says="source must be one of"),
        get("status unknown in query", "/incidents?status=open", says="status must be one of"),
        get("limit 0", "/incidents?limit=0", says="limit"),
        get("limit 101", "/incidents?limit=101", says="limit"),
        get("limit 5,000 digits", "/incidents?limit=" + "9" * 5000, says="limit"),
        get("unknown history parameter", f"{one}/history?status=new", says="unknown query parameter"),
        # path tricks
        get("id 0", "/incidents/0", says="positive integer"),
        get("id -1", "/incidents/-1", says="positive integer"),
        get("id 19 digits", "/incidents/" + "9" * 19, says="positive integer"),
        get("id 5,000 digits", "/incidents/" + "9" * 5000, says="positive integer"),
        get("id with a NUL", "/incidents/1%00", says="positive integer"),
        get("id in full-width digits", "/incidents/%EF%BC%91", says="positive integer"),
        get("dot-dot as id", "/incidents/..", says="positive integer"),
        get("unknown incident", "/incidents/999999", 404, "no incident"),
        get("unknown route", "/admin", 403, "Missing Authentication Token"),
        # overlong headers
        get("10 KB API key", "/incidents", 401, "x-api-key", key="k" * 10_000),
        post("10 KB Idempotency-Key", 400, "Idempotency-Key", body=_valid(),
             headers={"Idempotency-Key": "i" * 10_000}),
        post("129-character Idempotency-Key", 400, "Idempotency-Key", body=_valid(),
             headers={"Idempotency-Key": "i" * 129}),
        post("10 KB Content-Type", 415, "application/json", body=_valid(), content_type="application/" + "x" * 10_000),
        post("body over 64 KiB", 413, "64 KiB", body=_valid(description="x" * 70_000)),
        # forged and truncated cursors
        get("truncated cursor", f"/incidents?limit=1&cursor={cursor[:-5]}", says="not issued"),
        get("cursor with its payload cut", f"/incidents?limit=1&cursor={cursor[8:]}", says="not issued"),
        get("cursor of other filters", f"/incidents?limit=1&status=new&cursor={cursor}", says="other filters"),
        get("history cursor on the list", f"/incidents?limit=1&cursor={history_cursor}", says="not issued"),
        get("cursor signed with the old built-in key", "/incidents?cursor=" + _signed(
            "2026-11-23T10:15:30.123Z#00000000000000000001", filters, b"incident-list-cursor-v1"), says="not issued"),
        get("cursor with 1,500 x", "/incidents?cursor=" + _signed("x" * 1500, filters, b"guess"), says="not issued"),
        get("random cursor", "/incidents?cursor=eyJwIjoiIn0.AAAAAAAAAAAAAAAAAAAAAA", says="not issued"),
        get("cursor 2,000 characters", "/incidents?cursor=" + "A" * 2000, says="not issued"),
        # wrong media types
        post("text/plain", 415, "application/json", body=_valid(), content_type="text/plain"),
        post("text/json", 415, "application/json", body=_valid(), content_type="text/json"),
        post("form-encoded", 415, "application/json", raw=b"description=x&source=operator",
             content_type="application/x-www-form-urlencoded"),
        post("multipart", 415, "application/json", body=_valid(), content_type="multipart/form-data; boundary=x"),
        patch("json-patch", 415, "application/json", body=[{"op": "replace"}], content_type="application/json-patch+json"),
        post("empty Content-Type", 415, "application/json", body=_valid(), content_type=""),
        # API keys and the Telegram secret
        get("no API key", "/incidents", 401, "x-api-key", key=None),
        get("empty API key", "/incidents", 401, "x-api-key", key=""),
        get("wrong API key", "/incidents", 401, "x-api-key", key="wrong"),
        get("API key in other case", "/incidents", 401, "x-api-key", key=KEY.upper()),
        get("two API keys in one header", "/incidents", 401, "x-api-key", key=",".join(LOCAL_KEYS)),
        post("create without an API key", 401, "x-api-key", body=_valid(), key=None),
        patch("change with a wrong API key", 401, "x-api-key", body={"status": "closed"}, key="wrong"),
        get("the Telegram secret as API key", "/incidents", 401, "x-api-key", key=LOCAL_TELEGRAM_SECRET),
        Case("an API key as Telegram secret", "POST", "/telegram/webhook", 401, "Secret-Token",
             body={"update_id": 1}, headers={"X-Telegram-Bot-Api-Secret-Token": KEY}),
        Case("webhook without a secret", "POST", "/telegram/webhook", 401, "Secret-Token", body={"update_id": 1}),
        Case("webhook with an empty secret", "POST", "/telegram/webhook", 401, "Secret-Token",
             body={"update_id": 1}, headers={"X-Telegram-Bot-Api-Secret-Token": ""}),
    ]


def test_a_table_of_hostile_requests_gets_4xx_with_a_message_and_stores_nothing(local_run: Http, figures):
    created = local_run.post("/incidents", {"description": "hostile target", "source": "operator"})
    local_run.post("/incidents", {"description": "hostile second", "source": "partner"})
    incident = created.json["id"]
    for n in range(2):
        local_run.patch(f"/incidents/{incident}", {"status": ["in_progress", "resolved"][n]})
    etag = local_run.get(f"/incidents/{incident}").headers["etag"]
    cursor = local_run.get("/incidents?limit=1").json["next_cursor"]
    history_cursor = local_run.get(f"/incidents/{incident}/history?limit=1").json["next_cursor"]
    assert cursor and history_cursor
    table = cases(incident, etag, cursor, history_cursor)
    assert len(table) >= 80 and len({case.name for case in table}) == len(table)
    before = local_run.items()

    wrong = []
    statuses: Counter[int] = Counter()
    for case in table:
        reply = local_run.request(case.method, case.path, case.body, raw=case.raw, headers=case.headers,
                                  key=case.key, content_type=case.content_type)
        statuses[reply.status] += 1
        body = reply.json if isinstance(reply.json, dict) else {}
        message = body.get("Message") or body.get("message") or ""
        if reply.status != case.status or case.says.lower() not in message.lower() or not message:
            wrong.append(f"{case.name}: {reply.status} {reply.body[:160]!r}")
    after = local_run.items()

    assert wrong == [], "\n".join(wrong)
    assert after == before, "a refused request changed the table"
    figures(f"{len(table)} hostile requests: {dict(sorted(statuses.items()))}; each with its message, "
            f"none a 5xx, table unchanged ({len(before)} items before and after)")
