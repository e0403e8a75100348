"""The README's `make run` (moto server + `chalice local`) as a subprocess on free ports, for
tests that need the service over real HTTP. Each run keeps its data in a directory of its own
(LOCAL_DIR), never in the developer's `.local/`."""
from __future__ import annotations

import itertools
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


# Under pytest-xdist, worker gwN takes its ports from block N of these, below the kernel's
# ephemeral range: the port-0 trick alone may hand one port to two workers at once (free each
# time it is looked at), and then the second `make run` finds it taken.
WORKER_PORTS = range(20000, 32000)
WORKER_BLOCK = 500
_ports_taken = itertools.count(random.randrange(WORKER_BLOCK))  # two runs side by side rarely meet


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Distinct free ports on 127.0.0.1."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, …
    if worker.startswith("gw"):
        return [_worker_port(worker) for _ in range(count)]  # the counter keeps them distinct
    # Each socket stays bound until all are chosen: one after the other, the kernel may hand
    # out the same port twice.
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _worker_port(worker: str) -> int:
    block = WORKER_PORTS.start + int(worker[2:]) % (len(WORKER_PORTS) // WORKER_BLOCK) * WORKER_BLOCK
    for _ in range(WORKER_BLOCK):
        port = block + next(_ports_taken) % WORKER_BLOCK
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {block}-{block + WORKER_BLOCK - 1}")


def clean_environment() -> dict[str, str]:
    """This process's environment without AWS settings, and without what a `make` above us
    (make test) passes down: a nested make would print "make[1]: …" lines of its own."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("AWS_") and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@dataclass
class LocalRun:
    base: str
    moto_url: str
    process: subprocess.Popen
    env: dict[str, str]
    output: str = ""
    stopped: bool = field(default=False)
    left_processes: bool = field(default=False)


@contextmanager
def local_service(extra_env: dict[str, str] | None = None, *, local_dir: Path | None = None,
                  stop_signal: signal.Signals | None = None) -> Iterator[LocalRun]:
    """Starts `make run`, waits for /health, yields it; then stops it: by default as Ctrl-C in
    its terminal would (SIGINT to the whole process group), or with `stop_signal` sent to
    make's pid alone. `local_dir` keeps the data for another run; by default it is thrown away."""
    with tempfile.TemporaryDirectory(prefix="local-run-") as scratch:
        port, moto_port = free_ports(2)
        env = clean_environment()
        env.update(PORT=str(port), MOTO_PORT=str(moto_port), LOCAL_DIR=str(local_dir or scratch),
                   **(extra_env or {}))
        log = tempfile.TemporaryFile()
        process = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        run = LocalRun(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{moto_port}", process, env)
        try:
            _wait_for_health(run, log)
            yield run
        finally:
            run.stopped = _stop(process, stop_signal)
            run.left_processes = _group_alive(process.pid)
            if run.left_processes:
                os.killpg(process.pid, signal.SIGKILL)
            log.seek(0)
            run.output = log.read().decode(errors="replace")
            log.close()


def _stop(process: subprocess.Popen, stop_signal: signal.Signals | None) -> bool:
    """True when `make run` ended by itself after the signal."""
    if process.poll() is not None:
        return False
    if stop_signal is None:
        os.killpg(process.pid, signal.SIGINT)  # the whole foreground group, as a terminal's Ctrl-C
    else:
        os.kill(process.pid, stop_signal)  # make alone
    try:
        process.wait(timeout=STOP_TIMEOUT)
        return True
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return False


def _group_alive(pgid: int) -> bool:
    """Whether any process of `make run`'s group (moto, chalice, …) is still there."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True


READY_LINE = "Ctrl-C stops both.".encode()


def _wait_for_health(run: LocalRun, log) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if run.process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"`make run` exited with {run.process.returncode}:\n"
                               f"{log.read()[-4000:].decode(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{run.base}/health", timeout=2) as response:
                # Healthy, and past its start-up (the kept table upgraded): its banner is out.
                if response.status == 200 and READY_LINE in _read(log):
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{run.base}/health did not answer within {START_TIMEOUT:.0f} s")


def _read(log) -> bytes:
    """What make run wrote so far; pread, because a seek would move make run's own write offset
    (the file is its stdout: one open file, shared)."""
    return os.pread(log.fileno(), os.fstat(log.fileno()).st_size, 0)
