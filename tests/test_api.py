"""The HTTP contract, route by route, through Chalice's test client on moto."""
import hashlib
import json
import re

import pytest

from tests.conftest import API_KEY, OTHER_API_KEY, TABLE_NAME

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def all_incident_ids(api, **filters):
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return [i["id"] for i in api.get(f"/incidents?{query}&limit=100").json_body["items"]]


# create

def test_create_answers_201_with_location_etag_and_the_incident(api):
    response = api.post("/incidents", {"description": "  Самокат #42 не в сети  ", "source": "monitoring"})
    assert response.status_code == 201
    body = response.json_body
    assert response.headers["Location"] == f"/incidents/{body['id']}"
    assert response.headers["ETag"]
    assert body["description"] == "Самокат #42 не в сети"
    assert (body["status"], body["source"], body["occurrences"], body["dedup_key"]) == ("new", "monitoring", 1, None)
    assert ISO_MS.match(body["created_at"]) and body["created_at"] == body["updated_at"]
    assert body["history"] == [{"at": body["created_at"], "status": "new", "note": None, "by": "api"}]
    assert set(body) == {"id", "description", "status", "source", "created_at", "updated_at",
                         "dedup_key", "severity", "team", "assignee", "escalation", "labels",
                         "occurrences", "history", "history_count"}
    assert body["labels"] == {}
    assert (body["team"], body["assignee"], body["escalation"]) == (None, None, None)


def test_ids_are_assigned_1_2_3_in_creation_order(api):
    assert [api.create(f"report {n}")["id"] for n in range(3)] == [1, 2, 3]


def test_unicode_text_survives_the_round_trip(api):
    text = "Касса №7 не отвечает — 🧾 «отчёт» 中文 עברית"
    created = api.create(text)
    assert api.get(f"/incidents/{created['id']}").json_body["description"] == text


@pytest.mark.parametrize("body, reason", [
    ({"source": "operator"}, "missing required field.*description"),
    ({"description": "x"}, "missing required field.*source"),
    ({"description": "   ", "source": "operator"}, "must not be empty"),
    ({"description": 42, "source": "operator"}, "description must be a string"),
    ({"description": "x", "source": "customer"}, "source must be one of: operator, monitoring, partner"),
    ({"description": "x", "source": "operator", "priority": "high"}, "unknown field.*priority"),
    ({"description": "x" * 4001, "source": "operator"}, "at most 4000"),
    ({"description": "x", "source": "operator", "dedup_key": "k" * 257}, "dedup_key"),
    ({"description": "x", "source": "operator", "dedup_key": 7}, "dedup_key"),
])
def test_invalid_creates_are_400_with_the_reason_and_write_nothing(api, body, reason):
    response = api.post("/incidents", body)
    assert response.status_code == 400
    assert response.json_body["Code"] == "BadRequestError"
    assert re.search(reason, response.json_body["Message"])
    assert all_incident_ids(api) == []


def test_description_at_the_limit_is_accepted(api):
    response = api.post("/incidents", {"description": "ж" * 4000, "source": "partner"})
    assert response.status_code == 201 and len(response.json_body["description"]) == 4000


@pytest.mark.parametrize("raw", ["{", "[]", '"x"', "null", '{"description": NaN, "source": "operator"}', ""])
def test_malformed_json_is_400(api, raw):
    response = api.request("POST", "/incidents", body=raw)
    assert response.status_code == 400 and response.json_body["Code"] == "BadRequestError"


def test_a_body_over_64_kib_is_413_and_writes_nothing(api):
    body = json.dumps({"description": "x", "source": "operator", "dedup_key": None}) + " " * 65536
    response = api.request("POST", "/incidents", body=body)
    assert response.status_code == 413
    assert "65536" in response.json_body["Message"]
    assert all_incident_ids(api) == []


