"""Warm per-request latency of the reference through FastAPI's TestClient, in-memory SQLite.

    from warm import reference_warm_times        # with bench/reference on sys.path
    reference_warm_times(200)  ->  {"create": ..., "get": ..., "list": ..., "patch": ...}

or  bench/.venv/bin/python bench/reference/warm.py 200   (prints the same dict as JSON).

Each kind is timed n times (median seconds per request), after one untimed warm-up request
of each kind, on a freshly emptied database:
  create  POST /incidents {"description": "Scooter #42 offline", "source": "monitoring"}  (n new incidents)
  get     GET /incidents/{id} of one of them
  list    GET /incidents?status=new&limit=50   (over the n incidents just created)
  patch   PATCH /incidents/{id} {"status": "in_progress"} on each created incident (a real transition)
"""
import importlib.util
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
API_KEY = "bench-key"
CREATE_BODY = {"description": "Scooter #42 offline", "source": "monitoring"}
PATCH_BODY = {"status": "in_progress"}


def load_reference():
    """Import bench/reference/app.py as module `reference_app` (in-memory DB, key bench-key)."""
    if "reference_app" in sys.modules:
        return sys.modules["reference_app"]
    saved = {k: os.environ.get(k) for k in ("REF_API_KEYS", "REF_DATABASE_URL")}
    os.environ["REF_API_KEYS"] = API_KEY
    os.environ["REF_DATABASE_URL"] = "sqlite:///:memory:"
    try:
        spec = importlib.util.spec_from_file_location("reference_app", os.path.join(HERE, "app.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["reference_app"] = module
        spec.loader.exec_module(module)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return module


def reset_db(reference) -> None:
    reference.Base.metadata.drop_all(reference.engine)
    reference.Base.metadata.create_all(reference.engine)


def _timed(call, expected: int) -> float:
    start = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - start
    if response.status_code != expected:
        raise RuntimeError(f"expected {expected}, got {response.status_code}: {response.text}")
    return elapsed


def reference_warm_times(n: int) -> dict[str, float]:
    if n < 1:
        raise ValueError("n must be >= 1")
    from fastapi.testclient import TestClient

    reference = load_reference()
    reset_db(reference)
    # `with` keeps one event loop for the whole run (as a running server would) instead of
    # starting one per request; TestClient's thread hand-offs are still part of every timing.
    with TestClient(reference.app, headers={"x-api-key": API_KEY}) as client:
        return _run(client, n)


def _run(client, n: int) -> dict[str, float]:
    # warm-up, untimed
    warm_id = client.post("/incidents", json=CREATE_BODY).json()["id"]
    client.get(f"/incidents/{warm_id}")
    client.get("/incidents", params={"status": "new", "limit": 50})
    client.patch(f"/incidents/{warm_id}", json=PATCH_BODY)

    create, ids = [], []
    for _ in range(n):
        start = time.perf_counter()
        response = client.post("/incidents", json=CREATE_BODY)
        create.append(time.perf_counter() - start)
        if response.status_code != 201:
            raise RuntimeError(f"create: {response.status_code} {response.text}")
        ids.append(response.json()["id"])
    get = [_timed(lambda: client.get(f"/incidents/{ids[0]}"), 200) for _ in range(n)]
    listing = [_timed(lambda: client.get("/incidents", params={"status": "new", "limit": 50}), 200)
               for _ in range(n)]
    patch = [_timed(lambda i=i: client.patch(f"/incidents/{i}", json=PATCH_BODY), 200) for i in ids]
    return {name: statistics.median(samples) for name, samples in
            (("create", create), ("get", get), ("list", listing), ("patch", patch))}


if __name__ == "__main__":
    print(json.dumps(reference_warm_times(int(sys.argv[1]) if len(sys.argv) > 1 else 200)))
