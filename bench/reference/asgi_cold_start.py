"""One cold start of the reference as a server runs it: imports, then one request handed to its
own ASGI app, the way uvicorn calls it (lifespan startup, then one `http` scope), with no test
client and no server around it.

    bench/.venv/bin/python bench/reference/asgi_cold_start.py   ->  {"seconds": 0.45, "status": 200}

GET /incidents?status=new with the API key, answered from its in-memory SQLite (created at
import, as the app does). Interpreter start-up is not included here; bench/coldstart.py
measures the whole process from outside.
"""
import time

START = time.perf_counter()

import asyncio  # noqa: E402
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
IMPORTED = time.perf_counter()


RESPONDED = []


async def serve_one(app, key: str) -> tuple[int, bytes]:
    """What uvicorn does for one connection: the lifespan startup, then one request."""
    lifespan_events = [{"type": "lifespan.startup"}]
    lifespan_done = asyncio.Event()

    async def lifespan_receive():
        if lifespan_events:
            return lifespan_events.pop(0)
        await asyncio.Event().wait()  # never: the server would send shutdown at exit

    async def lifespan_send(message):
        if message["type"] in ("lifespan.startup.complete", "lifespan.startup.failed"):
            lifespan_done.set()

    lifespan = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}},
                                         lifespan_receive, lifespan_send))
    await lifespan_done.wait()

    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": "/incidents", "raw_path": b"/incidents",
        "root_path": "", "query_string": b"status=new",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"x-api-key", key.encode()),
                    (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }
    request_sent = False

    async def receive():
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected

    status, body = 0, []

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))
            if not message.get("more_body"):  # the whole response is out: what the client waits for
                RESPONDED.append(time.monotonic())  # CLOCK_MONOTONIC: comparable with the launcher's

    await app(scope, receive, send)
    lifespan.cancel()
    return status, b"".join(body)


status, body = asyncio.run(serve_one(reference.app, os.environ["REF_API_KEYS"].split(",")[0].strip()))
elapsed = time.perf_counter() - START
if status != 200:
    sys.exit(f"cold start request failed: {status} {body[:300]!r}")
json.loads(body)
print(json.dumps({"responded_at": RESPONDED[0], "seconds": elapsed, "import_app": IMPORTED - START,
                  "status": status}))
