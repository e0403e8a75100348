"""History: entries are items of their own, so an incident takes any number of changes; one
incident shows its 100 newest entries, /history pages through all of them."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from chalicelib.incidents import history_entry
from chalicelib.store import default_store

LONG_NOTE = "н" * 1000  # 2 bytes each in UTF-8


def change(api: Any, incident_id: int, status: str, note: str | None = None) -> Any:
    body = {"status": status} if note is None else {"status": status, "note": note}
    response = api.patch(f"/incidents/{incident_id}", body)
    assert response.status_code == 200, response.body
    return response.json_body


def walk_history(api: Any, incident_id: int, limit: int) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        response = api.get(f"/incidents/{incident_id}/history?limit={limit}{suffix}")
        assert response.status_code == 200, response.body
        pages.append(response.json_body["items"])
        cursor = response.json_body["next_cursor"]
        if cursor is None:
            return pages


def stored_incident_item_bytes(incident_id: int) -> int:
    item = default_store()._client.get_item(
        TableName=default_store().table_name,
        Key={"pk": {"S": f"incident#{incident_id}"}, "sk": {"S": "incident"}},
    )["Item"]
    return len(json.dumps(item, ensure_ascii=False).encode("utf-8"))


def test_a_thousand_changes_with_long_notes_then_a_close_all_succeed_and_nothing_is_dropped(
    api
):
    created = api.create()
    item_size_at_start = stored_incident_item_bytes(created["id"])
    store, start = default_store(), datetime.now(timezone.utc)
    for n in range(1000):
        # The store's status change the API makes, without re-reading 100 entries after each.
        at = (start + timedelta(milliseconds=n + 1)).isoformat(timespec="milliseconds")
        target = "resolved" if n % 2 == 0 else "in_progress"
        store.set_status(created["id"], history_entry(at.replace("+00:00", "Z"), target, LONG_NOTE, "api"),
                         from_statuses=["new", "in_progress"] if n % 2 == 0 else ["resolved"])

    closed = change(api, created["id"], "closed", "done at last")

    assert closed["status"] == "closed"
    assert closed["history_count"] == 1002
    assert len(closed["history"]) == 100
    assert closed["history"][-1]["note"] == "done at last"
    assert stored_incident_item_bytes(created["id"]) < item_size_at_start + 200
    entries = [entry for page in walk_history(api, created["id"], 100) for entry in page]
    assert len(entries) == 1002
    assert [e["status"] for e in entries[:3]] == ["new", "resolved", "in_progress"]
    assert entries[-100:] == closed["history"]
    assert all(a["at"] < b["at"] for a, b in zip(entries, entries[1:]))


def test_one_incident_shows_its_100_newest_entries_oldest_first(api):
    created = api.create()
    for n in range(110):
        change(api, created["id"], "resolved" if n % 2 == 0 else "in_progress", f"step {n}")

    shown = api.get(f"/incidents/{created['id']}").json_body

    assert shown["history_count"] == 111
    assert [e["note"] for e in shown["history"]] == [f"step {n}" for n in range(10, 110)]


def test_history_pages_hold_limit_entries_and_walk_every_entry_once_in_order(api):
    created = api.create()
    for n in range(6):
        change(api, created["id"], "resolved" if n % 2 == 0 else "in_progress", f"step {n}")

    for limit in (1, 3, 50):
        pages = walk_history(api, created["id"], limit)
        entries = [entry for page in pages for entry in page]
        assert [e["note"] for e in entries] == [None] + [f"step {n}" for n in range(6)]
        assert all(len(page) == limit for page in pages[:-1])
        assert set(entries[0]) == {"at", "status", "note", "by"}


def test_history_of_an_unknown_incident_is_404(api):
    response = api.get("/incidents/999/history")
    assert response.status_code == 404
    assert response.json_body["Message"] == "no incident #999"


@pytest.mark.parametrize("query, message", [
    ("limit=0", "limit must be an integer from 1 to 100"),
    ("limit=101", "limit must be an integer from 1 to 100"),
    ("cursor=forged", "cursor was not issued by this service"),
    ("status=new", "unknown query parameter(s): status; allowed: limit, cursor"),
])
def test_bad_history_queries_are_400_saying_what_is_allowed(api, query, message):
    created = api.create()
    response = api.get(f"/incidents/{created['id']}/history?{query}")
    assert response.status_code == 400
    assert message in response.json_body["Message"]


def test_a_history_cursor_of_another_incident_is_400(api):
    first, second = api.create("one"), api.create("two")
    change(api, first["id"], "in_progress")
    cursor = api.get(f"/incidents/{first['id']}/history?limit=1").json_body["next_cursor"]

    response = api.get(f"/incidents/{second['id']}/history?limit=1&cursor={cursor}")

    assert response.status_code == 400
    assert "other filters" in response.json_body["Message"]


def test_a_list_page_of_100_incidents_with_long_histories_carries_no_history(api):
    for n in range(100):
        created = api.create(f"Точка продаж #{n} не отвечает " + "x" * 200)
        for step in range(3):
            change(api, created["id"], "resolved" if step % 2 == 0 else "in_progress", LONG_NOTE)

    response = api.get("/incidents?limit=100")

    items = response.json_body["items"]
    assert len(items) == 100 and all("history" not in item for item in items)
    assert all(item["history_count"] == 4 for item in items)
    assert len(response.body) < 100 * 1024  # 400 KB of notes stay out of the page
