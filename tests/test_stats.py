"""GET /stats: exact figures on a fixed data set with a fixed clock."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from chalicelib import services, stats

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)


class Clock:
    """What now_iso() answers in the services while the data set is built."""

    def __init__(self) -> None:
        self.moment = NOW

    def set(self, text: str, plus_seconds: float = 0) -> None:
        self.moment = stats.parse_time(text) + timedelta(seconds=plus_seconds)

    def now_iso(self) -> str:
        return stats.iso(self.moment)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(services, "now_iso", clock.now_iso)
    monkeypatch.setattr(stats, "utc_now", lambda: NOW)
    return clock


def build(api: Any, clock: Clock, created: str, source: str, moves: list[tuple[float, str]]) -> int:
    """An incident created at `created`, then moved to each status `seconds` after creation."""
    clock.set(created)
    incident_id = api.create(description=f"created {created}", source=source)["id"]
    for seconds, status in moves:
        clock.set(created, seconds)
        response = api.patch(f"/incidents/{incident_id}", {"status": status})
        assert response.status_code == 200, response.body
    return incident_id


@pytest.fixture
def data_set(api: Any, clock: Clock) -> None:
    """Ten incidents around the default window (since 2026-11-16T12:00:00.000Z)."""
    # Before the window: counted only while open.
    build(api, clock, "2026-11-10T08:00:00.000Z", "operator", [(3600, "in_progress")])
    build(api, clock, "2026-11-16T11:59:59.999Z", "monitoring", [(60, "resolved")])
    # In the window.
    build(api, clock, "2026-11-16T12:00:00.000Z", "monitoring",  # exactly at `since`
          [(60, "in_progress"), (600, "resolved")])
    build(api, clock, "2026-11-17T10:00:00.000Z", "operator",  # closed without being resolved
          [(300, "closed")])
    build(api, clock, "2026-11-18T09:00:00.000Z", "monitoring",  # reopened, resolved again
          [(120, "in_progress"), (1800, "resolved"), (3600, "in_progress"), (7200, "resolved")])
    build(api, clock, "2026-11-19T15:30:00.000Z", "partner", [(30.5, "in_progress")])
    build(api, clock, "2026-11-20T00:00:00.000Z", "partner", [])
    build(api, clock, "2026-11-21T06:00:00.000Z", "monitoring",  # resolved, then reopened
          [(90, "resolved"), (200, "in_progress")])
    build(api, clock, "2026-11-23T11:00:00.000Z", "monitoring", [])
    # A note is not an acknowledgement.
    clock.set("2026-11-23T11:00:00.000Z", 10)
    assert api.post("/incidents/9/notes", {"note": "looking"}).status_code == 201


def test_default_window_is_the_last_seven_days_with_exact_figures(api, data_set):
    response = api.get("/stats")

    assert response.status_code == 200, response.body
    assert response.json_body == {
        "open": {"new": 2, "in_progress": 3},
        "open_by_source": {"operator": 1, "monitoring": 2, "partner": 2},
        "since": "2026-11-16T12:00:00.000Z",
        "opened": 7,
        "resolved": 4,
        # acknowledged: 60, 300, 120, 30.5, 90 -> sorted 30.5, 60, 90, 120, 300
        "time_to_acknowledge_s": {"median": 90, "p90": 300},
        # resolved (first time): 600, 300, 1800, 90 -> median (300 + 600) / 2, p90 the 4th of 4
        "time_to_resolve_s": {"median": 450, "p90": 1800},
    }


@pytest.mark.parametrize("since", [
    "2026-11-20T00:00:00Z", "2026-11-20T00:00:00.000Z", "2026-11-20T03:00:00+03:00",
    "2026-11-20", "2026-11-20T00:00:00",
])
def test_since_narrows_the_window_in_any_iso_8601_form(api, data_set, since):
    body = api.get(f"/stats?since={since.replace('+', '%2B')}").json_body

    assert body["since"] == "2026-11-20T00:00:00.000Z"
    assert (body["opened"], body["resolved"]) == (3, 1)
    assert body["open"] == {"new": 2, "in_progress": 3}  # open counts ignore the window
    assert body["time_to_acknowledge_s"] == {"median": 90, "p90": 90}
    assert body["time_to_resolve_s"] == {"median": 90, "p90": 90}


def test_a_window_with_nothing_in_it_has_null_durations(api, clock):
    build(api, clock, "2026-11-01T00:00:00.000Z", "operator", [])

    body = api.get("/stats").json_body

    assert body["open"] == {"new": 1, "in_progress": 0}
    assert (body["opened"], body["resolved"]) == (0, 0)
    assert body["time_to_acknowledge_s"] == {"median": None, "p90": None}
    assert body["time_to_resolve_s"] == {"median": None, "p90": None}


def test_since_may_be_exactly_ninety_days_back_but_not_more(api, clock):
    assert api.get("/stats?since=2026-08-25T12:00:00Z").status_code == 200
    response = api.get("/stats?since=2026-08-25T11:59:59Z")
    assert response.status_code == 400
    assert "at most 90 days back" in response.json_body["Message"]


@pytest.mark.parametrize("query, message", [
    ("since=yesterday", "since must be an ISO 8601 time"),
    ("since=2026-13-01", "since must be an ISO 8601 time"),
    ("since=", "since is empty; give an ISO 8601 time such as 2026-11-16T00:00:00Z, or leave it out"),
    ("since=%20", "since is empty"),
    ("since=２０２６-11-20", "since must be an ISO 8601 time"),
    ("from=2026-11-20", "unknown query parameter(s): from"),
])
def test_a_bad_query_is_400_with_what_is_allowed(api, clock, query, message):
    response = api.get(f"/stats?{query}")
    assert response.status_code == 400
    assert message in response.json_body["Message"]


def test_stats_need_the_api_key(api):
    assert api.get("/stats", key=None).status_code == 401


@pytest.mark.parametrize("durations, median, p90", [
    ([5], 5, 5),
    ([1, 2], 1.5, 2),
    (list(range(1, 11)), 5.5, 9),
    (list(range(1, 12)), 6, 10),
    ([0.0015, 0.002], 0.002, 0.002),
])
def test_median_is_the_middle_and_p90_the_nearest_rank(durations, median, p90):
    assert stats.summary(durations) == {"median": median, "p90": p90}


def test_telegram_text_is_three_lines_none_naming_an_incident():
    text = stats.telegram_text({
        "open": {"new": 2, "in_progress": 3},
        "open_by_source": {"operator": 1, "monitoring": 2, "partner": 2},
        "since": "2026-11-16T12:00:00.000Z", "opened": 7, "resolved": 4,
        "time_to_acknowledge_s": {"median": 90, "p90": 300},
        "time_to_resolve_s": {"median": 5400, "p90": None},
    })
    assert text.splitlines() == [
        "Open: 2 new, 3 in progress (operator 1, monitoring 2, partner 2)",
        "Last 7 days: 7 opened, 4 resolved",
        "Acknowledge: median 1m, p90 5m; resolve: median 1h 30m, p90 —",
    ]


def test_an_empty_since_is_400_as_the_openapi_document_says(api):
    from chalicelib import openapi

    document = openapi.document("/")
    [since] = document["paths"]["/stats"]["get"]["parameters"]
    assert since["schema"]["minLength"] == 1 and "empty `since=` is 400" in since["description"]
    assert api.get("/stats?since=").status_code == 400
