"""Wall time and peak memory of a command run as a fresh process (interpreter start-up included).
Stdlib only.

    from coldstart import measure, run_once       # with bench/ on sys.path
    run_once(["bench/.venv/bin/python", "bench/reference/asgi_cold_start.py"], env={})
      -> {"started": <time.monotonic()>, "wall": 0.45, "cpu": 0.40, "maxrss_kb": 61234, "stdout": "..."}
    measure(cmd, runs=5, env={})
      -> {"median": ..., "min": ..., "max": ..., "runs": 5, "maxrss_kb": <median>, "stdout": "<last run's>"}
"""
import os
import statistics
import subprocess
import sys
import tempfile


# Spawns the measured command and waits for it: a small process of its own, because a child's
# ru_maxrss also counts the memory of the process that forked it (Linux keeps the high-water mark
# of the address space it replaced at exec); this one is a few MB, the benchmark with moto is 100.
_LAUNCHER = """
import os, sys, time
result, cmd = sys.argv[1], sys.argv[2:]
started = time.monotonic()
pid = os.posix_spawn(cmd[0], cmd, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.monotonic() - started
with open(result, "w") as f:
    f.write(f"{started} {wall} {usage.ru_utime + usage.ru_stime} {usage.ru_maxrss} "
            f"{os.waitstatus_to_exitcode(status)}")
"""


def run_once(cmd: list[str], env: dict) -> dict:
    """One fresh process: wall seconds from spawn to exit, its CPU seconds and its peak resident
    memory (ru_maxrss of that child alone, from wait4). `env` is laid over the current
    environment; `cmd[0]` is a path. Raises RuntimeError if it exits non-zero."""
    full_env = {**os.environ, **env}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(mode="r") as result:
        launcher = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, result.name, *cmd],
                                  env=full_env, stdout=out, stderr=err)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
        if launcher.returncode != 0:
            raise RuntimeError(f"{cmd} could not be started: {stderr.strip()[-2000:]}")
        started, wall, cpu, maxrss, code = result.read().split()
    if int(code) != 0:
        raise RuntimeError(f"{cmd} exited {code}: {stderr.strip()[-2000:]}")
    return {"started": float(started), "wall": float(wall), "cpu": float(cpu), "maxrss_kb": int(maxrss),
            "stdout": stdout, "stderr": stderr}


def first_response(result: dict, reported: dict) -> float:
    """Seconds from spawn to the response, from the `responded_at` the process printed
    (time.monotonic(): CLOCK_MONOTONIC, one clock for every process of the machine); its exit
    (interpreter teardown, which Lambda never waits for) is left out."""
    return reported["responded_at"] - result["started"]


def measure(cmd: list[str], runs: int, env: dict) -> dict:
    """Run `cmd` `runs` times, each a fresh subprocess; wall seconds from spawn to exit."""
    if runs < 1:
        raise ValueError("runs must be >= 1")
    results = [run_once(cmd, env) for _ in range(runs)]
    samples = [r["wall"] for r in results]
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "runs": runs, "maxrss_kb": statistics.median(r["maxrss_kb"] for r in results),
            "stdout": results[-1]["stdout"]}