def test_a_body_that_is_not_json_is_415(api):
    response = api.request("POST", "/incidents", body="description=x",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    assert "application/json" in response.json_body["Message"]


def test_charset_parameter_on_json_content_type_is_fine(api):
    response = api.request("POST", "/incidents", body=json.dumps({"description": "x", "source": "operator"}),
                           headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 201


# dedup

def test_a_create_with_an_open_dedup_key_counts_an_occurrence_instead(api):
    first = api.post("/incidents", {"description": "POS 7 down", "source": "partner", "dedup_key": "pos-7"})
    again = api.post("/incidents", {"description": "POS 7 still down", "source": "partner", "dedup_key": "pos-7"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json_body["id"] == first.json_body["id"]
    assert again.json_body["occurrences"] == 2
    assert again.json_body["description"] == "POS 7 down"
    assert again.headers["ETag"] != first.headers["ETag"]
    assert all_incident_ids(api) == [first.json_body["id"]]


def test_dedup_still_applies_while_in_progress(api):
    first = api.create(dedup_key="k")
    api.patch(f"/incidents/{first['id']}", {"status": "in_progress"})
    assert api.create(dedup_key="k")["id"] == first["id"]


@pytest.mark.parametrize("final", ["resolved", "closed"])
def test_once_resolved_or_closed_the_dedup_key_opens_a_new_incident(api, final):
    first = api.create(dedup_key="scooter-42")
    api.patch(f"/incidents/{first['id']}", {"status": final})
    response = api.post("/incidents", {"description": "again", "source": "monitoring", "dedup_key": "scooter-42"})
    assert response.status_code == 201
    assert response.json_body["id"] != first["id"] and response.json_body["occurrences"] == 1
    # and the new one is now the one that absorbs repeats
    assert api.create(dedup_key="scooter-42")["id"] == response.json_body["id"]


# idempotency

def test_a_repeated_idempotency_key_replays_the_first_response(api):
    body = {"description": "Report upload failed", "source": "partner"}
    first = api.post("/incidents", body, headers={"Idempotency-Key": "req-1"})
    api.patch(f"/incidents/{first.json_body['id']}", {"status": "in_progress"})
    again = api.post("/incidents", body, headers={"Idempotency-Key": "req-1"})
    assert again.status_code == 201
    assert again.json_body == first.json_body  # the first response, not the current state
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert all_incident_ids(api) == [first.json_body["id"]]


def test_an_idempotency_key_with_another_body_is_422(api):
    api.post("/incidents", {"description": "a", "source": "partner"}, headers={"Idempotency-Key": "req-2"})
    response = api.post("/incidents", {"description": "b", "source": "partner"}, headers={"Idempotency-Key": "req-2"})
    assert response.status_code == 422 and "different body" in response.json_body["Message"]
    assert len(all_incident_ids(api)) == 1


def test_idempotency_replays_a_dedup_hit_with_its_own_status(api):
    api.create(dedup_key="k")
    body = {"description": "again", "source": "operator", "dedup_key": "k"}
    first = api.post("/incidents", body, headers={"Idempotency-Key": "dup-1"})
    again = api.post("/incidents", body, headers={"Idempotency-Key": "dup-1"})
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json_body["occurrences"] == again.json_body["occurrences"] == 2
    assert api.get("/incidents/1").json_body["occurrences"] == 2


def test_idempotency_keys_are_scoped_to_the_caller(api):
    """Two API keys using the same Idempotency-Key never see each other's requests."""
    first = api.post("/incidents", {"description": "a", "source": "partner"},
                     headers={"Idempotency-Key": "1"})
    other = api.post("/incidents", {"description": "b", "source": "operator"},
                     headers={"Idempotency-Key": "1"}, key=OTHER_API_KEY)
    assert (first.status_code, other.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in other.headers
    assert first.json_body["id"] != other.json_body["id"]
    replay = api.post("/incidents", {"description": "b", "source": "operator"},
                      headers={"Idempotency-Key": "1"}, key=OTHER_API_KEY)
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json_body == other.json_body


def test_the_stored_idempotency_record_names_the_caller_by_a_digest_not_the_key(api, dynamodb):
    api.post("/incidents", {"description": "a", "source": "partner"}, headers={"Idempotency-Key": "k"})
    keys = [item["pk"]["S"] for item in dynamodb.scan(TableName=TABLE_NAME)["Items"]]
    [once] = [key for key in keys if key.startswith("once#")]
    assert once == f"once#api#{hashlib.sha256(API_KEY.encode()).hexdigest()[:16]}#k"
    assert API_KEY not in json.dumps(dynamodb.scan(TableName=TABLE_NAME)["Items"])


def test_an_overlong_idempotency_key_is_400(api):
    response = api.post("/incidents", {"description": "a", "source": "partner"},
                        headers={"Idempotency-Key": "k" * 129})
    assert response.status_code == 400 and "Idempotency-Key" in response.json_body["Message"]


# get

def test_get_answers_the_incident_with_its_etag(api):
    created = api.post("/incidents", {"description": "x", "source": "operator"})
    response = api.get(f"/incidents/{created.json_body['id']}")
    assert response.status_code == 200
    assert response.json_body == created.json_body
    assert response.headers["ETag"] == created.headers["ETag"]


def test_get_of_a_missing_incident_is_404(api):
    response = api.get("/incidents/999")
    assert response.status_code == 404
    assert response.json_body == {"Code": "NotFoundError", "Message": "no incident #999"}


@pytest.mark.parametrize("ident", ["0", "-1", "abc", "1.0", "99999999999999999999"])
def test_an_id_that_is_not_a_positive_integer_is_400(api, ident):
    response = api.get(f"/incidents/{ident}")
    assert response.status_code == 400 and "positive integer" in response.json_body["Message"]


# patch

@pytest.mark.parametrize("path, target", [
    (["in_progress"], "resolved"), (["in_progress"], "closed"), ([], "in_progress"), ([], "resolved"),
    ([], "closed"), (["resolved"], "in_progress"), (["resolved"], "closed"),
])
def test_every_allowed_transition_is_applied_and_recorded(api, path, target):
    incident = api.create()
    for status in path:
        api.patch(f"/incidents/{incident['id']}", {"status": status})
    response = api.patch(f"/incidents/{incident['id']}", {"status": target, "note": "checked on site"})
    assert response.status_code == 200
    body = response.json_body
    assert body["status"] == target
    assert body["history"][-1]["status"] == target and body["history"][-1]["note"] == "checked on site"
    assert body["history"][-1]["by"] == "api"
    assert len(body["history"]) == len(path) + 2
    assert body["updated_at"] == body["history"][-1]["at"]


@pytest.mark.parametrize("path, target, allowed", [
    (["in_progress"], "new", "resolved, closed"),
    (["resolved"], "new", "in_progress, closed"),
    (["closed"], "new", "none"),
    (["closed"], "in_progress", "none"),
    (["closed"], "resolved", "none"),
])
def test_every_refused_transition_is_409_naming_current_and_allowed(api, path, target, allowed):
    incident = api.create()
    for status in path:
        api.patch(f"/incidents/{incident['id']}", {"status": status})
    before = api.get(f"/incidents/{incident['id']}").json_body
    response = api.patch(f"/incidents/{incident['id']}", {"status": target})
    assert response.status_code == 409
    message = response.json_body["Message"]
    assert f"is {before['status']}" in message and allowed in message
    current = api.get(f"/incidents/{incident['id']}")
    assert current.json_body == before
    assert response.headers["ETag"] == current.headers["ETag"]


@pytest.mark.parametrize("status", ["new", "in_progress", "resolved", "closed"])
def test_setting_the_current_status_is_a_no_op(api, status):
    incident = api.create()
    if status != "new":
        api.patch(f"/incidents/{incident['id']}", {"status": status})
    before = api.get(f"/incidents/{incident['id']}")
    response = api.patch(f"/incidents/{incident['id']}", {"status": status, "note": "again"})
    assert response.status_code == 200
    assert response.json_body == before.json_body
    assert response.headers["ETag"] == before.headers["ETag"]


def test_patch_with_a_matching_if_match_applies(api):
    created = api.post("/incidents", {"description": "x", "source": "operator"})
    response = api.patch("/incidents/1", {"status": "in_progress"}, headers={"If-Match": created.headers["ETag"]})
    assert response.status_code == 200 and response.headers["ETag"] != created.headers["ETag"]


def test_patch_with_a_stale_if_match_is_412_and_changes_nothing(api):
    created = api.post("/incidents", {"description": "x", "source": "operator"})
    api.patch("/incidents/1", {"status": "in_progress"})
    current = api.get("/incidents/1")
    response = api.patch("/incidents/1", {"status": "resolved"}, headers={"If-Match": created.headers["ETag"]})
    assert response.status_code == 412
    assert response.headers["ETag"] == current.headers["ETag"]
    assert api.get("/incidents/1").json_body == current.json_body


def test_patch_of_a_missing_incident_is_404_even_with_if_match(api):
    assert api.patch("/incidents/5", {"status": "closed"}).status_code == 404
    assert api.patch("/incidents/5", {"status": "closed"}, headers={"If-Match": '"5-1"'}).status_code == 404


@pytest.mark.parametrize("body, reason", [
    ({}, "missing required field.*status"),
    ({"status": "done"}, "status must be one of: new, in_progress, resolved, closed"),
    ({"status": "closed", "note": "x" * 1001}, "note"),
    ({"status": "closed", "note": 5}, "note must be a string"),
    ({"status": "closed", "owner": "me"}, "unknown field.*owner"),
    ({"note": "x"}, "at least one of status, team, assignee"),
    ({"status": "closed", "assignee": "me"}, "assignee must be a Telegram username"),
    ({"team": "Ops!"}, "team must be 1–32 characters"),
    ({"team": "nosuchteam"}, "team 'nosuchteam' does not exist"),
])
def test_invalid_patches_are_400_and_change_nothing(api, body, reason):
    incident = api.create()
    response = api.patch(f"/incidents/{incident['id']}", body)
    assert response.status_code == 400 and re.search(reason, response.json_body["Message"])
    assert api.get(f"/incidents/{incident['id']}").json_body == incident


def test_a_note_of_exactly_1000_characters_is_kept(api):
    incident = api.create()
    response = api.patch(f"/incidents/{incident['id']}", {"status": "closed", "note": "n" * 1000})
    assert response.json_body["history"][-1]["note"] == "n" * 1000


# auth

@pytest.mark.parametrize("key", [None, "", "wrong-key", "test-key-primar"])
def test_a_missing_or_wrong_api_key_is_401(api, key):
    for method, path, body in [("GET", "/incidents", None), ("POST", "/incidents", {"description": "x", "source": "operator"}),
                               ("GET", "/incidents/1", None), ("PATCH", "/incidents/1", {"status": "closed"})]:
        response = api.request(method, path, json_body=body, key=key)
        assert response.status_code == 401, (method, path)
        assert response.json_body["Code"] == "UnauthorizedError"
    assert api.get("/incidents").status_code == 200
    assert all_incident_ids(api) == []


def test_every_configured_key_is_accepted(api):
    assert api.get("/incidents", key=OTHER_API_KEY).status_code == 200


def test_no_configured_key_means_no_access(api, monkeypatch):
    monkeypatch.setenv("API_KEYS", " , ")
    assert api.get("/incidents", key="").status_code == 401
    assert api.get("/incidents", key=",").status_code == 401


def test_health_needs_no_key(api):
    response = api.get("/health", key=None)
    assert response.status_code == 200 and response.json_body == {"status": "ok"}


def test_auth_comes_before_content_type_checks(api):
    response = api.request("POST", "/incidents", body="x", key=None, headers={"Content-Type": "text/plain"})
    assert response.status_code == 401


@pytest.mark.parametrize("path, headers", [
    ("/incidents", {"x-api-key": "wrong-key"}),
    ("/incidents/1", {"x-api-key": "wrong-key"}),
    ("/incidents/1/notes", {"x-api-key": "wrong-key"}),
    ("/alertmanager", {"Authorization": "Bearer wrong-key"}),
    ("/telegram/webhook", {"X-Telegram-Bot-Api-Secret-Token": "wrong-secret"}),
])
def test_a_route_with_a_header_credential_refuses_a_wrong_one_without_reading_the_body(
        api, monkeypatch, path, headers):
    # alarms binds check_json_limits at its import: imported here first, it keeps the real one
    # for the tests after this one.
    from chalicelib import alarms, payloads, telegram_bot  # noqa: F401

    def read(*args, **kwargs):
        raise AssertionError("the body was read before the credential was checked")

    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", "right-secret")
    monkeypatch.setattr(payloads, "check_json_limits", read)
    monkeypatch.setattr(telegram_bot, "check_json_limits", read)
    method = "PATCH" if path == "/incidents/1" else "POST"
    response = api.request(method, path, body='{"a": ' + '"\\' * 30_000, key=None, headers=headers)
    assert response.status_code == 401
