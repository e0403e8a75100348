"""What GET /stats costs in DynamoDB: bounded by the open incidents plus those created in the
window, never by the whole table. The same open set and the same window among 1,000 and among
100,000 incidents must cost the same calls and the same items read, and give the same figures."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from chalicelib import stats
from chalicelib.incidents import new_incident
from chalicelib.store import _item_from_incident, default_store
from tests.conftest import TABLE_NAME

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)
SOURCES = ["monitoring"] * 6 + ["operator"] * 3 + ["partner"]
_serialize = TypeSerializer().serialize


def _incident(incident_id: int, created: datetime, status: str, source: str,
              spread: int) -> dict[str, Any]:
    created_at = stats.iso(created)
    incident = new_incident(incident_id, f"incident {incident_id}", source, None, "api", created_at)
    incident["status"] = status
    if status != "new":
        incident["acknowledged_at"] = stats.iso(created + timedelta(seconds=60 + spread % 600))
    if status in ("resolved", "closed"):
        incident["resolved_at"] = stats.iso(created + timedelta(seconds=900 + 7 * spread))
    return incident


def seed(size: int) -> dict[str, int]:
    """`size` incidents: the newest 300 are the same at every size (created in the last 7 days:
    100 new, 50 in progress, 150 resolved or closed), 20 open ones from before the window, and
    the rest resolved or closed long before the window (what grows). Written straight into moto's
    table, which is far quicker than through the API and changes nothing the reads see."""
    table = dynamodb_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"].get_table(TABLE_NAME)
    plan: list[tuple[datetime, str]] = []
    history = size - 320
    for n in range(history):
        plan.append((NOW - timedelta(days=8, minutes=size - n), "closed" if n % 9 else "resolved"))
    for n in range(20):
        plan.append((NOW - timedelta(days=8, seconds=20 - n), "in_progress" if n % 2 else "new"))
    window_statuses = ["new"] * 2 + ["in_progress"] + ["resolved"] * 2 + ["closed"]
    for n in range(300):
        plan.append((NOW - timedelta(days=7) + timedelta(minutes=30 * n + 1),
                     window_statuses[n % len(window_statuses)]))
    counts: dict[str, int] = {}
    for incident_id, (created, status) in enumerate(plan, start=1):
        source = SOURCES[(size - incident_id) % len(SOURCES)] if incident_id > history else SOURCES[0]
        spread = size - incident_id  # counted back from the newest: the same at every size
        item = _item_from_incident(_incident(incident_id, created, status, source, spread))
        table.put_item({name: _serialize(value) for name, value in item.items()})
        counts[status] = counts.get(status, 0) + 1
    return counts


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, *, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, int(parsed.get("ScannedCount", 1 if parsed.get("Item") else 0))))


def measured_stats(api: Any, size: int, monkeypatch: pytest.MonkeyPatch) -> tuple[list, dict]:
    monkeypatch.setattr(stats, "utc_now", lambda: NOW)
    seed(size)
    recorder = Recorder()
    default_store()._client.meta.events.register("after-call.dynamodb", recorder)
    response = api.get("/stats")
    assert response.status_code == 200, response.body
    default_store()._client.meta.events.unregister("after-call.dynamodb", recorder)
    return recorder.calls, response.json_body


@pytest.fixture
def at_1k(api: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[list, dict]:
    return measured_stats(api, 1_000, monkeypatch)


def test_stats_at_1k_reads_only_the_open_incidents_and_the_window(at_1k):
    calls, body = at_1k
    assert [name for name, _ in calls] == ["Query"] * 5  # 2 open statuses + 3 sources
    assert sum(read for _, read in calls) == 170 + 300  # open (150 in window + 20 older) + window
    assert body["open"] == {"new": 110, "in_progress": 60}
    assert (body["opened"], body["resolved"]) == (300, 150)


def test_stats_cost_and_figures_do_not_grow_from_1k_to_100k_incidents(
    at_1k, dynamodb, api, monkeypatch
):
    calls_1k, body_1k = at_1k
    # A fresh table for the larger size, in the same moto.
    client = dynamodb
    client.delete_table(TableName=TABLE_NAME)
    from chalicelib.store import create_table
    create_table(client, TABLE_NAME)

    calls_100k, body_100k = measured_stats(api, 100_000, monkeypatch)

    assert calls_100k == calls_1k
    assert body_100k == body_1k
