"""bench/integration_counts.py at a tiny size, so its part of `make bench` cannot rot unnoticed."""
from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def costs() -> Any:
    saved_env, saved_path = dict(os.environ), list(sys.path)
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import integration_counts

        yield integration_counts.measure_size(20)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path
        # tests/test_bench_smoke.py imports these afresh, with their fake AWS settings.
        for name in ("integration_counts", "dynamo_counts", "storm_counts", "benchenv"):
            sys.modules.pop(name, None)


def test_each_alert_and_event_costs_a_few_calls_none_a_scan(costs):
    per_alert = {name: cost.calls_per_event for name, cost in costs.items()}
    # A repeat costs its share of the batch's BatchGetItem (2 of them for 100 alerts' dedup and once-records).
    assert per_alert["alertmanager: repeat"] == 0.02
    assert all(calls <= 5 for calls in per_alert.values()), per_alert
    assert all(per_alert[name] <= 3.02 for name in per_alert if name.startswith("alertmanager")), per_alert
    assert not any("Scan" in cost.kinds for cost in costs.values())
    assert all(cost.read_per_event <= 6 for cost in costs.values())
