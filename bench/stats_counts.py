"""`make bench`, part "stats": what GET /stats costs in DynamoDB at each size, with the same open
incidents and the same last 7 days at every size (what grows is the resolved and closed past),
and how many bytes the board's first load takes.

Counted like dynamo_counts.py: a botocore `after-call` hook on the store's client, items read =
`ScannedCount` of each Query. The table is seeded straight into moto's in-memory table (the
reads see exactly what a put would have stored; it is only quicker than 100k API calls).

    from stats_counts import part
    part([1000, 10000, 100000], targets, say, table)
"""
from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from benchenv import API_KEY, TABLE_NAME, use_fake_aws

use_fake_aws()

import boto3  # noqa: E402
from boto3.dynamodb.types import TypeSerializer  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.dynamodb.models import dynamodb_backends  # noqa: E402

from localaws.shim import fast_moto  # noqa: E402

FLAT_GROWTH = 1.1
WINDOW = 300  # incidents created in the last 7 days, at every size
OLD_OPEN = 20  # open incidents created before the window
SOURCES = ["monitoring"] * 6 + ["operator"] * 3 + ["partner"]
WINDOW_STATUSES = ["new"] * 2 + ["in_progress"] + ["resolved"] * 2 + ["closed"]
_serialize = TypeSerializer().serialize


@dataclass
class StatsCost:
    size: int
    calls: int
    items_read: int
    max_read_per_call: int
    body: dict[str, Any]
    seconds: float
    board_bytes: int = 0
    board_gzip_bytes: int = 0
    first_load_requests: int = 0
    first_load_api_bytes: int = 0


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seed(size: int, now: datetime) -> None:
    from chalicelib.incidents import new_incident
    from chalicelib.store import _item_from_incident

    table = dynamodb_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"].get_table(TABLE_NAME)
    past = size - WINDOW - OLD_OPEN
    plan = [(now - timedelta(days=8, minutes=size - n), "closed" if n % 9 else "resolved")
            for n in range(past)]
    plan += [(now - timedelta(days=8, seconds=OLD_OPEN - n), "in_progress" if n % 2 else "new")
             for n in range(OLD_OPEN)]
    plan += [(now - timedelta(days=7) + timedelta(minutes=30 * n + 1), WINDOW_STATUSES[n % 6])
             for n in range(WINDOW)]
    for incident_id, (created, status) in enumerate(plan, start=1):
        back = size - incident_id  # counted from the newest: the same at every size
        source = SOURCES[back % len(SOURCES)] if incident_id > past else "monitoring"
        incident = new_incident(incident_id, f"Scooter #{incident_id} offline", source, None, "api",
                                _iso(created))
        incident["status"] = status
        if status != "new":
            incident["acknowledged_at"] = _iso(created + timedelta(seconds=60 + back % 600))
        if status in ("resolved", "closed"):
            incident["resolved_at"] = _iso(created + timedelta(seconds=900 + 7 * back))
        item = _item_from_incident(incident)
        table.put_item({name: _serialize(value) for name, value in item.items()})


def measure(size: int, now: datetime) -> StatsCost:
    from chalice.test import Client

    from app import app
    from chalicelib import stats
    from chalicelib.store import create_table, default_store

    with mock_aws(), fast_moto():
        boto3.setup_default_session()
        create_table(boto3.client("dynamodb"), TABLE_NAME)
        default_store.cache_clear()
        seed(size, now)
        calls: list[tuple[str, int]] = []

        def record(*, parsed: dict[str, Any], model: Any, **_: Any) -> None:
            calls.append((model.name, int(parsed.get("ScannedCount", 0))))

        original_now = stats.utc_now
        stats.utc_now = lambda: now
        try:
            with Client(app) as client:
                headers = {"x-api-key": API_KEY}
                default_store()._client.meta.events.register("after-call.dynamodb", record)
                started = time.perf_counter()
                response = client.http.get("/stats", headers=headers)
                seconds = time.perf_counter() - started
                default_store()._client.meta.events.unregister("after-call.dynamodb", record)
                if response.status_code != 200:
                    raise RuntimeError(f"/stats answered {response.status_code}: {response.body[:300]!r}")
                result = StatsCost(size, len(calls), sum(n for _, n in calls),
                                   max((n for _, n in calls), default=0), json.loads(response.body),
                                   seconds)
                _board_first_load(client, headers, result)
        finally:
            stats.utc_now = original_now
            default_store.cache_clear()
    return result


def _board_first_load(client: Any, headers: dict[str, str], result: StatsCost) -> None:
    """The page, then what its first load asks for: /stats, /teams and every page of each open
    column (the page's own requests: 100 a page)."""
    page = client.http.get("/board").body
    result.board_bytes, result.board_gzip_bytes = len(page), len(gzip.compress(page, 9))
    requests, api_bytes = 2, 0
    api_bytes += len(client.http.get("/stats", headers=headers).body)
    api_bytes += len(client.http.get("/teams", headers=headers).body)
    for status in ("new", "in_progress"):
        cursor = None
        while True:
            path = f"/incidents?status={status}&limit=100" + (f"&cursor={cursor}" if cursor else "")
            body = client.http.get(path, headers=headers).body
            requests, api_bytes = requests + 1, api_bytes + len(body)
            cursor = json.loads(body)["next_cursor"]
            if not cursor:
                break
    result.first_load_requests, result.first_load_api_bytes = requests + 1, api_bytes


def part(sizes: list[int], targets: list, say: Callable[[str], None],
         table: Callable[[list[str], list[list[str]]], None]) -> None:
    say("## Stats and the board: GET /stats at each size (same open set, same 7 days)")
    results, now = [], datetime.now(timezone.utc)  # one clock: the same window at every size
    for size in sizes:
        started = time.perf_counter()
        results.append(measure(size, now))
        say(f"  {size:,} incidents seeded and measured in {time.perf_counter() - started:.1f}s")
    say()
    first, last = results[0], results[-1]
    table(["size", "DynamoDB calls", "items read", "max read/call", "open", "opened (7 d)", "resolved"],
          [[f"{r.size:,}", str(r.calls), str(r.items_read), str(r.max_read_per_call),
            str(sum(r.body["open"].values())), str(r.body["opened"]), str(r.body["resolved"])]
           for r in results])
    say(f"items read = ScannedCount of the Queries: {OLD_OPEN + WINDOW // 2} open (new + in_progress, "
        f"{OLD_OPEN} of them older than the window) + {WINDOW} created in the window.")
    say(f"Board first load: the page {last.board_bytes:,} bytes ({last.board_gzip_bytes:,} gzipped, "
        f"nothing else: no script, style or font from elsewhere), then {last.first_load_requests - 1} "
        f"API requests ({last.first_load_api_bytes:,} bytes of JSON at {sum(last.body['open'].values())} "
        "open incidents).")
    say()
    growth = last.items_read / first.items_read if first.items_read else float("inf")
    flat = last.calls == first.calls and growth <= FLAT_GROWTH and last.body == first.body
    targets.append((f"/stats flat {first.size:,}→{last.size:,}: {first.calls}→{last.calls} calls, "
                    f"{first.items_read}→{last.items_read} items read ({growth:.2f}×), same figures",
                    flat, ""))
    targets.append((f"board first load: one page of {last.board_bytes / 1024:.1f} KB, no external "
                    "asset", last.board_bytes < 50 * 1024, ""))
