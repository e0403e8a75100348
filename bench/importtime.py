"""Where `import app` spends its time: `python -X importtime -c "import app"` in fresh processes.

    from importtime import import_profile         # with bench/ on sys.path
    import_profile(runs=5)  -> {"import_app": 0.118, "top": [("botocore", 0.061), ...]}

`import_app` is the median cumulative time of the `app` module. The top entries are the
median self time summed per package (botocore, urllib3, chalice, ...; this project's own modules
one by one, e.g. chalicelib.store), so they do not overlap. Self time includes compiling a
module that has no cached bytecode, which is what Lambda does with the app's own sources.
"""
from __future__ import annotations

import collections
import statistics
import subprocess

from benchenv import MAIN_PYTHON, ROOT, subprocess_env


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] in ("chalicelib",) else parts[0]


def parse(stderr: str) -> tuple[float, dict[str, float]]:
    """-X importtime output -> (cumulative seconds of `app`, self seconds per package)."""
    per_package: dict[str, float] = collections.Counter()
    total = 0.0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:"):].split("|")
        module = name.strip()
        per_package[_package(module)] += int(self_us) / 1e6
        if module == "app":
            total = int(cumulative_us) / 1e6
    return total, dict(per_package)


def import_profile(runs: int = 5, top: int = 5) -> dict:
    totals, packages = [], collections.defaultdict(list)
    for _ in range(runs):
        proc = subprocess.run([str(MAIN_PYTHON), "-X", "importtime", "-c", "import app"], cwd=ROOT,
                              env={**subprocess_env(), "PYTHONDONTWRITEBYTECODE": "1"}, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"import app failed: {proc.stderr.strip()[-1500:]}")
        total, per_package = parse(proc.stderr)
        totals.append(total)
        for name, seconds in per_package.items():
            packages[name].append(seconds)
    median = {name: statistics.median(values + [0.0] * (runs - len(values)))
              for name, values in packages.items()}
    ranked = sorted(median.items(), key=lambda item: -item[1])
    return {"import_app": statistics.median(totals), "top": ranked[:top],
            "modules": sorted(name for name in median)}
