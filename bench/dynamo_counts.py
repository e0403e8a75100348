"""DynamoDB cost per API operation at a given number of stored incidents (moto, in-process).

Every DynamoDB call is seen through botocore's `after-call` event, registered on the boto3
session before the app's store (and so its client) exists: the counts come from the calls
and responses themselves (operation name, `ScannedCount` of a Query), never from our code.
Operations go through `chalice.test.Client(app)` as HTTP requests, as a user would send them.

The table is seeded straight through `batch_writer` (seeding 100k incidents through the API
would take far longer than the measurement). The mix: an open backlog of the same shape at
every size (the newest ~400 incidents: about 200 new, 60 in progress), and a history of
resolved and closed incidents that is what grows; sources monitoring 60 %, operator 30 %,
partner 10 %.

    from dynamo_counts import measure_size
    measure_size(10_000)  -> SizeResult(size=10000, ops={"get": OpResult(...), ...})
"""
from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterator

from benchenv import API_KEY, TABLE_NAME, use_fake_aws

use_fake_aws()

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from moto import mock_aws  # noqa: E402
from fast_moto import fast_moto  # noqa: E402

PAGE_LIMIT = 50  # the API's default page size
OPEN_WINDOW = 400  # the newest incidents, where the open backlog lives
WALK_STATUS = "new"
SOURCES = (["monitoring"] * 6) + (["operator"] * 3) + ["partner"]
# Status of an incident inside the open window, and in the older history.
WINDOW_STATUSES = ["new"] * 10 + ["in_progress"] * 3 + ["resolved"] * 2 + ["closed"] * 5
HISTORY_STATUSES = ["resolved"] * 6 + ["closed"] * 94
PATH_TO = {  # history entries an incident in each status has been through
    "new": ["new"],
    "in_progress": ["new", "in_progress"],
    "resolved": ["new", "in_progress", "resolved"],
    "closed": ["new", "in_progress", "resolved", "closed"],
}
READ_KINDS = {"Query", "Scan", "GetItem", "BatchGetItem", "TransactGetItems"}


# --- counting -----------------------------------------------------------------------------


@dataclass
class Call:
    operation: str
    items_read: int  # Query/Scan: ScannedCount; GetItem: 1 when an item came back
    items_returned: int


@dataclass
class CallRecorder:
    """botocore `after-call.dynamodb` handler: records every DynamoDB call while recording."""

    calls: list[Call] = field(default_factory=list)
    active: bool = False
    all_operations: set[str] = field(default_factory=set)

    def __call__(self, *, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        self.all_operations.add(model.name)
        if self.active:
            self.calls.append(_call_from_response(model.name, parsed or {}))

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[Call]]:
        self.calls = []
        self.active = True
        try:
            yield self.calls
        finally:
            self.active = False


def _call_from_response(operation: str, parsed: dict[str, Any]) -> Call:
    if operation in ("Query", "Scan"):
        return Call(operation, int(parsed.get("ScannedCount", 0)), int(parsed.get("Count", 0)))
    if operation == "GetItem":
        found = 1 if parsed.get("Item") else 0
        return Call(operation, found, found)
    if operation == "BatchGetItem":
        found = sum(len(items) for items in parsed.get("Responses", {}).values())
        return Call(operation, found, found)
    if operation == "TransactGetItems":
        found = sum(1 for r in parsed.get("Responses", []) if r.get("Item"))
        return Call(operation, found, found)
    # Writes: what comes back (ReturnValues) is not a read of other items.
    return Call(operation, 0, 1 if parsed.get("Attributes") else 0)


@dataclass
class OpResult:
    name: str
    calls: list[Call]
    pages: int = 1
    returned: int = 0  # incidents the API handed back (list operations)
    seconds: float = 0.0  # wall time on moto: says nothing of DynamoDB, only where the run goes

    @property
    def call_count(self) -> int:
        return len(self.calls)

    @property
    def items_read(self) -> int:
        return sum(c.items_read for c in self.calls)

    @property
    def max_read_per_call(self) -> int:
        return max((c.items_read for c in self.calls), default=0)

    @property
    def read_per_page(self) -> float:
        return self.items_read / self.pages

    @property
    def kinds(self) -> str:
        counts: dict[str, int] = {}
        for call in self.calls:
            counts[call.operation] = counts.get(call.operation, 0) + 1
        return " + ".join(f"{n}×{op}" if n > 1 else op for op, n in counts.items()) or "-"


