"""`make run` at 0, 10k and 100k stored incidents (bench/run.py --only local): its restart time
and its create, status change, get and list page latencies, through real HTTP.

The stored incidents are written straight into what `make run` keeps (localaws/persist.py's
snapshot: the table's definition from an empty run, then each incident's items as the store lays
them out, history included): seeding 100k through the API would take an hour. The runs at the
three sizes are up at once and served in turn, request by request, so a busy spell of the
machine slows them alike.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from benchenv import ROOT
from dynamo_counts import PATH_TO, incident_items, seed_plan, seeded_incident

KEY = "bench-local-key"
START_TIMEOUT = 300.0
PAGE = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Run:
    size: int
    directory: Path
    process: subprocess.Popen | None = None
    base: str = ""
    healthy_after: float = 0.0
    stopped_after: float = 0.0
    times: dict[str, list[float]] = field(default_factory=dict)

    def start(self) -> None:
        port, moto_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        env.update(PORT=str(port), MOTO_PORT=str(moto_port), LOCAL_DIR=str(self.directory), API_KEYS=KEY)
        self.base = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        self.process = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        while time.perf_counter() - started < START_TIMEOUT:
            if self.process.poll() is not None:
                raise RuntimeError(f"make run at {self.size:,} exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.base}/health", timeout=2) as response:
                    if response.status == 200:
                        self.healthy_after = time.perf_counter() - started
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"make run at {self.size:,} not healthy within {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        started = time.perf_counter()
        os.killpg(self.process.pid, signal.SIGINT)  # as Ctrl-C: it writes its snapshot
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.stopped_after = time.perf_counter() - started

    def call(self, method: str, path: str, body: Any = None) -> tuple[float, Any]:
        request = urllib.request.Request(self.base + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"x-api-key": KEY, "Content-Type": "application/json"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        return time.perf_counter() - started, answer

    def timed(self, name: str, method: str, path: str, body: Any = None) -> Any:
        seconds, answer = self.call(method, path, body)
        self.times.setdefault(name, []).append(seconds)
        return answer

    def median_ms(self, name: str) -> float:
        return statistics.median(self.times[name]) * 1000


def seed(directory: Path, header_from: Path, size: int) -> float:
    """`size` incidents (ids 1..size, each with its history, as dynamo_counts seeds them) and
    the id counter, as a kept snapshot with the table definition of `header_from`'s. Seconds taken."""
    from boto3.dynamodb.types import TypeSerializer

    from chalicelib.store import _COUNTER_KEY
    from localaws.persist import SNAPSHOT

    started = time.perf_counter()
    serialize = TypeSerializer().serialize
    header = (header_from / SNAPSHOT).read_text(encoding="utf-8").splitlines()[0]
    directory.mkdir(parents=True, exist_ok=True)
    first = datetime.now(timezone.utc) - timedelta(minutes=1) - timedelta(minutes=5 * (size - 1))
    with (directory / SNAPSHOT).open("w", encoding="utf-8") as file:
        file.write(header + "\n")
        for incident_id, (status, source) in enumerate(seed_plan(size), start=1):
            incident = seeded_incident(incident_id, source, first + timedelta(minutes=5 * (incident_id - 1)),
                                       PATH_TO[status])
            for item in incident_items(incident):
                file.write('{"t": 0, "i": %s}\n' % json.dumps(serialize(item)["M"], ensure_ascii=False))
        file.write('{"t": 0, "i": %s}\n' % json.dumps(serialize({**_COUNTER_KEY, "last_id": size})["M"]))
    return time.perf_counter() - started


def measure(sizes: list[int], n: int, log: Callable[[str], None]) -> list[Run]:
    """Starts `make run` at each size (0 included), then n creates, n status changes, n gets and
    n list pages at each, in turn."""
    with tempfile.TemporaryDirectory(prefix="bench-local-") as scratch:
        root = Path(scratch)
        empty = Run(0, root / "empty")
        empty.start()
        empty.stop()  # its snapshot holds the table's definition, no item
        runs = [Run(size, root / f"size-{size}") for size in sizes]
        try:
            for run in runs:
                if run.size:
                    log(f"  seeding {run.size:,} incidents: {seed(run.directory, empty.directory, run.size):.1f}s")
                run.start()
                log(f"  make run with {run.size:,} stored incidents: healthy after {run.healthy_after:.1f}s")
            for run in runs:  # untimed warm-up of each kind
                warm = run.call("POST", "/incidents", {"description": "warm-up", "source": "operator"})[1]
                run.call("GET", f"/incidents/{warm['id']}")
                run.call("GET", f"/incidents?status=new&limit={PAGE}")
            created: dict[int, list[int]] = {run.size: [] for run in runs}
            for i in range(n + PAGE):  # the extra ones fill a page at size 0 as well
                for run in runs:
                    body = {"description": f"Scooter #{i} offline", "source": "monitoring"}
                    created[run.size].append(run.timed("create", "POST", "/incidents", body)["id"])
            for i in range(n):
                for run in runs:
                    incident = created[run.size][i]
                    run.timed("status change", "PATCH", f"/incidents/{incident}", {"status": "in_progress"})
                    run.timed("get", "GET", f"/incidents/{incident}")
                    page = run.timed("list page", "GET", f"/incidents?status=new&limit={PAGE}")
                    assert len(page["items"]) == PAGE
        finally:
            for run in runs:
                run.stop()
        for run in runs:
            log(f"  make run with {run.size:,} stored incidents stopped (snapshot written) in {run.stopped_after:.1f}s")
        return runs
