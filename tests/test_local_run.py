"""The README's `make run`: moto server + `chalice local`, driven over real HTTP."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KEY = "local-run-test-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(base, method, path, body=None, key=KEY):
    request = urllib.request.Request(base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("x-api-key", key)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@pytest.fixture(scope="module")
def local_service():
    port, moto_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PORT=str(port), MOTO_PORT=str(moto_port), API_KEYS=KEY)
    process = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the local run did not answer /health in 90 s"
            time.sleep(0.5)
        yield base, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
            process.wait(timeout=30)


def test_the_local_run_serves_the_api_over_http(local_service):
    base, _ = local_service
    status, headers, created = call(base, "POST", "/incidents",
                                    {"description": "Самокат #42 не в сети", "source": "monitoring"})
    assert status == 201 and headers["Location"] == f"/incidents/{created['id']}"
    assert call(base, "GET", f"/incidents/{created['id']}")[2] == created
    status, _, page = call(base, "GET", "/incidents?status=new")
    assert status == 200 and created["id"] in [i["id"] for i in page["items"]]
    status, _, changed = call(base, "PATCH", f"/incidents/{created['id']}", {"status": "resolved", "note": "back online"})
    assert status == 200 and changed["history"][-1]["note"] == "back online"
    assert call(base, "GET", "/incidents/999999")[0] == 404
    status, _, error = call(base, "PATCH", f"/incidents/{created['id']}", {"status": "new"})
    assert status == 409 and "resolved" in error["Message"]
    assert call(base, "GET", "/incidents", key="wrong")[0] == 401


def test_ctrl_c_stops_everything_the_local_run_started(local_service):
    base, process = local_service
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=30) is not None
    output = process.stdout.read()
    assert f"{base}" in output and f"API key: {KEY}" in output
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "/health", timeout=2)
