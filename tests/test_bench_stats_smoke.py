"""bench/stats_counts.py (the `stats` part of `make bench`) at small sizes, so it cannot rot."""
from __future__ import annotations

import os
import sys
from datetime import datetime, timezone

from conftest import ROOT


def test_stats_bench_counts_the_same_reads_at_two_sizes() -> None:
    saved_env, saved_path = dict(os.environ), list(sys.path)
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import stats_counts

        now = datetime.now(timezone.utc)
        small, larger = stats_counts.measure(400, now), stats_counts.measure(1_500, now)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path
    assert (small.calls, small.items_read) == (larger.calls, larger.items_read) == (5, 470)
    assert small.body == larger.body
    assert small.body["opened"] == stats_counts.WINDOW
    assert 0 < small.board_bytes < 50 * 1024 and small.first_load_requests == 6  # the page, /stats, /teams, 3 lists
