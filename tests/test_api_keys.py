"""Named and read-only API keys (contract v3, "Authentication"): who acted is in the history,
a read-only key may only GET, bare keys work as they always did, and a malformed entry of
API_KEYS grants nothing without breaking the others."""
from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import pytest

from chalicelib import auth
from conftest import API_KEY, OTHER_API_KEY, TABLE_NAME, drain_intake

PARTNER_KEY = "partner-secret-0123456789"
PARTNER_NEXT_KEY = "partner-secret-rotated-9876"
DASHBOARD_KEY = "dashboard-secret-abcdef"
MONITORING_KEY = "monitoring-secret-5555"


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", ",".join([
        API_KEY, f"partner={PARTNER_KEY}", f"dashboard:read={DASHBOARD_KEY}",
        f"partner={PARTNER_NEXT_KEY}", f"monitoring={MONITORING_KEY}",
    ]))


def history_by(api: Any, incident_id: int, key: str = API_KEY) -> list[str]:
    return [entry["by"] for entry in api.get(f"/incidents/{incident_id}/history", key=key).json_body["items"]]


def create(api: Any, key: str, **extra: Any) -> Any:
    return api.post("/incidents", {"description": "POS 7 not answering", "source": "partner", **extra}, key=key)


# --- who acted ---

def test_a_bare_key_still_records_api_on_create_change_and_note(api, keys):
    incident = create(api, API_KEY).json_body
    api.patch(f"/incidents/{incident['id']}", {"status": "in_progress"}, key=API_KEY)
    api.post(f"/incidents/{incident['id']}/notes", {"note": "looking"}, key=API_KEY)
    assert history_by(api, incident["id"]) == ["api", "api", "api"]


def test_a_named_key_records_its_name_on_create_change_and_note(api, keys):
    created = create(api, PARTNER_KEY)
    assert created.status_code == 201 and created.json_body["history"][-1]["by"] == "api:partner"
    ident = created.json_body["id"]
    patched = api.patch(f"/incidents/{ident}", {"status": "in_progress", "note": "on it"}, key=PARTNER_KEY)
    assert patched.status_code == 200 and patched.json_body["history"][-1]["by"] == "api:partner"
    noted = api.post(f"/incidents/{ident}/notes", {"note": "technician sent"}, key=MONITORING_KEY)
    assert noted.status_code == 201 and noted.json_body["history"][-1]["by"] == "api:monitoring"
    assert history_by(api, ident) == ["api:partner", "api:partner", "api:monitoring"]


def test_both_entries_of_a_rotated_name_work_and_record_the_same_name(api, keys):
    old = create(api, PARTNER_KEY, dedup_key="old").json_body
    new = create(api, PARTNER_NEXT_KEY, dedup_key="new").json_body
    api.patch(f"/incidents/{old['id']}", {"status": "closed"}, key=PARTNER_NEXT_KEY)
    assert history_by(api, old["id"]) == ["api:partner", "api:partner"]
    assert history_by(api, new["id"]) == ["api:partner"]


def test_a_key_named_api_is_the_same_as_a_bare_key(api, monkeypatch):
    monkeypatch.setenv("API_KEYS", "api=written-with-its-name")
    assert create(api, "written-with-its-name").json_body["history"][-1]["by"] == "api"


def test_a_bare_key_containing_equals_signs_keeps_working(api, monkeypatch):
    # base64 with padding, and a key whose text before "=" is not a name (upper case)
    monkeypatch.setenv("API_KEYS", "c2VjcmV0LWtleQ==,Xy7=abc,abc==")
    for key in ("c2VjcmV0LWtleQ==", "Xy7=abc", "abc=="):
        response = create(api, key, dedup_key=key)
        assert response.status_code == 201, key
        assert response.json_body["history"][-1]["by"] == "api"
    assert api.get("/incidents", key="abc").status_code == 401


def test_idempotency_keys_stay_scoped_to_the_key_not_to_its_name(api, keys, dynamodb):
    body = {"description": "a", "source": "partner"}
    first = api.post("/incidents", body, headers={"Idempotency-Key": "r1"}, key=PARTNER_KEY)
    other = api.post("/incidents", body, headers={"Idempotency-Key": "r1"}, key=API_KEY)
    assert first.json_body["id"] != other.json_body["id"]
    assert "Idempotent-Replayed" not in other.headers
    replay = api.post("/incidents", body, headers={"Idempotency-Key": "r1"}, key=PARTNER_KEY)
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json_body["id"] == first.json_body["id"]
    stored = json.dumps(dynamodb.scan(TableName=TABLE_NAME)["Items"])
    assert f"once#api#{hashlib.sha256(PARTNER_KEY.encode()).hexdigest()[:16]}#r1" in stored
    assert PARTNER_KEY not in stored


# --- read-only keys ---

def test_a_read_only_key_reads_everything(api, keys):
    ident = create(api, API_KEY).json_body["id"]
    for path in ("/incidents", f"/incidents/{ident}", f"/incidents/{ident}/history", "/stats"):
        assert api.get(path, key=DASHBOARD_KEY).status_code == 200, path


