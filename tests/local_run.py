"""The README's `make run` (moto server + `chalice local`) as a subprocess on free ports, for
tests that need the service over real HTTP."""
from __future__ import annotations

import os
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    output: str = ""
    stopped_by_ctrl_c: bool = field(default=False)


@contextmanager
def local_service(extra_env: dict[str, str] | None = None) -> Iterator[LocalRun]:
    """Starts `make run`, waits for /health, yields it; then stops it as Ctrl-C in its terminal would."""
    port, moto_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PORT=str(port), MOTO_PORT=str(moto_port), **(extra_env or {}))
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    run = LocalRun(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{moto_port}", process)
    try:
        _wait_for_health(run, log)
        yield run
    finally:
        run.stopped_by_ctrl_c = _stop(process)
        log.seek(0)
        run.output = log.read().decode(errors="replace")
        log.close()


def _stop(process: subprocess.Popen) -> bool:
    if process.poll() is not None:
        return False
    os.killpg(process.pid, signal.SIGINT)  # the whole foreground group, as a terminal's Ctrl-C
    try:
        process.wait(timeout=STOP_TIMEOUT)
        return True
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return False


def _wait_for_health(run: LocalRun, log) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if run.process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"`make run` exited with {run.process.returncode}:\n"
                               f"{log.read()[-4000:].decode(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{run.base}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{run.base}/health did not answer within {START_TIMEOUT:.0f} s")
