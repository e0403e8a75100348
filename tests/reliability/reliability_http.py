"""A small HTTP client for the local run (raw bytes and headers allowed, so hostile requests can be
sent as they are), the table as the embedded DynamoDB holds it, and the invariants every
reliability test checks on it afterwards."""
from __future__ import annotations

import http.client
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import boto3
from boto3.dynamodb.types import TypeDeserializer

from chalicelib.incidents import OPEN_STATUSES, TRANSITIONS, Status

LOCAL_KEYS = ("reliability-key-a", "reliability-key-b")
LOCAL_TELEGRAM_SECRET = "reliability-telegram-secret"
TABLE_NAME = "incidents-dev"  # the dev stage's table, which `make run` creates
TIMEOUT = 30.0

_deserialize = TypeDeserializer().deserialize


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class Http:
    base: str
    moto_url: str

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                headers: dict[str, str] | None = None, key: str | None = LOCAL_KEYS[0],
                content_type: str | None = "application/json") -> Reply:
        """`body` is sent as JSON; `raw` as given. `path` goes on the request line unchanged."""
        parts = urlsplit(self.base)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
        all_headers = {}
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        if key is not None:
            all_headers["x-api-key"] = key
        all_headers.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        started = time.perf_counter()
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            for name, value in all_headers.items():
                connection.putheader(name, value)
            if data is not None:
                connection.putheader("Content-Length", str(len(data)))
            connection.endheaders(data)
            response = connection.getresponse()
            reply_body = response.read()
            headers_out = {name.lower(): value for name, value in response.getheaders()}
            return Reply(response.status, headers_out, reply_body, time.perf_counter() - started)
        finally:
            connection.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("POST", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("PATCH", path, body, **kw)

    def items(self) -> list[dict[str, Any]]:
        """Every item of the table, read straight from the embedded DynamoDB (a test's view)."""
        client = boto3.client("dynamodb", endpoint_url=self.moto_url, region_name="eu-west-1",
                              aws_access_key_id="local", aws_secret_access_key="local")
        return table_items(client)


def table_items(client: Any, table: str = TABLE_NAME) -> list[dict[str, Any]]:
    items, params = [], {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**params)
        items += [{k: _deserialize(v) for k, v in item.items()} for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return items
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def incidents_in(items: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {int(i["id"]): i for i in items if i["sk"] == "incident"}


def history_in(items: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Each incident's entries in key order (the order they were applied)."""
    entries: dict[int, list[dict[str, Any]]] = {}
    for item in sorted(items, key=lambda i: i["sk"]):
        if item["pk"].startswith("incident#") and item["sk"].startswith("history#"):
            entries.setdefault(int(item["pk"].split("#", 1)[1]), []).append(item["entry"])
    return entries


def consistency_problems(items: list[dict[str, Any]]) -> list[str]:
    """What no sequence of writes, failed or not, may leave behind: a dedup, once or history
    record pointing at nothing, an incident whose count or order of entries is off, two open
    incidents sharing a dedup_key."""
    problems = []
    incidents = incidents_in(items)
    history = history_in(items)
    for item in items:
        pk = item["pk"]
        if pk.startswith("dedup#") and item.get("incident_id") is not None:
            if int(item["incident_id"]) not in incidents:
                problems.append(f"{pk} points at missing incident #{item['incident_id']}")
        if pk.startswith("once#") and item.get("body"):
            body = json.loads(item["body"])
            if body and int(body["id"]) not in incidents:
                problems.append(f"{pk} replays missing incident #{body['id']}")
    for incident_id in history:
        if incident_id not in incidents:
            problems.append(f"history entries of missing incident #{incident_id}")
    open_keys: Counter[str] = Counter()
    for incident_id, incident in incidents.items():
        entries = history.get(incident_id, [])
        if int(incident["history_count"]) != len(entries):
            problems.append(f"#{incident_id}: history_count {incident['history_count']} but {len(entries)} entries")
        if not entries or entries[0]["status"] != "new":
            problems.append(f"#{incident_id}: history does not start with new")
        for before, after in zip(entries, entries[1:]):
            if after.get("kind") == "note":  # a comment: the status it records is the current one
                if after["status"] != before["status"]:
                    problems.append(f"#{incident_id}: a note records {after['status']} after {before['status']}")
                continue
            if Status(after["status"]) not in TRANSITIONS[Status(before["status"])]:
                problems.append(f"#{incident_id}: {before['status']} -> {after['status']} is not allowed")
        if entries and entries[-1]["status"] != incident["status"]:
            problems.append(f"#{incident_id}: status {incident['status']} but last entry {entries[-1]['status']}")
        if incident.get("dedup_key") and incident["status"] in OPEN_STATUSES:
            open_keys[incident["dedup_key"]] += 1
    problems += [f"{count} open incidents share dedup_key {key!r}" for key, count in open_keys.items() if count > 1]
    return problems


@dataclass
class Tally:
    """Requests, statuses and latencies of a run."""

    statuses: Counter[int] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)

    def add(self, reply: Reply) -> Reply:
        self.statuses[reply.status] += 1
        self.seconds.append(reply.seconds)
        return reply

    def merge(self, other: "Tally") -> None:
        self.statuses.update(other.statuses)
        self.seconds += other.seconds

    def latency(self) -> str:
        ordered = sorted(self.seconds)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
