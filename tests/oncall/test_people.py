"""Who can be reached by a direct message: chalicelib/oncall/people.py on moto."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from chalicelib.oncall import people

NOW = datetime(2026, 12, 9, 12, 0, tzinfo=timezone.utc)
MARIA = 333333333


def test_a_linked_username_is_reached_in_its_private_chat_whatever_its_case(store: Any) -> None:
    people.link(store, "Maria_SRE", MARIA, MARIA, NOW)

    assert people.direct_chat(store, "Maria_SRE") == MARIA
    assert people.direct_chat(store, "maria_sre") == MARIA
    assert people.direct_chat(store, "@maria_sre") == MARIA
    assert people.linked_user(store, MARIA) == {"username": "Maria_SRE", "chat_id": MARIA}


def test_a_username_nobody_linked_has_no_direct_chat(store: Any) -> None:
    people.link(store, "maria_sre", MARIA, MARIA, NOW)

    assert people.direct_chat(store, "oleg_k") is None
    assert people.linked_user(store, 444444444) is None


def test_linking_a_new_username_moves_the_link_away_from_the_old_one(store: Any) -> None:
    people.link(store, "maria_sre", MARIA, MARIA, NOW)

    people.link(store, "maria_oncall", MARIA, MARIA, NOW)

    assert people.direct_chat(store, "maria_oncall") == MARIA
    assert people.direct_chat(store, "maria_sre") is None


def test_an_old_username_someone_else_has_taken_since_stays_theirs(store: Any) -> None:
    people.link(store, "maria_sre", MARIA, MARIA, NOW)
    people.link(store, "maria_sre", 555555555, 555555555, NOW)  # Maria let the name go, Sasha took it

    people.link(store, "maria_oncall", MARIA, MARIA, NOW)  # Maria's next link under her new name

    assert people.direct_chat(store, "maria_sre") == 555555555
    assert people.direct_chat(store, "maria_oncall") == MARIA


def test_a_change_of_case_alone_keeps_the_link(store: Any) -> None:
    people.link(store, "maria_sre", MARIA, MARIA, NOW)

    people.link(store, "Maria_SRE", MARIA, MARIA, NOW)

    assert people.direct_chat(store, "maria_sre") == MARIA
    assert people.linked_user(store, MARIA)["username"] == "Maria_SRE"


def test_unlinking_a_user_who_dropped_their_username_leaves_nobody_to_reach_by_it(store: Any) -> None:
    people.link(store, "maria_sre", MARIA, MARIA, NOW)

    people.unlink(store, MARIA)
    people.unlink(store, MARIA)  # twice: nothing left, nothing refused

    assert people.direct_chat(store, "maria_sre") is None
    assert people.linked_user(store, MARIA) is None
