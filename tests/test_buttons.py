"""The buttons' rules (chalicelib/buttons.py): which actions each status offers, and callback_data."""
from __future__ import annotations

import pytest

from chalicelib import buttons
from chalicelib.incidents import Status


@pytest.mark.parametrize("status, labels", [
    ("new", ["Take", "Resolve"]),
    ("in_progress", ["Resolve", "Close"]),
    ("resolved", ["Reopen", "Close"]),
])
def test_each_open_status_offers_the_contracts_buttons(status, labels):
    markup = buttons.keyboard({"id": 17, "status": status})

    [row] = markup["inline_keyboard"]
    assert [button["text"] for button in row] == labels


def test_a_closed_incident_has_no_buttons():
    assert buttons.keyboard({"id": 17, "status": "closed"}) is None


def test_callback_data_names_the_action_the_incident_and_the_status_shown():
    [row] = buttons.keyboard({"id": 17, "status": "new"})["inline_keyboard"]

    assert [b["callback_data"] for b in row] == ["take:17:new", "resolve:17:new"]
    press = buttons.parse("take:17:new")
    assert (press.action, press.incident_id, press.shown) == (buttons.TAKE, 17, Status.NEW)


def test_the_longest_callback_data_fits_telegrams_64_bytes():
    largest = 10 ** 18 - 1
    for status in ("new", "in_progress", "resolved"):
        for button in buttons.keyboard({"id": largest, "status": status})["inline_keyboard"][0]:
            assert len(button["callback_data"].encode()) <= 64


@pytest.mark.parametrize("data", [None, 17, "", "take:17", "take:0:new", "take:017:new", "fly:17:new",
                                  "take:17:open", "take:17:new:extra", "take:1234567890123456789:new"])
def test_data_this_service_did_not_write_is_not_a_press(data):
    assert buttons.parse(data) is None
