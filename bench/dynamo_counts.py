"""DynamoDB cost per API operation at a given number of stored incidents (moto, in-process).

Every DynamoDB call is seen through botocore's `after-call` event, registered on the boto3
session (the seeding and reading clients) and on the store's own client (a botocore client,
chalicelib/aws.py): the counts come from the calls and responses themselves (operation name,
`ScannedCount` of a Query), never from our code.
Operations go through `chalice.test.Client(app)` as HTTP requests, as a user would send them.

The table is seeded straight through `batch_writer` in the table layout v2 (chalicelib/store.py:
the incident item plus one item per history entry), built by the store's own helpers; seeding
100k incidents through the API would take far longer than the measurement. Two data sets:

- the mix: an open backlog of the same shape at every size (the newest ~400 incidents: about
  200 new, 60 in progress), and a history of resolved and closed incidents that is what grows;
  sources monitoring 60 %, operator 30 %, partner 10 %. One incident of the backlog has 1,000
  history entries (the status change on it is measured).
- the skewed set (issue #10): the same statuses, but `partner` matches no incident, `operator`
  0.1 % (every 1000th, from the oldest), `monitoring` the rest; and teams (issue #24): team
  `scooters` owns 0.1 % (every 1000th, offset from `operator`'s), `ghost` none, `ops` and
  `payments` a third each, the rest no team. Every filter combination is listed on it, from the
  top and from a cursor at the middle of the table.

    from dynamo_counts import measure_size
    measure_size(10_000)  -> SizeResult(size=10000, ops={"get": OpResult(...), ...}, skew=...)
"""
from __future__ import annotations

import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator

from benchenv import API_KEY, TABLE_NAME, use_fake_aws

use_fake_aws()

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from moto import mock_aws  # noqa: E402
from localaws.shim import fast_moto  # noqa: E402

