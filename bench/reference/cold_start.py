"""One cold start of the reference, in-process part only: imports + first request.

    bench/.venv/bin/python bench/reference/cold_start.py   ->  {"seconds": 0.72}

Interpreter start-up is not included; measure that from outside (bench/coldstart.py).
"""
import time

START = time.perf_counter()

import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

os.environ.setdefault("REF_API_KEYS", "bench-key")
os.environ.setdefault("REF_DATABASE_URL", "sqlite:///:memory:")
_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "app.py")
_spec = importlib.util.spec_from_file_location("reference_app", _path)
reference = importlib.util.module_from_spec(_spec)
sys.modules["reference_app"] = reference
_spec.loader.exec_module(reference)  # creates the tables

from fastapi.testclient import TestClient  # noqa: E402

with TestClient(reference.app) as client:
    response = client.get("/incidents", params={"status": "new"},
                          headers={"x-api-key": os.environ["REF_API_KEYS"].split(",")[0].strip()})
    RESPONDED = time.monotonic()  # CLOCK_MONOTONIC: comparable with the launcher's
elapsed = time.perf_counter() - START
if response.status_code != 200:
    sys.exit(f"cold start request failed: {response.status_code} {response.text}")
print(json.dumps({"responded_at": RESPONDED, "seconds": elapsed}))
