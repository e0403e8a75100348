"""DynamoDB calls per alert of the monitoring integrations, at a given number of stored incidents.

The same counting as dynamo_counts.py (botocore `after-call` on the boto3 session, moto
in-process, the same seeded table), over HTTP through `chalice.test.Client(app)`:

- a 100-alert Alertmanager batch, as the intake consumer applies it (the request itself makes
  no DynamoDB call: bench/storm_counts.py): new (opens 100 incidents), repeat (the same batch again),
  new occurrence (the same alerts with a later startsAt), resolve (endsAt set);
- PagerDuty Events API v2: a trigger that opens, a trigger for the open incident, an
  acknowledge, a resolve.

    from integration_counts import measure_size
    measure_size(10_000)  -> {"alertmanager: new": Cost(...), ...}
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from benchenv import TABLE_NAME, use_fake_aws

use_fake_aws()
ROUTING_KEY = "bench-integration-key"
os.environ["INTEGRATION_KEYS"] = ROUTING_KEY
os.environ.pop("INTEGRATION_KEYS_PARAMETER", None)

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from moto import mock_aws  # noqa: E402

from dynamo_counts import CallRecorder, Http, new_client_session, new_store, seed_plan  # noqa: E402
from localaws.shim import fast_moto  # noqa: E402

BATCH = 100


@dataclass
class Cost:
    name: str
    events: int  # alerts or PagerDuty events sent
    calls: int
    items_read: int
    max_read_per_call: int
    kinds: str

    @property
    def calls_per_event(self) -> float:
        return self.calls / self.events

    @property
    def read_per_event(self) -> float:
        return self.items_read / self.events


def _batch(status: str, starts_at: str, ends_at: str = "0001-01-01T00:00:00Z") -> dict[str, Any]:
    return {
        "version": "4", "status": status, "receiver": "bench", "groupKey": "{}:{job=\"pos\"}",
        "alerts": [{
            "status": status, "fingerprint": f"{n:016x}",
            "labels": {"alertname": "PosDown", "job": "pos", "instance": f"pos-{n}", "severity": "critical"},
            "annotations": {"summary": f"POS {n} not answering"},
            "startsAt": starts_at, "endsAt": ends_at,
        } for n in range(BATCH)],
    }


def _pagerduty(action: str) -> dict[str, Any]:
    event = {"routing_key": ROUTING_KEY, "event_action": action, "dedup_key": "bench/pos-7"}
    if action == "trigger":
        event["payload"] = {"summary": "POS 7 not answering", "source": "pos-7", "severity": "error"}
    return event


def run_integrations(http: Http, recorder: CallRecorder) -> dict[str, Cost]:
    costs: dict[str, Cost] = {}

    def measured(name: str, events: int, action: Callable[[], Any]) -> None:
        with recorder.recording() as calls:
            action()
        kinds: dict[str, int] = {}
        for call in calls:
            kinds[call.operation] = kinds.get(call.operation, 0) + 1
        costs[name] = Cost(name, events, len(calls), sum(c.items_read for c in calls),
                           max((c.items_read for c in calls), default=0),
                           " + ".join(f"{n}×{op}" for op, n in kinds.items()))

    def alertmanager(body: dict[str, Any], expect: str) -> None:
        http.request("POST", "/alertmanager", body)
        outcomes = applied()
        if outcomes != [expect] * BATCH:
            raise RuntimeError(f"expected {BATCH}× {expect}, got {sorted(set(outcomes))}")

    fired, again, ended = "2026-11-23T10:00:00Z", "2026-11-23T10:05:00Z", "2026-11-23T10:30:00Z"
    measured("alertmanager: new", BATCH, lambda: alertmanager(_batch("firing", fired), "applied"))
    measured("alertmanager: repeat", BATCH, lambda: alertmanager(_batch("firing", fired), "duplicate"))
    measured("alertmanager: new occurrence", BATCH, lambda: alertmanager(_batch("firing", again), "applied"))
    measured("alertmanager: resolve", BATCH,
             lambda: alertmanager(_batch("resolved", again, ended), "applied"))
    for name, action in (("pagerduty: trigger (opens)", "trigger"),
                         ("pagerduty: trigger (open: +1)", "trigger"),
                         ("pagerduty: acknowledge", "acknowledge"),
                         ("pagerduty: resolve", "resolve")):
        measured(name, 1, lambda a=action: (http.request("POST", "/v2/enqueue", _pagerduty(a), expect=202),
                                            applied()))
    return costs


def applied() -> list[str]:
    """What the requests handed off, applied as the intake consumer does: the outcomes."""
    from chalicelib import integrations
    from chalicelib.intake import default_intake
    from chalicelib.store import default_store

    sqs, outcomes = boto3.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=default_intake().queue_url,
                                          MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            outcomes += integrations.apply_message(default_store(), default_intake().read(message["Body"]))
            sqs.delete_message(QueueUrl=default_intake().queue_url, ReceiptHandle=message["ReceiptHandle"])
    return outcomes


def seed(table: Any, size: int) -> dict[str, int]:
    """`size` incidents in dynamo_counts' mix (ids 1..size, one every 5 minutes), each with its
    first history entry, and the id counter; written as the store writes them."""
    from datetime import timedelta

    from chalicelib.incidents import history_entry, new_incident
    from chalicelib.store import ENTRY_PREFIX, _item_from_incident

    by_status: dict[str, int] = {}
    first = datetime.now(timezone.utc) - timedelta(minutes=5 * size)
    with table.batch_writer() as batch:
        for incident_id, (status, source) in enumerate(seed_plan(size), start=1):
            at = (first + timedelta(minutes=5 * incident_id)).isoformat(timespec="milliseconds")
            at = at.replace("+00:00", "Z")
            incident = new_incident(incident_id, f"Scooter #{incident_id} offline", source, None, "api", at)
            incident.update(status=status, history=[history_entry(at, status, None, "api")])
            batch.put_item(Item=_item_from_incident(incident))
            batch.put_item(Item={"pk": f"incident#{incident_id}", "sk": ENTRY_PREFIX + at,
                                 "entry": incident["history"][0]})
            by_status[status] = by_status.get(status, 0) + 1
        batch.put_item(Item={"pk": "counter#incident", "sk": "counter", "last_id": size})
    return by_status


def measure_size(size: int, *, log: Callable[[str], None] = lambda _: None) -> dict[str, Cost]:
    """Fresh moto table seeded with `size` incidents (as dynamo_counts), then the integrations."""
    from chalice.test import Client

    from app import app
    from chalicelib.store import create_table, default_store

    with mock_aws(), fast_moto():
        recorder = CallRecorder()
        new_client_session(recorder)
        create_table(boto3.client("dynamodb"), TABLE_NAME)
        from chalicelib.intake import default_intake
        from storm_counts import BUCKET, QUEUE  # the intake's queue and bucket, and their settings

        boto3.client("sqs").create_queue(QueueName=QUEUE, Attributes={"FifoQueue": "true"})
        boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        default_intake.cache_clear()
        store = new_store(recorder)
        writer = boto3.resource("dynamodb", config=Config(parameter_validation=False))
        seeded = seed(writer.Table(store.table_name), size)
        log(f"  seeded {size:,} incidents {seeded}")
        try:
            with Client(app) as client:
                return run_integrations(Http(client), recorder)
        finally:
            default_store.cache_clear()
