"""DynamoDB cost of the notification schedules (a reminder run, a digest) and of the API's
create and status change, at a given table size with the same 50 open incidents.

The table is seeded straight through a batch writer: `size` incidents, all closed but the 50
newest (`new`, created an hour ago, so every one of them is due a reminder). Calls are counted
with botocore's `after-call` event, as bench/dynamo_counts.py does.

    from notify_counts import measure
    measure(10_000) -> {"reminders": Cost(calls=…, items_read=…), "digest": …, …}
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from benchenv import TABLE_NAME, use_fake_aws

use_fake_aws()

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from dynamo_counts import CallRecorder, new_client_session, new_store  # noqa: E402
from localaws.shim import fast_moto  # noqa: E402
from moto import mock_aws  # noqa: E402

OPEN = 50
SOURCES = ("monitoring", "operator", "partner")


@dataclass
class Cost:
    calls: int = 0
    items_read: int = 0


@contextlib.contextmanager
def counting(recorder: CallRecorder) -> Iterator[Cost]:
    """The calls made inside the block and the items they read, as dynamo_counts counts them."""
    cost = Cost()
    with recorder.recording() as calls:
        yield cost
    cost.calls, cost.items_read = len(calls), sum(call.items_read for call in calls)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seed(table: Any, size: int, now: datetime) -> None:
    from chalicelib.incidents import history_entry, new_incident
    from chalicelib.store import ENTRY_PREFIX, _item_from_incident

    first = now - timedelta(hours=1) - timedelta(minutes=size)
    with table.batch_writer() as batch:
        for incident_id in range(1, size + 1):
            created = first + timedelta(minutes=incident_id)
            is_open = incident_id > size - OPEN
            incident = new_incident(incident_id, f"report {incident_id}", SOURCES[incident_id % 3],
                                    None, "api", _iso(created))
            if not is_open:
                closed = history_entry(_iso(created + timedelta(seconds=30)), "closed", None, "api")
                incident["history"].append(closed)
                incident.update(status="closed", updated_at=closed["at"], history_count=2, version=2)
            batch.put_item(Item=_item_from_incident(incident))
            for entry in incident["history"]:
                batch.put_item(Item={"pk": f"incident#{incident_id}", "sk": ENTRY_PREFIX + entry["at"],
                                     "entry": entry})
        batch.put_item(Item={"pk": "counter#incident", "sk": "counter", "last_id": size})


def measure(size: int) -> dict[str, Cost]:
    from chalice.test import Client

    from app import app
    from chalicelib import notifier
    from chalicelib.store import create_table, default_store
    from chalicelib.telegram_client import Console

    with mock_aws(), fast_moto():
        recorder = CallRecorder()
        new_client_session(recorder)
        create_table(boto3.client("dynamodb"), TABLE_NAME)
        store = new_store(recorder)
        now = datetime.now(timezone.utc)
        writer = boto3.resource("dynamodb", config=Config(parameter_validation=False))
        seed(writer.Table(TABLE_NAME), size, now)
        settings = notifier.Settings(chat_id="-100")
        quiet = Console(write=lambda _: None)
        costs: dict[str, Cost] = {}
        with counting(recorder) as costs["reminder run"]:
            sent = notifier.send_reminders(store, quiet, settings, now)
        assert sent == OPEN, sent
        with counting(recorder) as costs["digest"]:
            notifier.send_digest(store, quiet, settings, now)
        headers = {"x-api-key": "bench-key", "Content-Type": "application/json"}
        with Client(app) as client:
            with counting(recorder) as costs["API create"]:
                client.http.post("/incidents", headers=headers,
                                 body='{"description": "x", "source": "operator"}')
            with counting(recorder) as costs["API status change"]:
                client.http.patch(f"/incidents/{size}", headers=headers, body='{"status": "closed"}')
        default_store.cache_clear()
        return costs