def test_a_read_only_key_is_403_for_every_change_naming_the_key_and_changing_nothing(api, keys):
    ident = create(api, API_KEY).json_body["id"]
    before = api.get(f"/incidents/{ident}")
    for method, path, body in [
        ("POST", "/incidents", {"description": "x", "source": "operator"}),
        ("PATCH", f"/incidents/{ident}", {"status": "closed"}),
        ("POST", f"/incidents/{ident}/notes", {"note": "n"}),
    ]:
        response = api.request(method, path, json_body=body, key=DASHBOARD_KEY)
        assert response.status_code == 403, (method, path)
        assert response.json_body["Code"] == "ForbiddenError"
        message = response.json_body["Message"]
        assert "'dashboard'" in message and "read-only" in message and method in message
        assert DASHBOARD_KEY not in response.body.decode()
    after = api.get(f"/incidents/{ident}")
    assert after.headers["ETag"] == before.headers["ETag"]
    assert [i["id"] for i in api.get("/incidents").json_body["items"]] == [ident]


def test_a_read_only_key_is_403_even_for_an_invalid_change(api, keys):
    response = api.request("POST", "/incidents", body="not json", key=DASHBOARD_KEY)
    assert response.status_code == 403


def test_alertmanager_refuses_a_read_only_key_and_records_its_receiver_for_a_named_one(api, keys):
    batch = {"receiver": "team-ops", "status": "firing", "alerts": [{
        "status": "firing", "labels": {"alertname": "DiskFull"}, "annotations": {},
        "startsAt": "2026-12-03T10:00:00Z", "fingerprint": "f1"}]}
    refused = api.post("/alertmanager", batch, key=None, headers={"Authorization": f"Bearer {DASHBOARD_KEY}"})
    assert refused.status_code == 403 and "'dashboard'" in refused.json_body["Message"]
    assert DASHBOARD_KEY not in refused.body.decode()
    assert api.post("/alertmanager", batch, key=DASHBOARD_KEY).status_code == 403
    assert api.get("/incidents").json_body["items"] == []
    stored = api.post("/alertmanager", batch, key=None, headers={"Authorization": f"Bearer {MONITORING_KEY}"})
    assert stored.status_code == 200
    drain_intake()
    [item] = api.get("/incidents").json_body["items"]
    assert history_by(api, item["id"]) == ["alertmanager:team-ops"]


def test_each_request_log_line_names_the_key_that_acted_never_its_value(api, keys, capsys):
    capsys.readouterr()
    create(api, PARTNER_KEY)
    api.patch("/incidents/1", {"status": "closed"}, key=DASHBOARD_KEY)
    api.get("/incidents", key=API_KEY)
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("message") == "request"]
    assert [(r["status"], r.get("key_name")) for r in requests] == [
        (201, "partner"), (403, "dashboard"), (200, "api")]
    assert PARTNER_KEY not in out and DASHBOARD_KEY not in out


# --- what API_KEYS may hold ---

@pytest.mark.parametrize("text, expected", [
    ("k1", [("api", False, "k1")]),
    (" k1 , k2 ,", [("api", False, "k1"), ("api", False, "k2")]),
    ("partner=p1", [("partner", False, "p1")]),
    ("grafana_2-b:read=g1", [("grafana_2-b", True, "g1")]),
    ("partner = p1", [("partner", False, "p1")]),
    ("partner=a=b", [("partner", False, "a=b")]),
    ("abc==", [("api", False, "abc==")]),  # base64 padding is not a name
    ("Partner=p1", [("api", False, "Partner=p1")]),  # names are lower case
    ("partner:write=p1", [("api", False, "partner:write=p1")]),
    ("partner=,ok", [("api", False, "ok")]),  # no value: ignored, never a guessable key
    ("partner:read=", []),
    ("a=k,b:read=k,c", [("api", False, "c")]),  # one value, two meanings: neither counts
    ("a=k,a=k", [("a", False, "k")]),
    (f"{'n' * 65}=k", [("api", False, f"{'n' * 65}=k")]),
    ("", []),
])
def test_each_entry_of_api_keys_is_read_by_the_documented_rule(text, expected):
    assert [(k.name, k.read_only, k.secret) for k in auth.parse_api_keys(text)] == expected


def test_a_malformed_entry_grants_nothing_and_the_others_keep_working(api, monkeypatch):
    monkeypatch.setenv("API_KEYS", f"partner=,ops=shared,ops:read=shared,{OTHER_API_KEY}")
    for presented in ("partner=", "", "=", "shared", "ops=shared"):
        response = api.get("/incidents", key=presented)
        assert response.status_code == 401, presented
    assert api.get("/incidents", key=OTHER_API_KEY).status_code == 200


def test_only_malformed_entries_means_no_access(api, monkeypatch):
    monkeypatch.setenv("API_KEYS", "partner=, dashboard:read=")
    for presented in ("partner=", "dashboard:read=", "", "partner"):
        assert api.get("/incidents", key=presented).status_code == 401


def test_a_malformed_entry_is_logged_by_its_name_never_its_value(caplog):
    with caplog.at_level(logging.WARNING, logger="chalicelib.auth"):
        auth.parse_api_keys("one=k-value-1,two:read=k-value-1,three=,four:write=k-value-2")
    text = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert len(caplog.records) == 4
    assert "one" in text and "two" in text and "three" in text
    assert "k-value-1" not in text and "k-value-2" not in text


def test_a_key_never_shows_its_value_in_its_repr():
    [key] = auth.parse_api_keys("partner=very-secret-value")
    assert "very-secret-value" not in repr(key)


def test_the_local_scripts_pick_the_first_key_that_may_write():
    assert auth.writable_key("dash:read=r1,partner=w1,w2") == "w1"
    assert auth.writable_key("k") == "k"
    assert auth.writable_key("dash:read=r1") is None