PAGE_LIMIT = 50  # the API's default page size
BIG_PAGE_LIMIT = 100  # the API's largest page
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
LONG_HISTORY = 1000  # entries of the incident whose status change is measured separately
# new, then in_progress and resolved in turn (resolved -> in_progress is a reopen), ending in_progress
LONG_PATH = ["new"] + ["in_progress", "resolved"] * ((LONG_HISTORY - 2) // 2) + ["in_progress"]
READ_KINDS = {"Query", "Scan", "GetItem", "BatchGetItem", "TransactGetItems"}

# The skewed set: one source matching nothing, another 0.1 % of the incidents.
SKEW_TABLE = "incidents-bench-skewed"
SKEW_NONE_SOURCE = "partner"
SKEW_RARE_SOURCE = "operator"
SKEW_RARE_EVERY = 1000
SKEW_STATUS = "closed"  # the status that grows with the table
# (case name, status, source); partitions = the Queries a page makes (one per index partition)
SKEW_CASES = [
    ("none", None, None),
    ("status", SKEW_STATUS, None),
    ("source 0.1%", None, SKEW_RARE_SOURCE),
    ("source none", None, SKEW_NONE_SOURCE),
    ("status+source 0.1%", SKEW_STATUS, SKEW_RARE_SOURCE),
    ("status+source none", SKEW_STATUS, SKEW_NONE_SOURCE),
]
SKEW_INDEX = {  # what a page of each filter combination queries
    (False, False): ("by_created", 1),  # no filter: every incident, one partition
    (True, False): ("by_status", 1),
    (False, True): ("by_source", 1),
    (True, True): ("by_status_source", 1),
}
# Teams on the skewed set: one owning nothing, one 0.1 % (ids 250, 1250, …), two big ones.
SKEW_NONE_TEAM = "ghost"
SKEW_RARE_TEAM = "scooters"
SKEW_RARE_TEAM_OFFSET = 250  # below the middle at every size, as the rare source
SKEW_BIG_TEAMS = ("ops", "payments", None)  # by id mod 3
# (case name, status, team)
SKEW_TEAM_CASES = [
    ("team 0.1%", None, SKEW_RARE_TEAM),
    ("team none", None, SKEW_NONE_TEAM),
    ("status+team 0.1%", SKEW_STATUS, SKEW_RARE_TEAM),
    ("status+team none", SKEW_STATUS, SKEW_NONE_TEAM),
]
SKEW_TEAM_INDEX = {  # a team alone: one Query per status, merged
    False: ("by_status_team", 4),
    True: ("by_status_team", 1),
}


# --- counting -----------------------------------------------------------------------------


@dataclass
class Call:
    operation: str
    items_read: int  # Query/Scan: ScannedCount; GetItem: 1 when an item came back
    items_returned: int
    request_bytes: int = 0  # the body botocore sent


@dataclass
class CallRecorder:
    """botocore `before-call`/`after-call` handler: records every DynamoDB call while recording."""

    calls: list[Call] = field(default_factory=list)
    active: bool = False
    all_operations: set[str] = field(default_factory=set)
    _request_bytes: int = 0

    def before(self, *, params: dict[str, Any], **_: Any) -> None:
        body = params.get("body") or b""
        self._request_bytes = len(body)

    def __call__(self, *, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        self.all_operations.add(model.name)
        if self.active:
            call = _call_from_response(model.name, parsed or {})
            call.request_bytes = self._request_bytes
            self.calls.append(call)

    def register(self, events: Any) -> None:
        events.register("before-call.dynamodb", self.before)
        events.register("after-call.dynamodb", self)

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
    partitions: int = 1  # index partitions a list page queries
    index: str = ""  # the index a list page queries
    response_bytes: int = 0  # the HTTP body the API answered with

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
    def read_per_returned(self) -> float:
        """Items read per incident returned (a page returning nothing counts as one)."""
        return self.items_read / max(1, self.returned)

    @property
    def kinds(self) -> str:
        counts: dict[str, int] = {}
        for call in self.calls:
            counts[call.operation] = counts.get(call.operation, 0) + 1
        return " + ".join(f"{n}×{op}" if n > 1 else op for op, n in counts.items()) or "-"

    def kind_list(self) -> list[str]:
        return [c.operation for c in self.calls]


@dataclass
class SizeResult:
    size: int
    ops: dict[str, OpResult]
    seed_seconds: float
    measure_seconds: float
    seeded_by_status: dict[str, int]
    operations_seen: set[str]
    # DynamoDB item sizes (bytes, by DynamoDB's size rules) and request bodies, see measure_size
    sizes: dict[str, int] = field(default_factory=dict)
    skew: dict[str, OpResult] = field(default_factory=dict)  # "<case>" and "<case>, cursor"
    skew_seed_seconds: float = 0.0


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


def skewed_plan(size: int) -> list[tuple[str, str]]:
    """The same statuses as seed_plan; `operator` on every 1000th incident (ids 1, 1001, …),
    `monitoring` on the rest, `partner` on none."""
    return [(status, SKEW_RARE_SOURCE if incident_id % SKEW_RARE_EVERY == 1 else "monitoring")
            for incident_id, (status, _) in enumerate(seed_plan(size), start=1)]


def skewed_team(incident_id: int) -> str | None:
    if incident_id % SKEW_RARE_EVERY == SKEW_RARE_TEAM_OFFSET % SKEW_RARE_EVERY:
        return SKEW_RARE_TEAM
    return SKEW_BIG_TEAMS[incident_id % 3]


def long_history_id(plan: list[tuple[str, str]]) -> int | None:
    """The newest in_progress incident at least 5 places from the newest (its 1,000 entries,
    100 ms apart, must end before now), if any."""
    for incident_id in range(len(plan) - 5, 0, -1):
        if plan[incident_id - 1][0] == "in_progress":
            return incident_id
    return None


def seeded_incident(incident_id: int, source: str, created: datetime, path: list[str],
                    step: timedelta = timedelta(seconds=30)) -> dict[str, Any]:
    """An incident (with its `history`) that went through `path`, one entry every `step`."""
    from chalicelib.incidents import history_entry, new_incident

    incident = new_incident(incident_id, f"Scooter #{incident_id} offline in zone {incident_id % 97}",
                            source, None, "api", _iso(created))
    history = [history_entry(_iso(created + step * i), s, "done" if s == "resolved" else None, "api")
               for i, s in enumerate(path)]
    incident.update(status=path[-1], history=history, history_count=len(history),
                    updated_at=history[-1]["at"], version=len(history))
    moved = [e["at"] for e in history[1:]]  # every change moves out of new
    if moved:
        incident["acknowledged_at"] = moved[0]
    done = [e["at"] for e in history if e["status"] in ("resolved", "closed")]
    if done:
        incident["resolved_at"] = done[0]
    return incident


def incident_items(incident: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The v2 items of an incident: the incident item, then one item per history entry,
    laid out by chalicelib.store's own helpers."""
    from chalicelib.store import ENTRY_PREFIX, _incident_pk, _item_from_incident

    yield _item_from_incident(incident)
    for entry in incident["history"]:
        yield {"pk": _incident_pk(incident["id"]), "sk": ENTRY_PREFIX + entry["at"], "entry": entry}


def seed(table: Any, size: int, now: datetime, *, plan: list[tuple[str, str]] | None = None,
         long_history: bool = False,
         team_of: Callable[[int], str | None] = lambda _: None) -> dict[str, int]:
    """`size` incidents, ids 1..size, one every 5 minutes up to a minute ago, each with its
    history entries; and the id counter. With `long_history`, long_history_id(plan) gets
    LONG_HISTORY entries; `team_of(id)`: the incident's team."""
    from chalicelib.store import _COUNTER_KEY

    plan = plan if plan is not None else seed_plan(size)
    long_id = long_history_id(plan) if long_history else None
    by_status: dict[str, int] = {}
    first = now - timedelta(minutes=1) - timedelta(minutes=5 * (size - 1))
    with table.batch_writer() as batch:
        for incident_id, (status, source) in enumerate(plan, start=1):
            created = first + timedelta(minutes=5 * (incident_id - 1))
            if incident_id == long_id:
                incident = seeded_incident(incident_id, source, created, LONG_PATH,
                                           step=timedelta(milliseconds=100))
            else:
                incident = seeded_incident(incident_id, source, created, PATH_TO[status])
            incident["team"] = team_of(incident_id)
            for item in incident_items(incident):
                batch.put_item(Item=item)
            by_status[status] = by_status.get(status, 0) + 1
        batch.put_item(Item={**_COUNTER_KEY, "last_id": size})
    return by_status


# --- sizes --------------------------------------------------------------------------------


def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes of a low-level attribute value by DynamoDB's item-size rules (numbers approximated
    as 1 byte per two significant digits plus 1)."""
    (kind, inner), = value.items()
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + attribute_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in inner)
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in inner)
    if kind == "NS":
        return sum(_number_size(n) for n in inner)
    return sum(len(b) for b in inner)


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode("utf-8")) + attribute_size(value) for name, value in item.items())


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


class _Measure:
    def __init__(self, recorder: "CallRecorder") -> None:
        self.recorder = recorder
        self.ops: dict[str, OpResult] = {}

    def __call__(self, name: str, action: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        with self.recorder.recording() as calls:
            outcome = action()
        self.ops[name] = OpResult(name, list(calls), seconds=time.perf_counter() - started)
        body = getattr(outcome, "body", None)
        if isinstance(body, (bytes, str)):
            self.ops[name].response_bytes = len(body.encode("utf-8") if isinstance(body, str) else body)
        return outcome


def run_operations(http: Http, recorder: CallRecorder, size: int,
                   seeded_by_status: dict[str, int], long_id: int | None = None,
                   raw_item: Callable[[int], dict[str, Any]] | None = None,
                   sizes: dict[str, int] | None = None) -> dict[str, OpResult]:
    measured = _Measure(recorder)
    ops = measured.ops
    sizes = sizes if sizes is not None else {}

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
    assert len(changed.json_body["history"]) == 2
    sizes["status change request, 1 entry before"] = _write_bytes(ops["status change"])
    if raw_item is not None:
        # The same change as on the long one below (in_progress -> resolved), unmeasured, so
        # that both incident items carry the same attributes.
        http.request("PATCH", f"/incidents/{newest_new}", {"status": "resolved", "note": "fixed"})
        sizes["incident item, 3 entries"] = item_size(raw_item(newest_new))

    if long_id is not None:
        long = measured(f"status change, {LONG_HISTORY:,} entries", lambda: http.request(
            "PATCH", f"/incidents/{long_id}", {"status": "resolved", "note": "fixed"}))
        body = long.json_body
        assert body["status"] == "resolved" and body["history_count"] == LONG_HISTORY + 1
        assert len(body["history"]) == 100 and body["history"][-1]["note"] == "fixed"
        sizes[f"status change request, {LONG_HISTORY:,} entries before"] = _write_bytes(
            ops[f"status change, {LONG_HISTORY:,} entries"])
        if raw_item is not None:
            sizes[f"incident item, {LONG_HISTORY + 1:,} entries"] = item_size(raw_item(long_id))
        sizes[f"status change response, {LONG_HISTORY:,} entries before"] = len(long.body)

    for name, query in (
        ("list page: status", f"status=new&limit={PAGE_LIMIT}"),
        ("list page: status+source", f"status=new&source=monitoring&limit={PAGE_LIMIT}"),
        ("list page: no filter", f"limit={PAGE_LIMIT}"),
        (f"list page: no filter, limit={BIG_PAGE_LIMIT}", f"limit={BIG_PAGE_LIMIT}"),
    ):
        page = measured(name, lambda q=query: http.request("GET", f"/incidents?{q}"))
        ops[name].returned = len(page.json_body["items"])
        ops[name].partitions = 3 if "no filter" in name else 1
    sizes[f"list page response, {BIG_PAGE_LIMIT} items"] = ops[
        f"list page: no filter, limit={BIG_PAGE_LIMIT}"].response_bytes

    pages, ids = measured(f"walk every page: status={WALK_STATUS}",
                          lambda: _walk(http, f"status={WALK_STATUS}&limit={PAGE_LIMIT}"))
    walk = ops[f"walk every page: status={WALK_STATUS}"]
    walk.pages, walk.returned = pages, len(ids)
    # seeded new - the one moved on + the three creates above that made a new incident
    expected = seeded_by_status.get(WALK_STATUS, 0) - 1 + 3
    if len(ids) != expected or len(set(ids)) != len(ids):
        raise RuntimeError(f"walking status={WALK_STATUS} returned {len(ids)} incidents "
                           f"({len(set(ids))} distinct), expected {expected}")
    return ops


def _write_bytes(op: OpResult) -> int:
    return sum(c.request_bytes for c in op.calls if c.operation not in READ_KINDS)


def skew_query(status: str | None, source: str | None) -> str:
    return "&".join(f"{k}={v}" for k, v in (("status", status), ("source", source)) if v)


def run_skewed(http: Http, recorder: CallRecorder, middle_key: str) -> dict[str, OpResult]:
    """Every filter combination on the skewed set, a first page and a page from a cursor at the
    middle of the table (the cursor the service issues for a page ending there)."""
    from chalicelib import cursors

    measured = _Measure(recorder)
    for name, status, source in SKEW_CASES:
        index, partitions = SKEW_INDEX[(status is not None, source is not None)]
        cursor = cursors.encode(middle_key, {"status": status, "source": source})
        for label, extra in ((name, ""), (f"{name}, cursor", f"&cursor={cursor}")):
            query = "&".join(q for q in (skew_query(status, source), f"limit={PAGE_LIMIT}") if q)
            page = measured(label, lambda p=f"/incidents?{query}{extra}": http.request("GET", p))
            measured.ops[label].returned = len(page.json_body["items"])
            measured.ops[label].partitions = partitions
            measured.ops[label].index = index
            wrong = [i for i in page.json_body["items"]
                     if (status and i["status"] != status) or (source and i["source"] != source)]
            if wrong:
                raise RuntimeError(f"skewed page {label} returned incidents outside its filter: {wrong[:3]}")
    for name, status, team in SKEW_TEAM_CASES:
        index, partitions = SKEW_TEAM_INDEX[status is not None]
        cursor = cursors.encode(middle_key, {"status": status, "source": None, "team": team})
        for label, extra in ((name, ""), (f"{name}, cursor", f"&cursor={cursor}")):
            query = "&".join(q for q in (skew_query(status, None), f"team={team}", f"limit={PAGE_LIMIT}") if q)
            page = measured(label, lambda p=f"/incidents?{query}{extra}": http.request("GET", p))
            measured.ops[label].returned = len(page.json_body["items"])
            measured.ops[label].partitions = partitions
            measured.ops[label].index = index
            wrong = [i for i in page.json_body["items"]
                     if (status and i["status"] != status) or i["team"] != team]
            if wrong:
                raise RuntimeError(f"skewed page {label} returned incidents outside its filter: {wrong[:3]}")
    return measured.ops


def new_client_session(recorder: CallRecorder) -> None:
    boto3.setup_default_session()
    # On the session before any client exists: every boto3 client made from it.
    recorder.register(boto3.DEFAULT_SESSION.events)


def new_store(recorder: CallRecorder) -> Any:
    """The app's store, made afresh; its client is botocore's own, not the boto3 session's."""
    from chalicelib.store import default_store

    default_store.cache_clear()
    store = default_store()
    recorder.register(store._client.meta.events)
    return store


def measure_size(size: int, *, log: Callable[[str], None] = lambda _: None,
                 skewed: bool = True) -> SizeResult:
    """Fresh moto table with `size` incidents, then every operation once, counted; then (unless
    `skewed` is False) a fresh moto with the skewed set of `size` incidents, every filter listed."""
    import os

    from chalice.test import Client

    from app import app
    from chalicelib.store import _incident_key, _key, create_table, default_store

    recorder = CallRecorder()
    fast_writer_config = Config(parameter_validation=False)
    with mock_aws(), fast_moto():
        new_client_session(recorder)
        create_table(boto3.client("dynamodb"), TABLE_NAME)
        store = new_store(recorder)
        started = time.perf_counter()
        plan = seed_plan(size)
        fast_writer = boto3.resource("dynamodb", config=fast_writer_config)
        seeded = seed(fast_writer.Table(store.table_name), size, datetime.now(timezone.utc),
                      plan=plan, long_history=True)
        seed_seconds = time.perf_counter() - started
        log(f"  seeded {size:,} incidents in {seed_seconds:.1f}s {seeded}")
        reader = boto3.client("dynamodb")

        def raw_item(incident_id: int) -> dict[str, Any]:
            return reader.get_item(TableName=TABLE_NAME, Key=_key(_incident_key(incident_id)),
                                   ConsistentRead=True)["Item"]

        sizes: dict[str, int] = {}
        started = time.perf_counter()
        try:
            with Client(app) as client:
                ops = run_operations(Http(client), recorder, size, seeded, long_history_id(plan),
                                     raw_item, sizes)
        finally:
            default_store.cache_clear()
        if not ops["get"].calls:
            raise RuntimeError("no DynamoDB call was seen: the after-call hook is not on the store's client")
        result = SizeResult(size, ops, seed_seconds, time.perf_counter() - started, seeded,
                            set(recorder.all_operations), sizes)
    if not skewed:
        return result

    saved_table = os.environ.get("TABLE_NAME")
    os.environ["TABLE_NAME"] = SKEW_TABLE
    try:
        with mock_aws(), fast_moto():
            new_client_session(recorder)
            create_table(boto3.client("dynamodb"), SKEW_TABLE)
            # Made now, not on the first request: chalice.test.Client lays the stage's
            # environment (its TABLE_NAME) over os.environ while it handles a request.
            new_store(recorder)
            started = time.perf_counter()
            fast_writer = boto3.resource("dynamodb", config=fast_writer_config)
            skew_seeded = seed(fast_writer.Table(SKEW_TABLE), size, datetime.now(timezone.utc),
                               plan=skewed_plan(size), team_of=skewed_team)
            result.skew_seed_seconds = time.perf_counter() - started
            log(f"  seeded the skewed set of {size:,} in {result.skew_seed_seconds:.1f}s {skew_seeded}")
            middle = boto3.client("dynamodb").get_item(
                TableName=SKEW_TABLE, Key=_key(_incident_key(max(1, size // 2))))["Item"]
            try:
                with Client(app) as client:
                    result.skew = run_skewed(Http(client), recorder, middle["created_key"]["S"])
            finally:
                default_store.cache_clear()
            result.operations_seen |= recorder.all_operations
    finally:
        if saved_table is None:
            os.environ.pop("TABLE_NAME", None)
        else:
            os.environ["TABLE_NAME"] = saved_table
    return result


def skewed_checks(results: Iterable[SizeResult]) -> dict[str, Any]:
    """The issue #10 invariants over the skewed pages of every size (run.py prints them)."""
    results = list(results)
    limit = PAGE_LIMIT + 1
    over_calls, over_items, over_per_call = [], [], []
    for r in results:
        for name, op in r.skew.items():
            where = f"{name} @{r.size}"
            if op.call_count != op.partitions:
                over_calls.append(f"{where}: {op.call_count} calls for {op.partitions} partitions")
            if op.items_read > limit * op.partitions:
                over_items.append(f"{where}: {op.items_read} read > {limit}×{op.partitions}")
            if op.max_read_per_call > limit:
                over_per_call.append(f"{where}: {op.max_read_per_call} in one call")
    first, last = results[0], results[-1]

    def growth(a: float, b: float) -> float:
        return b / a if a else (1.0 if b == a else float("inf"))

    call_growth = max((growth(first.skew[n].call_count, last.skew[n].call_count) for n in last.skew),
                      default=1.0)
    # One Query per page: what it reads per incident returned must not grow with the table.
    per_returned = max((growth(first.skew[n].read_per_returned, last.skew[n].read_per_returned)
                        for n in last.skew if last.skew[n].partitions == 1), default=1.0)
    # A page merged from several partitions (a team alone: one per status) reads up to limit+1 from
    # each, so what it reads beyond the page depends on how the matches spread over them, never on
    # the table's size: at most (limit+1) × partitions − limit.
    merged = [op for r in results for op in r.skew.values() if op.partitions > 1]
    over_read = max((op.items_read - op.returned for op in merged), default=0)
    over_bound = min((limit * op.partitions - PAGE_LIMIT for op in merged), default=0)
    return {"calls": over_calls, "items": over_items, "per_call": over_per_call,
            "call_growth": call_growth, "read_per_returned_growth": per_returned,
            "merged_over_read": over_read, "merged_over_read_bound": over_bound}
