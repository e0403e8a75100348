"""One cold start of the Chalice app, in-process part: imports + building the store + first request.

    .venv/bin/python bench/app_cold_start.py   ->  {"seconds": 0.41}

The first request is GET /incidents?status=new through chalice.test.Client; DynamoDB is
answered by botocore's Stubber on the store's own client (an empty page), so no network and
no moto import. The store (a botocore client) is built from the environment exactly as in Lambda.
Interpreter start-up is not included; bench/coldstart.py measures that from outside.
"""
import time

START = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchenv import API_KEY, use_fake_aws  # noqa: E402

use_fake_aws()

import app as app_module  # noqa: E402

IMPORTED = time.perf_counter()
from botocore.stub import Stubber  # noqa: E402
from chalice.test import Client  # noqa: E402
from chalicelib.store import default_store  # noqa: E402

stubber = Stubber(default_store()._client)
stubber.add_response("query", {"Items": [], "Count": 0, "ScannedCount": 0})
with stubber, Client(app_module.app) as client:
    response = client.http.get("/incidents?status=new", headers={"x-api-key": API_KEY})
    RESPONDED = time.monotonic()  # CLOCK_MONOTONIC: comparable with the launcher's
elapsed = time.perf_counter() - START
if response.status_code != 200:
    sys.exit(f"cold start request failed: {response.status_code} {response.body!r}")
stubber.assert_no_pending_responses()
# import_app: what a Lambda cold start pays before its first event (no test harness, no store).
print(json.dumps({"responded_at": RESPONDED, "seconds": elapsed, "import_app": IMPORTED - START}))
