"""The pure translators alone (no Chalice, no AWS): pagerduty.py and alertmanager.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib import alertmanager, pagerduty
from chalicelib.incidents import MAX_DEDUP_KEY, Severity

PAYLOADS = Path(__file__).parent / "payloads" / "integrations"


def load(name: str) -> dict:
    return json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))


def test_pagerduty_trigger_example_becomes_an_event():
    event = pagerduty.parse_event(load("pagerduty_trigger"))
    assert (event.action, event.dedup_key, event.severity) == ("trigger", "samplekeyhere", Severity.INFO)
    assert event.summary == "Example alert on host1.example.com"
    assert event.by.startswith("pagerduty:monitoringtool:cloudvendor")


@pytest.mark.parametrize("name, action", [("pagerduty_acknowledge", "acknowledge"),
                                          ("pagerduty_resolve", "resolve")])
def test_pagerduty_acknowledge_and_resolve_examples_need_no_payload(name, action):
    event = pagerduty.parse_event(load(name))
    assert (event.action, event.dedup_key, event.by) == (action, "samplekeyhere", "pagerduty")


def test_pagerduty_keys_are_namespaced_and_fit_the_limit():
    assert pagerduty.incident_key("srv01/mysql") == "pagerduty:srv01/mysql"
    long_a, long_b = pagerduty.incident_key("a" * 255), pagerduty.incident_key("a" * 254 + "b")
    assert len(long_a) <= MAX_DEDUP_KEY and long_a != long_b


def test_alertmanager_v4_batch_becomes_alerts_with_utc_millisecond_times():
    batch = alertmanager.parse_batch(load("alertmanager_firing"))
    first, second = batch.alerts
    assert batch.by == "alertmanager:incidents"
    assert (first.dedup_key, first.status, first.at) == (
        "alertmanager:1a30ba71cca2921f", "firing", "2026-11-23T13:08:45.828Z")
    assert second.at == "2026-11-23T12:09:15.123Z"  # nanoseconds and +01:00
    assert (first.severity, second.severity) == (Severity.CRITICAL, Severity.WARNING)


def test_alertmanager_resolved_alerts_are_ordered_by_ends_at():
    first, _ = alertmanager.parse_batch(load("alertmanager_resolved")).alerts
    assert (first.status, first.at) == ("resolved", "2026-11-23T13:31:45.828Z")
    assert first.once_key != alertmanager.parse_batch(load("alertmanager_firing")).alerts[0].once_key


def test_grafana_body_is_read_like_alertmanagers():
    memory, cpu = alertmanager.parse_batch(load("grafana_webhook")).alerts
    assert memory.at == "2021-10-12T07:51:03.157Z"
    assert cpu.dedup_key == "alertmanager:bc97ff14869b13e3"


@pytest.mark.parametrize("text, expected", [
    ("2026-11-23T10:15:30Z", "2026-11-23T10:15:30.000Z"),
    ("2026-11-23t10:15:30.1z", "2026-11-23T10:15:30.100Z"),
    ("2026-11-23T10:15:30.999999999-05:30", "2026-11-23T15:45:30.999Z"),
    ("2026-12-31T23:59:60Z", "2026-12-31T23:59:59.000Z"),
])
def test_rfc3339_times_become_comparable_text(text, expected):
    batch = {"alerts": [{"status": "firing", "labels": {}, "startsAt": text}]}
    assert alertmanager.parse_batch(batch).alerts[0].at == expected


def test_a_description_falls_back_to_the_alert_name_then_the_labels():
    alerts = alertmanager.parse_batch({"alerts": [
        {"status": "firing", "labels": {"alertname": "DiskFull"}, "startsAt": "2026-11-23T10:00:00Z"},
        {"status": "firing", "labels": {"job": "pos", "b": "2"}, "startsAt": "2026-11-23T10:00:00Z"},
        {"status": "firing", "labels": {}, "startsAt": "2026-11-23T10:00:00Z"},
    ]}).alerts
    assert [a.description for a in alerts] == ["DiskFull", "b=2, job=pos", "Alertmanager alert"]


def test_a_zero_ends_at_is_not_set_and_times_at_the_edges_of_the_calendar_are_kept():
    alerts = alertmanager.parse_batch({"alerts": [
        {"status": "resolved", "labels": {}, "startsAt": "0001-01-01T00:00:00+05:00",
         "endsAt": "0001-01-01T00:00:00Z"},
        {"status": "firing", "labels": {}, "startsAt": "9999-12-31T23:59:59-05:00"},
    ]}).alerts
    assert alerts[0].at == "0001-01-01T00:00:00.001Z"  # ended just after it started
    assert alerts[1].at == "9999-12-31T23:59:59.999Z"
