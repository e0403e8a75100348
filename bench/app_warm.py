"""Warm per-request time of the Chalice app's own code, DynamoDB answered by botocore's Stubber.

    from app_warm import app_warm_times        # with bench/ on sys.path
    app_warm_times(200)  ->  {"create": ..., "get": ..., "list": ..., "patch": ...}

The same requests, counts and order as bench/reference/warm.py, through chalice.test.Client:
one untimed warm-up of each kind, then n creates, n gets of one incident, n list pages
(status=new, limit=50: a Query answering 51 items) and a PATCH to in_progress of each
created incident (a transaction, then the Query that reads it back). Responses are queued on
the store's own client, so botocore's request building and response parsing run, but no
network and no moto.
"""
from __future__ import annotations

import json
import statistics
import time
from typing import Any

from benchenv import API_KEY, use_fake_aws

use_fake_aws()

from boto3.dynamodb.types import TypeSerializer  # noqa: E402
from botocore.stub import Stubber  # noqa: E402

CREATE_BODY = {"description": "Scooter #42 offline", "source": "monitoring"}
PATCH_BODY = {"status": "in_progress"}
HEADERS = {"x-api-key": API_KEY, "Content-Type": "application/json"}
_serialize = TypeSerializer().serialize


def _low_level(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serialize(v) for k, v in item.items()}


def app_warm_times(n: int) -> dict[str, float]:
    if n < 1:
        raise ValueError("n must be >= 1")
    from chalice.test import Client

    from app import app
    from chalicelib.incidents import history_entry, new_incident, now_iso
    from chalicelib.store import ENTRY_PREFIX, _item_from_incident, default_store

    default_store.cache_clear()
    store = default_store()
    stubber = Stubber(store._client)
    items: dict[int, dict[str, Any]] = {}
    next_id = [0]

    histories: dict[int, list[dict[str, Any]]] = {}

    def stored(incident_id: int) -> dict[str, Any]:
        if incident_id not in items:
            incident = new_incident(incident_id, CREATE_BODY["description"], "monitoring", None, "api",
                                    now_iso())
            items[incident_id], histories[incident_id] = _item_from_incident(incident), incident["history"]
        return items[incident_id]

    def with_entries(incident_id: int) -> list[dict[str, Any]]:
        """What the item-collection Query answers, newest first: the incident, then its entries."""
        item = stored(incident_id)
        entries = [{"pk": item["pk"], "sk": ENTRY_PREFIX + e["at"], "entry": e}
                   for e in histories[incident_id]]
        return [_low_level(item), *[_low_level(e) for e in reversed(entries)]]

    def queue_create() -> None:
        next_id[0] += 1
        stubber.add_response("update_item", {"Attributes": {"last_id": {"N": str(next_id[0])}}})
        stubber.add_response("transact_write_items", {})

    def queue_get(incident_id: int) -> None:
        answer = with_entries(incident_id)
        stubber.add_response("query", {"Items": answer, "Count": len(answer), "ScannedCount": len(answer)})

    def queue_list() -> None:
        page = [_low_level(stored(i)) for i in range(1, 52)]
        stubber.add_response("query", {"Items": page, "Count": len(page), "ScannedCount": len(page)})

    def queue_patch(incident_id: int) -> None:
        item = stored(incident_id)
        at = now_iso()
        item.update(status="in_progress", updated_at=at, last_entry_at=at, version=item["version"] + 1,
                    history_count=item["history_count"] + 1)
        histories[incident_id] = histories[incident_id] + [history_entry(at, "in_progress", None, "api")]
        stubber.add_response("transact_write_items", {})
        queue_get(incident_id)

    def timed(call: Any, expected: int) -> float:
        started = time.perf_counter()
        response = call()
        elapsed = time.perf_counter() - started
        if response.status_code != expected:
            raise RuntimeError(f"expected {expected}, got {response.status_code}: {response.body[:300]!r}")
        return elapsed

    for i in range(1, 52):
        stored(i)  # the page the list answers; built before timing
    body = json.dumps(CREATE_BODY)
    patch = json.dumps(PATCH_BODY)
    with stubber, Client(app) as client:
        http = client.http
        # warm-up, untimed
        queue_create(); timed(lambda: http.post("/incidents", headers=HEADERS, body=body), 201)
        queue_get(1); timed(lambda: http.get("/incidents/1", headers=HEADERS), 200)
        queue_list(); timed(lambda: http.get("/incidents?status=new&limit=50", headers=HEADERS), 200)
        queue_patch(1); timed(lambda: http.patch("/incidents/1", headers=HEADERS, body=patch), 200)

        create, get, listing, patching = [], [], [], []
        ids = []
        for _ in range(n):
            queue_create()
            create.append(timed(lambda: http.post("/incidents", headers=HEADERS, body=body), 201))
            ids.append(next_id[0])
        for _ in range(n):
            queue_get(ids[0])
            get.append(timed(lambda: http.get(f"/incidents/{ids[0]}", headers=HEADERS), 200))
        for _ in range(n):
            queue_list()
            listing.append(timed(lambda: http.get("/incidents?status=new&limit=50", headers=HEADERS), 200))
        for incident_id in ids:
            queue_patch(incident_id)
            patching.append(timed(lambda i=incident_id: http.patch(f"/incidents/{i}", headers=HEADERS,
                                                                  body=patch), 200))
        stubber.assert_no_pending_responses()
    default_store.cache_clear()
    return {name: statistics.median(samples) for name, samples in
            (("create", create), ("get", get), ("list", listing), ("patch", patching))}


if __name__ == "__main__":
    import sys

    from no_observability import install_if_asked

    install_if_asked()  # BENCH_WITHOUT_OBSERVABILITY=1: logs and metrics taken out
    # The app's log lines and EMF go to stdout as in Lambda; the result is the last line.
    print(json.dumps(app_warm_times(int(sys.argv[1]) if len(sys.argv) > 1 else 200)))