@dataclass
class SizeResult:
    size: int
    ops: dict[str, OpResult]
    seed_seconds: float
    measure_seconds: float
    seeded_by_status: dict[str, int]
    operations_seen: set[str]


# --- seeding ------------------------------------------------------------------------------


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seed_plan(size: int) -> list[tuple[str, str]]:
    """(status, source) for incidents 1..size, oldest first. The newest OPEN_WINDOW look the
    same at every size (same random sequence counted back from the newest)."""
    window_rng, history_rng = random.Random(6), random.Random(60)
    newest_first = []
    for position in range(size):
        rng = window_rng if position < OPEN_WINDOW else history_rng
        statuses = WINDOW_STATUSES if position < OPEN_WINDOW else HISTORY_STATUSES
        newest_first.append((rng.choice(statuses), rng.choice(SOURCES)))
    return newest_first[::-1]


def seed(table: Any, size: int, now: datetime) -> dict[str, int]:
    """`size` incidents, ids 1..size, one every 5 minutes up to a minute ago; and the id counter."""
    from chalicelib.incidents import history_entry, new_incident
    from chalicelib.store import _item_from_incident

    by_status: dict[str, int] = {}
    first = now - timedelta(minutes=1) - timedelta(minutes=5 * (size - 1))
    with table.batch_writer() as batch:
        for incident_id, (status, source) in enumerate(seed_plan(size), start=1):
            created = first + timedelta(minutes=5 * (incident_id - 1))
            incident = new_incident(incident_id, f"Scooter #{incident_id} offline in zone "
                                    f"{incident_id % 97}", source, None, "api", _iso(created))
            history = [history_entry(_iso(created + timedelta(seconds=30 * i)), s,
                                     "done" if s == "resolved" else None, "api")
                       for i, s in enumerate(PATH_TO[status])]
            incident.update(status=status, history=history, updated_at=history[-1]["at"],
                            version=len(history))
            batch.put_item(Item=_item_from_incident(incident))
            by_status[status] = by_status.get(status, 0) + 1
        batch.put_item(Item={"pk": "counter#incident", "last_id": size})
    return by_status


# --- operations ---------------------------------------------------------------------------


