"""bench/storm_counts.py with a small storm, so its part of `make bench` cannot rot unnoticed
(the 512 KiB batch is the real one: its request is what is measured)."""
from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def storm() -> Any:
    saved_env, saved_path = dict(os.environ), list(sys.path)
    sys.path.insert(0, str(ROOT / "bench"))
    for name in ("storm_counts", "benchenv"):  # imported afresh: their fake AWS settings are set at import
        sys.modules.pop(name, None)
    try:
        import storm_counts

        yield storm_counts.measure(batches=8, size=10)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path
        for name in ("storm_counts", "benchenv"):
            sys.modules.pop(name, None)


def test_a_512_kib_batch_is_answered_with_two_calls_and_every_alert_is_applied(storm):
    big = storm["big"]
    assert big["alerts"] >= 3000 and big["bytes"] <= 512 * 1024
    assert big["request_calls"] == [("s3", "PutObject"), ("sqs", "SendMessage")]
    assert big["all_applied"]
    assert big["pagerduty_calls"] == [("sqs", "SendMessage")] and big["pagerduty_applied"]


def test_a_storm_is_applied_once_each_incident_in_its_last_alerts_state(storm):
    small = storm["storm"]
    assert small["all_applied"] and small["states_right"], small
    assert small["max_request_calls"] == 1
    assert small["dynamodb_per_alert"] <= 3
    assert max(small["messages_per_minute"].values()) <= 20
