"""Which team a Telegram chat belongs to, for the webhook. Every team is read by one Query (at most
100 small items) and kept in memory for TEAMS_TTL_SECONDS, so an update costs no read at all
most of the time; a change of teams through this process forgets it at once, other Lambda
containers see it within the TTL (docs/oncall.md, "Telegram")."""
from __future__ import annotations

import time
from typing import Any
from weakref import WeakKeyDictionary

from chalicelib.oncall.store import TeamStore
from chalicelib.store import Store

TEAMS_TTL_SECONDS = 60.0

# Per store (a test's table is not another test's); the value: (read at, chat id -> team item).
_cache: WeakKeyDictionary[Store, tuple[float, dict[int, dict[str, Any]]]] = WeakKeyDictionary()


def team_of_chat(store: Store, chat_id: int | None) -> dict[str, Any] | None:
    """The team whose `chat_id` this is; two teams naming one chat: the first by name."""
    if chat_id is None:
        return None
    cached = _cache.get(store)
    if cached is None or time.monotonic() - cached[0] > TEAMS_TTL_SECONDS:
        by_chat: dict[int, dict[str, Any]] = {}
        for item in TeamStore(store).teams():  # by name
            by_chat.setdefault(int(item["chat_id"]), item)
        cached = (time.monotonic(), by_chat)
        _cache[store] = cached
    return cached[1].get(chat_id)


def forget() -> None:
    """Teams changed: the next update reads them again."""
    _cache.clear()
