"""`severity` on incidents: optional on create, raised by later reports, shown by the bot."""
from __future__ import annotations

import pytest

from chalicelib import telegram


def test_severity_is_optional_on_create_and_null_when_nobody_said(api):
    assert api.create()["severity"] is None
    assert api.create("POS 7 down", "partner", severity="critical")["severity"] == "critical"


@pytest.mark.parametrize("value", ["fatal", "CRITICAL", "", 3])
def test_a_severity_outside_the_four_is_400_naming_them(api, value):
    response = api.post("/incidents", {"description": "x", "source": "operator", "severity": value})
    assert response.status_code == 400
    assert "severity must be one of: info, warning, error, critical" in response.json_body["Message"]


def test_a_report_for_the_open_incident_raises_its_severity_never_lowers_it(api):
    api.create(dedup_key="pos-7", severity="warning")
    assert api.create(dedup_key="pos-7", severity="error")["severity"] == "error"
    assert api.create(dedup_key="pos-7", severity="info")["severity"] == "error"
    assert api.create(dedup_key="pos-7")["severity"] == "error"
    last = api.create(dedup_key="pos-7", severity="critical")
    assert (last["severity"], last["occurrences"]) == ("critical", 5)


def test_a_report_with_severity_raises_an_incident_that_had_none(api):
    api.create(dedup_key="pos-7")
    assert api.create(dedup_key="pos-7", severity="info")["severity"] == "info"


def test_an_idempotent_replay_of_a_raising_report_answers_the_raised_severity(api):
    api.create(dedup_key="pos-7", severity="info")
    headers = {"Idempotency-Key": "raise-1"}
    body = {"description": "x", "source": "operator", "dedup_key": "pos-7", "severity": "critical"}
    first = api.post("/incidents", body, headers=headers).json_body
    replay = api.post("/incidents", body, headers=headers)
    assert first["severity"] == replay.json_body["severity"] == "critical"
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_the_open_list_shows_severity_beside_the_status():
    text = telegram.open_list_text([
        {"id": 17, "status": "new", "severity": "critical", "description": "POS 7 down"},
        {"id": 16, "status": "in_progress", "description": "Самокат #42 не в сети"},
    ])
    assert text == "#17 [new, critical] POS 7 down\n#16 [in_progress] Самокат #42 не в сети"
