"""Wall time of a command run as a fresh process (interpreter start-up included). Stdlib only.

    from coldstart import measure                 # with bench/ on sys.path
    measure(["bench/.venv/bin/python", "bench/reference/cold_start.py"], runs=5, env={})
      -> {"median": ..., "min": ..., "max": ..., "runs": 5, "stdout": "<last run's stdout>"}
"""
import os
import statistics
import subprocess
import time


def measure(cmd: list[str], runs: int, env: dict) -> dict:
    """Run `cmd` `runs` times, each a fresh subprocess; wall seconds from spawn to exit.

    `env` is laid over the current environment. Raises RuntimeError if a run exits non-zero.
    """
    if runs < 1:
        raise ValueError("runs must be >= 1")
    full_env = {**os.environ, **env}
    samples, stdout = [], ""
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
        samples.append(elapsed)
        stdout = proc.stdout
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "runs": runs, "stdout": stdout}
