"""Warm per-request time of the Chalice app's own code, against the embedded DynamoDB.

    AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:<port> .venv/bin/python bench/app_warm.py 200
        ->  {"create": ..., "get": ..., "list": ..., "patch": ...}   (the last line; seconds)

The same requests, counts and order as bench/reference/warm.py, through chalice.test.Client:
one untimed warm-up of each kind, then n creates, n gets of one incident, n list pages
(status=new, limit=50: a Query answering 51 items) and a PATCH to in_progress of each
created incident. Each figure is the median CPU time of this process per request
(time.process_time): the app's code and botocore's (building, signing, sending and parsing
real DynamoDB requests), not DynamoDB's own time, which is another process here as in AWS.
That CPU time is what a Lambda's memory size scales (docs/cold-start.md).
"""
from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any

from benchenv import API_KEY, use_fake_aws

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB", "")
use_fake_aws()
if not ENDPOINT.startswith("http://127.0.0.1:"):
    raise SystemExit("set AWS_ENDPOINT_URL_DYNAMODB to the embedded DynamoDB (http://127.0.0.1:<port>)")
os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = ENDPOINT

CREATE_BODY = {"description": "Scooter #42 offline", "source": "monitoring"}
PATCH_BODY = {"status": "in_progress"}
HEADERS = {"x-api-key": API_KEY, "Content-Type": "application/json"}
PAGE = 50


def app_warm_times(n: int) -> dict[str, float]:
    if n < 1:
        raise ValueError("n must be >= 1")
    from chalice.test import Client

    from app import app
    from chalicelib.store import default_store

    # Made now, not on the first request: chalice.test.Client lays the stage's environment
    # (its TABLE_NAME) over os.environ while it handles one.
    default_store()

    def timed(call: Any, expected: int) -> Any:
        started = time.process_time()
        response = call()
        elapsed = time.process_time() - started
        if response.status_code != expected:
            raise RuntimeError(f"expected {expected}, got {response.status_code}: {response.body[:300]!r}")
        return elapsed, response

    body = json.dumps(CREATE_BODY)
    patch = json.dumps(PATCH_BODY)
    with Client(app) as client:
        http = client.http
        # warm-up, untimed; enough new incidents that a list page is full (limit+1 read)
        first = json.loads(timed(lambda: http.post("/incidents", headers=HEADERS, body=body), 201)[1].body)
        for _ in range(PAGE):
            timed(lambda: http.post("/incidents", headers=HEADERS, body=body), 201)
        timed(lambda: http.get(f"/incidents/{first['id']}", headers=HEADERS), 200)
        timed(lambda: http.get(f"/incidents?status=new&limit={PAGE}", headers=HEADERS), 200)

        create, get, listing, patching = [], [], [], []
        ids = []
        for _ in range(n):
            elapsed, response = timed(lambda: http.post("/incidents", headers=HEADERS, body=body), 201)
            create.append(elapsed)
            ids.append(json.loads(response.body)["id"])
        for _ in range(n):
            get.append(timed(lambda: http.get(f"/incidents/{ids[0]}", headers=HEADERS), 200)[0])
        for _ in range(n):
            listing.append(timed(lambda: http.get(f"/incidents?status=new&limit={PAGE}",
                                                  headers=HEADERS), 200)[0])
        for incident_id in ids:
            patching.append(timed(lambda i=incident_id: http.patch(f"/incidents/{i}", headers=HEADERS,
                                                                  body=patch), 200)[0])
    return {name: statistics.median(samples) for name, samples in
            (("create", create), ("get", get), ("list", listing), ("patch", patching))}


if __name__ == "__main__":
    import sys

    from no_observability import install_if_asked

    install_if_asked()  # BENCH_WITHOUT_OBSERVABILITY=1: logs and metrics taken out
    # The app's log lines and EMF go to stdout as in Lambda; the result is the last line.
    print(json.dumps(app_warm_times(int(sys.argv[1]) if len(sys.argv) > 1 else 200)))