class Http:
    """chalice.test.Client with the API key and JSON bodies filled in; fails loudly on surprises."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                expect: int = 200) -> Any:
        all_headers = {"x-api-key": API_KEY, "Content-Type": "application/json", **(headers or {})}
        data = json.dumps(body) if body is not None else None
        response = getattr(self.client.http, method.lower())(path, headers=all_headers, body=data)
        if response.status_code != expect:
            raise RuntimeError(f"{method} {path}: expected {expect}, got {response.status_code} "
                               f"{response.body[:300]!r}")
        return response


def _walk(http: Http, query: str) -> tuple[int, list[int]]:
    pages, ids, cursor = 0, [], None
    while True:
        path = f"/incidents?{query}" + (f"&cursor={cursor}" if cursor else "")
        body = http.request("GET", path).json_body
        pages += 1
        ids.extend(item["id"] for item in body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            return pages, ids


def run_operations(http: Http, recorder: CallRecorder, size: int,
                   seeded_by_status: dict[str, int]) -> dict[str, OpResult]:
    ops: dict[str, OpResult] = {}

    def measured(name: str, action: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        with recorder.recording() as calls:
            outcome = action()
        ops[name] = OpResult(name, list(calls), seconds=time.perf_counter() - started)
        return outcome

    create_body = {"description": "Самокат #42 не в сети", "source": "operator"}
    created = measured("create", lambda: http.request("POST", "/incidents", create_body, expect=201))
    assert created.json_body["id"] == size + 1

    dedup_body = {"description": "CPU high on api-1", "source": "monitoring", "dedup_key": "alarm:cpu-api-1"}
    http.request("POST", "/incidents", dedup_body, expect=201)
    hit = measured("create, dedup hit", lambda: http.request("POST", "/incidents", dedup_body))
    assert hit.json_body["occurrences"] == 2

    idem_headers = {"Idempotency-Key": "bench-replay-1"}
    idem_body = {"description": "Partner API timeouts", "source": "partner"}
    first = http.request("POST", "/incidents", idem_body, idem_headers, expect=201)
    replay = measured("create, Idempotency-Key replay",
                      lambda: http.request("POST", "/incidents", idem_body, idem_headers, expect=201))
    assert replay.headers.get("Idempotent-Replayed") == "true" and replay.json_body == first.json_body

    middle = max(1, size // 2)
    got = measured("get", lambda: http.request("GET", f"/incidents/{middle}"))
    assert got.json_body["id"] == middle

    newest = http.request("GET", "/incidents?status=new&limit=10").json_body["items"]
    newest_new = next(item["id"] for item in newest if item["id"] <= size)  # a seeded one
    changed = measured("status change", lambda: http.request(
        "PATCH", f"/incidents/{newest_new}", {"status": "in_progress", "note": "on it"}))
    assert changed.json_body["status"] == "in_progress"

    for name, query in (
        ("list page: status", f"status=new&limit={PAGE_LIMIT}"),
        ("list page: status+source", f"status=new&source=monitoring&limit={PAGE_LIMIT}"),
        ("list page: no filter", f"limit={PAGE_LIMIT}"),
    ):
        page = measured(name, lambda q=query: http.request("GET", f"/incidents?{q}"))
        ops[name].returned = len(page.json_body["items"])

    pages, ids = measured(f"walk every page: status={WALK_STATUS}",
                          lambda: _walk(http, f"status={WALK_STATUS}&limit={PAGE_LIMIT}"))
    walk = ops[f"walk every page: status={WALK_STATUS}"]
    walk.pages, walk.returned = pages, len(ids)
    # seeded new - the one moved to in_progress + the three creates above that made a new incident
    expected = seeded_by_status.get(WALK_STATUS, 0) - 1 + 3
    if len(ids) != expected or len(set(ids)) != len(ids):
        raise RuntimeError(f"walking status={WALK_STATUS} returned {len(ids)} incidents "
                           f"({len(set(ids))} distinct), expected {expected}")
    return ops


def measure_size(size: int, *, log: Callable[[str], None] = lambda _: None) -> SizeResult:
    """Fresh moto table with `size` incidents, then every operation once, counted."""
    from chalice.test import Client

    from app import app
    from chalicelib.store import create_table, default_store

    with mock_aws(), fast_moto():
        boto3.setup_default_session()
        recorder = CallRecorder()
        # On the session before any client exists: every client made from it, the store's too.
        boto3.DEFAULT_SESSION.events.register("after-call.dynamodb", recorder)
        create_table(boto3.client("dynamodb"), TABLE_NAME)
        default_store.cache_clear()
        store = default_store()
        started = time.perf_counter()
        fast_writer = boto3.resource("dynamodb", config=Config(parameter_validation=False))
        seeded = seed(fast_writer.Table(store.table_name), size, datetime.now(timezone.utc))
        seed_seconds = time.perf_counter() - started
        log(f"  seeded {size:,} incidents in {seed_seconds:.1f}s {seeded}")
        started = time.perf_counter()
        try:
            with Client(app) as client:
                ops = run_operations(Http(client), recorder, size, seeded)
        finally:
            default_store.cache_clear()
        if not ops["get"].calls:
            raise RuntimeError("no DynamoDB call was seen: the after-call hook is not on the store's client")
        return SizeResult(size, ops, seed_seconds, time.perf_counter() - started, seeded,
                          set(recorder.all_operations))
