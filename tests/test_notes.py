"""POST /incidents/{id}/notes: a comment without a status change, in any status."""
from __future__ import annotations

from typing import Any

import pytest

from chalicelib import services
from chalicelib.incidents import MAX_NOTE


def note(api: Any, incident_id: int, text: Any, **kw: Any) -> Any:
    return api.post(f"/incidents/{incident_id}/notes", {"note": text}, **kw)


def test_a_note_adds_a_history_entry_with_the_current_status_and_changes_nothing_else(api):
    created = api.create()

    response = note(api, created["id"], "  звонил в сервис, ждём техника  ")

    assert response.status_code == 201, response.body
    body = response.json_body
    assert body["status"] == "new"
    assert body["history_count"] == 2
    assert body["history"][-1] == {"at": body["updated_at"], "status": "new",
                                   "note": "звонил в сервис, ждём техника", "by": "api"}
    assert body["updated_at"] > created["updated_at"]
    assert response.headers["ETag"] == f'"{created["id"]}-2"'
    assert api.get(f"/incidents/{created['id']}").json_body == body


def test_a_note_on_an_in_progress_incident_records_in_progress(api):
    created = api.create()
    api.patch(f"/incidents/{created['id']}", {"status": "in_progress"})

    body = note(api, created["id"], "on site").json_body

    assert [e["status"] for e in body["history"]] == ["new", "in_progress", "in_progress"]
    assert body["history"][-1]["note"] == "on site"


def test_a_closed_incident_still_takes_notes(api):
    created = api.create()
    api.patch(f"/incidents/{created['id']}", {"status": "closed"})

    response = note(api, created["id"], "post-mortem: docs/pm-42.md")

    assert response.status_code == 201
    assert response.json_body["status"] == "closed"
    assert response.json_body["history"][-1]["status"] == "closed"


def test_notes_in_quick_succession_keep_their_order(api):
    created = api.create()
    for n in range(5):
        assert note(api, created["id"], f"note {n}").status_code == 201

    entries = api.get(f"/incidents/{created['id']}/history").json_body["items"]

    assert [e["note"] for e in entries] == [None] + [f"note {n}" for n in range(5)]
    assert all(a["at"] < b["at"] for a, b in zip(entries, entries[1:]))


def test_if_match_with_the_current_etag_applies_and_a_stale_one_is_412_with_the_current_etag(api):
    created = api.create()
    etag = api.get(f"/incidents/{created['id']}").headers["ETag"]

    applied = note(api, created["id"], "first", headers={"If-Match": etag})
    stale = note(api, created["id"], "second", headers={"If-Match": etag})

    assert applied.status_code == 201
    assert stale.status_code == 412
    assert stale.headers["ETag"] == applied.headers["ETag"]
    assert "If-Match does not match" in stale.json_body["Message"]
    assert api.get(f"/incidents/{created['id']}").json_body["history_count"] == 2


def test_if_match_star_applies(api):
    created = api.create()
    assert note(api, created["id"], "x", headers={"If-Match": "*"}).status_code == 201


def test_a_note_on_an_unknown_incident_is_404(api):
    response = note(api, 999, "anything")
    assert response.status_code == 404
    assert response.json_body["Message"] == "no incident #999"


@pytest.mark.parametrize("body, message", [
    ({"note": ""}, "note must not be empty"),
    ({"note": "   "}, "note must not be empty"),
    ({"note": None}, "note must not be empty"),
    ({"note": 42}, "note must be a string"),
    ({"note": "x" * (MAX_NOTE + 1)}, f"at most {MAX_NOTE} are allowed"),
    ({}, "missing required field(s): note"),
    ({"note": "x", "status": "closed"}, "unknown field(s): status"),
])
def test_a_bad_body_is_400_and_writes_nothing(api, body, message):
    created = api.create()
    response = api.post(f"/incidents/{created['id']}/notes", body)
    assert response.status_code == 400
    assert message in response.json_body["Message"]
    assert api.get(f"/incidents/{created['id']}").json_body["history_count"] == 1


def test_a_note_needs_the_api_key_and_json(api):
    created = api.create()
    assert note(api, created["id"], "x", key=None).status_code == 401
    response = api.request("POST", f"/incidents/{created['id']}/notes", body="note=x",
                           headers={"Content-Type": "text/plain"})
    assert response.status_code == 415


def test_a_status_change_between_the_read_and_the_write_gives_the_entry_the_new_status(api, store,
                                                                                         monkeypatch):
    created = api.create()
    read = store.get_incident_item

    def read_then_someone_takes_it(incident_id: int) -> Any:
        seen = read(incident_id)
        services.change_status(store, incident_id, "in_progress", by="api")
        monkeypatch.setattr(store, "get_incident_item", read)
        return seen

    monkeypatch.setattr(store, "get_incident_item", read_then_someone_takes_it)
    body = note(api, created["id"], "raced").json_body

    assert [(e["status"], e["note"]) for e in body["history"]] == [
        ("new", None), ("in_progress", None), ("in_progress", "raced")]
